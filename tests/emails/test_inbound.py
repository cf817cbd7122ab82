"""The inbound SMTP endpoint end to end over real sockets: a list email is sent through the real
pipeline to an SMTP sink; the receiver's bounce (DSN), spam complaint (ARF) and List-Unsubscribe
mail about those very messages are sent with smtplib to the inbound server; the rows change.

Celery runs eagerly here, so the task runs on the server's hand-off thread before the 250, and
the test reads the result as soon as smtplib returns (transactional tests: that thread has its
own database connection).
"""

from __future__ import annotations

import base64
import email
import email.policy
import re
import smtplib
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from emails import sending
from emails.inbound import InboundSmtpServer, inbound_message_apply, unsubscribe_token_in
from emails.models import ListEmail, Recipient, RecipientStatus, SendingDomain
from emails.services import list_email_create, list_email_schedule
from emails.smtp_sink import SmtpSink, free_port
from emails.tasks_feedback import apply_inbound_message
from mapp.models import AccountSettings
from prospects.models import ListMembership, Prospect, ProspectList
from tests.emails.test_feedback import make_sent_send
from tests.factories import ProspectFactory
from tracking.models import Activity, ActivityType

RETURN_PATH = "bounces@mail.example.jp"
FEEDBACK_LOOP = "fbl@mail.example.jp"
MAX_BYTES = 256 * 1024


@pytest.fixture
def eager_celery() -> Iterator[None]:
    from mapp.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def inbound(
    settings: Any, eager_celery: None, transactional_db: None
) -> Iterator[InboundSmtpServer]:
    settings.EMAIL_RETURN_PATH = RETURN_PATH
    settings.INBOUND_SMTP_MAILBOXES = [FEEDBACK_LOOP]
    settings.EMAIL_UNSUBSCRIBE_MAILBOX = ""
    server = InboundSmtpServer(host="127.0.0.1", port=free_port(), max_message_bytes=MAX_BYTES)
    server.start()
    yield server
    server.stop()


def send_list_email(domain: SendingDomain, prospects: list[Prospect]) -> ListEmail:
    """A real send: snapshot, claim, build, DKIM-sign and hand to the SMTP sink."""
    prospect_list = ProspectList.objects.create(name="Seminar invitees")
    ListMembership.objects.bulk_create(
        ListMembership(prospect_list=prospect_list, prospect=prospect) for prospect in prospects
    )
    list_email = list_email_create(
        actor=None,
        name="Seminar invitation",
        recipient_lists=[prospect_list],
        sending_domain=domain,
        subject="{{ prospect.last_name }}様 セミナーのご案内",
        html="<p>{{ account.name }} {{ account.postal_address }} {{ account.contact }}</p>"
        '<a href="{{ unsubscribe_url }}">配信停止</a>',
        sender_type="custom",
        sender_name="マップ セミナー事務局",
        sender_address="seminar@mail.example.jp",
    )
    list_email_schedule(list_email=list_email)
    # (In transactional tests with eager Celery the schedule's own task has started it.)
    sending.list_email_start(list_email_id=list_email.pk)
    while sending.list_email_send_batch(list_email_id=list_email.pk).claimed:
        pass
    list_email.refresh_from_db()
    return list_email


def sent_to(sink: SmtpSink, address: str) -> bytes:
    (message,) = sink.handler.received_by(address)
    assert message.envelope_from == RETURN_PATH  # the pipeline's Return-Path is ours
    return message.data


def header_block(message: bytes) -> bytes:
    return re.split(rb"\r?\n\r?\n", message, maxsplit=1)[0]


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def dsn(original: bytes, address: str, *, status: str = "5.1.1", action: str = "failed") -> bytes:
    """A Postfix-style RFC 3464 bounce returning the original's headers."""
    head = crlf(
        f"""From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: {RETURN_PATH}
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B0UND"

--B0UND
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net. Your message could not be delivered.

--B0UND
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {address}
Original-Recipient: rfc822;{address}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; 550 {status} <{address}>: Recipient address rejected: User unknown

--B0UND
Content-Type: text/rfc822-headers

"""
    )
    return head + header_block(original) + b"\r\n\r\n--B0UND--\r\n"


def arf(original: bytes) -> bytes:
    """A Yahoo-style ARF complaint; like Yahoo and Outlook, it hides who complained."""
    redacted = re.sub(rb"(?m)^To: .*(\r?\n[ \t].*)*", b"To: redacted@redacted.invalid", original)
    head = crlf(
        f"""From: Yahoo! Mail AntiSpam Feedback <feedback@arf.mail.yahoo.com>
To: {FEEDBACK_LOOP}
Subject: FW: complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="ARF1"

--ARF1
Content-Type: text/plain

This is an email abuse report for an email message received from IP 192.0.2.1.

--ARF1
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: Yahoo!-Mail-Feedback/2.0
Version: 1
Original-Mail-From: <{RETURN_PATH}>
Reported-Domain: mail.example.jp

--ARF1
Content-Type: message/rfc822

"""
    )
    return head + redacted + b"\r\n--ARF1--\r\n"


def deliver(server: InboundSmtpServer, to: str, data: bytes, mail_from: str = "") -> None:
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.sendmail(mail_from, [to], data)


def test_bounce_complaint_and_unsubscribe_mails_about_real_messages_are_applied(
    inbound: InboundSmtpServer,
    smtp_sink: SmtpSink,
    verified_domain: SendingDomain,
    account_identity: AccountSettings,
) -> None:
    # given a real send to three prospects
    bounced, complainer, leaver = prospects = ProspectFactory.create_batch(3)
    list_email = send_list_email(verified_domain, prospects)
    assert list_email.sent_count == 3

    # when the receiving server bounces the first message (returned to the Return-Path)
    deliver(inbound, RETURN_PATH, dsn(sent_to(smtp_sink, bounced.email), bounced.email))
    # and a mailbox provider's feedback loop reports the second as spam, recipient hidden
    deliver(inbound, FEEDBACK_LOOP, arf(sent_to(smtp_sink, complainer.email)))
    # and the third person's mail client uses the List-Unsubscribe mailto:
    list_unsubscribe = email.message_from_bytes(
        sent_to(smtp_sink, leaver.email), policy=email.policy.default
    )["List-Unsubscribe"]
    header = re.search(r"<mailto:([^?>]+)\?subject=([^>]+)>", str(list_unsubscribe))
    assert header is not None, list_unsubscribe
    mailbox, token = header.group(1), header.group(2)
    assert mailbox == "unsubscribe@mail.example.jp"
    deliver(
        inbound,
        mailbox,
        crlf(f"From: {leaver.email}\nTo: {mailbox}\nSubject: {token}\n\nunsubscribe\n"),
        mail_from=leaver.email,
    )

    # then each is applied to its own row and prospect
    bounced_row = Recipient.objects.get(list_email=list_email, prospect=bounced)
    assert (bounced_row.bounce_kind, bounced_row.bounced_at is not None) == ("hard", True)
    assert "User unknown" in bounced_row.bounce_reason
    complained_row = Recipient.objects.get(list_email=list_email, prospect=complainer)
    assert complained_row.complained_at is not None and complained_row.bounced_at is None
    list_email.refresh_from_db()
    assert (list_email.hard_bounce_count, list_email.complaint_count) == (1, 1)
    for prospect in prospects:
        prospect.refresh_from_db()
    assert bounced.hard_bounced_at is not None and not bounced.opted_out
    assert complainer.opted_out and complainer.hard_bounced_at is None
    assert leaver.opted_out
    assert Activity.objects.filter(
        prospect_id=leaver.pk, type=ActivityType.EMAIL_UNSUBSCRIBED
    ).exists()

    # when the receiving server sends the same bounce again (it retried), nothing changes
    deliver(inbound, RETURN_PATH, dsn(sent_to(smtp_sink, bounced.email), bounced.email))
    list_email.refresh_from_db()
    assert list_email.hard_bounce_count == 1
    assert (
        Activity.objects.filter(prospect_id=bounced.pk, type=ActivityType.EMAIL_BOUNCED).count()
        == 1
    )


def test_oversize_mail_is_refused_with_552_and_garbage_changes_nothing(
    inbound: InboundSmtpServer,
    smtp_sink: SmtpSink,
    verified_domain: SendingDomain,
    account_identity: AccountSettings,
) -> None:
    # given a sent message
    prospect = ProspectFactory.create()
    list_email = send_list_email(verified_domain, [prospect])
    original = sent_to(smtp_sink, prospect.email)

    # when a message over the limit is sent: refused with 552, at MAIL (SIZE) or after DATA
    huge = dsn(original, prospect.email) + (b"X" * 76 + b"\r\n") * (MAX_BYTES // 78 + 10)
    with pytest.raises(smtplib.SMTPResponseException) as refused:
        deliver(inbound, RETURN_PATH, huge)
    assert refused.value.smtp_code == 552
    # and the same without announcing its size
    with smtplib.SMTP(inbound.host, inbound.port, timeout=10) as client:
        client.ehlo()
        client.esmtp_features.pop("size", None)
        with pytest.raises(smtplib.SMTPDataError) as too_much:
            client.sendmail("", [RETURN_PATH], huge)
    assert too_much.value.smtp_code == 552

    # when strangers send garbage: protocol noise, binary bytes, a bounce-looking HTML mail
    with socket.create_connection((inbound.host, inbound.port), timeout=10) as raw:
        raw.recv(1024)
        raw.sendall(
            b"\x00\xff\xfe GARBAGE\r\nHELO\r\nMAIL FROM:<<<>>>\r\nDATA\r\n"
            + b"A" * 5000
            + b"\r\nQUIT\r\n"
        )
        try:
            while raw.recv(4096):
                pass
        except OSError:
            pass  # the server may hang up on a line this long; that is its right
    try:
        deliver(inbound, RETURN_PATH, bytes(range(256)) * 20)
    except smtplib.SMTPDataError as error:
        assert error.smtp_code == 500  # aiosmtpd: a line over RFC 5321's limit
    deliver(inbound, RETURN_PATH, b"\r\n".join([bytes(range(14, 256))] * 20))
    deliver(
        inbound,
        RETURN_PATH,
        crlf(
            "From: postmaster@isp.example.ne.jp\nSubject: 配信エラー\n"
            'Content-Type: text/html; charset="iso-2022-jp"\n\n'
            "<html><body><p>Mail to <b>someone@isp.example.ne.jp</b> failed."
            "<script>alert(1)</script></p></body></html>\n"
        ),
    )
    deliver(inbound, "unsubscribe@mail.example.jp", crlf("Subject: =?utf-8?B?!!!?=\n\nhi\n"))

    # then nothing changed, and the server still applies a real bounce afterwards
    row = Recipient.objects.get(list_email=list_email)
    assert row.bounced_at is None and row.status == RecipientStatus.SENT
    deliver(inbound, RETURN_PATH, dsn(original, prospect.email, status="4.2.2", action="delayed"))
    row.refresh_from_db()
    assert row.bounce_kind == "soft"
    prospect.refresh_from_db()
    assert prospect.soft_bounce_count == 1


def test_only_our_mailboxes_are_accepted(
    inbound: InboundSmtpServer, verified_domain: SendingDomain
) -> None:
    accepted = [
        RETURN_PATH,
        "Bounces+r-123@MAIL.example.jp",
        FEEDBACK_LOOP,
        "unsubscribe@mail.example.jp",
    ]
    refused = [
        "postmaster@mail.example.jp",
        "unsubscribe@another.example.jp",
        "bounces@example.jp",
        "not-an-address",
        "x" * 300 + "@mail.example.jp",
    ]
    with smtplib.SMTP(inbound.host, inbound.port, timeout=10) as client:
        client.ehlo()
        for address in accepted + refused:
            client.rset()
            client.mail("")
            code, _message = client.rcpt(address)
            assert (code == 250) is (address in accepted), (address, code)


def test_a_message_the_broker_does_not_take_is_answered_451(settings: Any) -> None:
    # given the broker is unreachable (a Redis port nobody listens on)
    from mapp.celery import app

    settings.EMAIL_RETURN_PATH = RETURN_PATH
    broker_url = app.conf.broker_url
    app.conf.update(broker_url=f"redis://127.0.0.1:{free_port()}/0")
    app._pool = None  # type: ignore[attr-defined]
    app.amqp._producer_pool = None  # type: ignore[attr-defined]
    server = InboundSmtpServer(host="127.0.0.1", port=free_port()).start()
    try:
        # when a bounce arrives, then it is refused temporarily, so the sender keeps it
        with pytest.raises(smtplib.SMTPDataError) as temporary:
            deliver(server, RETURN_PATH, crlf("Subject: bounce\n\nbody\n"))
        assert temporary.value.smtp_code == 451
    finally:
        server.stop()
        app.conf.update(broker_url=broker_url)
        app._pool = None  # type: ignore[attr-defined]
        app.amqp._producer_pool = None  # type: ignore[attr-defined]


# --- reading messages (no server) ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_report_naming_several_addresses_is_applied_per_address(
    verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    first, second = ProspectFactory.create_batch(2)
    list_email = make_sent_send(verified_domain, [first, second])
    two = dsn(b"Subject: x", first.email).replace(
        b"\r\n\r\n--B0UND\r\nContent-Type: text/rfc822-headers",
        crlf(
            f"\n\nFinal-Recipient: rfc822; {second.email}\nAction: failed\nStatus: 5.2.1\n"
            "\n--B0UND\nContent-Type: text/rfc822-headers"
        ),
    )
    outcome = inbound_message_apply(data=two, recipients=[RETURN_PATH])
    assert (outcome.kind, outcome.applied) == ("bounce", 2)
    assert Recipient.objects.filter(list_email=list_email, bounce_kind="hard").count() == 2


@pytest.mark.django_db
def test_the_task_drops_an_unreadable_payload_and_ignores_strangers_mail() -> None:
    assert apply_inbound_message("***not base64***", [RETURN_PATH]) == "unreadable"
    noise = base64.b64encode(b"Subject: hello\r\n\r\nJust saying hi.\r\n").decode()
    assert apply_inbound_message(noise, [RETURN_PATH]) == "ignored"
    assert apply_inbound_message(noise, "not a list") == "ignored"  # type: ignore[arg-type]
    assert unsubscribe_token_in(b"Subject: Re: not-a-token:abc:def\r\n\r\n") is None
    assert unsubscribe_token_in(b"\xff\xfe\x00") is None
