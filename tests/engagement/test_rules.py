"""Automation rules: retroactive on resume, once per prospect or again after N days, never
twice for the same match, driven by activities and prospect changes, swept hourly, paused with
a visible error when their criteria break, and the database-hygiene rule end to end."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.utils import timezone

from engagement.models import AutomationRule, AutomationRuleMatch, RuleStatus
from engagement.rules import (
    CONSUMER_KEY,
    automation_rule_create,
    automation_rule_evaluate_all,
    automation_rule_evaluate_chunk,
    automation_rule_preview,
    automation_rule_resume,
    automation_rule_update,
    automation_rules_evaluate_for_prospects,
    criteria_summary,
)
from engagement.tasks import evaluate_rule, sweep_automation_rules
from mapp.models import Notification, User
from prospects.criteria import CriteriaError
from prospects.models import ActionRun, CustomField, Prospect, ProspectList
from prospects.services import (
    list_create,
    list_delete,
    prospect_set_custom_values,
    prospect_update,
)
from tests.engagement.conftest import (
    add_points,
    add_tag,
    criteria_of,
    field_condition,
    make_prospect,
    make_rule,
)
from tracking.consumers import activity_consumers
from tracking.models import ActivityType
from tracking.services import activity_record, deliver_activities

pytestmark = pytest.mark.django_db

IT = criteria_of(field_condition("industry", "equals", "IT"))


def _tags(prospect: Prospect) -> set[str]:
    return set(prospect.tags.values_list("name", flat=True))


def _matches(rule: AutomationRule) -> list[tuple[int, int]]:
    return sorted(
        AutomationRuleMatch.objects.filter(rule=rule).values_list("prospect_id", "ordinal")
    )


# --- retroactive, once, repeat ------------------------------------------------------------------


def test_a_new_rule_is_saved_paused_and_matches_nothing_until_resumed(
    marketer: User, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    first = make_prospect("a@it.jp", industry="IT")
    second = make_prospect("b@it.jp", industry="IT")
    other = make_prospect("c@food.jp", industry="食品")
    with django_capture_on_commit_callbacks(execute=True):
        rule = automation_rule_create(
            actor=marketer, name="IT企業", criteria=IT, actions=[add_tag("IT企業")]
        )
    assert rule.status == RuleStatus.PAUSED
    assert _matches(rule) == []
    assert automation_rule_preview(rule=rule).due == 2

    with django_capture_on_commit_callbacks(execute=True):
        automation_rule_resume(actor=marketer, rule=rule)

    rule.refresh_from_db()
    assert rule.status == RuleStatus.RUNNING and rule.resumed_at is not None
    assert _matches(rule) == [(first.pk, 1), (second.pk, 1)]
    assert rule.matched_count == 2 and rule.last_evaluated_at is not None
    assert _tags(first) == {"IT企業"} and _tags(second) == {"IT企業"} and _tags(other) == set()
    runs = ActionRun.objects.filter(cause_type="automation_rule", cause_id=str(rule.pk))
    assert sorted(runs.values_list("idempotency_key", flat=True)) == [
        f"automation:{rule.pk}:{first.pk}:1:0",
        f"automation:{rule.pk}:{second.pk}:1:0",
    ]
    assert automation_rule_preview(rule=rule).due == 0


def test_save_and_run_processes_existing_prospects_at_once(
    marketer: User, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    prospect = make_prospect("a@it.jp", industry="IT")
    with django_capture_on_commit_callbacks(execute=True):
        rule = automation_rule_create(
            actor=marketer, name="IT企業", criteria=IT, actions=[add_points(10)], run=True
        )
    assert _matches(rule) == [(prospect.pk, 1)]
    prospect.refresh_from_db()
    assert prospect.score == 10


def test_a_rule_matches_each_prospect_once_and_never_unmatches() -> None:
    prospect = make_prospect("a@it.jp", industry="IT")
    rule = make_rule(criteria=IT, actions=[add_points(10)])

    assert automation_rule_evaluate_all(rule_id=rule.pk) == 1
    assert automation_rule_evaluate_all(rule_id=rule.pk) == 0
    later = timezone.now() + datetime.timedelta(days=400)
    assert automation_rule_evaluate_all(rule_id=rule.pk, now=later) == 0
    prospect_update(actor=None, prospect=prospect, data={"industry": "食品"})
    assert automation_rules_evaluate_for_prospects(prospect_ids=[prospect.pk]) == {rule.pk: 0}

    assert _matches(rule) == [(prospect.pk, 1)]  # no longer matching, still matched once
    prospect.refresh_from_db()
    assert prospect.score == 10
    rule.refresh_from_db()
    assert rule.matched_count == 1


def test_a_repeat_rule_matches_again_after_its_days() -> None:
    prospect = make_prospect("a@it.jp", industry="IT")
    rule = make_rule(criteria=IT, actions=[add_points(10)], repeat=True, repeat_after_days=7)
    now = timezone.now()

    assert automation_rule_evaluate_all(rule_id=rule.pk, now=now) == 1
    assert automation_rule_evaluate_all(rule_id=rule.pk, now=now + datetime.timedelta(days=6)) == 0
    assert automation_rule_evaluate_all(rule_id=rule.pk, now=now + datetime.timedelta(days=7)) == 1
    assert automation_rule_evaluate_all(rule_id=rule.pk, now=now + datetime.timedelta(days=8)) == 0
    # Moved back in time by hand: the last match is old enough again.
    AutomationRuleMatch.objects.filter(rule=rule).update(
        matched_at=now - datetime.timedelta(days=30)
    )
    assert automation_rules_evaluate_for_prospects(prospect_ids=[prospect.pk], now=now) == {
        rule.pk: 1
    }

    assert _matches(rule) == [(prospect.pk, 1), (prospect.pk, 2), (prospect.pk, 3)]
    prospect.refresh_from_db()
    assert prospect.score == 30
    rule.refresh_from_db()
    assert rule.matched_count == 3


def test_actions_added_later_are_not_run_on_prospects_matched_before(
    marketer: User, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    early = make_prospect("a@it.jp", industry="IT")
    rule = make_rule(criteria=IT, actions=[add_tag("一回目")])
    automation_rule_evaluate_all(rule_id=rule.pk)
    late = make_prospect("b@it.jp", industry="IT")

    with django_capture_on_commit_callbacks(execute=True):
        automation_rule_update(
            actor=marketer,
            rule=rule,
            name=rule.name,
            criteria=IT,
            actions=[add_tag("一回目"), add_tag("追加")],
        )

    assert _tags(early) == {"一回目"}
    assert _tags(late) == {"一回目", "追加"}


def test_a_pass_in_small_chunks_matches_every_prospect_once() -> None:
    prospects = [make_prospect(f"p{number}@it.jp", industry="IT") for number in range(7)]
    make_prospect("x@food.jp", industry="食品")
    rule = make_rule(criteria=IT, actions=[add_tag("IT")])

    first = automation_rule_evaluate_chunk(rule_id=rule.pk, range_size=3, limit=2)
    assert len(first.matches) == 2 and first.next_after_id == prospects[1].pk
    total = len(first.matches) + automation_rule_evaluate_all(
        rule_id=rule.pk, range_size=3, limit=2
    )

    assert total == 7
    assert _matches(rule) == [(prospect.pk, 1) for prospect in prospects]
    rule.refresh_from_db()
    assert rule.matched_count == 7


def test_the_background_pass_queues_one_task_per_chunk_until_done(
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    monkeypatch.setattr("engagement.rules.EVALUATION_RANGE", 3)
    monkeypatch.setattr("engagement.rules.MATCHES_PER_TRANSACTION", 2)
    prospects = [make_prospect(f"p{number}@it.jp", industry="IT") for number in range(8)]
    rule = make_rule(criteria=IT, actions=[add_tag("IT")])
    chunks: list[tuple[int, int]] = []
    original = evaluate_rule.run

    def recording(rule_id: int, after_id: int = 0) -> int:
        chunks.append((rule_id, after_id))
        return original(rule_id, after_id)

    monkeypatch.setattr(evaluate_rule, "run", recording)

    with django_capture_on_commit_callbacks(execute=True):
        evaluate_rule.delay(rule.pk, 0)

    assert _matches(rule) == [(prospect.pk, 1) for prospect in prospects]
    assert len(chunks) > 4 and chunks[0] == (rule.pk, 0)
    rule.refresh_from_db()
    assert rule.matched_count == 8 and rule.last_evaluated_at is not None


def test_a_paused_rule_stops_its_pass_and_ignores_changes() -> None:
    prospect = make_prospect("a@it.jp", industry="IT")
    rule = make_rule(criteria=IT, actions=[add_tag("IT")], running=False)

    assert evaluate_rule.apply(args=(rule.pk, 0)).get() == 0
    assert automation_rules_evaluate_for_prospects(prospect_ids=[prospect.pk]) == {}
    assert _matches(rule) == []


# --- triggers: activities, prospect changes, the sweep -------------------------------------------


def test_a_page_view_makes_a_rule_with_activity_criteria_match(
    django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    assert CONSUMER_KEY in {consumer.key for consumer in activity_consumers()}
    visitor = make_prospect("v@a.jp")
    bystander = make_prospect("b@a.jp")
    rule = make_rule(
        criteria=criteria_of(
            {
                "subject": "activity",
                "operator": "did",
                "activity_type": ActivityType.PAGE_VIEW,
                "object": "/pricing",
                "count": 1,
                "days": 30,
            }
        ),
        actions=[add_tag("価格ページ閲覧")],
    )
    automation_rule_evaluate_all(rule_id=rule.pk)
    assert _matches(rule) == []

    view = activity_record(
        type=ActivityType.PAGE_VIEW,
        prospect_id=visitor.pk,
        object_label="https://example.jp/pricing",
    )
    with django_capture_on_commit_callbacks(execute=True):
        deliver_activities([view.pk])

    assert _matches(rule) == [(visitor.pk, 1)]
    assert _tags(visitor) == {"価格ページ閲覧"} and _tags(bystander) == set()


def test_a_changed_prospect_is_evaluated_at_once(
    django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    prospect = make_prospect("a@a.jp", job_title="担当")
    rule = make_rule(
        criteria=criteria_of(field_condition("job_title", "contains", "部長")),
        actions=[add_tag("決裁者")],
    )
    automation_rule_evaluate_all(rule_id=rule.pk)
    assert _matches(rule) == []

    with django_capture_on_commit_callbacks(execute=True):
        prospect_update(actor=None, prospect=prospect, data={"job_title": "営業部長"})

    assert _matches(rule) == [(prospect.pk, 1)]
    assert _tags(prospect) == {"決裁者"}


def test_the_sweep_evaluates_running_rules_only(
    django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    prospect = make_prospect("a@it.jp", industry="IT")
    running = make_rule(criteria=IT, actions=[add_tag("running")])
    paused = make_rule(criteria=IT, actions=[add_tag("paused")], running=False)

    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_automation_rules.apply().get() == 1

    assert _matches(running) == [(prospect.pk, 1)] and _matches(paused) == []


# --- broken criteria ----------------------------------------------------------------------------


def test_a_rule_whose_custom_field_is_deleted_pauses_with_an_error_and_tells_admins_once(
    administrator: User, english: None, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    custom_field = CustomField.objects.create(label="予算", key="budget", field_type="text")
    prospect = make_prospect("a@it.jp", industry="IT")
    prospect_set_custom_values(prospect=prospect, values={"budget": "あり"})
    broken = make_rule(
        name="予算あり",
        criteria=criteria_of(
            {"subject": "custom_field", "field": "budget", "operator": "equals", "value": "あり"}
        ),
        actions=[add_tag("予算あり")],
    )
    healthy = make_rule(criteria=IT, actions=[add_tag("IT")])
    custom_field.delete()

    with django_capture_on_commit_callbacks(execute=True):
        prospect_update(actor=None, prospect=prospect, data={"city": "大阪市"})  # the listener
        automation_rules_evaluate_for_prospects(prospect_ids=[prospect.pk])  # a second worker
        automation_rule_evaluate_chunk(rule_id=broken.pk)  # and the sweep

    broken.refresh_from_db()
    assert broken.status == RuleStatus.PAUSED
    assert "Unknown custom field" in broken.error
    assert _matches(broken) == []
    assert _matches(healthy) == [(prospect.pk, 1)]
    notices = Notification.objects.filter(user=administrator)
    assert notices.count() == 1
    assert "予算あり" in notices.get().title

    with pytest.raises(CriteriaError):
        automation_rule_resume(actor=administrator, rule=broken)
    broken.refresh_from_db()
    assert broken.status == RuleStatus.PAUSED and broken.error


def test_a_rule_naming_a_deleted_list_pauses_instead_of_crashing_the_delivery(
    administrator: User, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    prospect = make_prospect("a@a.jp")
    seminar = list_create(actor=None, name="セミナー参加者")
    rule = make_rule(
        criteria=criteria_of({"subject": "list", "operator": "member_of", "value": seminar.pk}),
        actions=[add_tag("x")],
    )
    list_delete(actor=None, prospect_list=seminar)
    view = activity_record(type=ActivityType.PAGE_VIEW, prospect_id=prospect.pk)

    with django_capture_on_commit_callbacks(execute=True):
        applied = deliver_activities([view.pk])

    assert applied[CONSUMER_KEY] == 1
    rule.refresh_from_db()
    assert rule.status == RuleStatus.PAUSED and rule.error
    assert Notification.objects.filter(user=administrator).count() == 1


# --- the database-hygiene example (seed 000) ----------------------------------------------------


def test_prospects_inactive_for_a_year_go_to_the_cold_list_and_are_not_emailed(
    marketer: User, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    now = timezone.now()
    dormant = make_prospect("dormant@a.jp")
    recent = make_prospect("recent@a.jp")
    never = make_prospect("never@a.jp")  # no activity at all: not "a year ago"
    Prospect.objects.filter(pk=dormant.pk).update(last_activity_at=now - datetime.timedelta(400))
    Prospect.objects.filter(pk=recent.pk).update(last_activity_at=now - datetime.timedelta(10))
    cold = list_create(actor=marketer, name="休眠・コールドリスト")

    with django_capture_on_commit_callbacks(execute=True):
        rule = automation_rule_create(
            actor=marketer,
            name="データベース整理: 1年間アクティビティなし",
            criteria=criteria_of(field_condition("last_activity_at", "more_than_days_ago", 365)),
            actions=[
                {"action": "add_to_list", "config": {"list": cold.pk}},
                {"action": "set_do_not_email", "config": {"mark": "set"}},
            ],
            run=True,
        )

    def on_cold_list() -> set[int]:
        return set(cold.memberships.values_list("prospect_id", flat=True))

    assert on_cold_list() == {dormant.pk}
    assert Prospect.objects.get(pk=dormant.pk).do_not_email is True
    assert Prospect.objects.get(pk=recent.pk).do_not_email is False
    assert Prospect.objects.get(pk=never.pk).do_not_email is False

    # A year on, nothing happened for the recent one either: the hourly sweep catches it.
    Prospect.objects.filter(pk=recent.pk).update(last_activity_at=now - datetime.timedelta(375))
    with django_capture_on_commit_callbacks(execute=True):
        sweep_automation_rules.apply()

    assert on_cold_list() == {dormant.pk, recent.pk}
    assert Prospect.objects.get(pk=recent.pk).do_not_email is True
    rule.refresh_from_db()
    assert rule.matched_count == 2
    assert ProspectList.objects.get(pk=cold.pk).memberships.count() == 2


def test_the_criteria_read_as_sentences_on_the_rule_page(english: None) -> None:
    summary = criteria_summary(
        criteria_of(
            field_condition("last_activity_at", "more_than_days_ago", 365),
            criteria_of(
                field_condition("industry", "in", ["IT", "製造"]),
                {"subject": "mailability", "operator": "do_not_email", "value": None},
                match="any",
            ),
        )
    )
    assert summary.match == "all"
    assert summary.items[0] == "Prospect field: Last activity more than N days ago 365 days"
    group = summary.items[1]
    assert not isinstance(group, str) and group.match == "any"
    assert group.items == [
        "Prospect field: Industry is one of IT, 製造",
        "Mailability is marked do not email",
    ]
