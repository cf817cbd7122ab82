"""Evaluations of one rule really in parallel: every prospect matched once, its actions run once."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest
from django.db.models import Sum

from engagement.models import AutomationRuleMatch
from engagement.rules import automation_rule_evaluate_all, automation_rules_evaluate_for_prospects
from prospects.models import ActionRun, Prospect
from scoring.models import ScoreChange
from tests.concurrency import in_parallel
from tests.engagement.conftest import add_points, criteria_of, field_condition, make_prospect
from tests.engagement.conftest import make_rule as make_automation_rule

pytestmark = pytest.mark.django_db(transaction=True)


def test_parallel_evaluations_match_each_prospect_once_and_act_once() -> None:
    prospects = [make_prospect(f"p{number}@it.jp", industry="IT") for number in range(30)]
    rule = make_automation_rule(
        criteria=criteria_of(field_condition("industry", "equals", "IT")),
        actions=[add_points(10)],
    )
    ids = [prospect.pk for prospect in prospects]
    jobs: list[Callable[[], object]] = [
        partial(automation_rule_evaluate_all, rule_id=rule.pk, range_size=7, limit=5)
        for _ in range(3)
    ]
    jobs += [
        partial(automation_rules_evaluate_for_prospects, prospect_ids=ids[::2]),
        partial(automation_rules_evaluate_for_prospects, prospect_ids=ids),
    ]

    in_parallel(jobs)

    matches = AutomationRuleMatch.objects.filter(rule=rule)
    assert sorted(matches.values_list("prospect_id", flat=True)) == sorted(ids)
    assert set(matches.values_list("ordinal", flat=True)) == {1}
    assert ActionRun.objects.filter(cause_type="automation_rule").count() == 30
    assert set(Prospect.objects.filter(pk__in=ids).values_list("score", flat=True)) == {10}
    assert ScoreChange.objects.aggregate(total=Sum("points"))["total"] == 300
    rule.refresh_from_db()
    assert rule.matched_count == 30
