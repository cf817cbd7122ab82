"""Bounces (RFC 3464 DSN) and complaints (RFC 5965 ARF) as real receivers send them, plus the
hostile input a public bounce address gets. Samples are written after messages from Gmail,
Exchange Online, Postfix, a qmail-based Japanese ISP and Yahoo's feedback loop, with addresses
and hosts replaced by reserved example names."""

# ruff: noqa: E501 -- the samples keep the line lengths real mail servers write.

from __future__ import annotations

import pytest

from emails.bounces import (
    MAX_DIAGNOSTIC_CHARS,
    MAX_MESSAGE_BYTES,
    BouncedRecipient,
    parse_bounce,
    parse_complaint,
)

ORIGINAL_HEADERS = """\
Return-Path: <bounce+r-981273@news.example.jp>
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=news.example.jp; s=mapp1;
 h=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;
 b=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZQ==
From: =?UTF-8?B?5qCq5byP5Lya56S+44K144Oz44OX44Or?= <info@news.example.jp>
To: {to}
Subject: =?UTF-8?B?44CQ44GU5qGI5YaF44CR5paw6KO95ZOB44Km44Kn44OT44OK44O8?=
Date: Tue, 24 Nov 2026 10:12:40 +0900
Message-ID: <list-42.r-981273@news.example.jp>
X-Mapp-Recipient: r-981273
List-Unsubscribe: <https://go.example.jp/u/abc123>, <mailto:u-abc123@news.example.jp>
List-Unsubscribe-Post: List-Unsubscribe=One-Click
MIME-Version: 1.0
Content-Type: text/plain; charset="UTF-8"
Content-Transfer-Encoding: base64
"""

GMAIL_HARD = (
    """\
Delivered-To: bounces@news.example.jp
Return-Path: <>
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: bounce+r-981273@news.example.jp
Auto-Submitted: auto-replied
Subject: Delivery Status Notification (Failure)
References: <list-42.r-981273@news.example.jp>
In-Reply-To: <list-42.r-981273@news.example.jp>
Message-ID: <6741f2b1.050a0220.1b2c3d.0001.GMR@mx.google.com>
Date: Mon, 23 Nov 2026 17:12:45 -0800 (PST)
MIME-Version: 1.0
Content-Type: multipart/report; boundary="000000000000a1b2c3"; report-type=delivery-status

--000000000000a1b2c3
Content-Type: multipart/related; boundary="000000000000a1b2c4"

--000000000000a1b2c4
Content-Type: multipart/alternative; boundary="000000000000a1b2c5"

--000000000000a1b2c5
Content-Type: text/plain; charset="UTF-8"


** Address not found **

Your message wasn't delivered to Missing.Person@gmail.com because the address couldn't be found, or is unable to receive mail.

Learn more here: https://support.google.com/mail/?p=NoSuchUser

--000000000000a1b2c5
Content-Type: text/html; charset="UTF-8"

<html><head><style>*{font-family:Roboto}</style></head><body><h2>Address not found</h2>
<p>Your message wasn't delivered to <a style="color:#212121">Missing.Person@gmail.com</a></p>
</body></html>
--000000000000a1b2c5--

--000000000000a1b2c4--
--000000000000a1b2c3
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
Received-From-MTA: dns; mail.news.example.jp
Arrival-Date: Mon, 23 Nov 2026 17:12:42 -0800 (PST)
X-Original-Message-ID: <list-42.r-981273@news.example.jp>

Final-Recipient: rfc822; Missing.Person@gmail.com
Action: failed
Status: 5.1.1
Remote-MTA: dns; gmail-smtp-in.l.google.com. (142.250.157.27, the server for the domain gmail.com.)
Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does not exist. Please try
 550-5.1.1 double-checking the recipient's email address for typos or
 550-5.1.1 unnecessary spaces. For more information, go to
 550 5.1.1  https://support.google.com/mail/?p=NoSuchUser 41be03b00d2f7-7c3a1b2c3d4si1234567a12.123 - gsmtp
Last-Attempt-Date: Mon, 23 Nov 2026 17:12:45 -0800 (PST)

--000000000000a1b2c3
Content-Type: message/rfc822

"""
    + ORIGINAL_HEADERS.format(to="Missing.Person@gmail.com")
    + """
5paw6KO95ZOB44Km44Kn44OT44OK44O844Gu44GK55+l44KJ44Gb
--000000000000a1b2c3--
"""
)

OUTLOOK_HARD = (
    """\
From: postmaster@outlook.com
To: bounce+r-981273@news.example.jp
Date: Tue, 24 Nov 2026 01:12:47 +0000
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="a1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d"
X-MS-Exchange-Message-Is-Ndr:
Content-Language: en-US
Message-ID: <a1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d@TYCP286MB1234.JPNP286.PROD.OUTLOOK.COM>
In-Reply-To: <list-42.r-981273@news.example.jp>
Subject: Undeliverable: =?utf-8?B?44CQ44GU5qGI5YaF44CR?=
Auto-Submitted: auto-replied
MIME-Version: 1.0

--a1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d
Content-Type: multipart/alternative; differences=Content-Type;
\tboundary="b2c3d4e5-f6a7-4b5c-9d0e-1f2a3b4c5d6e"

--b2c3d4e5-f6a7-4b5c-9d0e-1f2a3b4c5d6e
Content-Type: text/plain; charset="us-ascii"
Content-Transfer-Encoding: quoted-printable

Your message to Jiro.Sato@contoso.example couldn't be delivered.
Jiro.Sato wasn't found at contoso.example.
news.example.jp=A0=A0=A0=A0=A0Office 365=A0=A0=A0=A0=A0Jiro.Sato
Action Required=A0=A0=A0=A0=A0Recipient
Unknown To address

--b2c3d4e5-f6a7-4b5c-9d0e-1f2a3b4c5d6e
Content-Type: text/html; charset="us-ascii"
Content-Transfer-Encoding: quoted-printable

<html><head><meta http-equiv=3D"Content-Type" content=3D"text/html; charset=3Dus-ascii"><script>alert('ndr')</script></head>
<body><div style=3D"font-family:'Segoe UI'">Your message to <a href=3D"mailto:Jiro.Sato@contoso.example">Jiro.Sato@contoso.example</a> couldn't be delivered.</div></body></html>

--b2c3d4e5-f6a7-4b5c-9d0e-1f2a3b4c5d6e--

--a1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d
Content-Type: message/delivery-status

Reporting-MTA: dns;TYCP286MB1234.JPNP286.PROD.OUTLOOK.COM
Received-From-MTA: dns;mail.news.example.jp
Arrival-Date: Tue, 24 Nov 2026 01:12:45 +0000

Original-Recipient: rfc822;Jiro.Sato@contoso.example
Final-Recipient: rfc822;Jiro.Sato@contoso.example
Action: failed
Status: 5.1.10
Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup

--a1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d
Content-Type: text/rfc822-headers

"""
    + ORIGINAL_HEADERS.format(to="Jiro.Sato@contoso.example")
    + """
--a1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d--
"""
)

POSTFIX_MIXED = (
    """\
Return-Path: <>
Received: by mail.news.example.jp (Postfix)
\tid 4Xyz1234AbcD; Tue, 24 Nov 2026 10:42:45 +0900 (JST)
Date: Tue, 24 Nov 2026 10:42:45 +0900 (JST)
From: MAILER-DAEMON@mail.news.example.jp (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: bounce+r-981273@news.example.jp
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="4Xyz1234AbcD.1763948565/mail.news.example.jp"
Content-Transfer-Encoding: 8bit
Message-Id: <20261124014245.4Xyz1234AbcD@mail.news.example.jp>

This is a MIME-encapsulated message.

--4Xyz1234AbcD.1763948565/mail.news.example.jp
Content-Description: Notification
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

This is the mail system at host mail.news.example.jp.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

<hanako@example.co.jp>: host mx.example.co.jp[203.0.113.5] said: 452 4.2.2
    Mailbox full (in reply to RCPT TO command)

<ichiro@example.ne.jp>: host mx1.example.ne.jp[198.51.100.25] said: 550 5.1.1
    <ichiro@example.ne.jp>: Recipient address rejected: User unknown in local
    recipient table (in reply to RCPT TO command)

--4Xyz1234AbcD.1763948565/mail.news.example.jp
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.news.example.jp
X-Postfix-Queue-ID: 4Xyz1234AbcD
X-Postfix-Sender: rfc822; bounce+r-981273@news.example.jp
Arrival-Date: Tue, 24 Nov 2026 10:12:41 +0900 (JST)

Final-Recipient: rfc822; hanako@example.co.jp
Original-Recipient: rfc822;hanako@example.co.jp
Action: delayed
Status: 4.2.2
Remote-MTA: dns; mx.example.co.jp
Diagnostic-Code: smtp; 452 4.2.2 Mailbox full
Will-Retry-Until: Sat, 28 Nov 2026 10:12:41 +0900 (JST)

Final-Recipient: rfc822; ichiro@example.ne.jp
Original-Recipient: rfc822;ichiro@example.ne.jp
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx1.example.ne.jp
Diagnostic-Code: smtp; 550 5.1.1 <ichiro@example.ne.jp>: Recipient address
    rejected: User unknown in local recipient table

Final-Recipient: rfc822; kenta@example.com
Action: delivered
Status: 2.0.0

--4Xyz1234AbcD.1763948565/mail.news.example.jp
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers
Content-Transfer-Encoding: 8bit

"""
    + ORIGINAL_HEADERS.format(to="ichiro@example.ne.jp")
    + """
--4Xyz1234AbcD.1763948565/mail.news.example.jp--
"""
)

QMAIL_JAPANESE_ISP = """\
Return-Path: <>
Date: 24 Nov 2026 01:13:02 -0000
From: MAILER-DAEMON@mx.example.ne.jp
To: bounce+r-981273@news.example.jp
Subject: failure notice
MIME-Version: 1.0
Content-Type: text/plain; charset=ISO-2022-JP
Content-Transfer-Encoding: 7bit

Hi. This is the qmail-send program at mx.example.ne.jp.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<suzuki@example.ne.jp>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

Return-Path: <bounce+r-981273@news.example.jp>
From: info@news.example.jp
To: suzuki@example.ne.jp
Subject: =?ISO-2022-JP?B?GyRCJDQwRkZiGyhC?=

\x1b$B$3$s$K$A$O\x1b(B
"""

ARF_YAHOO = (
    """\
Return-Path: <feedback@arf.mail.yahoo.com>
From: Yahoo! Mail AntiSpam Feedback <feedback@arf.mail.yahoo.com>
To: fbl@news.example.jp
Subject: FW: =?UTF-8?B?44CQ44GU5qGI5YaF44CR?=
Date: Tue, 24 Nov 2026 03:10:11 +0000
Message-ID: <arf.1763953811.81223@arf.mail.yahoo.com>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
\tboundary="----=_Part_81223_1763953811"

------=_Part_81223_1763953811
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP 192.0.2.25 on Tue, 24 Nov 2026 10:12:44 +0900.
For more information about this format please see http://www.mipassoc.org/arf/.

------=_Part_81223_1763953811
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: Yahoo!-Mail-Feedback/2.0
Version: 1
Original-Mail-From: <bounce+r-981273@news.example.jp>
Original-Rcpt-To: <Ichiro.Tanaka@yahoo.example>
Arrival-Date: Tue, 24 Nov 2026 10:12:44 +0900
Reporting-MTA: dns; mta1028.mail.gq1.yahoo.com
Source-IP: 192.0.2.25
Authentication-Results: mta1028.mail.gq1.yahoo.com; dkim=pass header.d=news.example.jp

------=_Part_81223_1763953811
Content-Type: message/rfc822
Content-Disposition: inline

"""
    + ORIGINAL_HEADERS.format(to="Ichiro.Tanaka@yahoo.example")
    + """
5paw6KO95ZOB44Km44Kn44OT44OK44O844Gu44GK55+l44KJ44Gb

------=_Part_81223_1763953811--
"""
)


def as_bytes(sample: str, *, crlf: bool = False) -> bytes:
    data = sample.encode("latin-1") if "\x1b" in sample else sample.encode("utf-8")
    return data.replace(b"\n", b"\r\n") if crlf else data


def test_gmail_unknown_user_is_a_hard_bounce() -> None:
    report = parse_bounce(as_bytes(GMAIL_HARD))

    assert report is not None
    assert report.is_dsn
    assert report.reporting_mta == "googlemail.com"
    [recipient] = report.recipients
    assert recipient.address == "missing.person@gmail.com"
    assert (recipient.kind, recipient.status) == ("hard", "5.1.1")
    assert recipient.diagnostic.startswith(
        "550-5.1.1 The email account that you tried to reach does not exist. Please try "
        "550-5.1.1 double-checking"
    )
    assert "\n" not in recipient.diagnostic
    assert report.original_message_id == "<list-42.r-981273@news.example.jp>"
    assert report.mapp_recipient == "r-981273"
    assert report.hard_bounces == report.recipients
    assert report.soft_bounces == ()


def test_outlook_ndr_with_rfc822_headers_part() -> None:
    report = parse_bounce(as_bytes(OUTLOOK_HARD, crlf=True))

    assert report is not None
    assert report.recipients == (
        BouncedRecipient(
            address="jiro.sato@contoso.example",
            kind="hard",
            status="5.1.10",
            diagnostic=(
                "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP "
                "address lookup"
            ),
        ),
    )
    assert report.reporting_mta == "TYCP286MB1234.JPNP286.PROD.OUTLOOK.COM"
    assert report.original_message_id == "<list-42.r-981273@news.example.jp>"
    assert report.mapp_recipient == "r-981273"


def test_postfix_report_with_a_delay_a_failure_and_a_delivery() -> None:
    report = parse_bounce(as_bytes(POSTFIX_MIXED))

    assert report is not None
    assert [(item.address, item.kind, item.status) for item in report.recipients] == [
        ("hanako@example.co.jp", "soft", "4.2.2"),
        ("ichiro@example.ne.jp", "hard", "5.1.1"),
    ]
    assert report.soft_bounces[0].diagnostic == "452 4.2.2 Mailbox full"
    assert report.hard_bounces[0].diagnostic == (
        "550 5.1.1 <ichiro@example.ne.jp>: Recipient address rejected: User unknown in local "
        "recipient table"
    )
    assert report.mapp_recipient == "r-981273"


def test_kind_follows_the_status_code_then_the_smtp_reply_then_the_action() -> None:
    def dsn(block: str) -> bytes:
        return as_bytes(
            "From: MAILER-DAEMON@mx.example.jp\nTo: bounce@news.example.jp\n"
            'MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
            "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.jp\n\n"
            f"{block}\n--b--\n"
        )

    cases = {
        # a 5.x.x status wins even on a "delayed" action
        "Final-Recipient: rfc822; a@example.jp\nAction: delayed\nStatus: 5.7.1\n": (
            "hard",
            "5.7.1",
        ),
        # no Status field: the enhanced code inside the diagnostic
        "Final-Recipient: rfc822; a@example.jp\nAction: failed\nDiagnostic-Code: smtp; 421 4.7.0 Try again later\n": (
            "soft",
            "4.7.0",
        ),
        # no enhanced code anywhere: the basic SMTP reply code
        "Final-Recipient: rfc822; a@example.jp\nAction: failed\nDiagnostic-Code: smtp; 450 greylisted\n": (
            "soft",
            "",
        ),
        # nothing but the action (opensmtpd writes "error")
        "Final-Recipient: rfc822; a@example.jp\nAction: error\n": ("hard", ""),
        "Final-Recipient: rfc822; a@example.jp\nAction: delayed\n": ("soft", ""),
    }
    for block, (kind, status) in cases.items():
        report = parse_bounce(dsn(block))
        assert report is not None, block
        assert (report.recipients[0].kind, report.recipients[0].status) == (kind, status), block


def test_non_dsn_bounce_from_a_japanese_isp_through_flufl_heuristics() -> None:
    report = parse_bounce(as_bytes(QMAIL_JAPANESE_ISP))

    assert report is not None
    assert not report.is_dsn
    [recipient] = report.recipients
    assert (recipient.address, recipient.kind, recipient.status) == (
        "suzuki@example.ne.jp",
        "hard",
        "",
    )
    assert recipient.diagnostic.startswith(
        "Hi. This is the qmail-send program at mx.example.ne.jp."
    )
    assert len(recipient.diagnostic) <= MAX_DIAGNOSTIC_CHARS
    assert report.original_message_id == ""


def test_arf_abuse_report_is_a_complaint() -> None:
    complaint = parse_complaint(as_bytes(ARF_YAHOO, crlf=True))

    assert complaint is not None
    assert complaint.feedback_type == "abuse"
    assert complaint.original_recipient == "ichiro.tanaka@yahoo.example"
    assert complaint.original_message_id == "<list-42.r-981273@news.example.jp>"
    assert complaint.mapp_recipient == "r-981273"
    assert complaint.original_mail_from == "bounce+r-981273@news.example.jp"
    assert complaint.user_agent == "Yahoo!-Mail-Feedback/2.0"
    assert complaint.reporting_mta == "mta1028.mail.gq1.yahoo.com"
    # and a complaint is not a bounce
    assert parse_bounce(as_bytes(ARF_YAHOO)) is None


def test_redacted_complaint_still_names_the_recipient_through_our_header() -> None:
    # given a Microsoft-style report: no Original-Rcpt-To, the original's To redacted
    redacted = ARF_YAHOO.replace("Original-Rcpt-To: <Ichiro.Tanaka@yahoo.example>\n", "").replace(
        "To: Ichiro.Tanaka@yahoo.example", "To: redacted@yahoo.example"
    )

    complaint = parse_complaint(as_bytes(redacted))

    assert complaint is not None
    assert complaint.original_recipient == "redacted@yahoo.example"
    assert complaint.mapp_recipient == "r-981273"


@pytest.mark.parametrize("feedback_type", ["not-spam", "auth-failure", "virus"])
def test_feedback_that_is_not_a_complaint_is_ignored(feedback_type: str) -> None:
    other = ARF_YAHOO.replace("Feedback-Type: abuse", f"Feedback-Type: {feedback_type}")

    assert parse_complaint(as_bytes(other)) is None


def test_messages_that_are_neither_give_none() -> None:
    out_of_office = as_bytes(
        "From: Hanako <hanako@example.co.jp>\nTo: info@news.example.jp\n"
        "Subject: =?UTF-8?B?5LiN5Zyo44Gu44GK55+l44KJ44Gb?=\nAuto-Submitted: auto-replied\n"
        "Content-Type: text/plain; charset=utf-8\n\n"
        "11月30日まで不在にしております。急ぎのご用件は sales@example.co.jp までご連絡ください。\n"
    )
    assert parse_bounce(out_of_office) is None
    assert parse_complaint(out_of_office) is None
    assert parse_complaint(as_bytes(GMAIL_HARD)) is None
    for junk in (b"", b"   \r\n", bytes(range(256)) * 50, b"\x00" * 10_000):
        assert parse_bounce(junk) is None
        assert parse_complaint(junk) is None


def test_malformed_mime_gives_a_best_effort_report() -> None:
    # given a DSN cut off in the middle of its returned message (no closing boundary), with a
    # boundary parameter that lies about another part
    truncated = GMAIL_HARD[: GMAIL_HARD.index("5paw6KO95")].replace(
        'Content-Type: multipart/related; boundary="000000000000a1b2c4"',
        'Content-Type: multipart/related; boundary="never-used"',
    )

    report = parse_bounce(as_bytes(truncated))

    assert report is not None
    assert report.recipients[0].address == "missing.person@gmail.com"
    assert report.recipients[0].kind == "hard"


def test_hostile_fields_are_kept_as_clipped_text() -> None:
    # given a diagnostic with HTML, control characters, invalid UTF-8 and Shift_JIS bytes, and
    # 5,000 characters of padding
    hostile = (
        as_bytes(POSTFIX_MIXED)
        .replace(
            b"Diagnostic-Code: smtp; 452 4.2.2 Mailbox full",
            b"Diagnostic-Code: smtp; 452 4.2.2 <script>alert(1)</script>\x07\x1b[31m "
            + "メールボックス容量超過".encode("shift_jis")
            + b" \xff\xfe "
            + b"A" * 5000,
        )
        .replace(b"X-Mapp-Recipient: r-981273", b"X-Mapp-Recipient: r-98\xff1273")
    )

    report = parse_bounce(hostile)

    assert report is not None
    soft = report.soft_bounces[0]
    assert soft.diagnostic.startswith("452 4.2.2 <script>alert(1)</script>")
    assert len(soft.diagnostic) == MAX_DIAGNOSTIC_CHARS
    assert "\x07" not in soft.diagnostic
    assert "\x1b" not in soft.diagnostic
    assert "\ufffd" in soft.diagnostic
    assert report.mapp_recipient == "r-98\ufffd1273"


def test_huge_message_is_read_up_to_the_cap() -> None:
    # given a bounce that returns a 6 MB original
    attachment = ("QUFBQUFB" * 9 + "\n") * 80_000
    huge = as_bytes(
        GMAIL_HARD.replace("5paw6KO95ZOB44Km44Kn44OT44OK44O844Gu44GK55+l44KJ44Gb\n", attachment)
    )
    assert len(huge) > 2 * MAX_MESSAGE_BYTES

    report = parse_bounce(huge)
    complaint = parse_complaint(huge)

    assert report is not None
    assert report.recipients[0].address == "missing.person@gmail.com"
    assert complaint is None


def nested_bounce(depth: int) -> bytes:
    opening = "".join(
        f'--b{level}\nContent-Type: multipart/mixed; boundary="b{level + 1}"\n\n'
        for level in range(depth)
    )
    return as_bytes(
        'From: MAILER-DAEMON@mx.example.jp\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b0"\n\n'
        + opening
        + f"--b{depth}\nContent-Type: message/delivery-status\n\n"
        "Final-Recipient: rfc822; deep@example.jp\nAction: failed\nStatus: 5.1.1\n"
    )


def test_nested_multiparts_are_read_and_absurd_nesting_does_not_raise() -> None:
    report = parse_bounce(nested_bounce(40))
    assert report is not None
    assert report.recipients[0].address == "deep@example.jp"

    # nesting deeper than Python's stack: no bounce we can read, and no exception
    assert parse_bounce(nested_bounce(5_000)) is None
    assert parse_complaint(nested_bounce(5_000)) is None
