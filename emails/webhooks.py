"""ESP webhooks: bounces, complaints and unsubscribes reported by the email service that relays
our mail (Postmark, Mailgun, Amazon SES, SendGrid…), through django-anymail.

Anymail's webhook views (mounted by emails/urls_webhooks.py) check the ESP's credentials,
normalise each ESP's payload to an :class:`~anymail.signals.AnymailTrackingEvent` and send the
``anymail.signals.tracking`` signal; the receiver here maps the events that are feedback to
emails.feedback, which counts each report once (ESPs retry webhooks, and the same bounce may
arrive as a DSN too). Other events (delivered, opened, clicked…) are ignored: mapp tracks opens
and clicks itself.

Which row: our Message-ID when the ESP reports it (Mailgun, SparkPost and others keep the one
we set; Postmark and SES report their own id), the signed recipient when the ESP hands back
message metadata named ``mapp_recipient``, else the recipient's address.
"""

from __future__ import annotations

import logging
import re
from typing import Any, TypedDict

from anymail.signals import AnymailTrackingEvent, EventType, RejectReason, tracking

from emails.feedback import FeedbackResult, bounce_record, complaint_record, unsubscribe_record

logger = logging.getLogger(__name__)

#: Metadata key under which an ESP may hand back our signed X-Mapp-Recipient value.
METADATA_RECIPIENT_KEY = "mapp_recipient"

_ENHANCED_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_SMTP_REPLY = re.compile(r"^\s*([245]\d\d)\b")
# ESP-specific words for a temporary failure the normalised event type does not carry.
_SOFT_POSTMARK_TYPES = frozenset({"SoftBounce", "Transient", "DnsError"})
_SOFT_SES_PREFIXES = ("Transient", "Undetermined")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _status(event: AnymailTrackingEvent) -> str:
    """The enhanced status code (or SMTP reply code) in what the receiving server said."""
    for text in (_text(event.mta_response), _text(event.description)):
        enhanced = _ENHANCED_STATUS.search(text)
        if enhanced is not None:
            return enhanced.group(1)
    reply = _SMTP_REPLY.match(_text(event.mta_response))
    return reply.group(1) if reply is not None else ""


def bounce_kind_of(event: AnymailTrackingEvent) -> str:
    """Hard or soft: "deferred" is soft; a "bounced" event is soft when the ESP or the
    receiving server's status says the failure was temporary, hard otherwise."""
    if event.event_type == EventType.DEFERRED:
        return "soft"
    esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
    if _text(esp_event.get("Type")) in _SOFT_POSTMARK_TYPES:
        return "soft"
    if _text(event.description).startswith(_SOFT_SES_PREFIXES):
        return "soft"
    status = _status(event)
    return "soft" if status.startswith("4") else "hard"


class _Reference(TypedDict):
    signed_recipient: str
    message_id: str
    address: str


def _reference(event: AnymailTrackingEvent) -> _Reference:
    metadata = event.metadata if isinstance(event.metadata, dict) else {}
    return {
        "signed_recipient": _text(metadata.get(METADATA_RECIPIENT_KEY)),
        "message_id": _text(event.message_id),
        "address": _text(event.recipient),
    }


def tracking_event_apply(*, event: AnymailTrackingEvent, esp_name: str) -> FeedbackResult | None:
    """Apply one normalised ESP event; None for events that are not feedback."""
    source = f"webhook:{str(esp_name).lower()}"[:40]
    reference = _reference(event)
    reason = _text(event.mta_response) or _text(event.description)
    event_type = event.event_type
    if event_type == EventType.REJECTED:
        # The ESP refused to send; why decides what it means for the address.
        reject_reason = event.reject_reason
        if reject_reason == RejectReason.UNSUBSCRIBED:
            event_type = EventType.UNSUBSCRIBED
        elif reject_reason == RejectReason.SPAM:
            event_type = EventType.COMPLAINED
        else:
            kind = (
                "hard" if reject_reason in (RejectReason.INVALID, RejectReason.BOUNCED) else "soft"
            )
            return bounce_record(
                kind=kind,
                status=_status(event),
                reason=reason or f"rejected: {reject_reason or 'unknown'}",
                source=source,
                **reference,
            )
    if event_type in (EventType.BOUNCED, EventType.DEFERRED):
        return bounce_record(
            kind=bounce_kind_of(event),
            status=_status(event),
            reason=reason,
            source=source,
            **reference,
        )
    if event_type == EventType.COMPLAINED:
        return complaint_record(source=source, feedback_type="abuse", **reference)
    if event_type == EventType.UNSUBSCRIBED:
        return unsubscribe_record(source=source, **reference)
    return None


def _on_tracking(sender: Any, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any) -> None:
    tracking_event_apply(event=event, esp_name=esp_name)


def connect_receivers() -> None:
    """Connect the tracking receiver. emails/urls_webhooks.py calls it when the endpoints are
    mounted (EmailsConfig.ready() may too); connecting twice is harmless."""
    tracking.connect(_on_tracking, weak=False, dispatch_uid="emails.webhooks.tracking")
