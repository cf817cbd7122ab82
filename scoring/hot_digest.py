"""The daily HOT-lead digest: each user's new HOT leads in one mail a day (Hot Profile's
"ホットリードを【5人】追加しました").

Celery beat runs :func:`hot_digests_send` every 15 minutes; nothing happens before the rule's
digest hour (local time, ``settings.TIME_ZONE``) or while the digest is off. The first run after
the hour closes the day for every user who may see prospects:

1. a ``HotDigest(user, day)`` row is inserted first, with the window it covers: from the end of
   the user's previous digest (the first time: the last 24 hours) to now minus a few minutes.
   The unique (user, day) constraint is what makes the digest once a day, however often beat
   fires and however many workers race (``INSERT … ON CONFLICT DO NOTHING``);
2. rows with leads are then claimed one by one (``FOR UPDATE SKIP LOCKED``), mailed, and marked
   sent in the same transaction. A failed send leaves the row unsent and is tried again at the
   next run; only a worker killed between the SMTP hand-off and the commit can send a row twice.

Decisions:
- A day without new leads still gets its row (no mail): the day is closed at the digest hour,
  so a lead that turns HOT later that day is in the next morning's digest instead of a second,
  odd-hour mail, and each window starts exactly where the previous one ended.
- The window ends ``DIGEST_SETTLE`` before now: an evaluation still committing (its leads carry
  the time their status was computed) is in the next digest instead of in none.
- HOT leads nobody is assigned to go, in a section of their own, to the users who may act on
  them: those who see all prospects and may edit them (Administrator, Marketing, Sales
  Manager). Sales users get only their own leads.
- A lead is listed while it is still HOT when the mail goes out.
- The mail is in the user's language when they chose one, else in Japanese and English.
"""

from __future__ import annotations

import datetime
import logging
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import ngettext

from mapp.access import has_access, sees_all_prospects
from mapp.models import Level, Module, User
from prospects.models import HotStatus, Prospect
from scoring.hot import hot_rule_get
from scoring.models import HotDigest

logger = logging.getLogger(__name__)

FIRST_DIGEST_WINDOW = datetime.timedelta(hours=24)
DIGEST_SETTLE = datetime.timedelta(minutes=5)
# A digest lists at most this many leads per section (the rest are counted, with a link to the
# prospect list): a mail stays readable and small when a rule change makes thousands HOT.
MAX_LEADS_LISTED = 200


def digest_recipients() -> list[User]:
    """Active users who may see prospects (and so open the digest's links)."""
    return [
        user
        for user in User.objects.filter(is_active=True).select_related("role").order_by("pk")
        if has_access(user, Module.PROSPECTS, Level.VIEW)
    ]


def receives_unassigned(user: User) -> bool:
    return sees_all_prospects(user) and has_access(user, Module.PROSPECTS, Level.EDIT)


def _new_hot_leads(since: datetime.datetime, until: datetime.datetime) -> list[Prospect]:
    return list(
        Prospect.objects.filter(
            hot_status=HotStatus.HOT, hot_since__gt=since, hot_since__lte=until
        ).order_by("-score", "hot_since", "pk")
    )


@dataclass
class DigestLeads:
    assigned: list[Prospect] = field(default_factory=list)
    unassigned: list[Prospect] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.assigned) + len(self.unassigned)


def digest_leads(
    *,
    user: User,
    since: datetime.datetime,
    until: datetime.datetime,
    leads: Sequence[Prospect] | None = None,
) -> DigestLeads:
    """The user's leads that became HOT in (since, until] and still are; ``leads``: already read."""
    candidates = _new_hot_leads(since, until) if leads is None else leads
    result = DigestLeads()
    with_unassigned = receives_unassigned(user)
    for prospect in candidates:
        if not since < prospect.hot_since <= until:  # type: ignore[operator]
            continue
        if prospect.assigned_user_id == user.pk:
            result.assigned.append(prospect)
        elif prospect.assigned_user_id is None and with_unassigned:
            result.unassigned.append(prospect)
    return result


def _day_has_started(rule_hour: int, now: datetime.datetime) -> bool:
    return timezone.localtime(now).hour >= rule_hour


def hot_digests_open(*, now: datetime.datetime) -> int:
    """Step 1: today's row for every recipient who has none yet; returns rows offered."""
    day = timezone.localtime(now).date()
    until = now - DIGEST_SETTLE
    recipients = digest_recipients()
    done = set(
        HotDigest.objects.filter(day=day, user__in=recipients).values_list("user_id", flat=True)
    )
    pending = [user for user in recipients if user.pk not in done]
    if not pending:
        return 0
    previous = {
        row.user_id: row.until
        for row in HotDigest.objects.filter(user__in=pending)
        .order_by("user_id", "-day")
        .distinct("user_id")
    }
    windows = {user.pk: previous.get(user.pk, until - FIRST_DIGEST_WINDOW) for user in pending}
    # One read of every lead any window can contain, shared out in memory.
    leads = _new_hot_leads(min(windows.values()), until)
    rows = []
    for user in pending:
        since = min(windows[user.pk], until)
        count = digest_leads(user=user, since=since, until=until, leads=leads).count
        rows.append(HotDigest(user=user, day=day, since=since, until=until, prospect_count=count))
    # ON CONFLICT DO NOTHING: a row another run inserted first stays as it is.
    HotDigest.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _languages(user: User) -> list[str]:
    available = [code for code, _name in settings.LANGUAGES]
    if user.language in available:
        return [user.language]
    return available


def _subject(count: int, languages: Sequence[str]) -> str:
    parts = []
    for language in languages:
        with translation.override(language):
            parts.append(
                ngettext(
                    "%(count)d new HOT lead",
                    "%(count)d new HOT leads",
                    count,
                )
                % {"count": count}
            )
    return "[mapp] " + " / ".join(parts)


def _lead_row(prospect: Prospect) -> dict[str, Any]:
    return {
        "name": prospect.full_name or prospect.email,
        "email": prospect.email,
        "company": prospect.company_name,
        "score": prospect.score,
        "grade": prospect.grade,
        "hot_since": prospect.hot_since,
        "url": f"{settings.SITE_URL}{reverse('prospects:detail', args=[prospect.pk])}",
    }


def digest_message(*, user: User, digest: HotDigest, leads: DigestLeads) -> EmailMultiAlternatives:
    """The digest mail: plain text with an HTML alternative, a link to each lead."""
    languages = _languages(user)
    context = {
        "user": user,
        "languages": languages,
        "digest": digest,
        "count": leads.count,
        "assigned": [_lead_row(prospect) for prospect in leads.assigned[:MAX_LEADS_LISTED]],
        "assigned_more": max(0, len(leads.assigned) - MAX_LEADS_LISTED),
        "unassigned": [_lead_row(prospect) for prospect in leads.unassigned[:MAX_LEADS_LISTED]],
        "unassigned_more": max(0, len(leads.unassigned) - MAX_LEADS_LISTED),
        "list_url": f"{settings.SITE_URL}{reverse('prospects:list')}?status={HotStatus.HOT}",
        "settings_url": f"{settings.SITE_URL}{reverse('hot:settings')}",
    }
    # The template switches language per section itself ({% language %}); dates are local.
    text = render_to_string("scoring/email/hot_digest.txt", context)
    html = render_to_string("scoring/email/hot_digest.html", context)
    message = EmailMultiAlternatives(
        subject=_subject(leads.count, languages), body=text, to=[user.email]
    )
    message.attach_alternative(html, "text/html")
    return message


def _send_one(digest_id: int) -> bool:
    """Claim one unsent digest row, mail it and mark it sent, in one transaction."""
    with transaction.atomic():
        digest = (
            HotDigest.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("user", "user__role")
            .filter(pk=digest_id, sent_at__isnull=True)
            .first()
        )
        if digest is None:
            return False  # sent by another worker, or being sent right now
        user = digest.user
        leads = digest_leads(user=user, since=digest.since, until=digest.until)
        # Deactivated, or no longer allowed to see prospects, since the row was made: no mail.
        may_receive = user.is_active and has_access(user, Module.PROSPECTS, Level.VIEW)
        digest.prospect_count = leads.count if may_receive else 0
        if digest.prospect_count:
            digest_message(user=user, digest=digest, leads=leads).send()
            digest.sent_at = timezone.now()
        digest.save(update_fields=["prospect_count", "sent_at"])
        return digest.sent_at is not None


def hot_digests_deliver(*, day: datetime.date) -> int:
    """Step 2: mail every unsent row of ``day`` that has leads; returns mails sent."""
    sent = 0
    pending = HotDigest.objects.filter(
        day=day, sent_at__isnull=True, prospect_count__gt=0
    ).values_list("pk", flat=True)
    for digest_id in list(pending):
        try:
            if _send_one(digest_id):
                sent += 1
        except (smtplib.SMTPException, OSError):
            # The row stays unsent; the next run (15 minutes later) tries again.
            logger.exception("HOT digest %s could not be sent", digest_id)
    return sent


def hot_digests_send(*, now: datetime.datetime | None = None) -> int:
    """Beat's entry point: once the digest hour has passed, today's digests; returns mails sent."""
    now = now or timezone.now()
    rule = hot_rule_get()
    if not rule.digest_enabled or not _day_has_started(rule.digest_hour, now):
        return 0
    hot_digests_open(now=now)
    return hot_digests_deliver(day=timezone.localtime(now).date())
