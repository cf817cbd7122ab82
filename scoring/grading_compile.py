"""Grading criteria as SQL: a criterion's state and a profile's grade as ORM expressions.

A criterion's criteria document is compiled by the criteria engine once per regrade; the
grade of every prospect on a profile is then one expression over those Q objects (CASE per
criterion, summed, clamped, looked up in the scale), so a regrade is one statement per chunk
and profile, never a loop over prospects.

For one prospect and one criterion:

* a hand (or action) mark overrides everything;
* else *matched* when the document matches;
* else *unknown* when every field the document tests is empty for the prospect (a condition
  on another subject — tags, lists, activities — always counts as known);
* else *not matched*.

A criterion without conditions, or whose document no longer validates (a custom field or list
it names was deleted), is unknown for everyone until it is fixed.
"""

from __future__ import annotations

import functools
import logging
import operator
from dataclasses import dataclass
from typing import Any

from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Exists,
    Expression,
    ExpressionWrapper,
    Func,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest, Least
from django.utils.translation import gettext as _

from prospects.criteria import (
    CriteriaError,
    compile_criteria,
    criteria_conditions,
    validate_criteria,
)
from scoring.models import (
    GRADE_SCALE,
    GRADE_START,
    CriterionMark,
    CriterionState,
    GradingCriterion,
    GradingProfile,
    ProspectProfile,
)

logger = logging.getLogger(__name__)

# Subjects whose emptiness can be tested: a criterion testing only these can be "unknown".
FIELD_SUBJECTS = frozenset({"field", "company", "custom_field"})


def _tests_the_grade(condition: dict[str, Any]) -> bool:
    """A criterion on the grade itself would never settle (each regrade flips it)."""
    subject = condition.get("subject")
    return subject == "grade" or (subject == "field" and condition.get("field") == "grade")


def grading_criteria_check(document: dict[str, Any]) -> None:
    """Refuse what a grading criterion may not test (raises CriteriaError)."""
    for leaf in criteria_conditions(document):
        if _tests_the_grade(leaf):
            raise CriteriaError(_("A grading criterion cannot test the grade itself."))


@dataclass(frozen=True)
class CompiledCriterion:
    """One criterion ready for SQL. ``match_q`` None: unknown for everyone (not configured)."""

    id: int
    name: str
    weight: int
    match_q: Q | None
    known_q: Q | None  # None with a match_q: always known (it tests more than fields)
    error: str = ""

    @property
    def is_configured(self) -> bool:
        return self.match_q is not None


def _known_q(leaves: list[dict[str, Any]]) -> Q | None:
    """Whether any field the document tests has a value: the same fields, "is not empty"."""
    if any(leaf["subject"] not in FIELD_SUBJECTS for leaf in leaves):
        return None
    seen: set[tuple[str, str]] = set()
    conditions = []
    for leaf in leaves:
        key = (leaf["subject"], str(leaf.get("field")))
        if key in seen:
            continue
        seen.add(key)
        conditions.append({**leaf, "operator": "is_not_empty", "value": None})
    return compile_criteria({"match": "any", "conditions": conditions}, validated=True)


def criterion_compile(criterion: GradingCriterion) -> CompiledCriterion:
    def compiled(match_q: Q | None, known_q: Q | None, error: str = "") -> CompiledCriterion:
        return CompiledCriterion(
            id=criterion.pk,
            name=criterion.name,
            weight=int(criterion.weight),
            match_q=match_q,
            known_q=known_q,
            error=error,
        )

    try:
        document = validate_criteria(criterion.criteria or {})
        grading_criteria_check(document)
    except CriteriaError as error:
        logger.warning("grading criterion %s is not valid: %s", criterion.pk, error)
        return compiled(None, None, str(error))
    leaves = list(criteria_conditions(document))
    match_q = compile_criteria(document, validated=True) if leaves else Q()
    if not leaves or not match_q:
        return compiled(None, None)
    return compiled(match_q, _known_q(leaves))


@dataclass(frozen=True)
class ProfilePlan:
    """A profile and its compiled criteria; ``marked`` are the criteria someone has marked."""

    profile: GradingProfile
    criteria: tuple[CompiledCriterion, ...]
    marked: frozenset[int]


def profile_plan(profile: GradingProfile, marked: frozenset[int]) -> ProfilePlan:
    criteria = tuple(criterion_compile(criterion) for criterion in profile.criteria.all())
    return ProfilePlan(
        profile=profile,
        criteria=criteria,
        marked=frozenset(marked & {criterion.id for criterion in criteria}),
    )


def on_profile_q(profile: GradingProfile) -> Q:
    """Prospects graded against ``profile``: a prospect without a ProspectProfile row (or with
    one naming the default) is on the default profile."""
    rows = ProspectProfile.objects.filter(prospect_id=OuterRef("pk"))
    if profile.is_default:
        return ~Q(Exists(rows.exclude(profile_id=profile.pk)))
    return Q(Exists(rows.filter(profile_id=profile.pk)))


def _data_points(criterion: CompiledCriterion) -> Expression:
    """+weight when the data matches, −weight when it does not, 0 when unknown."""
    weight = criterion.weight
    if criterion.match_q is None:
        return Value(0, output_field=IntegerField())
    whens = [When(criterion.match_q, then=Value(weight))]
    if criterion.known_q is None:
        return Case(*whens, default=Value(-weight), output_field=IntegerField())
    whens.append(When(criterion.known_q, then=Value(-weight)))
    return Case(*whens, default=Value(0), output_field=IntegerField())


def _mark_points(criterion: CompiledCriterion) -> Subquery:
    weight = criterion.weight
    marks = CriterionMark.objects.filter(
        prospect_id=OuterRef("pk"), criterion_id=criterion.id
    ).annotate(
        points=Case(
            When(state=CriterionState.MATCHED, then=Value(weight)),
            When(state=CriterionState.NOT_MATCHED, then=Value(-weight)),
            default=Value(0),
            output_field=IntegerField(),
        )
    )
    return Subquery(marks.values("points")[:1], output_field=IntegerField())


def criterion_points(criterion: CompiledCriterion, *, marked: bool) -> Expression:
    """The criterion's steps for a prospect; a mark (when any exists for it) overrides data."""
    data = _data_points(criterion)
    if not marked:
        return data
    return Coalesce(_mark_points(criterion), data, output_field=IntegerField())


class GradeAt(Func):
    """The scale's grade at a (clamped) index: one array lookup, the sum computed once."""

    arity = 1
    # The scale is a constant of the code (letters and signs), never user input.
    template = (
        "(ARRAY[" + ", ".join(f"'{grade}'" for grade in GRADE_SCALE) + "]::varchar[])"
        "[%(expressions)s + 1]"
    )
    output_field = CharField()


def grade_expression(plan: ProfilePlan) -> Expression:
    """The grade a prospect on ``plan.profile`` should have, as one SQL expression."""
    parts: list[Any] = [
        criterion_points(criterion, marked=criterion.id in plan.marked)
        for criterion in plan.criteria
        if criterion.is_configured or criterion.id in plan.marked
    ]
    if not parts:
        return Value(GRADE_SCALE[GRADE_START], output_field=CharField())
    total = ExpressionWrapper(
        functools.reduce(operator.add, parts, Value(GRADE_START)),
        output_field=IntegerField(),
    )
    index = Greatest(Least(total, Value(len(GRADE_SCALE) - 1)), Value(0))
    return GradeAt(index)


def criterion_state_annotations(plan: ProfilePlan) -> dict[str, Expression]:
    """For one prospect's explanation: whether each configured criterion matches / is known."""
    annotations: dict[str, Expression] = {}
    for criterion in plan.criteria:
        if criterion.match_q is None:
            continue
        annotations[f"matched_{criterion.id}"] = ExpressionWrapper(
            criterion.match_q, output_field=BooleanField()
        )
        if criterion.known_q is not None:
            annotations[f"known_{criterion.id}"] = ExpressionWrapper(
                criterion.known_q, output_field=BooleanField()
            )
    return annotations


def grade_of(steps: int) -> str:
    """The grade ``steps`` thirds of a letter above D (below, when negative), clamped."""
    return GRADE_SCALE[max(0, min(len(GRADE_SCALE) - 1, GRADE_START + steps))]
