"""Grading's criteria subjects: the grade (an ordinal over A+ … F) and the grading profile.

Both compile to plain SQL on the prospect row (``grade IN (…)``) or an EXISTS on the profile
assignment, so dynamic lists, automation rules and HOT conditions can use them like any field.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from prospects.criteria import CriteriaError, OperatorSpec, Subject, register_subject
from scoring.models import GRADE_SCALE, GradingProfile, ProspectProfile

GRADE_OPERATORS = [
    OperatorSpec("equals", _("is")),
    OperatorSpec("not_equals", _("is not")),
    OperatorSpec("gte", _("is at least")),
    OperatorSpec("lte", _("is at most")),
]
PROFILE_OPERATORS = [
    OperatorSpec("is", _("is")),
    OperatorSpec("is_not", _("is not")),
]


def _operator(operators: list[OperatorSpec], condition: dict[str, Any], path: str) -> str:
    key = condition.get("operator")
    if not any(spec.key == key for spec in operators):
        raise CriteriaError(
            gettext("The operator %(name)r does not apply here.") % {"name": key},
            f"{path}.operator",
        )
    return str(key)


def _describe(operators: list[OperatorSpec], values: list[list[str]]) -> dict[str, Any]:
    return {
        "operators": [
            {"key": spec.key, "label": str(spec.label), "arity": spec.arity} for spec in operators
        ],
        "values": values,
    }


# --- grade ----------------------------------------------------------------------------------


def _grade_validate(condition: dict[str, Any], path: str) -> dict[str, Any]:
    operator = _operator(GRADE_OPERATORS, condition, path)
    raw = condition.get("value")
    value = raw.strip().replace("−", "-") if isinstance(raw, str) else raw
    if value not in GRADE_SCALE:
        raise CriteriaError(
            gettext("Expected a grade (%(grades)s).") % {"grades": ", ".join(GRADE_SCALE)},
            f"{path}.value",
        )
    return {"operator": operator, "value": value}


def grades_for(operator: str, grade: str) -> list[str]:
    """The grades a condition accepts: "is at least B" is B, B+, A-, A, A+."""
    index = GRADE_SCALE.index(grade)
    if operator == "equals":
        return [grade]
    if operator == "not_equals":
        return [item for item in GRADE_SCALE if item != grade]
    if operator == "gte":
        return list(GRADE_SCALE[index:])
    return list(GRADE_SCALE[: index + 1])


def _grade_compile(condition: dict[str, Any]) -> Q:
    return Q(grade__in=grades_for(condition["operator"], condition["value"]))


def _grade_describe() -> dict[str, Any]:
    return _describe(GRADE_OPERATORS, [[grade, grade] for grade in reversed(GRADE_SCALE)])


# --- grading profile ------------------------------------------------------------------------


def _profile_validate(condition: dict[str, Any], path: str) -> dict[str, Any]:
    operator = _operator(PROFILE_OPERATORS, condition, path)
    try:
        profile_id = int(str(condition.get("value")))
    except ValueError as error:
        raise CriteriaError(gettext("Expected an id."), f"{path}.value") from error
    if not GradingProfile.objects.filter(pk=profile_id).exists():
        raise CriteriaError(gettext("No such grading profile."), f"{path}.value")
    return {"operator": operator, "value": profile_id}


def profile_q(profile_id: int) -> Q:
    """Prospects on the profile: a row naming it, or — for the Default profile — no other row.

    Pure SQL without a look-up at compile time: the "is it the default" test is an
    uncorrelated sub-query, evaluated once per statement.
    """
    rows = ProspectProfile.objects.filter(prospect_id=OuterRef("pk"))
    is_default = GradingProfile.objects.filter(pk=profile_id, is_default=True)
    return Q(Exists(rows.filter(profile_id=profile_id))) | (
        Q(Exists(is_default)) & ~Q(Exists(rows.exclude(profile_id=profile_id)))
    )


def _profile_compile(condition: dict[str, Any]) -> Q:
    matched = profile_q(condition["value"])
    return matched if condition["operator"] == "is" else ~matched


def _profile_describe() -> dict[str, Any]:
    return _describe(
        PROFILE_OPERATORS,
        [
            [str(pk), name]
            for pk, name in GradingProfile.objects.order_by("-is_default", "name").values_list(
                "pk", "name"
            )
        ],
    )


def register_grading_subjects() -> None:
    register_subject(
        Subject(
            key="grade",
            label=_("Grade"),
            validate=_grade_validate,
            compile=_grade_compile,
            describe=_grade_describe,
        )
    )
    register_subject(
        Subject(
            key="grading_profile",
            label=_("Grading profile"),
            validate=_profile_validate,
            compile=_profile_compile,
            describe=_profile_describe,
        )
    )
