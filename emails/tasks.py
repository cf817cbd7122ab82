"""Celery tasks of emails: thin, idempotent wrappers that take ids and call the pipeline.

All are routed to the "sends" queue (``emails.*`` in CELERY_TASK_ROUTES), so a large send never
delays other apps' work.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from emails import (
    ab_tests,
    one_off,
    sending,
    tasks_feedback,  # noqa: F401 (registers the feedback and domain tasks)
)
from emails.models import ListEmail, ListEmailStatus

# Parallel send tasks started per list email; each holds one SMTP connection.
DEFAULT_SEND_PARALLELISM = 2
# One task sends for at most this long, then queues its successor: a worker restart or a
# deploy never waits on a send of 100,000 messages. Below CELERY_TASK_SOFT_TIME_LIMIT (300 s).
TASK_TIME_BUDGET_SECONDS = 240.0
# The dispatcher starts at most one extra run per list email per this many seconds.
DISPATCH_THROTTLE_SECONDS = 60


def _parallelism() -> int:
    return max(int(getattr(settings, "EMAIL_SEND_PARALLELISM", DEFAULT_SEND_PARALLELISM)), 1)


@shared_task(name="emails.start_list_email", acks_late=True)
def start_list_email(list_email_id: int) -> bool:
    """Snapshot recipients and start the senders; a second run finds it started and stops."""
    started = sending.list_email_start(list_email_id=list_email_id)
    if started:
        for _index in range(_parallelism()):
            send_list_email.delay(list_email_id)
    return started


@shared_task(name="emails.send_list_email", acks_late=True)
def send_list_email(list_email_id: int) -> bool:
    """Send due batches for a while; queue a successor when rows remain due."""
    more = sending.list_email_send_due(
        list_email_id=list_email_id, time_budget_seconds=TASK_TIME_BUDGET_SECONDS
    )
    if more:
        send_list_email.delay(list_email_id)
    return more


@shared_task(name="emails.send_triggered_email", acks_late=True)
def send_triggered_email(triggered_email_id: int) -> str:
    """Send one autoresponder; a retry of a sent one finds it sent and does nothing."""
    return one_off.triggered_email_send(triggered_email_id=triggered_email_id)


@shared_task(name="emails.dispatch", acks_late=True, expires=55)
def dispatch() -> dict[str, int]:
    """Every minute: start due scheduled sends, take back dead workers' claims, choose the
    winners of A/B tests whose time is up, restart sends with due rows (retries after a 4xx,
    reclaimed rows, rows released to a winner) and mark finished sends as sent."""
    due = list(
        ListEmail.objects.filter(
            status=ListEmailStatus.SCHEDULED, scheduled_at__lte=timezone.now()
        ).values_list("pk", flat=True)
    )
    for list_email_id in due:
        start_list_email.delay(list_email_id)
    reclaimed = sending.recipients_reclaim_stale()
    decided = sum(
        ab_tests.ab_test_decide(list_email_id=list_email_id)
        for list_email_id in ab_tests.ab_tests_due()
    )
    restarted = 0
    for list_email_id in sending.list_emails_with_due_rows():
        if cache.add(f"emails:dispatch:{list_email_id}", 1, timeout=DISPATCH_THROTTLE_SECONDS):
            send_list_email.delay(list_email_id)
            restarted += 1
    for triggered_email_id in one_off.triggered_emails_due():
        send_triggered_email.delay(triggered_email_id)
    finished = 0
    for list_email_id in ListEmail.objects.filter(status=ListEmailStatus.SENDING).values_list(
        "pk", flat=True
    ):
        finished += sending.list_email_finish_if_done(list_email_id=list_email_id)
    return {
        "started": len(due),
        "reclaimed": reclaimed,
        "ab_tests_decided": decided,
        "restarted": restarted,
        "finished": finished,
    }
