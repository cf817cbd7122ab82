"""The HOT rule and statuses: threshold and criteria, engaged vs no response, HOT since, status
activities, the actions run once per becoming HOT, an invalid rule, the listener path."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mapp.models import Notification, Role, User
from prospects.models import (
    ActionRun,
    Company,
    CustomField,
    CustomFieldType,
    HotStatus,
    JobLevel,
    Prospect,
    ProspectList,
    Task,
)
from prospects.services import (
    dynamic_list_refresh,
    list_create,
    prospect_create,
    prospect_set_custom_values,
    prospect_update,
)
from scoring.hot import (
    StatusChange,
    _run_hot_actions,
    hot_evaluate,
    hot_rule_get,
    hot_rule_save,
)
from scoring.models import HotRule, ScoreCause
from scoring.services import score_change
from tests.factories import make_user
from tracking.models import Activity, ActivityType
from tracking.services import activity_record, deliver_activities

pytestmark = pytest.mark.django_db

MANAGER_OR_ABOVE = {
    "match": "all",
    "conditions": [
        {"subject": "field", "field": "job_level", "operator": "gte", "value": JobLevel.MANAGER}
    ],
}


def _prospect(
    email: str, *, score: int = 0, job_title: str = "", assigned: User | None = None
) -> Prospect:
    prospect = prospect_create(
        actor=None,
        data={
            "email": email,
            "last_name": "山田",
            "first_name": "太郎",
            "company_name": "株式会社サンプル商事",
            "job_title": job_title,
        },
        refresh_lists=False,
    )
    if assigned is not None:
        Prospect.objects.filter(pk=prospect.pk).update(assigned_user=assigned)
    if score:
        # An action, not behaviour: it makes a prospect HOT but not "engaged" on its own.
        score_change(prospect=prospect, points=score, cause=ScoreCause.ACTION)
    return prospect


def _behave(prospect: Prospect, activity_type: str) -> None:
    """The prospect does something the default scoring rules score (through the stream)."""
    activity = activity_record(
        type=activity_type,
        prospect_id=prospect.pk,
        object_type="form",
        object_id="1",
        object_label="https://www.example.co.jp/",
    )
    deliver_activities([activity.pk])


def _status(prospect: Prospect) -> tuple[str, datetime.datetime | None]:
    row = Prospect.objects.values_list("hot_status", "hot_since").get(pk=prospect.pk)
    return row[0], row[1]


def _set_rule(**fields: Any) -> HotRule:
    rule = hot_rule_get()
    for name, value in fields.items():
        setattr(rule, name, value)
    rule.save()
    return rule


def _status_activities(prospect: Prospect) -> list[Activity]:
    return list(
        Activity.objects.filter(prospect=prospect, type=ActivityType.STATUS_CHANGED).order_by("id")
    )


def _hot_notices(user: User) -> int:
    return Notification.objects.filter(user=user, dedup_key__startswith="action:hot:").count()


def test_the_seeded_rule_is_score_80_with_a_notice_and_a_task() -> None:
    rule = hot_rule_get()
    assert rule.threshold == 80
    assert [item["action"] for item in rule.actions] == [
        "notify_assigned_user",
        "create_task_for_assigned_user",
    ]


def test_score_at_or_above_the_threshold_is_hot() -> None:
    below, at, above = (
        _prospect("a@a.jp", score=79),
        _prospect("b@a.jp", score=80),
        _prospect("c@a.jp", score=150),
    )

    result = hot_evaluate(prospect_ids=[below.pk, at.pk, above.pk])

    assert sorted(result.became_hot) == sorted([at.pk, above.pk])
    assert _status(below) == (HotStatus.NO_RESPONSE, None)
    for prospect in (at, above):
        status, since = _status(prospect)
        assert status == HotStatus.HOT
        assert since is not None and abs(since - timezone.now()) < datetime.timedelta(minutes=1)


def test_further_criteria_job_level_manager_or_above() -> None:
    _set_rule(criteria=MANAGER_OR_ABOVE)
    manager = _prospect("kacho@a.jp", score=90, job_title="情報システム部 課長")
    director = _prospect("bucho@a.jp", score=90, job_title="営業部長")
    staff = _prospect("tanto@a.jp", score=90, job_title="担当")
    low_manager = _prospect("kacho2@a.jp", score=50, job_title="課長")
    assert Prospect.objects.get(pk=manager.pk).job_level == JobLevel.MANAGER

    hot_evaluate()

    assert _status(manager)[0] == HotStatus.HOT
    assert _status(director)[0] == HotStatus.HOT
    assert _status(staff)[0] == HotStatus.NO_RESPONSE
    assert _status(low_manager)[0] == HotStatus.NO_RESPONSE


def test_grade_criteria_combine_with_the_job_level() -> None:
    # Hot Profile's example: 課長クラス以上 with a good fit (grade B or better).
    _set_rule(
        criteria={
            "match": "all",
            "conditions": [
                *MANAGER_OR_ABOVE["conditions"],
                {"subject": "grade", "operator": "gte", "value": "B"},
            ],
        }
    )
    good_fit = _prospect("fit@a.jp", score=90, job_title="課長")
    poor_fit = _prospect("unfit@a.jp", score=90, job_title="課長")
    Prospect.objects.filter(pk=good_fit.pk).update(grade="A-")
    Prospect.objects.filter(pk=poor_fit.pk).update(grade="C")

    hot_evaluate(prospect_ids=[good_fit.pk, poor_fit.pk])

    assert _status(good_fit)[0] == HotStatus.HOT
    assert _status(poor_fit)[0] == HotStatus.NO_RESPONSE


def test_engaged_means_behaviour_has_scored_but_not_hot() -> None:
    visitor = _prospect("view@a.jp")
    _behave(visitor, ActivityType.PAGE_VIEW)
    by_hand = _prospect("hand@a.jp")
    score_change(prospect=by_hand, points=50, cause=ScoreCause.MANUAL)
    page_action = _prospect("page@a.jp")
    score_change(prospect=page_action, points=5, cause=ScoreCause.PAGE_ACTION)
    only_errors = _prospect("error@a.jp")
    _behave(only_errors, ActivityType.FORM_ERROR)
    nothing = _prospect("none@a.jp")

    hot_evaluate()

    assert _status(visitor)[0] == HotStatus.ENGAGED
    assert _status(page_action)[0] == HotStatus.ENGAGED
    assert _status(by_hand)[0] == HotStatus.NO_RESPONSE  # a person's edit is not behaviour
    assert _status(only_errors)[0] == HotStatus.NO_RESPONSE  # a negative row is not interest
    assert _status(nothing)[0] == HotStatus.NO_RESPONSE


def test_hot_since_is_kept_while_hot_and_cleared_when_leaving() -> None:
    prospect = _prospect("since@a.jp", score=85)
    hot_evaluate(prospect_ids=[prospect.pk])
    _status_now, first_since = _status(prospect)

    score_change(prospect=prospect, points=40, cause=ScoreCause.ACTION)
    hot_evaluate(prospect_ids=[prospect.pk])
    assert _status(prospect) == (HotStatus.HOT, first_since)

    score_change(prospect=prospect, points=-100, cause=ScoreCause.ACTION)
    hot_evaluate(prospect_ids=[prospect.pk])
    assert _status(prospect) == (HotStatus.NO_RESPONSE, None)


def test_each_status_change_is_one_activity_with_from_and_to() -> None:
    prospect = _prospect("act@a.jp")
    _behave(prospect, ActivityType.PAGE_VIEW)
    hot_evaluate(prospect_ids=[prospect.pk])
    hot_evaluate(prospect_ids=[prospect.pk])  # nothing changed: nothing recorded
    score_change(prospect=prospect, points=100, cause=ScoreCause.ACTION)
    hot_evaluate(prospect_ids=[prospect.pk])
    hot_evaluate()

    activities = _status_activities(prospect)
    assert [activity.payload for activity in activities] == [
        {"from": HotStatus.NO_RESPONSE, "to": HotStatus.ENGAGED},
        {"from": HotStatus.ENGAGED, "to": HotStatus.HOT},
    ]
    assert [(a.object_type, a.object_id) for a in activities] == [
        ("hot_status", HotStatus.ENGAGED),
        ("hot_status", HotStatus.HOT),
    ]


def test_becoming_hot_notifies_the_assigned_user_and_creates_a_task_once(
    sales_user: User,
) -> None:
    prospect = _prospect("lead@a.jp", score=90, assigned=sales_user)

    hot_evaluate(prospect_ids=[prospect.pk])
    hot_evaluate(prospect_ids=[prospect.pk])  # a retried or duplicated evaluation
    hot_evaluate()

    assert _hot_notices(sales_user) == 1
    task = Task.objects.get(prospect=prospect)
    assert task.assignee == sales_user
    assert task.subject == "HOTリードをフォロー / Follow up a HOT lead"
    assert task.due_date == timezone.localdate() + datetime.timedelta(days=1)
    since = _status(prospect)[1]
    assert since is not None
    runs = ActionRun.objects.filter(prospect=prospect, cause_type="hot_rule")
    assert sorted(runs.values_list("idempotency_key", flat=True)) == [
        f"hot:{prospect.pk}:{since.isoformat()}:0",
        f"hot:{prospect.pk}:{since.isoformat()}:1",
    ]


def test_a_retried_action_run_for_the_same_hot_since_does_nothing(sales_user: User) -> None:
    prospect = _prospect("retry@a.jp", score=90, assigned=sales_user)
    hot_evaluate(prospect_ids=[prospect.pk])
    since = _status(prospect)[1]

    # The same "became HOT" handled again (a task retried after its work had committed).
    change = StatusChange(
        prospect_id=prospect.pk,
        from_status=HotStatus.NO_RESPONSE,
        to_status=HotStatus.HOT,
        hot_since=since,
    )
    _run_hot_actions(hot_rule_get(), [change])

    assert _hot_notices(sales_user) == 1
    assert Task.objects.filter(prospect=prospect).count() == 1
    assert ActionRun.objects.filter(prospect=prospect).count() == 2


def test_leaving_hot_and_coming_back_notifies_again(sales_user: User) -> None:
    prospect = _prospect("again@a.jp", score=90, assigned=sales_user)
    hot_evaluate(prospect_ids=[prospect.pk])
    Task.objects.filter(prospect=prospect).update(status="done")  # the lead was followed up
    score_change(prospect=prospect, points=-50, cause=ScoreCause.ACTION)
    hot_evaluate(prospect_ids=[prospect.pk])
    assert _status(prospect)[0] != HotStatus.HOT

    score_change(prospect=prospect, points=50, cause=ScoreCause.ACTION)
    hot_evaluate(prospect_ids=[prospect.pk])

    assert _status(prospect)[0] == HotStatus.HOT
    assert _hot_notices(sales_user) == 2
    assert Task.objects.filter(prospect=prospect).count() == 2


def test_an_unassigned_lead_runs_the_actions_which_skip_without_a_user() -> None:
    prospect = _prospect("nobody@a.jp", score=90)
    hot_evaluate(prospect_ids=[prospect.pk])
    assert set(ActionRun.objects.filter(prospect=prospect).values_list("status", flat=True)) == {
        "skipped"
    }
    assert not Task.objects.exists()


def test_a_rule_whose_criteria_broke_keeps_statuses_and_tells_administrators_once(
    administrator: User, sales_user: User
) -> None:
    field = CustomField.objects.create(
        label="予算", key="budget", field_type=CustomFieldType.CHOICE, choices=["あり", "なし"]
    )
    _set_rule(
        criteria={
            "match": "all",
            "conditions": [
                {
                    "subject": "custom_field",
                    "field": "budget",
                    "operator": "equals",
                    "value": "あり",
                }
            ],
        }
    )
    with_budget = _prospect("budget@a.jp", score=90, assigned=sales_user)
    prospect_set_custom_values(prospect=with_budget, values={"budget": "あり"})
    hot_evaluate()
    assert _status(with_budget)[0] == HotStatus.HOT

    # The custom field the rule names is deleted, then the lead's score drops.
    field.delete()
    score_change(prospect=with_budget, points=-80, cause=ScoreCause.ACTION)
    first = hot_evaluate()
    second = hot_evaluate(prospect_ids=[with_budget.pk])

    assert first.error and second.error
    assert _status(with_budget)[0] == HotStatus.HOT  # kept as it was
    rule = hot_rule_get()
    assert "budget" in rule.error
    notices = Notification.objects.filter(dedup_key__startswith="hot-rule-invalid:")
    assert list(notices.values_list("user", flat=True)) == [administrator.pk]

    # Saving the rule with valid criteria clears the error and evaluates again.
    hot_rule_save(
        actor=administrator,
        threshold=80,
        criteria={},
        actions=rule.actions,
        digest_enabled=True,
        digest_hour=8,
    )
    assert hot_rule_get().error == ""
    hot_evaluate()
    assert _status(with_budget)[0] == HotStatus.NO_RESPONSE


def test_the_rule_may_not_test_the_status_itself() -> None:
    from prospects.criteria import CriteriaError
    from scoring.hot import hot_criteria_validate

    with pytest.raises(CriteriaError):
        hot_criteria_validate(
            {
                "match": "any",
                "conditions": [
                    {
                        "match": "all",
                        "conditions": [
                            {
                                "subject": "field",
                                "field": "hot_status",
                                "operator": "not_equals",
                                "value": "hot",
                            }
                        ],
                    }
                ],
            }
        )


def test_dynamic_lists_can_select_by_status(marketer: User) -> None:
    hot = _prospect("hot@a.jp", score=90)
    _prospect("cold@a.jp")
    hot_evaluate()
    hot_list = list_create(
        actor=marketer,
        name="HOTリード",
        is_dynamic=True,
        criteria={
            "match": "all",
            "conditions": [
                {"subject": "field", "field": "hot_status", "operator": "equals", "value": "hot"}
            ],
        },
    )
    dynamic_list_refresh(prospect_list=ProspectList.objects.get(pk=hot_list.pk))
    assert list(hot_list.memberships.values_list("prospect_id", flat=True)) == [hot.pk]


def test_a_score_change_makes_a_lead_hot_through_the_listener_within_the_request(
    sales_user: User, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    prospect = _prospect("listener@a.jp", score=70, assigned=sales_user)
    with django_capture_on_commit_callbacks(execute=True):
        score_change(prospect=prospect, points=15, cause=ScoreCause.ACTION)

    assert _status(prospect)[0] == HotStatus.HOT
    assert _hot_notices(sales_user) == 1
    assert Task.objects.filter(prospect=prospect, assignee=sales_user).count() == 1
    assert len(_status_activities(prospect)) == 1


def test_a_field_change_that_meets_the_criteria_makes_a_lead_hot(
    sales_user: User, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    _set_rule(criteria=MANAGER_OR_ABOVE)
    prospect = _prospect("promoted@a.jp", score=90, job_title="主任", assigned=sales_user)
    with django_capture_on_commit_callbacks(execute=True):
        hot_evaluate(prospect_ids=[prospect.pk])
    assert _status(prospect)[0] == HotStatus.NO_RESPONSE

    with django_capture_on_commit_callbacks(execute=True):
        prospect_update(
            actor=None, prospect=Prospect.objects.get(pk=prospect.pk), data={"job_title": "課長"}
        )

    assert _status(prospect)[0] == HotStatus.HOT
    assert _hot_notices(sales_user) == 1


def test_saving_the_rule_evaluates_everyone_in_the_background(
    administrator: User, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    warm = _prospect("warm@a.jp", score=60)
    cold = _prospect("cold@a.jp", score=30)
    manager = make_user(Role.SALES_MANAGER, email="bucho@example.jp")
    Prospect.objects.filter(pk=warm.pk).update(assigned_user=manager)

    with django_capture_on_commit_callbacks(execute=True):
        hot_rule_save(
            actor=administrator,
            threshold=50,
            criteria={},
            actions=[{"action": "notify_assigned_user", "config": {"note": "至急"}}],
            digest_enabled=False,
            digest_hour=9,
        )

    assert _status(warm)[0] == HotStatus.HOT
    assert _status(cold)[0] == HotStatus.NO_RESPONSE
    notice = Notification.objects.get(user=manager, dedup_key__startswith="action:hot:")
    assert "至急" in notice.body
    rule = hot_rule_get()
    assert (rule.threshold, rule.digest_enabled, rule.digest_hour) == (50, False, 9)
    assert rule.updated_by == administrator


def test_evaluation_settles_without_loops(
    sales_user: User, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    prospect = _prospect("settle@a.jp", score=70, assigned=sales_user)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        score_change(prospect=prospect, points=20, cause=ScoreCause.ACTION)
    # The score change, the evaluation it caused and the one re-check of the changed lead.
    assert len(callbacks) < 20
    assert len(_status_activities(prospect)) == 1


def test_evaluation_costs_the_same_queries_for_few_or_many_prospects() -> None:
    def evaluate(count: int, prefix: str) -> int:
        prospects = [_prospect(f"{prefix}{n}@a.jp") for n in range(count)]
        for prospect in prospects:
            score_change(prospect=prospect, points=2, cause=ScoreCause.PAGE_ACTION)
        with CaptureQueriesContext(connection) as queries:
            result = hot_evaluate(prospect_ids=[prospect.pk for prospect in prospects])
        assert len(result.status_changes) == count
        return len(queries)

    assert evaluate(3, "few") == evaluate(30, "many")


def test_company_size_and_repeated_page_views_as_criteria() -> None:
    # Seed 002's target: 1,000+ employees and the pricing page viewed 3+ times in 30 days.
    _set_rule(
        threshold=10,
        criteria={
            "match": "all",
            "conditions": [
                {"subject": "company", "field": "employee_count", "operator": "gte", "value": 1000},
                {
                    "subject": "activity",
                    "operator": "did",
                    "activity_type": ActivityType.PAGE_VIEW,
                    "object": "/pricing",
                    "count": 3,
                    "days": 30,
                },
            ],
        },
    )
    large = Company.objects.create(
        name="株式会社大手製作所", name_normalized="大手製作所", employee_count=1200
    )
    small = Company.objects.create(name="有限会社小町", name_normalized="小町", employee_count=30)
    keen, unfit, casual = (
        _prospect("keen@a.jp", score=20),
        _prospect("unfit@a.jp", score=20),
        _prospect("casual@a.jp", score=20),
    )
    Prospect.objects.filter(pk__in=[keen.pk, casual.pk]).update(company=large)
    Prospect.objects.filter(pk=unfit.pk).update(company=small)
    for prospect, views in ((keen, 3), (unfit, 3), (casual, 2)):
        for _ in range(views):
            activity_record(
                type=ActivityType.PAGE_VIEW,
                prospect_id=prospect.pk,
                object_label="https://www.example.co.jp/pricing",
            )

    hot_evaluate()

    assert _status(keen)[0] == HotStatus.HOT
    assert _status(unfit)[0] != HotStatus.HOT
    assert _status(casual)[0] != HotStatus.HOT
