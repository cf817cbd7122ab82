"""The send pipeline: snapshot recipients, claim them in batches, build, sign, deliver, mark.

Never twice, never lost (ARCHITECTURE.md, "Sending, safely"):

* Snapshot: one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` makes one :class:`Recipient` row
  per address (unique per send), in the transaction that moves the send to "sending"; running
  it again adds nothing.
* Claim: one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)`` marks a batch claimed
  with one ``claimed_at`` (the claim's identity) in a single transaction, so two workers never
  hold the same row. Times there are ``statement_timestamp()``: one value for the whole batch
  (``clock_timestamp()`` differs per row) that is not frozen at the start of an enclosing
  transaction as ``now()`` is.
* Mark: every later status change is ``WHERE status = 'claimed' AND claimed_at = <ours>``; a
  worker whose claim was taken back (it was presumed dead) cannot overwrite the new owner.
* A worker stops handing messages to SMTP once its claim is half as old as the stale-claim
  limit, so the reclaimer never takes back rows from a live worker.
* Each row is marked right after the SMTP server accepted it. A worker killed between the
  server's "250" and that UPDATE leaves the row claimed; it is reclaimed and sent again: the
  one unavoidable duplicate of any SMTP sender, kept to that instant. The Message-ID is stable
  per row, so receivers that deduplicate do.
* Right before connecting to SMTP the batch's prospects are read again: someone who
  unsubscribed (or bounced) after the snapshot is skipped.
"""

from __future__ import annotations

import datetime
import logging
import random
import smtplib
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from emails.dkim import DkimError
from emails.feedback import bounce_record
from emails.models import ListEmail, ListEmailStatus, Recipient, RecipientStatus
from emails.rendering import BuiltMessage, MessageBuildError, SendSetup, message_build
from prospects.models import MAILABLE_Q, ListMembership, Prospect
from tracking.models import Activity, ActivityType
from tracking.services import activities_record_many

logger = logging.getLogger(__name__)

# Rows one worker claims at a time: ≈ 1 s of work at 100 messages/s, so a crash re-sends at
# most the message in flight and a pause takes effect within a second.
BATCH_SIZE = 100
# SMTP 4xx: tries before a row is given up (≈ 1+2+4+8+16+32+60 min ≈ 2 h with the backoff).
MAX_ATTEMPTS = 8
RETRY_BASE = datetime.timedelta(minutes=1)
RETRY_MAX = datetime.timedelta(hours=1)
ERROR_MAX_LENGTH = 1000


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def stale_claim_after() -> datetime.timedelta:
    """A claim older than this belongs to a dead worker and is taken back (setting
    EMAIL_STALE_CLAIM_MINUTES, 10 by default). A live worker stops at half of it (see the
    module docstring), so it must be far above one batch's duration: at least two minutes."""
    return datetime.timedelta(minutes=max(int(_setting("EMAIL_STALE_CLAIM_MINUTES", 10)), 2))


# --- snapshot -----------------------------------------------------------------------------------


def recipients_snapshot(list_email: ListEmail) -> int:
    """Insert the send's recipient rows; returns how many were added.

    Recipients are mailable members of any recipient list who are in no suppression list, one
    row per lower-cased address (prospect addresses are unique case-insensitively already; the
    unique constraint keeps it so whatever happens upstream).
    """
    recipient_list_ids = list(list_email.recipient_lists.values_list("pk", flat=True))
    suppression_list_ids = list(list_email.suppression_lists.values_list("pk", flat=True))
    prospects = Prospect.objects.filter(MAILABLE_Q).filter(
        pk__in=ListMembership.objects.filter(prospect_list_id__in=recipient_list_ids).values(
            "prospect_id"
        )
    )
    if suppression_list_ids:
        prospects = prospects.exclude(
            pk__in=ListMembership.objects.filter(prospect_list_id__in=suppression_list_ids).values(
                "prospect_id"
            )
        )
    select_sql, select_params = (
        prospects.order_by().values_list("id", "email").query.sql_with_params()
    )
    table = Recipient._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (list_email_id, prospect_id, email, status, attempts, "  # noqa: S608
            "next_attempt_at, message_id, error, bounce_kind, bounce_reason, created_at) "
            "SELECT %s, chosen.id, lower(chosen.email), %s, 0, now(), '', '', '', '', now() "
            f"FROM ({select_sql}) AS chosen ORDER BY chosen.id "
            "ON CONFLICT (list_email_id, email) DO NOTHING",
            [list_email.pk, RecipientStatus.QUEUED, *select_params],
        )
        added = cursor.rowcount
    ab_test_split(list_email)
    return added


def ab_test_split(list_email: ListEmail) -> None:
    """An A/B-tested send: a random ``ab_test_percent`` of the rows not yet given a variant is
    spread evenly over the variants; the others wait ("held") for the winner.

    Only rows without a variant that are still queued are touched, so running it again (a
    retried start) changes nothing already decided. Each address has one row, so each prospect
    gets exactly one variant. With 100 % (or one variant) every row gets a variant and there is
    no winner phase.
    """
    percent = list_email.ab_test_percent
    variant_ids = list(list_email.variants.order_by("letter").values_list("pk", flat=True))
    if not percent or len(variant_ids) < 2 or list_email.ab_decided_at is not None:
        return
    table = Recipient._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {table} WHERE list_email_id = %s AND variant_id IS NULL "  # noqa: S608
            "AND status = %s",
            [list_email.pk, RecipientStatus.QUEUED],
        )
        undecided = cursor.fetchone()[0]
        if undecided == 0:
            return
        # at least one recipient per variant, however small the audience
        tested = max(-(-undecided * min(percent, 100) // 100), len(variant_ids))
        cursor.execute(
            f"WITH ranked AS (SELECT id, row_number() OVER (ORDER BY random()) AS rn "  # noqa: S608
            f"FROM {table} WHERE list_email_id = %s AND variant_id IS NULL AND status = %s) "
            f"UPDATE {table} r SET "
            "variant_id = CASE WHEN ranked.rn <= %s "
            "THEN (%s::bigint[])[((ranked.rn - 1) %% %s) + 1] END, "
            "status = CASE WHEN ranked.rn <= %s THEN %s ELSE %s END "
            "FROM ranked WHERE r.id = ranked.id",
            [
                list_email.pk,
                RecipientStatus.QUEUED,
                tested,
                variant_ids,
                len(variant_ids),
                tested,
                RecipientStatus.QUEUED,
                RecipientStatus.HELD,
            ],
        )


def list_email_start(*, list_email_id: int) -> bool:
    """Move a due scheduled send to "sending" and snapshot its recipients, in one transaction.

    Idempotent: a send that is not "scheduled" (started already, paused, cancelled) is left
    alone and False returned.
    """
    with transaction.atomic():
        list_email = ListEmail.objects.select_for_update().filter(pk=list_email_id).first()
        if list_email is None or list_email.status != ListEmailStatus.SCHEDULED:
            return False
        added = recipients_snapshot(list_email)
        list_email.status = ListEmailStatus.SENDING
        list_email.started_at = timezone.now()
        list_email.recipient_count = F("recipient_count") + added
        list_email.save(update_fields=["status", "started_at", "recipient_count", "updated_at"])
    return True


# --- claiming -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    recipient_ids: list[int]
    claimed_at: datetime.datetime | None


def _remaining_under_caps(now: datetime.datetime) -> int | None:
    """How many more messages the account's hourly and daily caps allow now (None: no cap).

    Approximate by design: parallel workers each check before claiming, so a cap can be passed
    by at most one batch per worker.
    """
    remaining: int | None = None
    for cap_setting, window in (
        ("EMAIL_SEND_HOURLY_CAP", datetime.timedelta(hours=1)),
        ("EMAIL_SEND_DAILY_CAP", datetime.timedelta(days=1)),
    ):
        cap = _setting(cap_setting, None)
        if cap is None:
            continue
        used = Recipient.objects.filter(sent_at__gte=now - window).count()
        allowed = max(int(cap) - used, 0)
        remaining = allowed if remaining is None else min(remaining, allowed)
    return remaining


def recipients_claim(*, list_email_id: int, limit: int) -> Claim:
    """Claim up to ``limit`` due queued rows of a send that is "sending" (lowest ids first)."""
    if limit <= 0:
        return Claim([], None)
    table = Recipient._meta.db_table
    list_email_table = ListEmail._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET status = %s, claimed_at = statement_timestamp(), "  # noqa: S608
            "attempts = attempts + 1 "
            f"WHERE id IN (SELECT r.id FROM {table} r WHERE r.list_email_id = %s "
            "AND r.status = %s AND r.next_attempt_at <= statement_timestamp() "
            f"AND EXISTS (SELECT 1 FROM {list_email_table} e WHERE e.id = %s AND e.status = %s) "
            "ORDER BY r.next_attempt_at, r.id LIMIT %s FOR UPDATE OF r SKIP LOCKED) "
            "RETURNING id, claimed_at",
            [
                RecipientStatus.CLAIMED,
                list_email_id,
                RecipientStatus.QUEUED,
                list_email_id,
                ListEmailStatus.SENDING,
                limit,
            ],
        )
        rows = cursor.fetchall()
    if not rows:
        return Claim([], None)
    return Claim(sorted(row[0] for row in rows), rows[0][1])


def recipients_reclaim_stale(*, now: datetime.datetime | None = None) -> int:
    """Give claims of dead workers back to the queue; returns how many rows."""
    now = now or timezone.now()
    return Recipient.objects.filter(
        status=RecipientStatus.CLAIMED, claimed_at__lt=now - stale_claim_after()
    ).update(status=RecipientStatus.QUEUED, claimed_at=None, next_attempt_at=now)


# --- marking ------------------------------------------------------------------------------------


def _ours(claim: Claim, recipient_ids: list[int]) -> Any:
    return Recipient.objects.filter(
        pk__in=recipient_ids, status=RecipientStatus.CLAIMED, claimed_at=claim.claimed_at
    )


def retry_delay(attempts: int) -> datetime.timedelta:
    """Exponential backoff with ±20 % jitter, so retries of many rows do not arrive together."""
    base = min(RETRY_BASE * (2 ** max(attempts - 1, 0)), RETRY_MAX)
    return base * random.uniform(0.8, 1.2)  # noqa: S311 (spreading load, not security)


@dataclass
class BatchResult:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    released: int = 0
    stop_reason: str = ""
    sent_rows: list[tuple[int, int, str]] = field(default_factory=list)


def _release(claim: Claim, recipient_ids: list[int], *, count_attempt: bool = False) -> int:
    """Hand rows back to the queue at once (not their fault: the connection, a pause)."""
    if not recipient_ids:
        return 0
    changes: dict[str, Any] = {
        "status": RecipientStatus.QUEUED,
        "claimed_at": None,
        "next_attempt_at": timezone.now(),
    }
    if not count_attempt:
        changes["attempts"] = F("attempts") - 1
    return int(_ours(claim, recipient_ids).update(**changes))


def _retry_later(claim: Claim, recipient_id: int, attempts: int, error: str) -> str:
    """4xx: back to the queue with backoff, or failed after MAX_ATTEMPTS. Returns the status."""
    if attempts >= MAX_ATTEMPTS:
        _ours(claim, [recipient_id]).update(
            status=RecipientStatus.FAILED, claimed_at=None, error=error[:ERROR_MAX_LENGTH]
        )
        return RecipientStatus.FAILED
    _ours(claim, [recipient_id]).update(
        status=RecipientStatus.QUEUED,
        claimed_at=None,
        next_attempt_at=timezone.now() + retry_delay(attempts),
        error=error[:ERROR_MAX_LENGTH],
    )
    return RecipientStatus.QUEUED


def _hard_bounce(
    *, recipient: Recipient, list_email: ListEmail, code: int, diagnostic: str
) -> None:
    """A 5xx to RCPT TO: the address does not exist; recorded as any other hard bounce
    (emails.feedback: the row's bounce, the send's counter and guard rails, the prospect)."""
    bounce_record(
        recipient_id=recipient.pk, kind="hard", status=str(code), reason=diagnostic, source="smtp"
    )


def smtp_response_text(message: bytes | str) -> str:
    if isinstance(message, bytes):
        return message.decode("utf-8", "replace")
    return str(message)


# --- SMTP ---------------------------------------------------------------------------------------


class SmtpNotConfiguredError(RuntimeError):
    """No SMTP server to hand messages to."""


def smtp_connect() -> smtplib.SMTP:
    """One persistent connection for a batch, from the EMAIL_* settings."""
    host = settings.EMAIL_HOST
    if not host:
        raise SmtpNotConfiguredError("EMAIL_HOST is not set")
    timeout = _setting("EMAIL_TIMEOUT", 30)
    smtp: smtplib.SMTP
    if _setting("EMAIL_USE_SSL", False):
        smtp = smtplib.SMTP_SSL(host, settings.EMAIL_PORT, timeout=timeout)
    else:
        smtp = smtplib.SMTP(host, settings.EMAIL_PORT, timeout=timeout)
        if settings.EMAIL_USE_TLS:
            smtp.starttls()
    if settings.EMAIL_HOST_USER:
        smtp.login(settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD)
    return smtp


def smtp_close(smtp: smtplib.SMTP | None) -> None:
    if smtp is None:
        return
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


# --- one batch ----------------------------------------------------------------------------------


def _pause(list_email_id: int, reason: str) -> None:
    ListEmail.objects.filter(pk=list_email_id, status=ListEmailStatus.SENDING).update(
        status=ListEmailStatus.PAUSED, paused_reason=reason[:500], updated_at=timezone.now()
    )


def list_email_send_batch(*, list_email_id: int, batch_size: int = BATCH_SIZE) -> BatchResult:
    """Claim one batch of a sending list email and deliver it over one SMTP connection."""
    result = BatchResult()
    list_email = (
        ListEmail.objects.select_related("sending_domain", "sender_user")
        .filter(pk=list_email_id)
        .first()
    )
    if list_email is None or list_email.status != ListEmailStatus.SENDING:
        result.stop_reason = "not sending"
        return result
    remaining = _remaining_under_caps(timezone.now())
    limit = batch_size if remaining is None else min(batch_size, remaining)
    if limit == 0:
        result.stop_reason = "send cap reached"
        return result
    claim = recipients_claim(list_email_id=list_email_id, limit=limit)
    result.claimed = len(claim.recipient_ids)
    if not claim.recipient_ids:
        list_email_finish_if_done(list_email_id=list_email_id)
        result.stop_reason = "nothing due"
        return result
    try:
        setup = SendSetup.for_list_email(list_email)
    except (OSError, DkimError, MessageBuildError) as error:
        logger.error("list email %s cannot be signed: %s", list_email_id, error)
        _release(claim, claim.recipient_ids)
        _pause(list_email_id, f"DKIM key unusable: {error}")
        result.stop_reason = "dkim"
        return result
    try:
        _deliver_claim(list_email, setup, claim, result)
    finally:
        _record_outcome(list_email, result)
    return result


def _deliver_claim(
    list_email: ListEmail, setup: SendSetup, claim: Claim, result: BatchResult
) -> None:
    assert claim.claimed_at is not None  # a non-empty claim has a time
    recipients = list(
        Recipient.objects.filter(pk__in=claim.recipient_ids)
        .select_related("prospect__assigned_user")
        .order_by("pk")
    )
    sent_at = timezone.now()
    built: list[tuple[Recipient, BuiltMessage]] = []
    for recipient in recipients:
        if recipient.prospect is None:
            _ours(claim, [recipient.pk]).update(
                status=RecipientStatus.SKIPPED, claimed_at=None, error="prospect deleted"
            )
            result.skipped += 1
            continue
        try:
            message = message_build(
                setup,
                recipient_id=recipient.pk,
                address=recipient.email,
                prospect=recipient.prospect,
                sent_at=sent_at,
                variant_id=recipient.variant_id,
            )
        except MessageBuildError as error:
            # Bad data does not get better on a retry.
            _ours(claim, [recipient.pk]).update(
                status=RecipientStatus.FAILED, claimed_at=None, error=str(error)[:ERROR_MAX_LENGTH]
            )
            result.failed += 1
            continue
        built.append((recipient, message))
    # The last look at mailability before SMTP: an unsubscribe since the snapshot is honoured.
    prospect_ids = [recipient.prospect_id for recipient, _message in built]
    mailable = set(
        Prospect.objects.filter(MAILABLE_Q, pk__in=prospect_ids).values_list("pk", flat=True)
    )
    unmailable = [
        recipient.pk for recipient, _message in built if recipient.prospect_id not in mailable
    ]
    if unmailable:
        result.skipped += _ours(claim, unmailable).update(
            status=RecipientStatus.SKIPPED, claimed_at=None, error="not mailable at send time"
        )
    queue = [
        (recipient, message) for recipient, message in built if recipient.prospect_id in mailable
    ]
    if not queue:
        return
    try:
        smtp: smtplib.SMTP | None = smtp_connect()
    except SmtpNotConfiguredError as error:
        result.released += _release(claim, [recipient.pk for recipient, _message in queue])
        _pause(list_email.pk, str(error))
        result.stop_reason = "smtp not configured"
        return
    except (smtplib.SMTPException, OSError) as error:
        logger.warning("SMTP connection failed for list email %s: %s", list_email.pk, error)
        result.released += _release(claim, [recipient.pk for recipient, _message in queue])
        result.stop_reason = "smtp connection"
        return
    deadline = claim.claimed_at + stale_claim_after() / 2
    try:
        for index, (recipient, message) in enumerate(queue):
            if timezone.now() >= deadline:
                rest = [row.pk for row, _message in queue[index:]]
                result.released += _release(claim, rest)
                result.stop_reason = "claim too old"
                return
            assert smtp is not None
            outcome = _deliver_one(smtp, list_email, claim, recipient, message, result)
            if outcome == "disconnected":
                rest = [row.pk for row, _message in queue[index + 1 :]]
                result.released += _release(claim, rest)
                result.stop_reason = "smtp disconnected"
                smtp = None
                return
            if outcome == "sender refused":
                rest = [row.pk for row, _message in queue[index + 1 :]]
                result.released += _release(claim, rest)
                result.stop_reason = "sender refused"
                return
    finally:
        smtp_close(smtp)


def _deliver_one(
    smtp: smtplib.SMTP,
    list_email: ListEmail,
    claim: Claim,
    recipient: Recipient,
    message: BuiltMessage,
    result: BatchResult,
) -> str:
    try:
        refused = smtp.sendmail(message.envelope_from, [recipient.email], message.data)
    except smtplib.SMTPRecipientsRefused as error:
        code, text = next(iter(error.recipients.values()), (0, b""))
        return _refused(list_email, claim, recipient, code, smtp_response_text(text), result)
    except smtplib.SMTPSenderRefused as error:
        detail = f"{error.smtp_code} {smtp_response_text(error.smtp_error)}"
        if 400 <= error.smtp_code < 500:
            _retry_later(claim, recipient.pk, recipient.attempts, detail)
            result.retried += 1
        else:
            result.released += _release(claim, [recipient.pk])
            _pause(list_email.pk, f"The SMTP server refused the sender: {detail}")
        return "sender refused"
    except smtplib.SMTPDataError as error:
        detail = f"{error.smtp_code} {smtp_response_text(error.smtp_error)}"
        if 400 <= error.smtp_code < 500:
            _retry_later(claim, recipient.pk, recipient.attempts, detail)
            result.retried += 1
        else:
            # Content refused (not the address): failed, the prospect stays deliverable.
            _ours(claim, [recipient.pk]).update(
                status=RecipientStatus.FAILED, claimed_at=None, error=detail[:ERROR_MAX_LENGTH]
            )
            result.failed += 1
        return "refused"
    except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException, OSError) as error:
        # Mid-DATA: the server may or may not have the message. It is retried (at-least-once)
        # with backoff; the stable Message-ID lets receivers drop a duplicate.
        _retry_later(claim, recipient.pk, recipient.attempts, f"connection lost: {error}")
        result.retried += 1
        return "disconnected"
    if refused:
        code, text = next(iter(refused.values()))
        return _refused(list_email, claim, recipient, code, smtp_response_text(text), result)
    updated = _ours(claim, [recipient.pk]).update(
        status=RecipientStatus.SENT,
        claimed_at=None,
        sent_at=timezone.now(),
        message_id=message.message_id,
        error="",
    )
    if updated:
        result.sent += 1
        assert recipient.prospect_id is not None  # rows without a prospect are skipped
        result.sent_rows.append((recipient.pk, recipient.prospect_id, message.message_id))
    return "sent"


def _refused(
    list_email: ListEmail,
    claim: Claim,
    recipient: Recipient,
    code: int,
    text: str,
    result: BatchResult,
) -> str:
    detail = f"{code} {text}"
    if 400 <= code < 500:
        if _retry_later(claim, recipient.pk, recipient.attempts, detail) == RecipientStatus.FAILED:
            result.failed += 1
        else:
            result.retried += 1
        return "refused"
    _ours(claim, [recipient.pk]).update(
        status=RecipientStatus.FAILED, claimed_at=None, error=detail[:ERROR_MAX_LENGTH]
    )
    result.failed += 1
    _hard_bounce(recipient=recipient, list_email=list_email, code=code, diagnostic=text)
    return "refused"


def _record_outcome(list_email: ListEmail, result: BatchResult) -> None:
    """Counters (F() updates: many workers) and one bulk EMAIL_SENT activity insert."""
    if result.sent or result.failed or result.skipped:
        ListEmail.objects.filter(pk=list_email.pk).update(
            sent_count=F("sent_count") + result.sent,
            failed_count=F("failed_count") + result.failed,
            skipped_count=F("skipped_count") + result.skipped,
        )
    if result.sent_rows:
        activities_record_many(
            [
                _sent_activity(list_email, recipient_id, prospect_id, message_id)
                for recipient_id, prospect_id, message_id in result.sent_rows
            ]
        )


def _sent_activity(
    list_email: ListEmail,
    recipient_id: int,
    prospect_id: int,
    message_id: str,
    occurred_at: datetime.datetime | None = None,
) -> Activity:
    # an unset time is "now" (activities_record_many fills it in)
    return Activity(
        type=ActivityType.EMAIL_SENT,
        prospect_id=prospect_id,
        object_type="list_email",
        object_id=str(list_email.pk),
        object_label=list_email.name,
        payload={
            "email_id": list_email.tracking_id,
            "recipient_id": recipient_id,
            "message_id": message_id,
        },
        occurred_at=occurred_at,  # type: ignore[misc]
    )


def sent_activities_backfill(*, list_email_id: int) -> int:
    """EMAIL_SENT activities for sent rows that have none; returns how many were added.

    A worker killed mid-batch marked its rows sent one by one but never reached the batch's
    single activity insert; the send's finish (once, by whoever wins that transition) fills
    the gap, so the prospect's history and the reports know every message that went out.
    """
    list_email = ListEmail.objects.filter(pk=list_email_id).first()
    if list_email is None:
        return 0
    recorded = {
        int(value)
        for value in Activity.objects.filter(
            type=ActivityType.EMAIL_SENT, object_type="list_email", object_id=str(list_email_id)
        ).values_list("payload__recipient_id", flat=True)
        if isinstance(value, int)
    }
    missing = [
        _sent_activity(list_email, recipient_id, prospect_id, message_id, sent_at)
        for recipient_id, prospect_id, message_id, sent_at in Recipient.objects.filter(
            list_email_id=list_email_id, status=RecipientStatus.SENT, prospect__isnull=False
        ).values_list("pk", "prospect_id", "message_id", "sent_at")
        if recipient_id not in recorded
    ]
    if missing:
        activities_record_many(missing)
        logger.info("list email %s: %s sent activities back-filled", list_email_id, len(missing))
    return len(missing)


def list_email_finish_if_done(*, list_email_id: int) -> bool:
    """Mark a sending list email sent once no row is queued or claimed (one guarded UPDATE).

    The counters are recounted from the rows at that moment: a worker killed mid-batch never
    added its batch to the running counters (they are written when a batch ends), nor recorded
    its EMAIL_SENT activities, which are back-filled here by the one caller that finished it.
    """
    table = ListEmail._meta.db_table
    recipient_table = Recipient._meta.db_table
    count = f"(SELECT count(*) FROM {recipient_table} WHERE list_email_id = %s AND status = %s)"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET status = %s, finished_at = now(), updated_at = now(), "  # noqa: S608
            f"sent_count = {count}, failed_count = {count}, skipped_count = {count} "
            "WHERE id = %s AND status = %s AND NOT EXISTS ("
            f"SELECT 1 FROM {recipient_table} WHERE list_email_id = %s AND status IN (%s, %s, %s))",
            [
                ListEmailStatus.SENT,
                list_email_id,
                RecipientStatus.SENT,
                list_email_id,
                RecipientStatus.FAILED,
                list_email_id,
                RecipientStatus.SKIPPED,
                list_email_id,
                ListEmailStatus.SENDING,
                list_email_id,
                RecipientStatus.QUEUED,
                RecipientStatus.CLAIMED,
                RecipientStatus.HELD,
            ],
        )
        finished = cursor.rowcount > 0
    if finished:
        sent_activities_backfill(list_email_id=list_email_id)
    return finished


def list_email_send_due(*, list_email_id: int, time_budget_seconds: float = 240.0) -> bool:
    """Send batches until nothing is due or the time budget is spent.

    Returns True when due rows may remain (the caller queues another run).
    """
    started = time.monotonic()
    while time.monotonic() - started < time_budget_seconds:
        result = list_email_send_batch(list_email_id=list_email_id)
        if result.claimed == 0 or result.stop_reason in {
            "smtp connection",
            "smtp not configured",
            "dkim",
            "sender refused",
        }:
            return False
    return True


def list_emails_with_due_rows() -> list[int]:
    """Sending list emails that have queued rows due now (for the dispatcher)."""
    return list(
        ListEmail.objects.filter(
            status=ListEmailStatus.SENDING,
            recipients__status=RecipientStatus.QUEUED,
            recipients__next_attempt_at__lte=timezone.now(),
        )
        .values_list("pk", flat=True)
        .distinct()
    )
