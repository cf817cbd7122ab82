"""Feedback after delivery (bounces, spam complaints, unsubscribes): one place applies it.

Every source calls here: the inbound SMTP endpoint (DSNs, ARF reports and List-Unsubscribe
mails, emails.inbound), ESP webhooks (emails.webhooks) and the send pipeline. A report names
what it is about in the strongest way it can, and the first that resolves wins:

1. ``recipient_id``: our own row id, from a caller we trust (the send pipeline);
2. ``signed_recipient``: the X-Mapp-Recipient header of the returned message, signed by us
   (emails.rendering.recipient_header_value); a forged or garbled value is ignored;
3. ``message_id``: our Message-ID (``<mapp.<send>.<recipient>@<domain>>``), accepted only when
   the row it names was sent with exactly that Message-ID;
4. ``address``: the newest row sent to the prospect who has that address, else that prospect
   alone (an autoresponder, a send we no longer have).

Counted once. A recipient row takes one bounce and one complaint: the guarded UPDATE
(``… WHERE bounced_at IS NULL`` / ``complained_at IS NULL``) decides, and only the call whose
UPDATE hit the row counts it on the list email, changes the prospect and records the activity.
So a bounce reported as a DSN and again by a webhook, or a retried task, counts once. A soft
bounce may later turn hard (a delay notice, then the failure): that upgrades the row once.
Without a row, the prospect's own state guards: marking it hard-bounced and opting it out
happen once, and a soft bounce counts at most once per prospect per day.

Guard rails (Gmail and Yahoo bulk-sender rules): once a sending list email has sent
EMAIL_GUARD_MIN_SENT messages, a complaint rate above EMAIL_COMPLAINT_RATE_PAUSE_PER_MILLE or a
hard-bounce rate above EMAIL_HARD_BOUNCE_RATE_PAUSE_PER_MILLE pauses it (one guarded UPDATE,
so once) and tells the administrators why.
"""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import Count, F, Q
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.functional import lazy
from django.utils.translation import gettext as _

from emails.models import (
    BounceKind,
    ListEmail,
    ListEmailStatus,
    Recipient,
    SendingDomain,
    TriggeredEmail,
)
from emails.rendering import RECIPIENT_HEADER_SALT
from emails.unsubscribe import UnsubscribeToken, prospect_unsubscribe
from mapp.notifications import notify_administrators
from prospects.models import Prospect
from prospects.normalization import normalize_email
from prospects.services import (
    prospect_count_soft_bounce,
    prospect_mark_hard_bounced,
    prospect_opt_out,
)
from tracking.models import Activity, ActivityType
from tracking.services import activity_record

logger = logging.getLogger(__name__)

Kind = Literal["hard", "soft"]

#: Characters of a bounce reason kept (Recipient.bounce_reason's length).
MAX_REASON_CHARS = 500
#: A signed X-Mapp-Recipient is ≈ 35 characters; anything much longer is not ours.
MAX_SIGNED_RECIPIENT_CHARS = 200
#: Without a recipient row, a soft bounce counts at most once per prospect in this window: a
#: delayed message is reported again every few hours until the sender gives up.
SOFT_BOUNCE_DEDUP_WINDOW = datetime.timedelta(days=1)
#: The window of the per-domain rates shown on the sending-domain page (Gmail's Postmaster
#: Tools and Yahoo judge senders over a similar span).
DOMAIN_RATES_DAYS = 30

_OUR_MESSAGE_ID = re.compile(r"^<?mapp\.(\d{1,18})\.(\d{1,18})@[^<>\s]{1,253}?>?$")
_TRIGGERED_MESSAGE_ID = re.compile(r"^<?mapp\.t(\d{1,18})@[^<>\s]{1,253}?>?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class FeedbackResult:
    """What one report changed. ``counted`` is False when it changed nothing (reported
    before, or naming nothing we know)."""

    counted: bool
    recipient_id: int | None = None
    prospect_id: int | None = None
    list_email_id: int | None = None
    paused: bool = False


@dataclass(frozen=True)
class _Target:
    recipient_id: int | None
    prospect_id: int | None
    list_email_id: int | None
    list_email_name: str = ""


# --- finding what a report is about --------------------------------------------------------------


def recipient_id_from_header(value: str) -> int | None:
    """The recipient id an X-Mapp-Recipient value vouches for, or None if forged or garbled."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > MAX_SIGNED_RECIPIENT_CHARS:
        return None
    try:
        raw = signing.Signer(salt=RECIPIENT_HEADER_SALT).unsign(value)
    except signing.BadSignature:
        logger.info("X-Mapp-Recipient with a bad signature ignored")
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        return None
    # Autoresponders and test sends sign 0: they have no recipient row.
    return int(raw) or None


def _clean(value: Any, limit: int) -> str:
    """Text from strangers made one clean line (it is stored and shown, escaped, later)."""
    text = "" if value is None else str(value)
    return " ".join(_CONTROL.sub(" ", text).split())[:limit]


def _clean_address(address: Any) -> str:
    if not isinstance(address, str):
        return ""
    cleaned = normalize_email(address.strip().strip("<>"))
    return cleaned if "@" in cleaned and len(cleaned) <= 254 else ""


def _target_for_row(recipient_id: int) -> _Target | None:
    row = (
        Recipient.objects.filter(pk=recipient_id)
        .values_list("pk", "prospect_id", "list_email_id", "list_email__name")
        .first()
    )
    if row is None:
        return None
    return _Target(
        recipient_id=row[0], prospect_id=row[1], list_email_id=row[2], list_email_name=row[3]
    )


def _target_for_message_id(message_id: str) -> _Target | None:
    match = _OUR_MESSAGE_ID.match(message_id.strip()) if isinstance(message_id, str) else None
    if match is None:
        return None
    list_email_id, recipient_id = int(match.group(1)), int(match.group(2))
    stored = (
        Recipient.objects.filter(pk=recipient_id, list_email_id=list_email_id)
        .values_list("message_id", flat=True)
        .first()
    )
    wanted = message_id.strip().strip("<>").lower()
    if not stored or stored.strip("<>").lower() != wanted:
        return None
    return _target_for_row(recipient_id)


def _target_for_triggered_email(message_id: str) -> _Target | None:
    """An autoresponder's Message-ID (``<mapp.t<id>@domain>``, emails.one_off): its prospect,
    with no recipient row — never the newest list email row of the same address."""
    match = _TRIGGERED_MESSAGE_ID.match(message_id.strip()) if isinstance(message_id, str) else None
    if match is None:
        return None
    prospect_id = (
        TriggeredEmail.objects.filter(pk=int(match.group(1)))
        .values_list("prospect_id", flat=True)
        .first()
    )
    if prospect_id is None:
        return None
    return _Target(recipient_id=None, prospect_id=prospect_id, list_email_id=None)


def _target_for_address(address: str) -> _Target | None:
    address = _clean_address(address)
    if not address:
        return None
    # Through the prospect (the unique lower(email) index, then the recipient's prospect
    # index): a lookup by address alone would scan every send's rows.
    prospect_id = (
        Prospect.objects.annotate(email_lower=Lower("email"))
        .filter(email_lower=address)
        .values_list("pk", flat=True)
        .first()
    )
    if prospect_id is None:
        return None
    row = (
        Recipient.objects.filter(prospect_id=prospect_id, email=address, sent_at__isnull=False)
        .order_by("-sent_at", "-id")
        .values_list("pk", flat=True)
        .first()
    )
    if row is not None:
        return _target_for_row(row)
    return _Target(recipient_id=None, prospect_id=prospect_id, list_email_id=None)


def _resolve(
    *, recipient_id: int | None, signed_recipient: str, message_id: str, address: str
) -> _Target | None:
    if recipient_id is not None:
        target = _target_for_row(recipient_id)
        if target is not None:
            return target
    signed_id = recipient_id_from_header(signed_recipient) if signed_recipient else None
    if signed_id is not None:
        target = _target_for_row(signed_id)
        if target is not None:
            return target
    if message_id:
        target = _target_for_message_id(message_id) or _target_for_triggered_email(message_id)
        if target is not None:
            return target
    return _target_for_address(address)


# --- recording ----------------------------------------------------------------------------------


def _object(target: _Target) -> dict[str, Any]:
    if target.list_email_id is None:
        return {"object_type": "", "object_id": "", "object_label": ""}
    return {
        "object_type": "list_email",
        "object_id": str(target.list_email_id),
        "object_label": target.list_email_name,
    }


def _email_payload(target: _Target, source: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"source": source}
    if target.list_email_id is not None:
        payload["email_id"] = f"le{target.list_email_id}"
    if target.recipient_id is not None:
        payload["recipient_id"] = target.recipient_id
    return payload


def _row_bounce(recipient_id: int, kind: Kind, reason: str) -> Literal["new", "upgraded", ""]:
    """Set the row's bounce once; a soft bounce may be upgraded to hard once."""
    now = timezone.now()
    if Recipient.objects.filter(pk=recipient_id, bounced_at__isnull=True).update(
        bounced_at=now, bounce_kind=kind, bounce_reason=reason
    ):
        return "new"
    if kind == BounceKind.HARD and Recipient.objects.filter(
        pk=recipient_id, bounce_kind=BounceKind.SOFT
    ).update(bounced_at=now, bounce_kind=BounceKind.HARD, bounce_reason=reason):
        return "upgraded"
    return ""


def _prospect_soft_bounce_once_a_day(prospect_id: int) -> bool:
    """A soft bounce with no recipient row: counted unless one was counted in the window.

    The prospect row is locked first, so two reports of the same delay (a DSN and a webhook
    at once) count one.
    """
    if Prospect.objects.select_for_update().filter(pk=prospect_id).first() is None:
        return False
    recent = Activity.objects.filter(
        prospect_id=prospect_id,
        type=ActivityType.EMAIL_BOUNCED,
        occurred_at__gte=timezone.now() - SOFT_BOUNCE_DEDUP_WINDOW,
        object_type="",
        payload__hard=False,
    ).exists()
    if recent:
        return False
    prospect_count_soft_bounce(prospect_id=prospect_id)
    return True


def bounce_record(
    *,
    kind: str,
    source: str,
    status: str = "",
    reason: str = "",
    recipient_id: int | None = None,
    signed_recipient: str = "",
    message_id: str = "",
    address: str = "",
) -> FeedbackResult:
    """Apply one bounce (``kind`` "hard" or "soft"): the recipient row, the list email's
    counter, the prospect (hard: undeliverable; soft: one more towards SOFT_BOUNCE_LIMIT), an
    EMAIL_BOUNCED activity and the guard rails, once however often it is reported.

    ``status`` is the enhanced status code or SMTP reply code, ``reason`` the remote server's
    words (kept as plain text, clipped); ``source`` names the channel ("dsn", "webhook:…").
    """
    if kind not in (BounceKind.HARD, BounceKind.SOFT):
        raise ValueError(f"unknown bounce kind {kind!r}")
    bounce_kind = cast(Kind, kind)
    reason = _clean(reason, MAX_REASON_CHARS)
    status = _clean(status, 32)
    target = _resolve(
        recipient_id=recipient_id,
        signed_recipient=signed_recipient,
        message_id=message_id,
        address=address,
    )
    if target is None:
        logger.info("%s bounce from %s names no recipient we know", bounce_kind, source)
        return FeedbackResult(counted=False)
    paused = False
    with transaction.atomic():
        if target.recipient_id is not None:
            change = _row_bounce(target.recipient_id, bounce_kind, reason)
            if not change:
                return _not_counted(target)
            if target.list_email_id is not None:
                counters: dict[str, Any] = {}
                if bounce_kind == BounceKind.HARD:
                    counters["hard_bounce_count"] = F("hard_bounce_count") + 1
                    if change == "upgraded":
                        counters["soft_bounce_count"] = F("soft_bounce_count") - 1
                else:
                    counters["soft_bounce_count"] = F("soft_bounce_count") + 1
                ListEmail.objects.filter(pk=target.list_email_id).update(**counters)
            if target.prospect_id is not None:
                if bounce_kind == BounceKind.HARD:
                    prospect_mark_hard_bounced(prospect_id=target.prospect_id)
                else:
                    prospect_count_soft_bounce(prospect_id=target.prospect_id)
        else:
            assert target.prospect_id is not None  # an address resolves to a prospect
            if bounce_kind == BounceKind.HARD:
                counted = prospect_mark_hard_bounced(prospect_id=target.prospect_id)
            else:
                counted = _prospect_soft_bounce_once_a_day(target.prospect_id)
            if not counted:
                return _not_counted(target)
        if target.prospect_id is not None:
            activity_record(
                type=ActivityType.EMAIL_BOUNCED,
                prospect_id=target.prospect_id,
                **_object(target),
                payload={
                    **_email_payload(target, source),
                    "hard": bounce_kind == BounceKind.HARD,
                    "status": status,
                    "reason": reason,
                },
            )
        if target.list_email_id is not None and bounce_kind == BounceKind.HARD:
            paused = list_email_guard_rails_check(list_email_id=target.list_email_id)
    return _counted(target, paused)


def complaint_record(
    *,
    source: str,
    feedback_type: str = "abuse",
    recipient_id: int | None = None,
    signed_recipient: str = "",
    message_id: str = "",
    address: str = "",
) -> FeedbackResult:
    """Apply one spam complaint: the recipient row, the list email's counter, the prospect
    opted out, EMAIL_COMPLAINT (and OPT_OUT when this opted them out) and the guard rails,
    once however often it is reported."""
    feedback_type = _clean(feedback_type, 40)
    target = _resolve(
        recipient_id=recipient_id,
        signed_recipient=signed_recipient,
        message_id=message_id,
        address=address,
    )
    if target is None:
        logger.info("complaint from %s names no recipient we know", source)
        return FeedbackResult(counted=False)
    paused = False
    with transaction.atomic():
        opted_out = False
        if target.recipient_id is not None:
            if not Recipient.objects.filter(
                pk=target.recipient_id, complained_at__isnull=True
            ).update(complained_at=timezone.now()):
                return _not_counted(target)
            if target.list_email_id is not None:
                ListEmail.objects.filter(pk=target.list_email_id).update(
                    complaint_count=F("complaint_count") + 1
                )
            if target.prospect_id is not None:
                opted_out = prospect_opt_out(prospect_id=target.prospect_id)
        else:
            assert target.prospect_id is not None
            opted_out = prospect_opt_out(prospect_id=target.prospect_id)
            if not opted_out:
                return _not_counted(target)
        if target.prospect_id is not None:
            payload = {**_email_payload(target, source), "feedback_type": feedback_type}
            activity_record(
                type=ActivityType.EMAIL_COMPLAINT,
                prospect_id=target.prospect_id,
                **_object(target),
                payload=payload,
            )
            if opted_out:
                activity_record(
                    type=ActivityType.OPT_OUT,
                    prospect_id=target.prospect_id,
                    **_object(target),
                    payload={**payload, "reason": "complaint"},
                )
        if target.list_email_id is not None:
            paused = list_email_guard_rails_check(list_email_id=target.list_email_id)
    return _counted(target, paused)


def unsubscribe_record(
    *,
    source: str,
    recipient_id: int | None = None,
    signed_recipient: str = "",
    message_id: str = "",
    address: str = "",
) -> FeedbackResult:
    """Opt out the person an unsubscribe reported by an ESP is about: the same opt-out as the
    unsubscribe link (emails.unsubscribe.prospect_unsubscribe: the action catalogue's "opt out",
    EMAIL_UNSUBSCRIBED and OPT_OUT), once."""
    target = _resolve(
        recipient_id=recipient_id,
        signed_recipient=signed_recipient,
        message_id=message_id,
        address=address,
    )
    if target is None or target.prospect_id is None:
        logger.info("unsubscribe from %s names no prospect we know", source)
        return FeedbackResult(counted=False)
    # Without a list email row (an autoresponder) the token names no list email: 0.
    counted = prospect_unsubscribe(
        token=UnsubscribeToken(
            prospect_id=target.prospect_id, list_email_id=target.list_email_id or 0
        ),
        one_click=False,
    )
    return _counted(target, False) if counted else _not_counted(target)


def _counted(target: _Target, paused: bool) -> FeedbackResult:
    return FeedbackResult(
        counted=True,
        recipient_id=target.recipient_id,
        prospect_id=target.prospect_id,
        list_email_id=target.list_email_id,
        paused=paused,
    )


def _not_counted(target: _Target) -> FeedbackResult:
    return FeedbackResult(
        counted=False,
        recipient_id=target.recipient_id,
        prospect_id=target.prospect_id,
        list_email_id=target.list_email_id,
    )


# --- guard rails --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rail:
    key: str
    counter: str
    limit_setting: str
    default_per_mille: int


_RAILS = (
    _Rail("complaints", "complaint_count", "EMAIL_COMPLAINT_RATE_PAUSE_PER_MILLE", 3),
    _Rail("hard_bounces", "hard_bounce_count", "EMAIL_HARD_BOUNCE_RATE_PAUSE_PER_MILLE", 50),
)


def _percent(per_mille: float) -> str:
    return f"{per_mille / 10:.2f}".rstrip("0").rstrip(".")


def _paused_reason(rail: _Rail, count: int, sent: int, limit: int) -> str:
    values = {
        "count": count,
        "sent": sent,
        "rate": _percent(count * 1000 / sent),
        "limit": _percent(limit),
    }
    if rail.key == "complaints":
        return (
            _(
                "Paused automatically: %(count)d spam complaints for %(sent)d sent messages "
                "(%(rate)s%%), above the %(limit)s%% limit."
            )
            % values
        )
    return (
        _(
            "Paused automatically: %(count)d hard bounces for %(sent)d sent messages "
            "(%(rate)s%%), above the %(limit)s%% limit."
        )
        % values
    )


def _in_each_language(make: Callable[[], str]) -> str:
    """Text made when read: notify_administrators reads it in each administrator's language."""
    return cast(str, lazy(make, str)())


def list_email_guard_rails_check(*, list_email_id: int) -> bool:
    """Pause a sending list email whose complaint or hard-bounce rate passed its limit, and
    tell the administrators. True when this call paused it (a guarded UPDATE: once)."""
    min_sent = max(int(getattr(settings, "EMAIL_GUARD_MIN_SENT", 100)), 1)
    for rail in _RAILS:
        limit = int(getattr(settings, rail.limit_setting, rail.default_per_mille))
        if limit <= 0:
            continue
        row = (
            ListEmail.objects.filter(
                pk=list_email_id, status=ListEmailStatus.SENDING, sent_count__gte=min_sent
            )
            .alias(per_mille=F(rail.counter) * 1000)
            .filter(per_mille__gt=F("sent_count") * limit)
            .values_list("name", rail.counter, "sent_count")
            .first()
        )
        if row is None:
            continue
        name, count, sent = row
        # The stored reason is read by everyone on the send's page: the site's language.
        with translation.override(settings.LANGUAGE_CODE):
            reason = _paused_reason(rail, count, sent, limit)
        paused = ListEmail.objects.filter(pk=list_email_id, status=ListEmailStatus.SENDING).update(
            status=ListEmailStatus.PAUSED, paused_reason=reason, updated_at=timezone.now()
        )
        if not paused:
            return False
        logger.warning("list email %s paused by the %s guard rail", list_email_id, rail.key)
        _notify_paused(list_email_id, name, rail, count, sent, limit)
        return True
    return False


def _notify_paused(
    list_email_id: int, name: str, rail: _Rail, count: int, sent: int, limit: int
) -> None:
    def title() -> str:
        if rail.key == "complaints":
            return _("List email “%(name)s” was paused: too many spam complaints") % {"name": name}
        return _("List email “%(name)s” was paused: too many hard bounces") % {"name": name}

    def body() -> str:
        return " ".join(
            [
                _paused_reason(rail, count, sent, limit),
                _(
                    "Mailbox providers block senders above this rate. Check where the "
                    "recipient lists came from (old or bought addresses cause both), then "
                    "resume or cancel the send."
                ),
            ]
        )

    notify_administrators(
        title=_in_each_language(title),
        body=_in_each_language(body),
        url=reverse("emails:list_email_detail", kwargs={"list_email_id": list_email_id}),
        dedup_key=f"emails:guard:{list_email_id}:{rail.key}:{count}",
    )


# --- per-domain rates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DomainFeedbackRates:
    """Sends from one sending domain over the window and how many bounced or were reported
    as spam. Rates are fractions (0.003 is 0.3 %); 0 when nothing was sent."""

    sending_domain_id: int
    domain: str
    sent: int
    hard_bounces: int
    soft_bounces: int
    complaints: int

    @property
    def hard_bounce_rate(self) -> float:
        return self.hard_bounces / self.sent if self.sent else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0

    @property
    def hard_bounce_percent(self) -> float:
        return 100 * self.hard_bounce_rate

    @property
    def complaint_percent(self) -> float:
        return 100 * self.complaint_rate

    @property
    def is_complaint_rate_over_limit(self) -> bool:
        limit = int(getattr(settings, "EMAIL_COMPLAINT_RATE_PAUSE_PER_MILLE", 3))
        return limit > 0 and self.complaints * 1000 > self.sent * limit

    @property
    def is_hard_bounce_rate_over_limit(self) -> bool:
        limit = int(getattr(settings, "EMAIL_HARD_BOUNCE_RATE_PAUSE_PER_MILLE", 50))
        return limit > 0 and self.hard_bounces * 1000 > self.sent * limit


def sending_domain_feedback_rates(
    *,
    days: int = DOMAIN_RATES_DAYS,
    sending_domain_id: int | None = None,
    now: datetime.datetime | None = None,
) -> list[DomainFeedbackRates]:
    """Per sending domain: messages sent in the last ``days`` days and, of those, how many
    hard- and soft-bounced and drew complaints (one grouped query over the sent_at index).

    Every domain is listed (``sending_domain_id``: that one only), with zeros when it sent
    nothing. Rows are counted by when they were sent, so a complaint arriving today about a
    message from 40 days ago does not move today's rate.
    """
    since = (now or timezone.now()) - datetime.timedelta(days=days)
    rows = Recipient.objects.filter(sent_at__gte=since, list_email__sending_domain__isnull=False)
    domains = SendingDomain.objects.order_by("domain")
    if sending_domain_id is not None:
        rows = rows.filter(list_email__sending_domain_id=sending_domain_id)
        domains = domains.filter(pk=sending_domain_id)
    totals = {
        row["list_email__sending_domain_id"]: row
        for row in rows.order_by()
        .values("list_email__sending_domain_id")
        .annotate(
            sent=Count("id"),
            hard=Count("id", filter=Q(bounce_kind=BounceKind.HARD)),
            soft=Count("id", filter=Q(bounce_kind=BounceKind.SOFT)),
            complaints=Count("id", filter=Q(complained_at__isnull=False)),
        )
    }
    result = []
    for domain_id, domain in domains.values_list("pk", "domain"):
        total = totals.get(domain_id, {})
        result.append(
            DomainFeedbackRates(
                sending_domain_id=domain_id,
                domain=domain,
                sent=total.get("sent", 0),
                hard_bounces=total.get("hard", 0),
                soft_bounces=total.get("soft", 0),
                complaints=total.get("complaints", 0),
            )
        )
    return result
