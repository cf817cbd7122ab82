"""Celery tasks of feedback: received bounce/complaint/unsubscribe mail, and the daily domain
re-verification. Thin and idempotent (emails.feedback counts each report once; a re-check
stores the same verdict again and alerts once a day per domain via its dedup key).

Imported by emails/tasks.py so the worker registers them; routed to the "sends" queue with
the other ``emails.*`` tasks.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError

from emails import domain_monitor, inbound

logger = logging.getLogger(__name__)


@shared_task(
    name="emails.apply_inbound_message",
    acks_late=True,
    # The database being away may pass; nothing about the message itself will.
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=10,
)
def apply_inbound_message(message_base64: str, recipients: list[str]) -> str:
    """Apply one message received by the inbound SMTP endpoint; returns what it was read as."""
    data = inbound.inbound_message_decode(message_base64)
    if data is None:
        logger.warning("inbound message task with an unreadable payload dropped")
        return "unreadable"
    if not isinstance(recipients, list) or not all(isinstance(item, str) for item in recipients):
        recipients = []
    outcome = inbound.inbound_message_apply(data=data, recipients=recipients)
    return outcome.kind


@shared_task(name="emails.reverify_domains", acks_late=True, expires=55 * 60)
def reverify_domains() -> int:
    """Hourly: queue a re-check of each domain that is due (daily, sooner after a DNS
    failure). One task per domain, so one slow name server delays only its own domain."""
    due = domain_monitor.sending_domains_due()
    for sending_domain_id in due:
        reverify_domain.delay(sending_domain_id)
    return len(due)


@shared_task(name="emails.reverify_domain", acks_late=True, expires=55 * 60)
def reverify_domain(sending_domain_id: int) -> bool | None:
    """Check one sending domain again; True when it is verified, None when it is gone."""
    result = domain_monitor.sending_domain_recheck(sending_domain_id=sending_domain_id)
    return None if result is None else result.is_verified
