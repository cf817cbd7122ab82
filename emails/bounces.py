"""Reading bounce messages (DSN, RFC 3464) and complaints (ARF, RFC 5965).

Whatever arrives at the bounce address is written by strangers: mail servers of every age,
auto-replies, spam, and people probing us. So both parsers take bytes, read at most
MAX_MESSAGE_BYTES of them, never raise, and answer None when the message is not what they
read. A standard DSN is read field by field (status code, diagnostic, recipient); anything else
is handed to flufl.bounce, whose detectors know the formats found in the wild.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser
from email.utils import getaddresses, parseaddr
from typing import Literal

from flufl.bounce import all_failures

logger = logging.getLogger(__name__)

#: Bytes of a message read at most. A DSN or ARF report puts what we need first (the report
#: parts come before the returned message); 2 MB parses in well under a second and caps the
#: memory a hostile sender can make a worker spend.
MAX_MESSAGE_BYTES = 2 * 1024 * 1024
#: Characters of a diagnostic kept: enough for the longest real SMTP replies (Gmail's span three
#: lines), short enough to show in a table and store per recipient.
MAX_DIAGNOSTIC_CHARS = 500
#: Header the send pipeline puts on every message so a bounce or complaint that hides the
#: recipient's address (Outlook and Yahoo redact it in complaints) still names the recipient.
RECIPIENT_HEADER = "X-Mapp-Recipient"
#: Feedback types that mean "this recipient did not want this email" (RFC 5965 §7.3).
COMPLAINT_FEEDBACK_TYPES = frozenset({"abuse", "fraud"})

BounceKind = Literal["hard", "soft"]

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_REPLY = re.compile(r"^\s*([245])\d\d\b")
_TAG = re.compile(r"<[^>]*>")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class BouncedRecipient:
    """One recipient a bounce reports.

    `address` is lower-cased like prospects' addresses. `status` is the enhanced status code
    ("5.1.1") or "" when the bounce had none; `kind` is hard for 5.x.x (or a failure without a
    code), soft for 4.x.x (or a delay). `diagnostic` is the remote server's words, plain text,
    clipped: store it as text and escape it when shown.
    """

    address: str
    kind: BounceKind
    status: str = ""
    diagnostic: str = ""


@dataclass(frozen=True)
class BounceReport:
    recipients: tuple[BouncedRecipient, ...]
    #: Message-ID of the message that bounced, as in its header ("<…>"), or "".
    original_message_id: str = ""
    #: Our RECIPIENT_HEADER from the returned message or headers, or "".
    mapp_recipient: str = ""
    reporting_mta: str = ""
    #: True when read from an RFC 3464 delivery-status part, False when found by heuristics.
    is_dsn: bool = True

    @property
    def hard_bounces(self) -> tuple[BouncedRecipient, ...]:
        return tuple(recipient for recipient in self.recipients if recipient.kind == "hard")

    @property
    def soft_bounces(self) -> tuple[BouncedRecipient, ...]:
        return tuple(recipient for recipient in self.recipients if recipient.kind == "soft")


@dataclass(frozen=True)
class ComplaintReport:
    """A recipient marked our email as spam (an ARF report from a feedback loop).

    Receivers often redact the recipient (`original_recipient` is then "" or a placeholder),
    which is why the send pipeline's RECIPIENT_HEADER is read too.
    """

    feedback_type: str
    original_recipient: str = ""
    original_message_id: str = ""
    mapp_recipient: str = ""
    original_mail_from: str = ""
    user_agent: str = ""
    reporting_mta: str = ""


def parse_bounce(message_bytes: bytes) -> BounceReport | None:
    """The recipients a bounce reports as failed or delayed, or None if it reports none."""
    message = _parse(message_bytes)
    if message is None:
        return None
    try:
        recipients, reporting_mta = _dsn_recipients(message)
        is_dsn = bool(recipients)
        if not recipients:
            recipients = _heuristic_recipients(message)
        if not recipients:
            return None
        original = _original_headers(message)
    except (LookupError, TypeError, ValueError, AttributeError, RecursionError):
        # The stdlib parser records defects instead of raising, but a structure it accepted
        # can still be one no reader expects (a list where a string should be, nesting deep
        # enough to exhaust the stack); such a message is not a bounce we can use.
        logger.warning("unreadable bounce message", exc_info=True)
        return None
    return BounceReport(
        recipients=recipients,
        original_message_id=_header(original, "Message-ID"),
        mapp_recipient=_header(original, RECIPIENT_HEADER),
        reporting_mta=reporting_mta,
        is_dsn=is_dsn,
    )


def parse_complaint(message_bytes: bytes) -> ComplaintReport | None:
    """The complaint an ARF report carries, or None when the message is not an ARF report of
    a complaint (other feedback types, such as not-spam or auth-failure, are not complaints)."""
    message = _parse(message_bytes)
    if message is None:
        return None
    try:
        fields = _first_part_fields(message, "message/feedback-report")
        if fields is None:
            return None
        feedback_type = _header(fields, "Feedback-Type").lower()
        if feedback_type not in COMPLAINT_FEEDBACK_TYPES:
            return None
        original = _original_headers(message)
        recipient = _address(_header(fields, "Original-Rcpt-To"))
        if not recipient and original is not None:
            recipients = getaddresses([_header(original, "To")])
            recipient = _address(recipients[0][1]) if len(recipients) == 1 else ""
    except (LookupError, TypeError, ValueError, AttributeError, RecursionError):
        logger.warning("unreadable complaint message", exc_info=True)
        return None
    return ComplaintReport(
        feedback_type=feedback_type,
        original_recipient=recipient,
        original_message_id=_header(original, "Message-ID"),
        mapp_recipient=_header(original, RECIPIENT_HEADER),
        original_mail_from=_address(_header(fields, "Original-Mail-From")),
        user_agent=_header(fields, "User-Agent"),
        reporting_mta=_after_type(_header(fields, "Reporting-MTA")),
    )


def _parse(message_bytes: bytes) -> Message | None:
    if not isinstance(message_bytes, bytes | bytearray) or not message_bytes.strip():
        return None
    try:
        # compat32 is what flufl.bounce's detectors are written for; it keeps undecodable
        # bytes as surrogates instead of failing, and _text() turns them into U+FFFD.
        return email.message_from_bytes(
            bytes(message_bytes[:MAX_MESSAGE_BYTES]), policy=email.policy.compat32
        )
    except (LookupError, TypeError, ValueError, RecursionError):
        logger.warning("unparseable message at the bounce address", exc_info=True)
        return None


def _dsn_recipients(message: Message) -> tuple[tuple[BouncedRecipient, ...], str]:
    """Per-recipient blocks of every message/delivery-status part (RFC 3464 §2.3)."""
    recipients: dict[str, BouncedRecipient] = {}
    reporting_mta = ""
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        for block in blocks:
            if not isinstance(block, Message):
                continue
            if block.get("Reporting-MTA") is not None and not reporting_mta:
                reporting_mta = _after_type(_header(block, "Reporting-MTA"))
            recipient = _dsn_block_recipient(block)
            if recipient is None:
                continue
            # One report can name an address twice (delayed on one route, failed on another):
            # the failure is what counts.
            known = recipients.get(recipient.address)
            if known is None or (known.kind == "soft" and recipient.kind == "hard"):
                recipients[recipient.address] = recipient
    return tuple(recipients.values()), reporting_mta


def _dsn_block_recipient(block: Message) -> BouncedRecipient | None:
    action = _header(block, "Action").lower()
    # Only failures and delays are bounces; delivered, relayed and expanded are success
    # notices. (opensmtpd writes "error" for "failed".)
    if not action.startswith(("fail", "error", "delayed")):
        return None
    address = _address(_after_type(_header(block, "Original-Recipient"))) or _address(
        _after_type(_header(block, "Final-Recipient"))
    )
    if not address:
        return None
    diagnostic = _clip(_after_type(_field(block, "Diagnostic-Code")))
    status_match = _STATUS.search(_header(block, "Status")) or _STATUS.search(diagnostic)
    status = ".".join(status_match.groups()) if status_match else ""
    if status.startswith("5"):
        kind: BounceKind = "hard"
    elif status.startswith("4"):
        kind = "soft"
    else:
        reply = _SMTP_REPLY.match(diagnostic)
        if reply is not None and reply.group(1) in "45":
            kind = "hard" if reply.group(1) == "5" else "soft"
        else:
            kind = "soft" if action.startswith("delayed") else "hard"
    return BouncedRecipient(address=address, kind=kind, status=status, diagnostic=diagnostic)


def _heuristic_recipients(message: Message) -> tuple[BouncedRecipient, ...]:
    """Non-DSN bounces (qmail, old Exchange, ISP formats) through flufl.bounce's detectors."""
    try:
        temporary, permanent = all_failures(message)
    except Exception:
        # Seventeen third-party heuristic detectors run over hostile input here, and they
        # re-raise whatever they hit; their failure means "no bounce recognised", not a crash
        # of the worker reading the mailbox.
        logger.warning("flufl.bounce failed on a message", exc_info=True)
        return ()
    diagnostic = _first_text(message)
    recipients = [
        BouncedRecipient(address=address, kind="hard", diagnostic=diagnostic)
        for address in sorted({_address(raw.decode("ascii", "replace")) for raw in permanent})
        if address
    ]
    hard = {recipient.address for recipient in recipients}
    recipients += [
        BouncedRecipient(address=address, kind="soft", diagnostic=diagnostic)
        for address in sorted({_address(raw.decode("ascii", "replace")) for raw in temporary})
        if address and address not in hard
    ]
    return tuple(recipients)


def _original_headers(message: Message) -> Message | None:
    """Headers of the returned original: a message/rfc822 part, or text/rfc822-headers."""
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        elif content_type == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                return BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    return None


def _first_part_fields(message: Message, content_type: str) -> Message | None:
    """The fields of the first part of `content_type` (the parser reads message/* parts as a
    nested message; a part it left as text is read as headers)."""
    for part in message.walk():
        if part.get_content_type() != content_type:
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            return payload[0] if payload and isinstance(payload[0], Message) else None
        if isinstance(payload, str):
            return HeaderParser(policy=email.policy.compat32).parsestr(payload)
    return None


def _first_text(message: Message) -> str:
    """The explanation a non-DSN bounce gives people: its first text part, tags removed."""
    for part in message.walk():
        if part.get_content_maintype() != "text" or part.get_content_subtype() not in (
            "plain",
            "html",
        ):
            continue
        raw = part.get_payload(decode=True)
        if not isinstance(raw, bytes):
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            text = raw[: MAX_DIAGNOSTIC_CHARS * 8].decode(charset, "replace")
        except LookupError:  # a charset Python does not know
            text = raw[: MAX_DIAGNOSTIC_CHARS * 8].decode("utf-8", "replace")
        if part.get_content_subtype() == "html":
            text = _TAG.sub(" ", text)
        return _clip(text)
    return ""


def _header(message: Message | None, name: str) -> str:
    return _clip(_field(message, name))


def _field(message: Message | None, name: str) -> str:
    """A header as text, unclipped (for values whose prefix is cut off before clipping)."""
    if message is None:
        return ""
    value = message.get(name)
    return "" if value is None else _text(value)


def _text(value: object) -> str:
    """A header value as clean text: compat32 hands back undecodable bytes as surrogates (or a
    Header object holding them); they become U+FFFD."""
    return str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _after_type(value: str) -> str:
    """ "rfc822; user@example.jp" → "user@example.jp" (address-type / mta-name-type prefixes)."""
    return value.split(";", 1)[1].strip() if ";" in value else value.strip()


def _address(value: str) -> str:
    address = parseaddr(value.strip())[1].strip().lower()
    return address if "@" in address and len(address) <= 254 else ""


def _clip(value: str) -> str:
    text = _WHITESPACE.sub(" ", _CONTROL.sub(" ", value)).strip()
    return text[:MAX_DIAGNOSTIC_CHARS]
