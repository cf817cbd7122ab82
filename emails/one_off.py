"""One-off messages: autoresponders (a template sent to one prospect by an action) and test sends.

Both are built by the list emails' own :func:`emails.rendering.message_build` (merge fields,
inlined CSS, DKIM, RFC 8058 headers) and handed to the same SMTP connection factory, so what a
marketer tests is what recipients get.

Autoresponders go through a :class:`TriggeredEmail` row, unique per cause (``dedup_key``): the
action queues the row inside its transaction and a task sends it after commit. The task locks
the row (``SKIP LOCKED``), looks at mailability once more right before SMTP, and marks the row
in the same transaction as the send, so a retried task finds it sent. As with list emails, a
worker killed between the server's "250" and the commit sends that one message again, with the
same Message-ID. A 4xx is retried with backoff by the dispatcher's sweep; a 5xx to the address
is a hard bounce.
"""

from __future__ import annotations

import datetime
import logging
import smtplib
from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from emails.feedback import bounce_record
from emails.models import (
    EmailContent,
    EmailTemplate,
    ListEmail,
    SenderType,
    SendingDomain,
    TriggeredEmail,
    TriggeredEmailStatus,
)
from emails.rendering import MessageBuildError, SendKind, SendSetup, is_aligned, message_build
from emails.sending import (
    ERROR_MAX_LENGTH,
    MAX_ATTEMPTS,
    SmtpNotConfiguredError,
    retry_delay,
    smtp_close,
    smtp_connect,
)
from emails.sending import smtp_response_text as smtp_text
from prospects.models import MAILABLE_Q, Prospect
from tracking.models import ActivityType
from tracking.services import activity_record

logger = logging.getLogger(__name__)

#: Addresses one test send may go to: enough for a review team, too few to be a list send.
MAX_TEST_ADDRESSES = 10


def sending_domain_for(content: EmailContent) -> SendingDomain | None:
    """The verified sending domain the content's sender address is on (DMARC alignment)."""
    address = ""
    if content.sender_type in (SenderType.USER, SenderType.ASSIGNED_USER) and content.sender_user:
        address = content.sender_user.email
    if not address:
        address = content.sender_address
    if not address:
        return None
    for domain in SendingDomain.objects.filter(status="verified").order_by("-domain"):
        if is_aligned(address, domain.domain):
            return domain
    return None


# --- autoresponders -----------------------------------------------------------------------------


def triggered_email_queue(
    *, template: EmailTemplate, prospect: Prospect, dedup_key: str
) -> TriggeredEmail:
    """Queue ``template`` for ``prospect`` once per ``dedup_key``; sent after commit.

    Raises ValidationError when it cannot be sent at all (no verified sending domain for the
    template's sender), so the action's history says why.
    """
    domain = sending_domain_for(template)
    if domain is None:
        raise ValidationError(
            _(
                "The template's sender address is not on any verified sending domain: verify "
                "the domain first."
            )
        )
    triggered, created = TriggeredEmail.objects.get_or_create(
        dedup_key=dedup_key[:200],
        defaults={
            "template": template,
            "prospect": prospect,
            "sending_domain": domain,
            "email": prospect.email.lower(),
            "next_attempt_at": timezone.now(),
        },
    )
    if created:
        from emails.tasks import send_triggered_email

        transaction.on_commit(lambda: send_triggered_email.delay(triggered.pk))
    return triggered


def triggered_email_send(*, triggered_email_id: int) -> str:
    """Send one queued triggered email if it is due; returns its status afterwards."""
    with transaction.atomic():
        triggered = (
            TriggeredEmail.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("template__sender_user", "sending_domain", "prospect__assigned_user")
            .filter(pk=triggered_email_id, status=TriggeredEmailStatus.QUEUED)
            .first()
        )
        if triggered is None:
            row = TriggeredEmail.objects.filter(pk=triggered_email_id).values("status").first()
            return row["status"] if row else "missing"
        if triggered.next_attempt_at and triggered.next_attempt_at > timezone.now():
            return TriggeredEmailStatus.QUEUED
        return _send_locked(triggered)


def _message_id(triggered: TriggeredEmail) -> str:
    """Stable per row, so a retry reuses it; emails.feedback recognises it in bounces."""
    domain = triggered.sending_domain.domain if triggered.sending_domain else "localhost"
    return f"<mapp.t{triggered.pk}@{domain}>"


def _mark(triggered: TriggeredEmail, status: str, error: str = "") -> str:
    triggered.status = status
    triggered.error = error[:ERROR_MAX_LENGTH]
    triggered.save(update_fields=["status", "error", "attempts", "next_attempt_at"])
    return status


def _send_locked(triggered: TriggeredEmail) -> str:
    template = triggered.template
    if template is None or triggered.sending_domain is None:
        return _mark(triggered, TriggeredEmailStatus.SKIPPED, "template or domain deleted")
    if not Prospect.objects.filter(MAILABLE_Q, pk=triggered.prospect_id).exists():
        return _mark(triggered, TriggeredEmailStatus.SKIPPED, "not mailable at send time")
    triggered.attempts += 1
    sent_at = timezone.now()
    message_id = _message_id(triggered)
    try:
        setup = SendSetup.for_template(
            template, triggered.sending_domain, kind=SendKind.AUTORESPONDER
        )
        message = message_build(
            setup,
            recipient_id=0,
            address=triggered.email,
            prospect=triggered.prospect,
            sent_at=sent_at,
            message_id=message_id,
        )
    except (OSError, MessageBuildError) as error:
        return _mark(triggered, TriggeredEmailStatus.FAILED, str(error))
    smtp: smtplib.SMTP | None = None
    try:
        smtp = smtp_connect()
        refused = smtp.sendmail(message.envelope_from, [triggered.email], message.data)
    except SmtpNotConfiguredError as error:
        return _retry(triggered, str(error))
    except smtplib.SMTPRecipientsRefused as error:
        code, text = next(iter(error.recipients.values()), (0, b""))
        return _refused(triggered, code, smtp_text(text))
    except smtplib.SMTPResponseException as error:
        detail = f"{error.smtp_code} {smtp_text(error.smtp_error)}"
        if 400 <= error.smtp_code < 500:
            return _retry(triggered, detail)
        return _mark(triggered, TriggeredEmailStatus.FAILED, detail)
    except (smtplib.SMTPException, OSError) as error:
        return _retry(triggered, f"connection: {error}")
    finally:
        smtp_close(smtp)
    if refused:
        code, text = next(iter(refused.values()))
        return _refused(triggered, code, smtp_text(text))
    triggered.sent_at = sent_at
    triggered.message_id = message_id
    triggered.status = TriggeredEmailStatus.SENT
    triggered.error = ""
    triggered.save(
        update_fields=["status", "sent_at", "message_id", "error", "attempts", "next_attempt_at"]
    )
    activity_record(
        type=ActivityType.EMAIL_SENT,
        prospect_id=triggered.prospect_id,
        object_type="email_template",
        object_id=template.pk,
        object_label=template.name,
        payload={
            "email_id": setup.email_id,
            "triggered_email_id": triggered.pk,
            "message_id": message_id,
        },
    )
    return TriggeredEmailStatus.SENT


def _retry(triggered: TriggeredEmail, error: str) -> str:
    if triggered.attempts >= MAX_ATTEMPTS:
        return _mark(triggered, TriggeredEmailStatus.FAILED, error)
    triggered.next_attempt_at = timezone.now() + retry_delay(triggered.attempts)
    return _mark(triggered, TriggeredEmailStatus.QUEUED, error)


def _refused(triggered: TriggeredEmail, code: int, text: str) -> str:
    if 400 <= code < 500:
        return _retry(triggered, f"{code} {text}")
    _mark(triggered, TriggeredEmailStatus.FAILED, f"{code} {text}")
    # the one writer of bounces: it finds the prospect by this message's id
    bounce_record(
        kind="hard",
        source="smtp",
        status=str(code),
        reason=text,
        message_id=_message_id(triggered),
    )
    return TriggeredEmailStatus.FAILED


def triggered_emails_due(now: datetime.datetime | None = None) -> list[int]:
    """Queued triggered emails whose (re)try is due: the dispatcher's sweep."""
    now = now or timezone.now()
    return list(
        TriggeredEmail.objects.filter(
            status=TriggeredEmailStatus.QUEUED, next_attempt_at__lte=now
        ).values_list("pk", flat=True)[:1000]
    )


# --- test sends ---------------------------------------------------------------------------------


def test_addresses_clean(raw: str) -> list[str]:
    """Addresses from a comma, space or newline separated text; raises ValidationError."""
    addresses: list[str] = []
    for part in raw.replace(",", " ").replace("、", " ").split():
        address = part.strip().lower()
        try:
            validate_email(address)
        except ValidationError as error:
            raise ValidationError(
                _("%(address)s is not an email address.") % {"address": part[:100]}
            ) from error
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ValidationError(_("Enter at least one address to send the test to."))
    if len(addresses) > MAX_TEST_ADDRESSES:
        raise ValidationError(
            _("A test goes to at most %(max)s addresses.") % {"max": MAX_TEST_ADDRESSES}
        )
    return addresses


def test_send(
    *,
    source: ListEmail | EmailTemplate,
    addresses: Sequence[str],
    prospect: Prospect | None,
    variant_id: int | None = None,
) -> int:
    """Send ``source`` to ``addresses`` now, personalised as ``prospect``; returns how many.

    Subject prefixed "[TEST]", nothing tracked, nothing recorded on the prospect. Raises
    ValidationError with a message to show when it cannot be sent.
    """
    domain = source.sending_domain if isinstance(source, ListEmail) else sending_domain_for(source)
    if domain is None or not domain.is_verified:
        raise ValidationError(
            _("A test needs a verified sending domain: choose or verify one first.")
        )
    try:
        if isinstance(source, ListEmail):
            setup = SendSetup.for_list_email(source, kind=SendKind.TEST)
        else:
            setup = SendSetup.for_template(source, domain, kind=SendKind.TEST)
        sent_at = timezone.now()
        messages = [
            message_build(
                setup,
                recipient_id=0,
                address=address,
                prospect=prospect,
                sent_at=sent_at,
                variant_id=variant_id,
                message_id=f"<mapp.test.{sent_at.timestamp():.6f}.{index}@{domain.domain}>",
            )
            for index, address in enumerate(addresses)
        ]
    except (OSError, MessageBuildError) as error:
        raise ValidationError(
            _("The test could not be built: %(error)s") % {"error": error}
        ) from error
    try:
        smtp = smtp_connect()
    except SmtpNotConfiguredError as error:
        raise ValidationError(_("No SMTP server is configured.")) from error
    except (smtplib.SMTPException, OSError) as error:
        raise ValidationError(
            _("The SMTP server could not be reached: %(error)s") % {"error": error}
        ) from error
    sent = 0
    try:
        for address, message in zip(addresses, messages, strict=True):
            try:
                smtp.sendmail(message.envelope_from, [address], message.data)
            except smtplib.SMTPException as error:
                raise ValidationError(
                    _("The SMTP server refused the test to %(address)s: %(error)s")
                    % {"address": address, "error": error}
                ) from error
            sent += 1
    finally:
        smtp_close(smtp)
    logger.info("test send of %s to %s addresses", setup.email_id, sent)
    return sent
