"""The activity stream: one writer, partitioned storage, exactly-once delivery to consumers,
identification moving anonymous history, activity criteria, retention."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from mapp.health import redis_client
from prospects.criteria import prospects_matching
from prospects.models import Prospect
from prospects.services import prospect_create, prospects_merge
from tracking.consumers import (
    ActivityConsumer,
    register_activity_consumer,
    unregister_activity_consumer,
)
from tracking.models import Activity, ActivityType, Visitor
from tracking.partitions import ensure_partitions, existing_partitions
from tracking.selectors import activities_for_prospect
from tracking.services import (
    PENDING_KEY,
    activity_record,
    deliver_activities,
    drain_pending,
    retention_run,
    sweep_undelivered,
    visitor_identify,
)

pytestmark = pytest.mark.django_db


class Recorder:
    """A test consumer that counts what it was given."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int | None]] = []

    def __call__(self, activities: list[Activity]) -> None:
        self.seen.extend((activity.pk, activity.prospect_id) for activity in activities)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    consumer = Recorder()
    register_activity_consumer(ActivityConsumer(key="test.recorder", handle=consumer))
    yield consumer
    unregister_activity_consumer("test.recorder")


def _prospect(email: str) -> Prospect:
    return prospect_create(actor=None, data={"email": email}, refresh_lists=False)


def test_each_activity_reaches_each_consumer_exactly_once(recorder: Recorder) -> None:
    prospect = _prospect("p@a.jp")
    first = activity_record(type=ActivityType.PAGE_VIEW, prospect_id=prospect.pk, object_label="/a")
    second = activity_record(
        type=ActivityType.PAGE_VIEW, prospect_id=prospect.pk, object_label="/b"
    )

    deliver_activities([first.pk, second.pk])
    deliver_activities([first.pk, second.pk])  # a retried batch
    deliver_activities([second.pk])

    assert sorted(recorder.seen) == sorted([(first.pk, prospect.pk), (second.pk, prospect.pk)])


def test_the_shipped_consumer_keeps_last_activity_current() -> None:
    prospect = _prospect("p@a.jp")
    earlier = timezone.now() - datetime.timedelta(hours=2)
    late = activity_record(type=ActivityType.PAGE_VIEW, prospect_id=prospect.pk)
    early = activity_record(
        type=ActivityType.PAGE_VIEW, prospect_id=prospect.pk, occurred_at=earlier
    )
    deliver_activities([late.pk, early.pk])
    prospect.refresh_from_db()
    assert prospect.last_activity_at == late.occurred_at


def test_mail_we_sent_and_status_changes_do_not_count_as_the_prospects_activity() -> None:
    prospect = _prospect("p@a.jp")
    sent = activity_record(type=ActivityType.EMAIL_SENT, prospect_id=prospect.pk)
    delivered = activity_record(type=ActivityType.EMAIL_DELIVERED, prospect_id=prospect.pk)
    status = activity_record(type=ActivityType.STATUS_CHANGED, prospect_id=prospect.pk)
    deliver_activities([sent.pk, delivered.pk, status.pk])
    prospect.refresh_from_db()
    assert prospect.last_activity_at is None

    opened = activity_record(type=ActivityType.EMAIL_OPENED, prospect_id=prospect.pk)
    deliver_activities([opened.pk])
    prospect.refresh_from_db()
    assert prospect.last_activity_at == opened.occurred_at


def test_bots_and_anonymous_activity_are_kept_from_consumers_until_identified(
    recorder: Recorder,
) -> None:
    prospect = _prospect("p@a.jp")
    visitor = Visitor.objects.create()
    bot = activity_record(type=ActivityType.PAGE_VIEW, prospect_id=prospect.pk, is_bot=True)
    views = [
        activity_record(
            type=ActivityType.PAGE_VIEW,
            visitor_id=visitor.pk,
            object_label=f"https://example.jp/{page}",
            occurred_at=timezone.now() - datetime.timedelta(minutes=10 - index),
        )
        for index, page in enumerate(["top", "pricing"])
    ]
    deliver_activities([bot.pk, *(view.pk for view in views)])
    assert recorder.seen == []

    moved = visitor_identify(visitor=visitor, prospect_id=prospect.pk, source="test")
    assert moved == 2
    deliver_activities([view.pk for view in views])
    deliver_activities([view.pk for view in views])
    assert sorted(recorder.seen) == sorted((view.pk, prospect.pk) for view in views)
    # The timeline shows them as the prospect's, in the order they happened, after the
    # "identified" entry.
    timeline = list(activities_for_prospect(prospect_id=prospect.pk))
    labels = [
        activity.object_label
        for activity in reversed(timeline)
        if activity.type == "page_view" and not activity.is_bot
    ]
    assert labels == ["https://example.jp/top", "https://example.jp/pricing"]
    assert timeline[0].type == ActivityType.IDENTIFIED
    assert visitor_identify(visitor=visitor, prospect_id=prospect.pk) == 0  # idempotent


def test_recorded_activities_are_queued_in_redis_and_drained(
    recorder: Recorder, django_capture_on_commit_callbacks: Any
) -> None:
    prospect = _prospect("p@a.jp")
    redis_client().delete(PENDING_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        activity = activity_record(type=ActivityType.FORM_SUCCESS, prospect_id=prospect.pk)
    assert drain_pending() >= 1
    assert (activity.pk, prospect.pk) in recorder.seen


def test_the_sweeper_delivers_what_no_task_delivered(recorder: Recorder) -> None:
    prospect = _prospect("p@a.jp")
    activity = activity_record(type=ActivityType.PAGE_VIEW, prospect_id=prospect.pk)
    assert sweep_undelivered(now=timezone.now() + datetime.timedelta(minutes=5)) >= 1
    assert (activity.pk, prospect.pk) in recorder.seen


def test_activities_are_stored_in_monthly_partitions() -> None:
    ensure_partitions()
    activity = activity_record(type=ActivityType.PAGE_VIEW, object_label="/x")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM tracking_activity WHERE id = %s", [activity.pk]
        )
        partition = cursor.fetchone()[0]
    assert partition == f"tracking_activity_{activity.occurred_at:%Y%m}"
    assert partition in existing_partitions()


def test_activity_criteria_count_recent_human_page_views_of_a_page() -> None:
    keen, casual, bot_only = _prospect("keen@a.jp"), _prospect("casual@a.jp"), _prospect("bot@a.jp")
    for _ in range(3):
        activity_record(
            type=ActivityType.PAGE_VIEW, prospect_id=keen.pk, object_label="https://ex.jp/pricing"
        )
        activity_record(
            type=ActivityType.PAGE_VIEW,
            prospect_id=bot_only.pk,
            object_label="https://ex.jp/pricing",
            is_bot=True,
        )
    activity_record(
        type=ActivityType.PAGE_VIEW, prospect_id=casual.pk, object_label="https://ex.jp/pricing"
    )
    old = timezone.now() - datetime.timedelta(hours=23)
    activity_record(
        type=ActivityType.PAGE_VIEW,
        prospect_id=casual.pk,
        object_label="https://ex.jp/pricing",
        occurred_at=old,
    )

    viewed_pricing_3_times = {
        "conditions": [
            {
                "subject": "activity",
                "operator": "did",
                "activity_type": "page_view",
                "object": "pricing",
                "count": 3,
                "days": 30,
            }
        ]
    }
    emails = set(prospects_matching(viewed_pricing_3_times).values_list("email", flat=True))
    assert emails == {"keen@a.jp"}
    never = {
        "conditions": [
            {"subject": "activity", "operator": "did_not", "activity_type": "form_success"}
        ]
    }
    assert set(prospects_matching(never).values_list("email", flat=True)) == {
        "keen@a.jp",
        "casual@a.jp",
        "bot@a.jp",
    }


def test_retention_removes_old_anonymous_activity_but_never_a_prospects() -> None:
    prospect = _prospect("p@a.jp")
    visitor = Visitor.objects.create()
    now = timezone.now()
    anonymous = activity_record(type=ActivityType.PAGE_VIEW, visitor_id=visitor.pk)
    owned = activity_record(type=ActivityType.PAGE_VIEW, prospect_id=prospect.pk)
    Visitor.objects.filter(pk=visitor.pk).update(last_seen_at=now - datetime.timedelta(days=400))
    result = retention_run(now=now + datetime.timedelta(days=200))
    assert result["activities"] == 1 and result["visitors"] == 1
    assert not Activity.objects.filter(pk=anonymous.pk).exists()
    assert Activity.objects.filter(pk=owned.pk).exists()


def test_merging_prospects_moves_their_history_to_the_survivor() -> None:
    survivor, duplicate = _prospect("a@a.jp"), _prospect("b@a.jp")
    activity = activity_record(type=ActivityType.PAGE_VIEW, prospect_id=duplicate.pk)
    prospects_merge(actor=None, survivor=survivor, others=[duplicate])
    assert Activity.objects.get(pk=activity.pk).prospect_id == survivor.pk


def test_unknown_types_and_oversized_payloads_are_refused_or_clipped() -> None:
    with pytest.raises(ValueError):
        activity_record(type="made_up")
    activity = activity_record(
        type=ActivityType.PAGE_VIEW,
        object_label="x" * 10_000,
        payload={f"k{index}": "v" * 5000 for index in range(100)},
        occurred_at=timezone.now() + datetime.timedelta(days=400),
    )
    activity.refresh_from_db()
    assert len(activity.object_label) == 2000
    assert len(activity.payload) == 30 and all(
        len(value) <= 1000 for value in activity.payload.values()
    )
    assert abs(activity.occurred_at - timezone.now()) < datetime.timedelta(minutes=1)


def test_the_prospect_page_shows_the_timeline_escaped(marketer: Any) -> None:
    from django.urls import reverse

    from tests.conftest import client_for

    prospect = _prospect("p@a.jp")
    activity_record(
        type=ActivityType.PAGE_VIEW,
        prospect_id=prospect.pk,
        object_label="https://ex.jp/<script>alert(1)</script>",
    )
    page = (
        client_for(marketer).get(reverse("prospects:detail", args=[prospect.pk])).content.decode()
    )
    assert 'data-panel="timeline"' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page
