"""The HOT rule's background jobs: they take ids and are safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError


# A deadlock with a rescore chunk (both lock prospects and the ledger) is retried; the
# evaluation is idempotent, so a retry only does what the failed attempt rolled back.
@shared_task(
    name="scoring.evaluate_hot",
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def evaluate_hot(prospect_ids: list[int]) -> int:
    """Evaluate the HOT status of these prospects (they changed); returns how many changed."""
    from scoring.hot import hot_evaluate

    return len(hot_evaluate(prospect_ids=prospect_ids).status_changes)


@shared_task(
    name="scoring.evaluate_hot_all",
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def evaluate_hot_all() -> int:
    """Evaluate every prospect, chunk by chunk (hourly, and after the rule changed)."""
    from scoring.hot import hot_evaluate

    return len(hot_evaluate().status_changes)


@shared_task(name="scoring.send_hot_digests", acks_late=True)
def send_hot_digests() -> int:
    """Once the digest hour has passed: each user's daily HOT-lead digest, once a day."""
    from scoring.hot_digest import hot_digests_send

    return hot_digests_send()
