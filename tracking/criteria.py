"""Activity criteria: "did / did not do TYPE (on OBJECT) at least N times within the last D days".

Registered with the criteria engine by TrackingConfig.ready(); compiled to an EXISTS sub-query
on the activity table (its (prospect_id, occurred_at) index), never evaluated in Python.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from prospects.criteria import CriteriaError, OperatorSpec, Subject, register_subject
from tracking.models import Activity, ActivityType

OPERATORS = [
    OperatorSpec("did", _("did"), "activity"),
    OperatorSpec("did_not", _("did not"), "activity"),
]
MAX_COUNT = 10_000
MAX_DAYS = 3650


def _whole(raw: Any, path: str, *, low: int, high: int) -> int:
    try:
        value = int(str(raw))
    except ValueError as error:
        raise CriteriaError(gettext("Expected a whole number."), path) from error
    if not low <= value <= high:
        raise CriteriaError(
            gettext("Expected a whole number from %(low)d to %(high)d.")
            % {"low": low, "high": high},
            path,
        )
    return value


def validate(condition: dict[str, Any], path: str) -> dict[str, Any]:
    operator = condition.get("operator")
    if operator not in ("did", "did_not"):
        raise CriteriaError(
            gettext("The operator %(name)r does not apply here.") % {"name": operator},
            f"{path}.operator",
        )
    activity_type = condition.get("activity_type")
    if activity_type not in ActivityType.values:
        raise CriteriaError(gettext("Unknown activity type."), f"{path}.activity_type")
    raw_object = condition.get("object", "")
    if not isinstance(raw_object, str | int) or len(str(raw_object)) > 500:
        raise CriteriaError(gettext("Expected text."), f"{path}.object")
    count = _whole(condition.get("count", 1), f"{path}.count", low=1, high=MAX_COUNT)
    raw_days = condition.get("days")
    days = (
        None if raw_days in (None, "") else _whole(raw_days, f"{path}.days", low=1, high=MAX_DAYS)
    )
    return {
        "operator": operator,
        "activity_type": activity_type,
        "object": str(raw_object).strip(),
        "count": count,
        "days": days,
    }


def compile_condition(condition: dict[str, Any]) -> Q:
    rows = Activity.objects.filter(
        prospect_id=OuterRef("pk"), type=condition["activity_type"], is_bot=False
    )
    if condition["days"]:
        rows = rows.filter(
            occurred_at__gte=timezone.now() - datetime.timedelta(days=condition["days"])
        )
    if condition["object"]:
        rows = rows.filter(
            Q(object_id=condition["object"]) | Q(object_label__icontains=condition["object"])
        )
    if condition["count"] > 1:
        counted = (
            rows.order_by()
            .values("prospect_id")
            .annotate(matches=Count("id"))
            .filter(matches__gte=condition["count"])
        )
        exists = Q(Exists(counted))
    else:
        exists = Q(Exists(rows))
    return exists if condition["operator"] == "did" else ~exists


def describe() -> dict[str, Any]:
    return {
        "operators": [
            {"key": spec.key, "label": str(spec.label), "arity": spec.arity} for spec in OPERATORS
        ],
        "activity_types": [[value, str(label)] for value, label in ActivityType.choices],
    }


def register() -> None:
    register_subject(
        Subject(
            key="activity",
            label=_("Activity"),
            validate=validate,
            compile=compile_condition,
            describe=describe,
        )
    )
