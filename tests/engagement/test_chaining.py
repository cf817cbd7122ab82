"""With real commits: one rule's actions feed another rule, through one evaluation task per
batch rather than one per changed prospect."""

from __future__ import annotations

import pytest

from engagement.models import AutomationRuleMatch
from engagement.tasks import evaluate_rule, evaluate_rules_for_prospects
from prospects.services import prospect_update
from tests.engagement.conftest import add_tag, criteria_of, field_condition, make_prospect
from tests.engagement.conftest import make_rule as make_automation_rule

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_rule_acting_on_prospects_triggers_the_rules_that_build_on_it(
    monkeypatch: pytest.MonkeyPatch, eager_celery: None
) -> None:
    prospects = [make_prospect(f"p{number}@it.jp", industry="IT") for number in range(5)]
    make_prospect("x@food.jp", industry="食品")
    stop = make_automation_rule(
        name="IT企業はメール停止",
        criteria=criteria_of(field_condition("industry", "equals", "IT")),
        actions=[{"action": "set_do_not_email", "config": {"mark": "set"}}],
    )
    follow_up = make_automation_rule(
        name="メール停止にタグ",
        criteria=criteria_of({"subject": "mailability", "operator": "do_not_email"}),
        actions=[add_tag("メール停止")],
    )
    batches: list[list[int]] = []
    original = evaluate_rules_for_prospects.run

    def recording(prospect_ids: list[int]) -> int:
        batches.append(sorted(prospect_ids))
        return int(original(prospect_ids))

    monkeypatch.setattr(evaluate_rules_for_prospects, "run", recording)

    evaluate_rule.delay(stop.pk, 0)

    ids = sorted(prospect.pk for prospect in prospects)
    # One task for the five prospects the first rule changed, and one for the five the second
    # rule's tags changed (which matches nothing new: the chain ends there).
    assert batches == [ids, ids]
    for rule in (stop, follow_up):
        matched = AutomationRuleMatch.objects.filter(rule=rule)
        assert sorted(matched.values_list("prospect_id", flat=True)) == ids
    assert all(
        set(prospect.tags.values_list("name", flat=True)) == {"メール停止"}
        for prospect in prospects
    )


def test_a_change_committed_outside_any_rule_is_evaluated(eager_celery: None) -> None:
    prospect = make_prospect("a@a.jp", job_title="担当")
    rule = make_automation_rule(
        criteria=criteria_of(field_condition("job_title", "contains", "部長")),
        actions=[add_tag("決裁者")],
    )

    prospect_update(actor=None, prospect=prospect, data={"job_title": "部長"})

    assert list(rule.matches.values_list("prospect_id", flat=True)) == [prospect.pk]
    assert set(prospect.tags.values_list("name", flat=True)) == {"決裁者"}
