"""Feedback applied once (emails.feedback): bounces, soft-bounce counting, complaints, forged
headers, guard rails and per-domain rates, on real Postgres.

Sends are made by the pipeline's own snapshot (schedule + start) and their rows marked sent as
the pipeline marks them (status, sent_at, Message-ID); the inbound and webhook tests drive the
same functions from a real SMTP socket and real webhook posts.
"""

from __future__ import annotations

import datetime
import threading
from typing import Any

import pytest
from django.db import connection
from django.db.models import F
from django.utils import timezone

from emails import sending
from emails.feedback import (
    bounce_record,
    complaint_record,
    recipient_id_from_header,
    sending_domain_feedback_rates,
    unsubscribe_record,
)
from emails.models import (
    DomainStatus,
    ListEmail,
    ListEmailStatus,
    Recipient,
    RecipientStatus,
    SendingDomain,
)
from emails.rendering import recipient_header_value
from emails.services import list_email_create, list_email_schedule, sending_domain_create
from mapp.models import AccountSettings, Notification, User
from prospects.models import MAILABLE_Q, SOFT_BOUNCE_LIMIT, ListMembership, Prospect, ProspectList
from tests.factories import ProspectFactory
from tracking.models import Activity, ActivityType

pytestmark = pytest.mark.django_db


def make_sent_send(
    domain: SendingDomain, prospects: list[Prospect], name: str = "November newsletter"
) -> ListEmail:
    """A list email that is sending, every recipient row sent as the pipeline marks it."""
    prospect_list = ProspectList.objects.create(name=f"{name} list")
    ListMembership.objects.bulk_create(
        ListMembership(prospect_list=prospect_list, prospect=prospect) for prospect in prospects
    )
    list_email = list_email_create(
        actor=None,
        name=name,
        recipient_lists=[prospect_list],
        sending_domain=domain,
        subject="11月のお知らせ",
        html="<p>{{ account.name }} {{ account.postal_address }} {{ account.contact }}</p>"
        '<a href="{{ unsubscribe_url }}">配信停止</a>',
        sender_type="custom",
        sender_name="マップ ニュース",
        sender_address=f"news@{domain.domain}",
    )
    list_email_schedule(list_email=list_email)
    # (In transactional tests with eager Celery the schedule's own task has started it.)
    sending.list_email_start(list_email_id=list_email.pk)
    rows = Recipient.objects.filter(list_email=list_email)
    for row in rows:
        row.status = RecipientStatus.SENT
        row.sent_at = timezone.now()
        row.message_id = f"<mapp.{list_email.pk}.{row.pk}@{domain.domain}>"
        row.save(update_fields=["status", "sent_at", "message_id"])
    ListEmail.objects.filter(pk=list_email.pk).update(sent_count=rows.count())
    list_email.refresh_from_db()
    return list_email


def row_of(list_email: ListEmail, prospect: Prospect) -> Recipient:
    return Recipient.objects.get(list_email=list_email, prospect=prospect)


def bounces_of(prospect: Prospect) -> list[Activity]:
    return list(Activity.objects.filter(prospect_id=prospect.pk, type=ActivityType.EMAIL_BOUNCED))


@pytest.fixture
def domain(account_identity: AccountSettings) -> SendingDomain:
    domain = sending_domain_create(domain="news.example.jp", selector="s2025")
    SendingDomain.objects.filter(pk=domain.pk).update(status=DomainStatus.VERIFIED)
    domain.refresh_from_db()
    return domain


def test_a_hard_bounce_reported_three_ways_counts_once(domain: SendingDomain) -> None:
    # given a send to two prospects
    first, second = ProspectFactory.create_batch(2)
    list_email = make_sent_send(domain, [first, second])
    row = row_of(list_email, first)

    # when a DSN names the row by its signed header
    result = bounce_record(
        kind="hard",
        status="5.1.1",
        reason="550 5.1.1 <x@example.jp>: Recipient address rejected\r\nX-Injected: yes",
        source="dsn",
        signed_recipient=recipient_header_value(row.pk),
        address=first.email,
    )

    # then the row, the send's counter, the prospect and the activity record it
    assert result.counted and result.recipient_id == row.pk
    row.refresh_from_db()
    assert (row.bounce_kind, row.bounced_at is not None) == ("hard", True)
    assert row.bounce_reason == (
        "550 5.1.1 <x@example.jp>: Recipient address rejected X-Injected: yes"
    )
    list_email.refresh_from_db()
    assert (list_email.hard_bounce_count, list_email.soft_bounce_count) == (1, 0)
    first.refresh_from_db()
    assert first.hard_bounced_at is not None and not first.is_mailable
    (activity,) = bounces_of(first)
    assert (activity.object_type, activity.object_id, activity.object_label) == (
        "list_email",
        str(list_email.pk),
        "November newsletter",
    )
    assert activity.payload["hard"] is True
    assert (activity.payload["status"], activity.payload["source"]) == ("5.1.1", "dsn")
    assert activity.payload["email_id"] == f"le{list_email.pk}"

    # when the ESP's webhook reports it again by Message-ID, and a retried task by address
    again = [
        bounce_record(kind="hard", source="webhook:mailgun", message_id=row.message_id),
        bounce_record(kind="hard", source="dsn", address=first.email.upper()),
        bounce_record(kind="soft", source="dsn", recipient_id=row.pk),
    ]

    # then nothing is counted twice
    assert [result.counted for result in again] == [False, False, False]
    assert all(result.recipient_id == row.pk for result in again)
    list_email.refresh_from_db()
    assert (list_email.hard_bounce_count, list_email.soft_bounce_count) == (1, 0)
    assert len(bounces_of(first)) == 1
    assert row_of(list_email, second).bounced_at is None


def test_the_same_bounce_from_eight_workers_at_once_counts_once(
    domain: SendingDomain, transactional_db: None
) -> None:
    # given a sent row
    prospect = ProspectFactory.create()
    list_email = make_sent_send(domain, [prospect])
    row = row_of(list_email, prospect)
    results: list[bool] = []
    start = threading.Barrier(8)

    def report() -> None:
        try:
            start.wait()
            results.append(
                bounce_record(
                    kind="hard",
                    source="dsn",
                    signed_recipient=recipient_header_value(row.pk),
                ).counted
            )
        finally:
            connection.close()

    # when eight workers apply the same bounce at the same moment
    threads = [threading.Thread(target=report) for _index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then exactly one counted it
    assert sorted(results) == [False] * 7 + [True]
    list_email.refresh_from_db()
    assert list_email.hard_bounce_count == 1
    assert len(bounces_of(prospect)) == 1


def test_soft_bounces_accumulate_until_the_prospect_is_undeliverable(
    domain: SendingDomain,
) -> None:
    # given a prospect who received SOFT_BOUNCE_LIMIT sends
    prospect = ProspectFactory.create()
    sends = [make_sent_send(domain, [prospect], f"Send {index}") for index in range(5)]
    assert SOFT_BOUNCE_LIMIT == 5

    for index, list_email in enumerate(sends, start=1):
        row = row_of(list_email, prospect)
        # when each bounces softly (a full mailbox), reported twice each
        for _report in range(2):
            bounce_record(
                kind="soft",
                status="4.2.2",
                reason="452 4.2.2 Mailbox full",
                source="dsn",
                signed_recipient=recipient_header_value(row.pk),
            )
        prospect.refresh_from_db()
        # then each send counts once, and the prospect stays mailable until the fifth
        assert prospect.soft_bounce_count == index
        mailable = Prospect.objects.filter(MAILABLE_Q, pk=prospect.pk).exists()
        assert mailable is (index < SOFT_BOUNCE_LIMIT)
        assert prospect.is_mailable is (index < SOFT_BOUNCE_LIMIT)
        list_email.refresh_from_db()
        assert (list_email.soft_bounce_count, list_email.hard_bounce_count) == (1, 0)
    assert prospect.hard_bounced_at is None
    payloads = [activity.payload for activity in bounces_of(prospect)]
    assert len(payloads) == 5 and all(payload["hard"] is False for payload in payloads)


def test_a_delay_that_turns_into_a_failure_is_upgraded_once(domain: SendingDomain) -> None:
    # given a soft bounce (a delay notice) on a row
    prospect = ProspectFactory.create()
    list_email = make_sent_send(domain, [prospect])
    row = row_of(list_email, prospect)
    assert bounce_record(kind="soft", source="dsn", recipient_id=row.pk).counted

    # when the final failure arrives, twice
    upgraded = bounce_record(kind="hard", status="5.4.7", source="dsn", recipient_id=row.pk)
    repeated = bounce_record(kind="hard", status="5.4.7", source="dsn", recipient_id=row.pk)

    # then the row is hard once, the counters moved from soft to hard, the prospect bounced
    assert (upgraded.counted, repeated.counted) == (True, False)
    row.refresh_from_db()
    assert row.bounce_kind == "hard"
    list_email.refresh_from_db()
    assert (list_email.soft_bounce_count, list_email.hard_bounce_count) == (0, 1)
    prospect.refresh_from_db()
    assert prospect.hard_bounced_at is not None
    assert [activity.payload["hard"] for activity in bounces_of(prospect)] == [True, False]


def test_a_complaint_opts_the_prospect_out_once(domain: SendingDomain) -> None:
    # given a send
    prospect = ProspectFactory.create()
    list_email = make_sent_send(domain, [prospect])
    row = row_of(list_email, prospect)

    # when an ARF report (recipient redacted) and the ESP report the complaint
    first = complaint_record(
        source="arf", signed_recipient=recipient_header_value(row.pk), address="redacted@"
    )
    second = complaint_record(source="webhook:postmark", address=prospect.email)

    # then it counts once, and the prospect is opted out with the evidence recorded
    assert (first.counted, second.counted) == (True, False)
    row.refresh_from_db()
    assert row.complained_at is not None
    list_email.refresh_from_db()
    assert list_email.complaint_count == 1
    prospect.refresh_from_db()
    assert prospect.opted_out and not prospect.is_mailable
    types = sorted(Activity.objects.filter(prospect_id=prospect.pk).values_list("type", flat=True))
    assert types == sorted([ActivityType.EMAIL_COMPLAINT, ActivityType.OPT_OUT])
    complaint = Activity.objects.get(prospect_id=prospect.pk, type=ActivityType.EMAIL_COMPLAINT)
    assert (complaint.object_type, complaint.object_id) == ("list_email", str(list_email.pk))


def test_a_forged_or_garbled_recipient_header_is_ignored(domain: SendingDomain) -> None:
    # given two prospects of one send
    victim, sender_of_report = ProspectFactory.create_batch(2)
    list_email = make_sent_send(domain, [victim, sender_of_report])
    victim_row = row_of(list_email, victim)
    genuine = recipient_header_value(victim_row.pk)
    forged = [
        genuine[:-1] + ("A" if genuine[-1] != "A" else "B"),  # signature altered
        f"{victim_row.pk}:not-a-signature",
        str(victim_row.pk),
        genuine.replace(str(victim_row.pk), str(victim_row.pk + 1), 1),  # another id, same sig
        "x" * 5000,
        "",
    ]

    # then none of them names the victim's row
    assert [recipient_id_from_header(value) for value in forged] == [None] * len(forged)
    assert recipient_id_from_header(genuine) == victim_row.pk

    # when a report carries a forged header with nothing else
    nothing = bounce_record(kind="hard", source="dsn", signed_recipient=forged[0])
    # and one carries a forged header with the address it really bounced for
    fallback = complaint_record(
        source="arf", signed_recipient=forged[0], address=sender_of_report.email
    )

    # then the forged header changed nothing; the address decided
    assert not nothing.counted and nothing.recipient_id is None
    assert fallback.counted and fallback.prospect_id == sender_of_report.pk
    victim.refresh_from_db()
    assert victim.is_mailable
    assert Recipient.objects.get(pk=victim_row.pk).complained_at is None


def test_a_message_id_counts_only_when_it_is_the_rows_own(domain: SendingDomain) -> None:
    prospect = ProspectFactory.create()
    list_email = make_sent_send(domain, [prospect])
    row = row_of(list_email, prospect)
    # a Message-ID of our form that was never sent (another domain), and another send's id
    assert not bounce_record(
        kind="hard", source="webhook", message_id=f"<mapp.{list_email.pk}.{row.pk}@evil.example>"
    ).counted
    assert not bounce_record(
        kind="hard", source="webhook", message_id=f"<mapp.{list_email.pk + 1}.{row.pk}@x>"
    ).counted
    assert Recipient.objects.get(pk=row.pk).bounced_at is None
    # the real one, as Mailgun reports it (without brackets)
    assert bounce_record(
        kind="hard", source="webhook", message_id=row.message_id.strip("<>")
    ).counted


def test_the_address_finds_the_newest_send(domain: SendingDomain) -> None:
    prospect = ProspectFactory.create()
    older = make_sent_send(domain, [prospect], "October")
    newer = make_sent_send(domain, [prospect], "November")
    Recipient.objects.filter(list_email=older).update(
        sent_at=timezone.now() - datetime.timedelta(days=3)
    )
    result = bounce_record(kind="soft", source="dsn", address=f"  {prospect.email.upper()} ")
    assert result.list_email_id == newer.pk
    assert row_of(newer, prospect).bounce_kind == "soft"
    assert row_of(older, prospect).bounced_at is None


def test_without_a_send_the_prospect_itself_is_changed_once(db: None) -> None:
    # given a prospect who got no list email (an autoresponder bounced)
    prospect = ProspectFactory.create()

    # when soft bounces arrive three times in a day, and a hard bounce twice
    soft = [bounce_record(kind="soft", source="dsn", address=prospect.email) for _ in range(3)]
    prospect.refresh_from_db()
    assert [result.counted for result in soft] == [True, False, False]
    assert prospect.soft_bounce_count == 1
    hard = [bounce_record(kind="hard", source="dsn", address=prospect.email) for _ in range(2)]

    # then each changed the prospect once; unknown addresses change nothing
    assert [result.counted for result in hard] == [True, False]
    prospect.refresh_from_db()
    assert prospect.hard_bounced_at is not None
    assert len(bounces_of(prospect)) == 2
    assert not bounce_record(kind="hard", source="dsn", address="nobody@example.jp").counted
    assert not complaint_record(source="arf", address="not an address").counted
    with pytest.raises(ValueError, match="bounce kind"):
        bounce_record(kind="permanent", source="dsn", address=prospect.email)


def test_an_autoresponders_feedback_reaches_its_prospect(db: None) -> None:
    # given an autoresponder's headers: it signs recipient 0 and has its own Message-ID form
    prospect, other = ProspectFactory.create_batch(2)
    signed, message_id = recipient_header_value(0), "<mapp.t42@news.example.jp>"
    # when the person unsubscribes through the ESP and another person complains
    unsubscribed = unsubscribe_record(
        source="webhook:postmark",
        signed_recipient=signed,
        message_id=message_id,
        address=prospect.email,
    )
    complained = complaint_record(
        source="arf", signed_recipient=signed, message_id=message_id, address=other.email
    )
    # then the address decided, and each was opted out with the evidence recorded, once
    assert (unsubscribed.counted, unsubscribed.list_email_id) == (True, None)
    assert complained.counted
    assert not unsubscribe_record(source="webhook:postmark", address=prospect.email).counted
    prospect.refresh_from_db()
    other.refresh_from_db()
    assert prospect.opted_out and other.opted_out
    assert set(Activity.objects.filter(prospect_id=prospect.pk).values_list("type", flat=True)) == {
        ActivityType.EMAIL_UNSUBSCRIBED,
        ActivityType.OPT_OUT,
    }
    assert set(Activity.objects.filter(prospect_id=other.pk).values_list("type", flat=True)) == {
        ActivityType.EMAIL_COMPLAINT,
        ActivityType.OPT_OUT,
    }


def test_an_esp_unsubscribe_opts_out_through_the_unsubscribe_path(domain: SendingDomain) -> None:
    prospect = ProspectFactory.create()
    list_email = make_sent_send(domain, [prospect])
    first = unsubscribe_record(source="webhook:postmark", address=prospect.email)
    second = unsubscribe_record(source="webhook:postmark", address=prospect.email)
    assert (first.counted, second.counted, first.list_email_id) == (True, False, list_email.pk)
    prospect.refresh_from_db()
    assert prospect.opted_out
    types = set(Activity.objects.filter(prospect_id=prospect.pk).values_list("type", flat=True))
    assert types == {ActivityType.EMAIL_UNSUBSCRIBED, ActivityType.OPT_OUT}


# --- guard rails --------------------------------------------------------------------------------


def test_complaints_above_the_limit_pause_the_send_and_notify_administrators_once(
    domain: SendingDomain, administrator: User, settings: Any
) -> None:
    # given a sending send of 100 messages, and a 2 % complaint limit
    settings.EMAIL_GUARD_MIN_SENT = 100
    settings.EMAIL_COMPLAINT_RATE_PAUSE_PER_MILLE = 20
    prospects = ProspectFactory.create_batch(100)
    list_email = make_sent_send(domain, prospects)
    assert (list_email.status, list_email.sent_count) == (ListEmailStatus.SENDING, 100)

    def complain(prospect: Prospect) -> bool:
        row = row_of(list_email, prospect)
        return complaint_record(
            source="arf", signed_recipient=recipient_header_value(row.pk)
        ).paused

    # when two recipients complain (2 %, at the limit): the send goes on
    assert [complain(prospect) for prospect in prospects[:2]] == [False, False]
    list_email.refresh_from_db()
    assert list_email.status == ListEmailStatus.SENDING
    assert not Notification.objects.exists()

    # when a third complains (3 %, above it): the send pauses, saying why
    assert complain(prospects[2]) is True
    list_email.refresh_from_db()
    assert list_email.status == ListEmailStatus.PAUSED
    assert "3" in list_email.paused_reason and "%" in list_email.paused_reason
    (notification,) = Notification.objects.filter(user=administrator)
    assert "spam complaints" in notification.title or "迷惑" in notification.title
    assert notification.url == f"/marketing/emails/{list_email.pk}/"

    # when more complaints arrive: counted, but no second pause or notice
    assert complain(prospects[3]) is False
    list_email.refresh_from_db()
    assert list_email.complaint_count == 4
    assert Notification.objects.filter(user=administrator).count() == 1


def test_hard_bounces_above_five_percent_pause_the_send(
    domain: SendingDomain, administrator: User, settings: Any
) -> None:
    settings.EMAIL_GUARD_MIN_SENT = 100
    prospects = ProspectFactory.create_batch(100)
    list_email = make_sent_send(domain, prospects)
    paused = [
        bounce_record(kind="hard", source="dsn", address=prospect.email).paused
        for prospect in prospects[:7]
    ]
    # 5 of 100 is the limit itself; the sixth passes it
    assert paused == [False] * 5 + [True, False]
    list_email.refresh_from_db()
    assert list_email.status == ListEmailStatus.PAUSED
    assert list_email.hard_bounce_count == 7
    assert Notification.objects.filter(user=administrator).count() == 1


def test_no_pause_before_enough_messages_were_sent_or_once_the_send_finished(
    domain: SendingDomain, administrator: User, settings: Any
) -> None:
    settings.EMAIL_GUARD_MIN_SENT = 100
    few = make_sent_send(domain, ProspectFactory.create_batch(10), "Small send")
    for prospect_row in Recipient.objects.filter(list_email=few):
        complaint_record(source="arf", recipient_id=prospect_row.pk)
    few.refresh_from_db()
    assert (few.status, few.complaint_count) == (ListEmailStatus.SENDING, 10)

    finished = make_sent_send(domain, ProspectFactory.create_batch(100), "Finished send")
    ListEmail.objects.filter(pk=finished.pk).update(status=ListEmailStatus.SENT)
    for prospect_row in Recipient.objects.filter(list_email=finished)[:10]:
        complaint_record(source="arf", recipient_id=prospect_row.pk)
    finished.refresh_from_db()
    assert finished.status == ListEmailStatus.SENT
    assert not Notification.objects.exists()


# --- per-domain rates ---------------------------------------------------------------------------


def test_domain_rates_over_thirty_days(domain: SendingDomain) -> None:
    # given two domains: 10 messages from one (2 hard, 1 soft, 1 complaint), none from the other
    quiet = sending_domain_create(domain="quiet.example.jp", selector="s2025")
    prospects = ProspectFactory.create_batch(12)
    recent = make_sent_send(domain, prospects[:10])
    rows = list(Recipient.objects.filter(list_email=recent).order_by("pk"))
    bounce_record(kind="hard", source="dsn", recipient_id=rows[0].pk)
    bounce_record(kind="hard", source="dsn", recipient_id=rows[1].pk)
    bounce_record(kind="soft", source="dsn", recipient_id=rows[2].pk)
    complaint_record(source="arf", recipient_id=rows[3].pk)
    # and an old send whose bounces are outside the window
    old = make_sent_send(domain, prospects[10:], "Old")
    for row in Recipient.objects.filter(list_email=old):
        bounce_record(kind="hard", source="dsn", recipient_id=row.pk)
    Recipient.objects.filter(list_email=old).update(
        sent_at=F("sent_at") - datetime.timedelta(days=31)
    )

    # when the rates are read
    rates = {rate.domain: rate for rate in sending_domain_feedback_rates()}

    # then
    busy = rates["news.example.jp"]
    assert (busy.sent, busy.hard_bounces, busy.soft_bounces, busy.complaints) == (10, 2, 1, 1)
    assert busy.hard_bounce_rate == pytest.approx(0.2)
    assert busy.complaint_rate == pytest.approx(0.1)
    assert busy.is_complaint_rate_over_limit and busy.is_hard_bounce_rate_over_limit
    assert (rates["quiet.example.jp"].sent, rates["quiet.example.jp"].complaint_rate) == (0, 0.0)
    (only,) = sending_domain_feedback_rates(sending_domain_id=quiet.pk)
    assert only.domain == "quiet.example.jp"
