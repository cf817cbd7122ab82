"""The activity stream: the one way to record behaviour, and its delivery to consumers.

Writers call :func:`activity_record`. After the writer's transaction commits, the activity's id
is queued in Redis and a Celery task delivers queued activities in batches to every registered
consumer (:mod:`tracking.consumers`). Delivery is exactly once per (consumer, activity, owner):
each consumer records an ``ActivityDelivery`` row in the same transaction as its effect, so a
retried batch skips what it already applied. An anonymous visitor's activities are delivered
again, once, when they move to the prospect the visitor turned out to be.
"""

from __future__ import annotations

import datetime
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import redis
from django.db import connection, transaction
from django.utils import timezone

from mapp.health import redis_client
from tracking.consumers import ActivityConsumer, activity_consumers
from tracking.models import Activity, ActivityDelivery, ActivityType, Visit, Visitor

logger = logging.getLogger(__name__)

PENDING_KEY = "mapp:activities:pending"
DRAIN_SCHEDULED_KEY = "mapp:activities:drain-scheduled"
# One delivery task handles at most this many activities (≈ a few ms each per consumer).
DELIVERY_BATCH = 500
# Clients may say when something happened (an import, a delayed beacon) but not absurdly.
MAX_CLOCK_SKEW = datetime.timedelta(days=1)
MAX_PAYLOAD_KEYS = 30
MAX_PAYLOAD_VALUE_LENGTH = 1000


def _clean_payload(payload: dict[str, Any] | None) -> dict[str, Any]:
    """Small by contract: a few scalar keys, values clipped. Never the raw request."""
    cleaned: dict[str, Any] = {}
    for key, value in list((payload or {}).items())[:MAX_PAYLOAD_KEYS]:
        if isinstance(value, bool | int | float) or value is None:
            cleaned[str(key)[:50]] = value
        else:
            cleaned[str(key)[:50]] = str(value)[:MAX_PAYLOAD_VALUE_LENGTH]
    return cleaned


def activity_record(
    *,
    type: str,
    prospect_id: int | None = None,
    visitor_id: int | None = None,
    object_type: str = "",
    object_id: str | int = "",
    object_label: str = "",
    payload: dict[str, Any] | None = None,
    is_bot: bool = False,
    occurred_at: datetime.datetime | None = None,
) -> Activity:
    """Record one behaviour and schedule its delivery to the consumers after commit."""
    if type not in ActivityType.values:
        raise ValueError(f"unknown activity type {type!r}")
    now = timezone.now()
    if occurred_at is None or abs(occurred_at - now) > MAX_CLOCK_SKEW:
        occurred_at = now
    activity = Activity.objects.create(
        occurred_at=occurred_at,
        type=type,
        prospect_id=prospect_id,
        visitor_id=visitor_id,
        object_type=object_type[:40],
        object_id=str(object_id)[:64],
        object_label=object_label[:2000],
        payload=_clean_payload(payload),
        is_bot=is_bot,
    )
    schedule_delivery([activity.pk])
    return activity


def activities_record_many(activities: Sequence[Activity]) -> list[Activity]:
    """Record unsaved activities in one INSERT (the tracking drain's batches); same rules."""
    now = timezone.now()
    for activity in activities:
        if activity.type not in ActivityType.values:
            raise ValueError(f"unknown activity type {activity.type!r}")
        if activity.occurred_at is None or abs(activity.occurred_at - now) > MAX_CLOCK_SKEW:
            activity.occurred_at = now
        activity.object_type = activity.object_type[:40]
        activity.object_id = str(activity.object_id)[:64]
        activity.object_label = activity.object_label[:2000]
        activity.payload = _clean_payload(activity.payload)
    created = Activity.objects.bulk_create(activities)
    schedule_delivery([activity.pk for activity in created])
    return created


def schedule_delivery(activity_ids: Sequence[int]) -> None:
    """After commit: queue the ids and make sure a delivery task is on its way."""
    ids = [int(activity_id) for activity_id in activity_ids]
    if ids:
        transaction.on_commit(lambda: _enqueue(ids))


def _enqueue(ids: list[int]) -> None:
    try:
        client = redis_client()
        client.rpush(PENDING_KEY, *ids)
        # At most one drain scheduled per second, however many activities arrive.
        if client.set(DRAIN_SCHEDULED_KEY, "1", nx=True, ex=1):
            from tracking.tasks import deliver_pending_activities

            deliver_pending_activities.apply_async(countdown=1)
    except (redis.RedisError, OSError):
        # Nothing is lost: the sweeper delivers recent activities that have no delivery yet.
        logger.warning("could not queue %d activities for delivery; the sweeper will", len(ids))


def drain_pending(*, batch: int = DELIVERY_BATCH) -> int:
    """Deliver up to ``batch`` queued activities; returns how many ids were taken."""
    client = redis_client()
    raw = client.lpop(PENDING_KEY, batch) or []
    ids = sorted({int(value) for value in raw})
    if ids:
        deliver_activities(ids)
    return len(raw)


def _claim(consumer: ActivityConsumer, activities: list[Activity]) -> list[Activity]:
    """Insert delivery rows; return the activities this call is the first to claim."""
    if not activities:
        return []
    table = ActivityDelivery._meta.db_table
    values = ", ".join(["(%s, %s, %s, now())"] * len(activities))
    params: list[Any] = []
    for activity in activities:
        params.extend([consumer.key, activity.pk, activity.prospect_id or 0])
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (consumer, activity_id, prospect_id, delivered_at) "  # noqa: S608
            f"VALUES {values} ON CONFLICT DO NOTHING RETURNING activity_id",
            params,
        )
        claimed = {row[0] for row in cursor.fetchall()}
    return [activity for activity in activities if activity.pk in claimed]


def deliver_activities(activity_ids: Sequence[int]) -> dict[str, int]:
    """Hand each activity to each interested consumer exactly once; returns counts per consumer."""
    activities = list(
        Activity.objects.filter(pk__in=list(activity_ids)).order_by("occurred_at", "id")
    )
    applied: dict[str, int] = {}
    for consumer in activity_consumers():
        relevant = [activity for activity in activities if consumer.wants(activity)]
        if not relevant:
            continue
        with transaction.atomic():
            fresh = _claim(consumer, relevant)
            if fresh:
                consumer.handle(fresh)
        applied[consumer.key] = len(fresh)
    return applied


# How far back the sweeper looks for activities that no task delivered (Redis lost, a crash
# between taking ids and delivering them).
SWEEP_WINDOW = datetime.timedelta(hours=6)
SWEEP_GRACE = datetime.timedelta(minutes=2)


def sweep_undelivered(*, now: datetime.datetime | None = None) -> int:
    """Deliver recent activities some interested consumer has not received yet."""
    now = now or timezone.now()
    recent = Activity.objects.filter(
        occurred_at__gte=now - SWEEP_WINDOW, created_at__lte=now - SWEEP_GRACE
    )
    missing: set[int] = set()
    for consumer in activity_consumers():
        delivered = ActivityDelivery.objects.filter(consumer=consumer.key).values("activity_id")
        candidates = recent.exclude(pk__in=delivered)
        if consumer.types is not None:
            candidates = candidates.filter(type__in=consumer.types)
        if not consumer.include_bots:
            candidates = candidates.filter(is_bot=False)
        missing.update(candidates.values_list("pk", flat=True)[:5000])
    ids = sorted(missing)
    for start in range(0, len(ids), DELIVERY_BATCH):
        deliver_activities(ids[start : start + DELIVERY_BATCH])
    return len(ids)


# --- visitors and identification ----------------------------------------------------------------


@transaction.atomic
def visitor_identify(*, visitor: Visitor, prospect_id: int, source: str = "") -> int:
    """The visitor is this prospect: their anonymous history moves to the prospect.

    Returns how many activities moved. Idempotent: identifying again moves nothing new. One
    prospect may have several visitors (devices); a visitor belongs to one prospect at a time.
    """
    # The row lock orders two identifications of one browser (two tabs submitting at once).
    Visitor.objects.select_for_update().filter(pk=visitor.pk).values_list("pk").first()
    return visitors_identify([(visitor.pk, prospect_id)], source=source)


def visitors_identify(pairs: Sequence[tuple[int, int]], *, source: str = "") -> int:
    """Identify many (visitor id, prospect id) pairs in a few statements (the tracking drain).

    The same rules as :func:`visitor_identify`; callers hold the visitors' row locks (the drain
    does: it has just upserted them). Only anonymous history moves: a shared browser once
    identified as someone else keeps that person's history with them. Returns how many
    activities moved.
    """
    targets: dict[int, int] = {}
    for visitor_id, prospect_id in pairs:
        targets.setdefault(int(visitor_id), int(prospect_id))
    if not targets:
        return 0
    values = ", ".join(["(%s::bigint, %s::bigint)"] * len(targets))
    params: list[Any] = [number for pair in targets.items() for number in pair]
    activity_table = Activity._meta.db_table
    visit_table = Visit._meta.db_table
    visitor_table = Visitor._meta.db_table
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {activity_table} AS a SET prospect_id = t.prospect_id "  # noqa: S608
            f"FROM (VALUES {values}) AS t(visitor_id, prospect_id) "
            "WHERE a.visitor_id = t.visitor_id AND a.prospect_id IS NULL "
            "RETURNING a.id, a.visitor_id",
            params,
        )
        moved = cursor.fetchall()
        if moved:
            cursor.execute(
                f"UPDATE {visit_table} AS v SET prospect_id = t.prospect_id "  # noqa: S608
                f"FROM (VALUES {values}) AS t(visitor_id, prospect_id) "
                "WHERE v.visitor_id = t.visitor_id AND v.prospect_id IS NULL",
                params,
            )
        cursor.execute(
            f"UPDATE {visitor_table} AS v SET prospect_id = t.prospect_id, "  # noqa: S608
            f"identified_at = %s FROM (VALUES {values}) AS t(visitor_id, prospect_id) "
            "WHERE v.id = t.visitor_id AND v.prospect_id IS DISTINCT FROM t.prospect_id "
            "RETURNING v.id, t.prospect_id",
            [now, *params],
        )
        newly_identified = cursor.fetchall()
    moved_per_visitor: dict[int, int] = defaultdict(int)
    for _activity_id, visitor_id in moved:
        moved_per_visitor[visitor_id] += 1
    activities_record_many(
        [
            Activity(
                type=ActivityType.IDENTIFIED,
                prospect_id=prospect_id,
                visitor_id=visitor_id,
                object_type="visitor",
                object_id=str(visitor_id),
                payload={"source": source, "moved": moved_per_visitor[visitor_id]},
                occurred_at=now,
            )
            for visitor_id, prospect_id in newly_identified
        ]
    )
    schedule_delivery([activity_id for activity_id, _visitor_id in moved])
    return len(moved)


def activities_move_to_prospect(*, from_prospect_ids: Sequence[int], to_prospect_id: int) -> int:
    """Merge support: a merged prospect's history and devices belong to the survivor."""
    moved_ids = list(
        Activity.objects.filter(prospect_id__in=list(from_prospect_ids)).values_list(
            "pk", flat=True
        )
    )
    Activity.objects.filter(pk__in=moved_ids).update(prospect_id=to_prospect_id)
    Visitor.objects.filter(prospect_id__in=list(from_prospect_ids)).update(
        prospect_id=to_prospect_id
    )
    Visit.objects.filter(prospect_id__in=list(from_prospect_ids)).update(prospect_id=to_prospect_id)
    schedule_delivery(moved_ids)
    return len(moved_ids)


# --- retention -----------------------------------------------------------------------------------

ANONYMOUS_RETENTION = datetime.timedelta(days=180)
DELIVERY_RETENTION = datetime.timedelta(days=30)


def retention_run(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Remove anonymous visitors' old activity and visitors (never a prospect's history)."""
    now = now or timezone.now()
    cutoff = now - ANONYMOUS_RETENTION
    activities, _rows = Activity.objects.filter(
        prospect_id__isnull=True, occurred_at__lt=cutoff
    ).delete()
    visitors, _rows = Visitor.objects.filter(
        prospect__isnull=True, last_seen_at__lt=cutoff
    ).delete()
    deliveries, _rows = ActivityDelivery.objects.filter(
        delivered_at__lt=now - DELIVERY_RETENTION
    ).delete()
    return {"activities": activities, "visitors": visitors, "deliveries": deliveries}
