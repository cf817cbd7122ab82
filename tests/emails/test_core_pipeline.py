"""The send pipeline end to end in-process: real Postgres, a real SMTP server (aiosmtpd sink),
real DKIM verification with dkimpy against the published key.

Workers are simulated by calling the pipeline functions the Celery tasks call; the test with a
real worker process is the e2e layer's.
"""

from __future__ import annotations

import datetime
import email
import re
from email.message import Message
from email.policy import default as default_policy
from typing import Any

import dkim
import pytest
from django.test import Client
from django.utils import timezone

from emails import sending, tasks
from emails.models import ListEmail, ListEmailStatus, Recipient, RecipientStatus, SendingDomain
from emails.rendering import header_text
from emails.services import list_email_create, list_email_schedule, sending_domain_dkim_record
from emails.smtp_sink import ReceivedMessage, SmtpSink
from emails.unsubscribe import unsubscribe_token_load
from mapp.models import AccountSettings
from prospects.models import ListMembership, Prospect, ProspectList
from tests.factories import ProspectFactory
from tracking.links import click_token_load, open_token_load
from tracking.models import Activity, ActivityType

HTML = """<html><head><style>p { color: #333333; }</style></head>
<body>
<p>{{ prospect.last_name }} {{ prospect.first_name | default("ご担当者") }} 様</p>
<a href="https://example.co.jp/seminar?a=1&amp;b=2">セミナーのご案内</a>
<a href="https://example.co.jp/private" data-mapp-notrack>private</a>
<a href="mailto:info@example.co.jp">mail us</a>
<a href="tel:0312345678">call us</a>
<p>{{ account.name }} {{ account.postal_address }} {{ account.contact }}</p>
<a href="{{ unsubscribe_url }}">配信停止</a>
</body></html>"""

pytestmark = pytest.mark.django_db


def make_list(prospects: list[Prospect], name: str = "Newsletter") -> ProspectList:
    prospect_list = ProspectList.objects.create(name=name)
    ListMembership.objects.bulk_create(
        ListMembership(prospect_list=prospect_list, prospect=prospect) for prospect in prospects
    )
    return prospect_list


def make_send(
    domain: SendingDomain,
    recipient_lists: list[ProspectList],
    suppression_lists: list[ProspectList] | None = None,
) -> ListEmail:
    list_email = list_email_create(
        actor=None,
        name="October newsletter",
        recipient_lists=recipient_lists,
        suppression_lists=suppression_lists or [],
        sending_domain=domain,
        subject="{{ prospect.first_name }}様へ 10月のお知らせ",
        preheader="セミナーのご案内",
        html=HTML,
        sender_type="custom",
        sender_name="マップ ニュース",
        sender_address="news@mail.example.jp",
        reply_to="support@example.jp",
    )
    list_email_schedule(list_email=list_email)
    assert sending.list_email_start(list_email_id=list_email.pk)
    return list_email


def drain(list_email: ListEmail) -> None:
    """What the worker does: batches until nothing is due."""
    for _round in range(100):
        if sending.list_email_send_batch(list_email_id=list_email.pk, batch_size=50).claimed == 0:
            return
    raise AssertionError("the send did not drain")


def parsed(message: ReceivedMessage) -> Message:
    return email.message_from_bytes(message.data, policy=default_policy)


def html_part(message: Message) -> str:
    part = message.get_body(preferencelist=("html",))  # type: ignore[attr-defined]
    assert part is not None
    return str(part.get_content())


def dns_for(domain: SendingDomain) -> Any:
    name, value = sending_domain_dkim_record(domain)

    def dnsfunc(query: bytes, timeout: int = 5) -> bytes:
        assert query.decode().rstrip(".") == name
        return value.encode()

    return dnsfunc


def test_two_hundred_prospects_each_receive_exactly_one_signed_tracked_message(
    smtp_sink: SmtpSink, verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    # given 200 prospects in two overlapping lists, 10 of them suppressed, 5 not mailable
    prospects = ProspectFactory.create_batch(200)
    first = make_list(prospects[:150], "A")
    second = make_list(prospects[100:], "B")
    suppressed = make_list(prospects[:10], "Suppressed")
    Prospect.objects.filter(pk__in=[p.pk for p in prospects[10:15]]).update(do_not_email=True)
    # when the send runs
    list_email = make_send(verified_domain, [first, second], [suppressed])
    drain(list_email)
    # then every remaining address got exactly one message
    expected = {p.email.lower() for p in prospects[15:]}
    received = [address for message in smtp_sink.messages for address in message.recipients]
    assert sorted(received) == sorted(expected)
    list_email.refresh_from_db()
    assert list_email.status == ListEmailStatus.SENT
    assert (list_email.recipient_count, list_email.sent_count) == (185, 185)
    assert (
        Recipient.objects.filter(list_email=list_email, status=RecipientStatus.SENT).count() == 185
    )
    assert (
        Activity.objects.filter(type=ActivityType.EMAIL_SENT, object_id=str(list_email.pk)).count()
        == 185
    )
    dnsfunc = dns_for(verified_domain)
    for message in smtp_sink.messages:
        # DKIM verifies with dkimpy's own verifier against the published record
        assert dkim.verify(message.data, dnsfunc=dnsfunc), message.recipients
        signature = dkim.DKIM(message.data)
        headers = parsed(message)
        signed = re.search(rb"h=([^;]+);", re.sub(rb"\s+", b"", headers["DKIM-Signature"].encode()))
        assert signed is not None
        signed_names = set(signed.group(1).lower().split(b":"))
        assert {b"list-unsubscribe", b"list-unsubscribe-post", b"from", b"subject"} <= signed_names
        assert signature is not None
    # and each message carries the RFC 8058 headers, a unique Message-ID and Feedback-ID
    message_ids = {parsed(message)["Message-ID"] for message in smtp_sink.messages}
    assert len(message_ids) == 185
    sample = parsed(smtp_sink.messages[0])
    assert sample["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.match(r"<https://|<http://", sample["List-Unsubscribe"])
    assert "mailto:unsubscribe@mail.example.jp" in sample["List-Unsubscribe"]
    # as plain URLs on the wire, not RFC 2047 encoded words (which clients cannot use)
    raw_header = re.search(
        rb"^List-Unsubscribe: (.*?)\r\n(?! )", smtp_sink.messages[0].data, re.M | re.S
    )
    assert raw_header is not None
    assert raw_header.group(1).startswith(b"<http")
    assert b"=?" not in raw_header.group(1)
    assert sample["Feedback-ID"] == f"{list_email.pk}:list-email:mapp"
    assert sample["Reply-To"] == "support@example.jp"
    assert "news@mail.example.jp" in sample["From"]


def test_message_content_links_pixel_css_and_text_part(
    smtp_sink: SmtpSink, verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    prospect = ProspectFactory.create(last_name="山田", first_name="太郎")
    list_email = make_send(verified_domain, [make_list([prospect])])
    drain(list_email)
    [received] = smtp_sink.messages
    message = parsed(received)
    assert message["Subject"] == "太郎様へ 10月のお知らせ"
    body = html_part(message)
    # merge fields, account identity, CSS inlined, preheader
    assert "山田 太郎 様" in body
    assert "〒100-0001 東京都千代田区千代田1-1" in body
    assert re.search(r'<p style="color: #333333;?">', body)
    assert "セミナーのご案内</div>" in body
    # tracked link decodes to the original destination for this prospect and email
    hrefs = re.findall(r'href="([^"]+)"', body)
    tracked = [href for href in hrefs if "/t/c/" in href]
    assert len(tracked) == 1
    token = tracked[0].rsplit("/t/c/", 1)[1]
    click = click_token_load(token)
    assert click is not None
    assert (click.url, click.prospect_id, click.email_id) == (
        "https://example.co.jp/seminar?a=1&b=2",
        prospect.pk,
        list_email.tracking_id,
    )
    # untracked: data-mapp-notrack, mailto:, tel:, the unsubscribe link
    assert "https://example.co.jp/private" in hrefs
    assert "mailto:info@example.co.jp" in hrefs
    assert "tel:0312345678" in hrefs
    [unsubscribe] = [href for href in hrefs if "/email/unsubscribe/" in href]
    loaded = unsubscribe_token_load(unsubscribe.rsplit("/", 1)[1])
    assert loaded is not None and loaded.prospect_id == prospect.pk
    # open pixel
    pixel = re.search(r'<img src="([^"]+/t/o/([^"]+)\.gif)"', body)
    assert pixel is not None
    opened = open_token_load(pixel.group(2))
    assert opened is not None and opened.prospect_id == prospect.pk
    # plain-text part generated from the HTML
    text = message.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
    assert text is not None
    assert "セミナーのご案内" in text.get_content()


def test_unsubscribe_between_snapshot_and_send_is_honoured(
    smtp_sink: SmtpSink, verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    prospects = ProspectFactory.create_batch(5)
    list_email = make_send(verified_domain, [make_list(prospects)])
    # the snapshot has all five; then one unsubscribes (one-click POST from an earlier email)
    assert Recipient.objects.filter(list_email=list_email).count() == 5
    from emails.unsubscribe import unsubscribe_url

    url = unsubscribe_url(prospect_id=prospects[2].pk, list_email_id=list_email.pk)
    response = Client().post(url, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    drain(list_email)
    assert smtp_sink.handler.received_by(prospects[2].email) == []
    assert len(smtp_sink.messages) == 4
    row = Recipient.objects.get(list_email=list_email, prospect=prospects[2])
    assert row.status == RecipientStatus.SKIPPED
    list_email.refresh_from_db()
    assert (list_email.sent_count, list_email.skipped_count, list_email.status) == (
        4,
        1,
        ListEmailStatus.SENT,
    )


def test_a_worker_that_died_after_claiming_is_reclaimed_and_each_row_sent_once(
    smtp_sink: SmtpSink, verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    prospects = ProspectFactory.create_batch(30)
    list_email = make_send(verified_domain, [make_list(prospects)])
    # a worker claims ten rows and dies before sending
    dead = sending.recipients_claim(list_email_id=list_email.pk, limit=10)
    assert len(dead.recipient_ids) == 10
    # a second worker claims disjoint rows (SKIP LOCKED + status guard)
    other = sending.recipients_claim(list_email_id=list_email.pk, limit=10)
    assert not set(dead.recipient_ids) & set(other.recipient_ids)
    Recipient.objects.filter(pk__in=other.recipient_ids).update(
        status=RecipientStatus.QUEUED, claimed_at=None
    )
    drain(list_email)
    assert len(smtp_sink.messages) == 20
    list_email.refresh_from_db()
    assert list_email.status == ListEmailStatus.SENDING  # ten rows still held by the dead worker
    # fresh claims are not taken back
    assert sending.recipients_reclaim_stale() == 0
    # once the claim is stale, the reclaimer gives the rows back and they are sent once
    Recipient.objects.filter(pk__in=dead.recipient_ids).update(
        claimed_at=timezone.now() - sending.stale_claim_after() - datetime.timedelta(seconds=1)
    )
    assert sending.recipients_reclaim_stale() == 10
    drain(list_email)
    received = sorted(address for m in smtp_sink.messages for address in m.recipients)
    assert received == sorted(p.email.lower() for p in prospects)
    list_email.refresh_from_db()
    assert (list_email.status, list_email.sent_count) == (ListEmailStatus.SENT, 30)


def test_a_worker_whose_claim_was_taken_back_cannot_mark_the_rows() -> None:
    """The claim time is the claim's identity: marks of an old claim match nothing."""
    claim = sending.Claim([1, 2], timezone.now() - datetime.timedelta(hours=1))
    assert sending._ours(claim, claim.recipient_ids).count() == 0


def test_smtp_4xx_is_retried_later_with_backoff_and_sent_once(
    smtp_sink: SmtpSink, verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    prospects = ProspectFactory.create_batch(4)
    greylisted = prospects[1].email.lower()
    smtp_sink.handler.rcpt_responses[greylisted] = "451 4.7.1 Greylisted, try again later"
    list_email = make_send(verified_domain, [make_list(prospects)])
    before = timezone.now()
    drain(list_email)
    row = Recipient.objects.get(list_email=list_email, email=greylisted)
    assert row.status == RecipientStatus.QUEUED
    assert row.attempts == 1
    assert "451" in row.error
    assert row.next_attempt_at is not None
    # one minute ±20 % jitter
    assert before + datetime.timedelta(seconds=45) < row.next_attempt_at
    assert row.next_attempt_at < timezone.now() + datetime.timedelta(seconds=75)
    assert smtp_sink.handler.received_by(greylisted) == []
    list_email.refresh_from_db()
    assert list_email.status == ListEmailStatus.SENDING
    # the server accepts it later; the retry is due
    del smtp_sink.handler.rcpt_responses[greylisted]
    Recipient.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    drain(list_email)
    assert len(smtp_sink.handler.received_by(greylisted)) == 1
    assert len(smtp_sink.messages) == 4
    list_email.refresh_from_db()
    assert (list_email.status, list_email.sent_count) == (ListEmailStatus.SENT, 4)


def test_smtp_5xx_fails_the_row_and_marks_the_prospect_hard_bounced(
    smtp_sink: SmtpSink, verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    prospects = ProspectFactory.create_batch(3)
    unknown = prospects[0]
    smtp_sink.handler.rcpt_responses[unknown.email.lower()] = "550 5.1.1 No such user"
    list_email = make_send(verified_domain, [make_list(prospects)])
    drain(list_email)
    row = Recipient.objects.get(list_email=list_email, prospect=unknown)
    assert (row.status, row.attempts) == (RecipientStatus.FAILED, 1)
    assert "550" in row.error
    unknown.refresh_from_db()
    assert unknown.hard_bounced_at is not None
    assert not unknown.is_mailable
    bounce = Activity.objects.get(type=ActivityType.EMAIL_BOUNCED, prospect_id=unknown.pk)
    assert bounce.payload["hard"] is True
    list_email.refresh_from_db()
    assert (list_email.status, list_email.sent_count, list_email.failed_count) == (
        ListEmailStatus.SENT,
        2,
        1,
    )


def test_connection_dropped_mid_data_retries_that_row_only(
    smtp_sink: SmtpSink, verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    prospects = ProspectFactory.create_batch(6)
    dropped = prospects[2].email.lower()
    smtp_sink.handler.drop_during_data[dropped] = 1
    list_email = make_send(verified_domain, [make_list(prospects)])
    drain(list_email)
    row = Recipient.objects.get(list_email=list_email, email=dropped)
    assert row.status == RecipientStatus.QUEUED
    assert "connection lost" in row.error
    # the rows after it in the batch were released and sent by the next batch
    assert len(smtp_sink.messages) == 5
    Recipient.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    drain(list_email)
    received = sorted(address for m in smtp_sink.messages for address in m.recipients)
    assert received == sorted(p.email.lower() for p in prospects)


def test_crlf_in_merge_values_never_adds_a_header(
    smtp_sink: SmtpSink, verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    attacker = ProspectFactory.create(
        first_name="a\r\nBcc: evil@x", last_name="<script>alert(1)</script>\nX-Evil: 1"
    )
    list_email = make_send(verified_domain, [make_list([attacker])])
    drain(list_email)
    [received] = smtp_sink.messages
    assert received.recipients == (attacker.email.lower(),)
    message = parsed(received)
    assert message["Bcc"] is None
    assert message["X-Evil"] is None
    assert message["Subject"] == "a Bcc: evil@x様へ 10月のお知らせ"
    header_block = received.data.split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in header_block
    assert b"\nX-Evil:" not in header_block
    # and the HTML shows the name escaped
    assert "&lt;script&gt;" in html_part(message)


def test_header_text_removes_control_characters() -> None:
    assert header_text("件名\r\nBcc: x@y\x00\t end") == "件名 Bcc: x@y end"


def test_paused_send_claims_nothing_and_resumes(
    smtp_sink: SmtpSink, verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    from emails.services import list_email_pause, list_email_resume

    prospects = ProspectFactory.create_batch(3)
    list_email = make_send(verified_domain, [make_list(prospects)])
    assert list_email_pause(list_email=list_email, reason="checking a typo")
    assert sending.list_email_send_batch(list_email_id=list_email.pk).claimed == 0
    assert smtp_sink.messages == []
    assert list_email_resume(list_email=list_email)
    drain(list_email)
    assert len(smtp_sink.messages) == 3


def test_hourly_cap_limits_what_is_claimed(
    settings: Any,
    smtp_sink: SmtpSink,
    verified_domain: SendingDomain,
    account_identity: AccountSettings,
) -> None:
    settings.EMAIL_SEND_HOURLY_CAP = 4
    prospects = ProspectFactory.create_batch(6)
    list_email = make_send(verified_domain, [make_list(prospects)])
    drain(list_email)
    assert len(smtp_sink.messages) == 4
    result = sending.list_email_send_batch(list_email_id=list_email.pk)
    assert (result.claimed, result.stop_reason) == (0, "send cap reached")


def test_snapshot_is_idempotent_and_later_members_are_not_added(
    smtp_sink: SmtpSink, verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    prospects = ProspectFactory.create_batch(3)
    prospect_list = make_list(prospects)
    list_email = make_send(verified_domain, [prospect_list])
    late = ProspectFactory.create()
    ListMembership.objects.create(prospect_list=prospect_list, prospect=late)
    # a retried start task changes nothing
    assert not sending.list_email_start(list_email_id=list_email.pk)
    assert sending.recipients_snapshot(list_email) == 1  # only the late member would be new…
    # …which is why the snapshot runs once, inside the transition to "sending"
    assert sending.recipients_snapshot(list_email) == 0


def test_dispatch_starts_due_sends_and_restarts_retries(
    monkeypatch: pytest.MonkeyPatch,
    smtp_sink: SmtpSink,
    verified_domain: SendingDomain,
    account_identity: AccountSettings,
) -> None:
    started: list[int] = []
    queued: list[int] = []
    monkeypatch.setattr(tasks.start_list_email, "delay", started.append)
    monkeypatch.setattr(tasks.send_list_email, "delay", queued.append)
    prospects = ProspectFactory.create_batch(2)
    list_email = list_email_create(
        actor=None,
        name="Scheduled",
        recipient_lists=[make_list(prospects)],
        sending_domain=verified_domain,
        subject="Hello",
        html=HTML,
        sender_name="News",
        sender_address="news@mail.example.jp",
    )
    list_email_schedule(
        list_email=list_email, send_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    tasks.dispatch()
    assert started == [list_email.pk]
    # the started task snapshots and starts the senders
    tasks.start_list_email(list_email.pk)
    assert queued == [list_email.pk] * tasks.DEFAULT_SEND_PARALLELISM
    assert tasks.send_list_email(list_email.pk) is False
    assert len(smtp_sink.messages) == 2
    list_email.refresh_from_db()
    assert list_email.status == ListEmailStatus.SENT


def test_rows_sent_by_a_killed_worker_get_their_sent_activity_when_the_send_finishes(
    smtp_sink: SmtpSink, verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    prospects = ProspectFactory.create_batch(6)
    list_email = make_send(verified_domain, [make_list(prospects)])
    drain(list_email)
    # as if the worker that sent three of them died before its batch's activity insert
    lost = list(
        Recipient.objects.filter(list_email=list_email).order_by("pk").values_list("pk", flat=True)
    )[:3]
    Activity.objects.filter(type=ActivityType.EMAIL_SENT, payload__recipient_id__in=lost).delete()
    ListEmail.objects.filter(pk=list_email.pk).update(status=ListEmailStatus.SENDING)
    assert sending.list_email_finish_if_done(list_email_id=list_email.pk)
    assert not sending.list_email_finish_if_done(list_email_id=list_email.pk)  # once
    sent = Activity.objects.filter(type=ActivityType.EMAIL_SENT, object_id=str(list_email.pk))
    assert sent.count() == 6
    assert sorted(sent.values_list("payload__recipient_id", flat=True)) == sorted(
        Recipient.objects.filter(list_email=list_email).values_list("pk", flat=True)
    )
    assert sending.sent_activities_backfill(list_email_id=list_email.pk) == 0
