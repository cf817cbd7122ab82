"""Scoring's background jobs: they take ids and are safe to run twice."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="scoring.rescore_all", acks_late=True)
def rescore_all(rescore_id: int) -> int:
    """Recompute every prospect's rule-caused score (after a rule edit)."""
    from scoring.services import rescore_run

    return rescore_run(rescore_id).processed
