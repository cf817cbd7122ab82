"""Fixtures and helpers of the automation rule tests."""

from __future__ import annotations

from typing import Any

from engagement.models import AutomationRule, RuleStatus
from prospects.models import Prospect
from prospects.services import prospect_create


def make_prospect(email: str, **data: Any) -> Prospect:
    return prospect_create(actor=None, data={"email": email, **data}, refresh_lists=False)


def field_condition(field: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {"subject": "field", "field": field, "operator": operator, "value": value}


def criteria_of(*conditions: dict[str, Any], match: str = "all") -> dict[str, Any]:
    return {"match": match, "conditions": list(conditions)}


def make_rule(
    *,
    criteria: dict[str, Any],
    actions: list[dict[str, Any]],
    running: bool = True,
    name: str = "ルール",
    repeat: bool = False,
    repeat_after_days: int | None = None,
) -> AutomationRule:
    """A rule saved as-is (the services' own validation is tested through them and the views)."""
    return AutomationRule.objects.create(
        name=name,
        criteria=criteria,
        actions=actions,
        status=RuleStatus.RUNNING if running else RuleStatus.PAUSED,
        repeat=repeat,
        repeat_after_days=repeat_after_days,
    )


def add_tag(tag: str) -> dict[str, Any]:
    return {"action": "add_tag", "config": {"tag": tag}}


def add_points(points: int) -> dict[str, Any]:
    return {"action": "adjust_score", "config": {"mode": "add", "points": points}}
