"""The daily HOT-lead digest: after the digest hour, once per user and day, only the user's new
HOT leads (plus unassigned ones for those who manage all prospects), in the user's language."""

from __future__ import annotations

import datetime
import smtplib
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse
from django.utils import timezone, translation

from mapp.models import Role, User
from prospects.models import HotStatus, Prospect
from scoring.hot import hot_rule_get
from scoring.hot_digest import hot_digests_send
from scoring.hot_tasks import send_hot_digests
from scoring.models import HotDigest
from tests.factories import ProspectFactory, make_user

pytestmark = pytest.mark.django_db

TOKYO = ZoneInfo("Asia/Tokyo")
MORNING = datetime.datetime(2026, 3, 5, 8, 30, tzinfo=TOKYO)


def _lead(
    *,
    assigned: User | None,
    hot_since: datetime.datetime,
    name: tuple[str, str] = ("山田", "太郎"),
    company: str = "株式会社サンプル商事",
    score: int = 95,
    grade: str = "A-",
    status: str = HotStatus.HOT,
) -> Prospect:
    prospect = ProspectFactory.create(
        last_name=name[0], first_name=name[1], company_name=company, assigned_user=assigned
    )
    Prospect.objects.filter(pk=prospect.pk).update(
        hot_status=status, hot_since=hot_since, score=score, grade=grade
    )
    prospect.refresh_from_db()
    return prospect


def _mails_to(user: User) -> list[Any]:
    return [message for message in mail.outbox if message.to == [user.email]]


def _html(message: Any) -> str:
    assert isinstance(message, EmailMultiAlternatives)
    [(content, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return str(content)


def _link(prospect: Prospect) -> str:
    return f"{settings.SITE_URL}{reverse('prospects:detail', args=[prospect.pk])}"


def test_nothing_is_sent_before_the_digest_hour(sales_user: User) -> None:
    _lead(assigned=sales_user, hot_since=MORNING - datetime.timedelta(hours=3))

    sent = hot_digests_send(now=MORNING.replace(hour=7, minute=59))

    assert sent == 0
    assert mail.outbox == []
    assert not HotDigest.objects.exists()


def test_nothing_is_sent_when_the_digest_is_off(sales_user: User) -> None:
    rule = hot_rule_get()
    rule.digest_enabled = False
    rule.save()
    _lead(assigned=sales_user, hot_since=MORNING - datetime.timedelta(hours=3))

    assert hot_digests_send(now=MORNING) == 0
    assert mail.outbox == []


def test_each_user_gets_one_mail_listing_their_new_hot_leads(
    sales_user: User, english: None
) -> None:
    sales_user.language = "en"
    sales_user.save()
    colleague = make_user(Role.SALES, email="suzuki@example.jp")
    yamada = _lead(assigned=sales_user, hot_since=MORNING - datetime.timedelta(hours=20))
    sato = _lead(
        assigned=sales_user,
        hot_since=MORNING - datetime.timedelta(hours=2),
        name=("佐藤", "花子"),
        company="株式会社テスト工業",
        score=120,
        grade="",
    )
    old = _lead(assigned=sales_user, hot_since=MORNING - datetime.timedelta(days=2))
    theirs = _lead(assigned=colleague, hot_since=MORNING - datetime.timedelta(hours=1))

    sent = hot_digests_send(now=MORNING)

    assert sent == 2
    [message] = _mails_to(sales_user)
    assert message.subject == "[mapp] 2 new HOT leads"
    assert "2 new HOT leads since the last digest." in message.body
    for lead in (yamada, sato):
        assert _link(lead) in message.body
        assert _link(lead) in _html(message)
    assert "山田 太郎 (株式会社サンプル商事)" in message.body
    assert "佐藤 花子 (株式会社テスト工業)" in message.body
    assert "Score 95 · Grade A- · HOT since 2026-03-04 12:30" in message.body  # local time
    assert "Score 120 · Grade — · HOT since 2026-03-05 06:30" in message.body
    assert message.body.index("- 佐藤 花子") < message.body.index("- 山田 太郎")  # best first
    assert _link(old) not in message.body and _link(theirs) not in message.body
    html = _html(message)
    assert '<td style="padding: 4px 8px;">株式会社サンプル商事</td>' in html
    assert f'<a href="{_link(yamada)}">山田 太郎</a>' in html
    [their_message] = _mails_to(colleague)
    assert _link(theirs) in their_message.body and _link(yamada) not in their_message.body
    digest = HotDigest.objects.get(user=sales_user)
    assert (digest.day, digest.prospect_count) == (datetime.date(2026, 3, 5), 2)
    assert digest.sent_at is not None


def test_a_user_without_a_language_gets_japanese_and_english(sales_user: User) -> None:
    lead = _lead(assigned=sales_user, hot_since=MORNING - datetime.timedelta(hours=1))

    hot_digests_send(now=MORNING)

    [message] = _mails_to(sales_user)
    parts = []
    for language in ("ja", "en"):
        with translation.override(language):
            parts.append(
                translation.ngettext("%(count)d new HOT lead", "%(count)d new HOT leads", 1)
            )
    assert message.subject == "[mapp] " + " / ".join(part % {"count": 1} for part in parts)
    html = _html(message)
    assert 'data-language="ja"' in html and 'data-language="en"' in html
    assert message.body.count(_link(lead)) == 2  # once per language


def test_once_a_day_however_often_beat_fires(sales_user: User) -> None:
    first = _lead(assigned=sales_user, hot_since=MORNING - datetime.timedelta(hours=1))

    assert hot_digests_send(now=MORNING) == 1
    hot_digests_send(now=MORNING)
    hot_digests_send(now=MORNING + datetime.timedelta(minutes=15))
    # A lead that turns HOT later that day waits for the next morning's digest.
    later = _lead(assigned=sales_user, hot_since=MORNING + datetime.timedelta(hours=3))
    hot_digests_send(now=MORNING + datetime.timedelta(hours=4))

    assert len(_mails_to(sales_user)) == 1
    assert HotDigest.objects.filter(user=sales_user).count() == 1

    next_morning = MORNING + datetime.timedelta(days=1)
    hot_digests_send(now=next_morning)
    assert len(_mails_to(sales_user)) == 2
    latest = _mails_to(sales_user)[-1]
    assert _link(later) in latest.body
    assert _link(first) not in latest.body


def test_the_beat_task_reads_the_clock(sales_user: User) -> None:
    rule = hot_rule_get()
    rule.digest_hour = 0  # any time of day has passed midnight
    rule.save()
    lead = _lead(assigned=sales_user, hot_since=timezone.now() - datetime.timedelta(hours=1))

    assert send_hot_digests.apply().get() == 1
    assert send_hot_digests.apply().get() == 0
    [message] = _mails_to(sales_user)
    assert _link(lead) in message.body


def test_the_window_starts_where_the_previous_digest_ended(sales_user: User) -> None:
    first = _lead(assigned=sales_user, hot_since=MORNING - datetime.timedelta(hours=1))
    hot_digests_send(now=MORNING)
    # No leads for two days: no mail, but each day is closed.
    hot_digests_send(now=MORNING + datetime.timedelta(days=1))
    three_days_on = MORNING + datetime.timedelta(days=3)
    recent = _lead(assigned=sales_user, hot_since=three_days_on - datetime.timedelta(days=2))

    hot_digests_send(now=three_days_on)

    messages = _mails_to(sales_user)
    assert len(messages) == 2
    assert _link(recent) in messages[1].body and _link(first) not in messages[1].body
    days = HotDigest.objects.filter(user=sales_user).order_by("day")
    assert [(d.day.day, d.prospect_count, d.sent_at is not None) for d in days] == [
        (5, 1, True),
        (6, 0, False),
        (8, 1, True),
    ]
    assert days[1].since == days[0].until and days[2].since == days[1].until


def test_no_new_leads_no_mail(sales_user: User) -> None:
    _lead(assigned=sales_user, hot_since=MORNING - datetime.timedelta(days=3))
    _lead(
        assigned=sales_user,
        hot_since=MORNING - datetime.timedelta(hours=1),
        status=HotStatus.ENGAGED,  # no longer HOT
    )
    assert hot_digests_send(now=MORNING) == 0
    assert mail.outbox == []


def test_unassigned_leads_go_to_those_who_manage_all_prospects(
    sales_user: User, sales_manager: User, english: None
) -> None:
    sales_manager.language = "en"
    sales_manager.save()
    nobody = _lead(assigned=None, hot_since=MORNING - datetime.timedelta(hours=1))
    mine = _lead(assigned=sales_user, hot_since=MORNING - datetime.timedelta(hours=1))
    make_user(Role.SALES, email="inactive@example.jp", is_active=False)

    hot_digests_send(now=MORNING)

    [message] = _mails_to(sales_manager)
    assert "HOT leads nobody is assigned to" in message.body
    assert "HOT leads assigned to you" not in message.body
    assert _link(nobody) in message.body and _link(mine) not in message.body
    [own] = _mails_to(sales_user)
    assert _link(nobody) not in own.body
    assert {tuple(m.to) for m in mail.outbox} == {(sales_manager.email,), (sales_user.email,)}


def test_a_failed_send_is_tried_again_at_the_next_run(
    sales_user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    lead = _lead(assigned=sales_user, hot_since=MORNING - datetime.timedelta(hours=1))
    original = EmailMultiAlternatives.send

    def refuse(self: EmailMultiAlternatives, fail_silently: bool = False) -> int:
        raise smtplib.SMTPServerDisconnected("connection lost")

    monkeypatch.setattr(EmailMultiAlternatives, "send", refuse)
    assert hot_digests_send(now=MORNING) == 0
    assert HotDigest.objects.get(user=sales_user).sent_at is None

    monkeypatch.setattr(EmailMultiAlternatives, "send", original)
    assert hot_digests_send(now=MORNING + datetime.timedelta(minutes=15)) == 1
    [message] = _mails_to(sales_user)
    assert _link(lead) in message.body


def test_a_user_deactivated_before_the_send_gets_nothing(sales_user: User) -> None:
    from scoring.hot_digest import hot_digests_deliver, hot_digests_open

    _lead(assigned=sales_user, hot_since=MORNING - datetime.timedelta(hours=1))
    hot_digests_open(now=MORNING)
    User.objects.filter(pk=sales_user.pk).update(is_active=False)

    assert hot_digests_deliver(day=MORNING.date()) == 0
    assert mail.outbox == []
    digest = HotDigest.objects.get(user=sales_user)
    assert (digest.prospect_count, digest.sent_at) == (0, None)
