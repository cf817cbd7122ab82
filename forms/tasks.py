"""Celery tasks of forms: thin callers of forms.submissions."""

from __future__ import annotations

from celery import shared_task

from forms.submissions import submissions_retry


@shared_task(name="forms.retry_failed_submissions", acks_late=True)
def retry_failed_submissions() -> dict[str, int]:
    """Process again failed submissions whose back-off has passed, and orphaned received ones.

    Idempotent: each submission is processed under its row lock (rows another worker holds are
    skipped), and a processed one is never processed again.
    """
    return submissions_retry()
