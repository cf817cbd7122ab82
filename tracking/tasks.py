from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from tracking import ingest, services
from tracking.partitions import ensure_partitions


@shared_task(name="tracking.deliver_pending_activities", acks_late=True, max_retries=None)
def deliver_pending_activities() -> int:
    """Drain the queue of recorded activities in batches; re-enqueue while more wait."""
    taken = services.drain_pending()
    if taken >= services.DELIVERY_BATCH:
        deliver_pending_activities.apply_async(countdown=0)
    return taken


@shared_task(name="tracking.deliver_activities", acks_late=True)
def deliver_activities(activity_ids: list[int]) -> dict[str, int]:
    return services.deliver_activities(activity_ids)


@shared_task(name="tracking.sweep_undelivered")
def sweep_undelivered() -> int:
    return services.sweep_undelivered()


@shared_task(name="tracking.ensure_activity_partitions")
def ensure_activity_partitions() -> list[str]:
    return ensure_partitions()


@shared_task(name="tracking.retention")
def retention() -> dict[str, int]:
    return services.retention_run()


@shared_task(
    name="tracking.drain_hits",
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=None,
)
def drain_hits() -> dict[str, int]:
    """Store queued tracking hits (see tracking.ingest); hand over to a new task if more wait."""
    result = ingest.hits_drain()
    if result.more:
        drain_hits.apply_async(countdown=0 if result.hits else ingest.KICK_SECONDS)
    return {"hits": result.hits, "activities": result.activities, "dead": result.dead}
