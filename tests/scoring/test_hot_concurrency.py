"""HOT evaluations really in parallel (threads, committed transactions): every status change is
written, recorded and acted on once, and a score change racing an evaluation is not lost."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest

from mapp.models import Notification, Role
from prospects.models import HotStatus, Prospect, Task
from prospects.services import prospect_create
from scoring.hot import hot_evaluate
from scoring.models import ScoreCause
from scoring.services import score_change
from tests.concurrency import in_parallel
from tests.factories import make_user
from tracking.models import Activity, ActivityType

pytestmark = pytest.mark.django_db(transaction=True)


def _prospects(count: int, *, score: int) -> list[Prospect]:
    prospects = [
        prospect_create(actor=None, data={"email": f"race{n}@a.jp"}, refresh_lists=False)
        for n in range(count)
    ]
    # Straight to the column: the setup itself must not start evaluations.
    Prospect.objects.filter(pk__in=[p.pk for p in prospects]).update(score=score)
    return prospects


def test_concurrent_evaluations_change_record_and_notify_each_lead_once(
    eager_celery: None,
) -> None:
    sales = make_user(Role.SALES, email="race-sales@example.jp")
    prospects = _prospects(12, score=90)
    ids = [prospect.pk for prospect in prospects]
    Prospect.objects.filter(pk__in=ids).update(assigned_user=sales)

    jobs: list[Callable[[], object]] = [partial(hot_evaluate, prospect_ids=ids) for _ in range(4)]
    jobs += [partial(hot_evaluate, prospect_ids=list(reversed(ids))) for _ in range(2)]
    jobs += [hot_evaluate for _ in range(2)]
    # Score changes meanwhile: each one's listener evaluates its prospect again after commit.
    jobs += [
        partial(score_change, prospect=prospect, points=5, cause=ScoreCause.ACTION)
        for prospect in prospects[:4]
    ]
    in_parallel(jobs)

    assert set(Prospect.objects.filter(pk__in=ids).values_list("hot_status", flat=True)) == {
        HotStatus.HOT
    }
    changes = Activity.objects.filter(type=ActivityType.STATUS_CHANGED)
    assert sorted(changes.values_list("prospect_id", flat=True)) == sorted(ids)
    assert (
        Notification.objects.filter(user=sales, dedup_key__startswith="action:hot:").count() == 12
    )
    assert Task.objects.filter(assignee=sales).count() == 12


def test_a_score_drop_racing_an_evaluation_is_not_lost(eager_celery: None) -> None:
    prospects = _prospects(10, score=90)
    ids = [prospect.pk for prospect in prospects]
    dropped = prospects[::2]

    jobs: list[Callable[[], object]] = [partial(hot_evaluate, prospect_ids=ids) for _ in range(3)]
    jobs += [
        partial(score_change, prospect=prospect, points=-50, cause=ScoreCause.ACTION)
        for prospect in dropped
    ]
    in_parallel(jobs)

    statuses = dict(Prospect.objects.filter(pk__in=ids).values_list("pk", "hot_status"))
    for prospect in prospects:
        expected = HotStatus.NO_RESPONSE if prospect in dropped else HotStatus.HOT
        assert statuses[prospect.pk] == expected, prospect.email
    # A dropped lead went HOT and back, or never went HOT: never a change recorded twice.
    for prospect in dropped:
        recorded = list(
            Activity.objects.filter(prospect=prospect, type=ActivityType.STATUS_CHANGED)
            .order_by("id")
            .values_list("object_id", flat=True)
        )
        assert recorded in ([], [HotStatus.HOT, HotStatus.NO_RESPONSE])
