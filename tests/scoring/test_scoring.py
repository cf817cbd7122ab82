"""Scoring rules and the score ledger: defaults, the activity consumer, actions and manual
edits, merges, the explanation panel and the retroactive rescore."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import Sum
from django.urls import reverse

from mapp.models import Notification, User
from prospects.actions import ActionContext
from prospects.actions.services import action_run
from prospects.models import Prospect
from prospects.services import prospect_create, prospects_merge
from scoring.models import Rescore, RescoreStatus, ScoreCause, ScoreChange, ScoringRule
from scoring.selectors import prospect_score_explanation
from scoring.services import rescore_request, rescore_run, score_activities, score_set_manually
from tests.conftest import client_for
from tracking.models import Activity, ActivityType
from tracking.services import activity_record, deliver_activities

pytestmark = pytest.mark.django_db


def _prospect(email: str = "p@a.jp") -> Prospect:
    return prospect_create(actor=None, data={"email": email}, refresh_lists=False)


def _record(prospect: Prospect | None, type: str, **fields: Any) -> Activity:
    return activity_record(type=type, prospect_id=prospect.pk if prospect else None, **fields)


def _deliver(*activities: Activity) -> None:
    deliver_activities([activity.pk for activity in activities])


def _score(prospect: Prospect) -> int:
    return Prospect.objects.values_list("score", flat=True).get(pk=prospect.pk)


def _ledger_sum(prospect: Prospect) -> int:
    return (
        ScoreChange.objects.filter(prospect=prospect).aggregate(total=Sum("points"))["total"] or 0
    )


def _rule(activity_type: str) -> ScoringRule:
    return ScoringRule.objects.get(activity_type=activity_type, is_default=True)


def test_account_engagement_defaults_are_seeded() -> None:
    points = {
        rule.activity_type: (rule.points, rule.first_time_only)
        for rule in ScoringRule.objects.filter(is_default=True)
    }
    assert points[ActivityType.PAGE_VIEW] == (1, False)
    assert points[ActivityType.CUSTOM_REDIRECT_CLICK] == (3, False)
    assert points[ActivityType.FILE_DOWNLOAD] == (3, False)
    assert points[ActivityType.FORM_SUCCESS] == (50, False)
    assert points[ActivityType.LANDING_PAGE_SUCCESS] == (50, False)
    assert points[ActivityType.FORM_HANDLER_SUCCESS] == (50, False)
    assert points[ActivityType.FORM_ERROR] == (-5, False)
    assert points[ActivityType.LANDING_PAGE_ERROR] == (-5, False)
    assert points[ActivityType.FORM_HANDLER_ERROR] == (-5, False)
    assert points[ActivityType.EMAIL_OPENED] == (0, True)
    assert points[ActivityType.EMAIL_CLICKED] == (3, False)
    assert points[ActivityType.OPPORTUNITY_CREATED] == (50, False)
    assert points[ActivityType.OPPORTUNITY_LOST] == (-100, False)


def test_activities_score_through_the_delivery_pipeline_and_never_twice() -> None:
    prospect = _prospect()
    view = _record(
        prospect, ActivityType.PAGE_VIEW, object_type="url", object_label="https://a.jp/"
    )
    form = _record(prospect, ActivityType.FORM_SUCCESS, object_type="form", object_id="3")
    error = _record(prospect, ActivityType.FORM_ERROR, object_type="form", object_id="3")
    sent = _record(prospect, ActivityType.EMAIL_SENT, object_type="email", object_id="1")

    _deliver(view, form, error, sent)
    assert _score(prospect) == 1 + 50 - 5
    _deliver(view, form, error, sent)  # a retried batch
    score_activities([view, form, error])  # even a consumer called twice adds nothing
    assert _score(prospect) == 46 == _ledger_sum(prospect)
    rows = ScoreChange.objects.filter(prospect=prospect)
    assert {(row.activity_id, row.points, row.cause) for row in rows} == {
        (view.pk, 1, ScoreCause.ACTIVITY),
        (form.pk, 50, ScoreCause.ACTIVITY),
        (error.pk, -5, ScoreCause.ACTIVITY),
    }
    assert rows.get(activity_id=view.pk).rule == _rule(ActivityType.PAGE_VIEW)


def test_bots_and_machine_opens_never_score() -> None:
    prospect = _prospect()
    rule = _rule(ActivityType.EMAIL_OPENED)
    rule.points = 2
    rule.save()
    bot_view = _record(prospect, ActivityType.PAGE_VIEW, object_label="https://a.jp/", is_bot=True)
    machine_open = _record(
        prospect, ActivityType.EMAIL_OPENED, object_type="email", object_id="9", is_bot=True
    )
    _deliver(bot_view, machine_open)
    score_activities([bot_view, machine_open])
    assert _score(prospect) == 0
    assert not ScoreChange.objects.exists()


def test_first_time_only_scores_the_first_activity_per_object() -> None:
    prospect = _prospect()
    rule = _rule(ActivityType.EMAIL_OPENED)
    rule.points = 2
    rule.save()
    opens = [
        _record(prospect, ActivityType.EMAIL_OPENED, object_type="email", object_id=email_id)
        for email_id in ("7", "7", "8")
    ]
    _deliver(*opens[:2])  # two opens of one email in one batch
    _deliver(opens[2])
    assert _score(prospect) == 4 == _ledger_sum(prospect)
    scored = ScoreChange.objects.order_by("activity_id").values_list("activity_id", flat=True)
    assert list(scored) == [
        opens[0].pk,
        opens[2].pk,
    ]


def test_object_and_url_overrides_beat_the_rule_for_the_type() -> None:
    prospect = _prospect()
    ScoringRule.objects.create(
        name="価格ページ",
        activity_type=ActivityType.PAGE_VIEW,
        points=30,
        url_pattern="https://a.jp/pricing*",
    )
    ScoringRule.objects.create(
        name="資料請求フォーム",
        activity_type=ActivityType.FORM_SUCCESS,
        points=180,
        object_type="form",
        object_id="12",
    )
    ScoringRule.objects.create(
        activity_type=ActivityType.PAGE_VIEW, points=0, url_pattern="https://a.jp/careers/*"
    )
    activities = [
        _record(prospect, ActivityType.PAGE_VIEW, object_label="https://a.jp/pricing/plan"),
        _record(prospect, ActivityType.PAGE_VIEW, object_label="https://a.jp/about"),
        _record(prospect, ActivityType.PAGE_VIEW, object_label="https://a.jp/careers/x"),
        # LIKE wildcards in a URL are literal: this is not "https://a.jp/pricing…"
        _record(prospect, ActivityType.PAGE_VIEW, object_label="https://a_jp/pricing"),
        _record(prospect, ActivityType.FORM_SUCCESS, object_type="form", object_id="12"),
        _record(prospect, ActivityType.FORM_SUCCESS, object_type="form", object_id="13"),
    ]
    _deliver(*activities)
    assert _score(prospect) == 30 + 1 + 0 + 1 + 180 + 50


def test_anonymous_activity_scores_once_identified() -> None:
    from tracking.models import Visitor
    from tracking.services import visitor_identify

    prospect = _prospect()
    visitor = Visitor.objects.create()
    view = activity_record(type=ActivityType.PAGE_VIEW, visitor_id=visitor.pk, object_label="/x")
    _deliver(view)
    assert _score(prospect) == 0
    visitor_identify(visitor=visitor, prospect_id=prospect.pk)
    _deliver(view)
    _deliver(view)
    assert _score(prospect) == 1 == _ledger_sum(prospect)


def test_adjust_score_action_writes_a_ledger_row(english: None) -> None:
    prospect = _prospect()
    _deliver(_record(prospect, ActivityType.PAGE_VIEW, object_label="/a"))
    context = ActionContext(cause_type="form", cause_id=5, cause_label="資料請求フォーム")
    action_run(
        key="adjust_score", prospect=prospect, config={"mode": "add", "points": 10}, context=context
    )
    action_run(
        key="adjust_score",
        prospect=prospect,
        config={"mode": "subtract", "points": 4},
        context=context,
    )
    run = action_run(
        key="adjust_score",
        prospect=prospect,
        config={"mode": "set", "points": 100},
        context=context,
    )
    assert run.message == "Score set to 100."
    assert _score(prospect) == 100 == _ledger_sum(prospect)
    actions = ScoreChange.objects.filter(prospect=prospect, cause=ScoreCause.ACTION)
    assert sorted(actions.values_list("points", flat=True)) == [-4, 10, 93]
    assert set(actions.values_list("label", flat=True)) == {"資料請求フォーム"}
    # each row points at the action run that wrote it
    assert ScoreChange.objects.get(prospect=prospect, points=93).action_run_id == run.pk
    assert actions.filter(action_run_id__isnull=True).count() == 0


def test_manual_edit_is_recorded_with_its_author(administrator: User) -> None:
    prospect = _prospect()
    score_set_manually(prospect=prospect, score=25, actor=administrator, reason="展示会で商談")
    assert prospect.score == 25 == _score(prospect) == _ledger_sum(prospect)
    row = ScoreChange.objects.get(prospect=prospect)
    assert (row.cause, row.points, row.actor, row.label) == (
        ScoreCause.MANUAL,
        25,
        administrator,
        "展示会で商談",
    )


def test_merging_moves_the_ledger_and_counts_shared_activity_once(
    administrator: User,
) -> None:
    survivor, other = _prospect("a@a.jp"), _prospect("b@a.jp")
    _deliver(_record(survivor, ActivityType.FORM_SUCCESS, object_type="form", object_id="1"))
    _deliver(_record(other, ActivityType.FILE_DOWNLOAD, object_type="file", object_id="2"))
    score_set_manually(prospect=other, score=_score(other) + 7, actor=administrator)
    merged = prospects_merge(actor=administrator, survivor=survivor, others=[other])
    # The moved activities are delivered again for the survivor: nothing scores twice.
    _deliver(*Activity.objects.filter(prospect_id=survivor.pk))
    assert merged.score == 50 + 3 + 7 == _score(survivor) == _ledger_sum(survivor)


def test_the_prospect_page_explains_the_score(marketer: User, english: None) -> None:
    prospect = _prospect()
    _deliver(
        _record(prospect, ActivityType.PAGE_VIEW, object_label="/a"),
        _record(prospect, ActivityType.PAGE_VIEW, object_label="/b"),
        _record(
            prospect,
            ActivityType.FORM_SUCCESS,
            object_type="form",
            object_id="1",
            object_label="<script>x</script>",
        ),
    )
    explanation = prospect_score_explanation(prospect)
    assert explanation.consistent and explanation.score == 52
    assert [(group.label, group.count, group.points) for group in explanation.groups] == [
        ("Form submission", 1, 50),
        ("Page view", 2, 2),
    ]
    page = client_for(marketer).get(reverse("prospects:detail", args=[prospect.pk]))
    html = page.content.decode()
    assert "Why this score" in html and "Form submission" in html
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html


def test_editing_rules_rescores_everyone_retroactively(
    administrator: User, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    first, second, idle = _prospect("a@a.jp"), _prospect("b@a.jp"), _prospect("c@a.jp")
    views = [_record(first, ActivityType.PAGE_VIEW, object_label="/p") for _ in range(3)]
    form = _record(second, ActivityType.FORM_SUCCESS, object_type="form", object_id="1")
    _deliver(*views, form)
    score_set_manually(prospect=second, score=60, actor=administrator)  # +10 by hand
    assert (_score(first), _score(second)) == (3, 60)

    page_view = _rule(ActivityType.PAGE_VIEW)
    page_view.points = 5
    page_view.save()
    form_rule = _rule(ActivityType.FORM_SUCCESS)
    form_rule.is_active = False
    form_rule.save()
    ScoringRule.objects.create(
        activity_type=ActivityType.FORM_SUCCESS, points=7, object_type="form", object_id="1"
    )
    with django_capture_on_commit_callbacks(execute=True):
        rescore = rescore_request(actor=administrator)
    rescore.refresh_from_db()
    assert rescore.status == RescoreStatus.DONE
    assert rescore.total == rescore.processed == Prospect.objects.count()
    assert (_score(first), _score(second), _score(idle)) == (15, 17, 0)
    for prospect in (first, second, idle):
        assert _score(prospect) == _ledger_sum(prospect)
    assert Notification.objects.filter(
        user=administrator, dedup_key=f"scoring-rescore-{rescore.pk}"
    ).exists()

    # A duplicated task changes nothing; a second rescore with small chunks gives the same.
    assert rescore_run(rescore.pk).status == RescoreStatus.DONE
    again = Rescore.objects.create()
    rescore_run(again.pk, chunk=1)
    assert (_score(first), _score(second), _score(idle)) == (15, 17, 0)
    assert Notification.objects.filter(user=administrator).count() == 2
