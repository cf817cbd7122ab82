"""Grading's background jobs: they take ids and are safe to run twice."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="scoring.regrade", acks_late=True)
def regrade_job(regrade_id: int) -> int:
    """Run a queued regrade (after a profile edit), chunk by chunk; returns prospects done."""
    from scoring.grading import regrade_run

    return regrade_run(regrade_id).processed


@shared_task(name="scoring.regrade_prospects", acks_late=True)
def regrade_prospects(prospect_ids: list[int]) -> int:
    """Regrade prospects whose data changed; returns how many grades changed."""
    from scoring.grading import regrade

    return len(regrade(prospect_ids=[int(pk) for pk in prospect_ids]))
