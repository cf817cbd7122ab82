"""The inbound SMTP endpoint: bounces (DSN), spam complaints (ARF) and List-Unsubscribe mails.

Receivers send them to three kinds of mailbox: the Return-Path of list emails
(EMAIL_RETURN_PATH, with any ``+tag``), the feedback-loop addresses registered with mailbox
providers (INBOUND_SMTP_MAILBOXES), and the ``mailto:`` of List-Unsubscribe
(EMAIL_UNSUBSCRIBE_MAILBOX, and ``unsubscribe@<sending domain>``, which emails.rendering uses
when that setting is empty). Mail for anything else is refused at RCPT (550).

The server (aiosmtpd, its own thread and event loop, started by ``manage.py inbound_smtp``)
does no database work on its loop. A message over INBOUND_SMTP_MAX_MESSAGE_BYTES is refused
with 552; any other is handed to the Celery broker as task ``emails.apply_inbound_message``
(from a worker thread) and answered 250 only once the broker has it, else 451 so that the
sending server tries again later: nothing answered 250 is lost, and a burst waits in the
queue, not in the SMTP loop. The task reads the message (emails.bounces, which never raises on
what strangers send) and applies it through emails.feedback, which counts each report once,
so a retried task or a receiver that sends the same report twice changes nothing twice.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.policy
import logging
import re
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from django.conf import settings
from django.db import DatabaseError, connections

from emails.bounces import MAX_MESSAGE_BYTES, parse_bounce, parse_complaint
from emails.dkim import DkimError, ascii_domain
from emails.feedback import bounce_record, complaint_record
from emails.models import SendingDomain
from emails.unsubscribe import UnsubscribeToken, prospect_unsubscribe, unsubscribe_token_load

logger = logging.getLogger(__name__)

Mailbox = Literal["unsubscribe", "feedback"]

#: Defaults of the INBOUND_SMTP_* settings.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 2525
#: Bounces return the original message, which can carry attachments: 10 MB accepts them; only
#: the first MAX_MESSAGE_BYTES (2 MB, emails.bounces) are queued and read.
DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024
#: Our messages have one recipient, and so does what replies to them; a report is never
#: addressed to many of our mailboxes at once.
MAX_RECIPIENTS = 10
#: How long the server trusts its list of sending domains (for unsubscribe@<domain>) before
#: reading it again: a domain added in the app is accepted within a minute.
SENDING_DOMAINS_CACHE_SECONDS = 60.0
#: Threads that hand messages to the broker (and read the sending domains): a publish takes about
#: a millisecond, so a few keep up with hundreds of messages a second, and a burst waits for them
#: instead of opening unbounded threads.
HANDOFF_THREADS = 8
#: Header bytes read for the unsubscribe token; a subject is in the first few hundred.
MAX_HEADER_BYTES = 64 * 1024
UNSUBSCRIBE_LOCAL_PART = "unsubscribe"

# A django.core.signing token: base64url payload, timestamp and signature joined by colons
# (compressed payloads start with a dot).
_TOKEN = re.compile(r"\.?[A-Za-z0-9_-]+:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+")


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def _normalised(address: str) -> tuple[str, str] | None:
    """(local part lower-cased, ASCII domain) of an envelope address, or None."""
    address = str(address).strip().strip("<>")
    local, _at, domain = address.rpartition("@")
    if not local or not domain or len(address) > 254:
        return None
    try:
        return local.lower(), ascii_domain(domain)
    except DkimError:
        return None


def mailbox_kind(address: str, *, sending_domains: Callable[[], Collection[str]]) -> Mailbox | None:
    """What mail to ``address`` is for here, or None when it is not one of our mailboxes.

    ``sending_domains`` is called only when the answer depends on it (unsubscribe@<domain>).
    """
    parts = _normalised(address)
    if parts is None:
        return None
    local, domain = parts
    configured = _normalised(_setting("EMAIL_UNSUBSCRIBE_MAILBOX", "") or "")
    if configured is not None and (local, domain) == configured:
        return "unsubscribe"
    return_path = _normalised(_setting("EMAIL_RETURN_PATH", "") or "")
    if return_path is not None:
        return_local, return_domain = return_path
        if domain == return_domain and (
            local == return_local or local.startswith(return_local + "+")
        ):
            return "feedback"
    for mailbox in _setting("INBOUND_SMTP_MAILBOXES", []) or []:
        if _normalised(mailbox) == (local, domain):
            return "feedback"
    if local == UNSUBSCRIBE_LOCAL_PART and domain in sending_domains():
        return "unsubscribe"
    return None


def sending_domain_names() -> frozenset[str]:
    """The sending domains in ASCII form (what envelope addresses carry)."""
    names = set()
    for domain in SendingDomain.objects.values_list("domain", flat=True):
        try:
            names.add(ascii_domain(domain))
        except DkimError:
            continue
    return frozenset(names)


# --- applying one message (in a Celery worker) --------------------------------------------------


@dataclass(frozen=True)
class InboundOutcome:
    """What a message was read as, and how many changes it made (0: reported before)."""

    kind: Literal["unsubscribe", "complaint", "bounce", "ignored"]
    applied: int = 0


def unsubscribe_token_in(data: bytes) -> UnsubscribeToken | None:
    """The unsubscribe token a List-Unsubscribe mail carries in its subject
    (``mailto:unsubscribe@…?subject=<token>``; some clients add "Re:" or encode it)."""
    try:
        headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(
            data[:MAX_HEADER_BYTES]
        )
        raw = headers.get("Subject")
        if raw is None:
            return None
        subject = str(make_header(decode_header(str(raw))))
    except (LookupError, ValueError, TypeError, HeaderParseError, UnicodeError):
        return None
    for candidate in _TOKEN.findall(subject[:1000]):
        token = unsubscribe_token_load(candidate)
        if token is not None:
            return token
    return None


def inbound_message_apply(*, data: bytes, recipients: Sequence[str]) -> InboundOutcome:
    """Read one received message and apply it: an unsubscribe mail, a complaint (ARF) or a
    bounce (DSN, or a non-standard bounce flufl.bounce recognises). Anything else is ignored
    with a log line. Never raises on the message's content."""
    domains: frozenset[str] | None = None

    def domains_once() -> frozenset[str]:
        nonlocal domains
        if domains is None:
            domains = sending_domain_names()
        return domains

    kinds = {mailbox_kind(address, sending_domains=domains_once) for address in recipients}
    if "unsubscribe" in kinds:
        token = unsubscribe_token_in(data)
        if token is not None:
            changed = prospect_unsubscribe(token=token, one_click=False)
            return InboundOutcome(kind="unsubscribe", applied=int(changed))
    complaint = parse_complaint(data)
    if complaint is not None:
        result = complaint_record(
            source="arf",
            feedback_type=complaint.feedback_type,
            signed_recipient=complaint.mapp_recipient,
            message_id=complaint.original_message_id,
            address=complaint.original_recipient,
        )
        return InboundOutcome(kind="complaint", applied=int(result.counted))
    report = parse_bounce(data)
    if report is not None:
        # Our messages have one recipient each. A report naming several addresses comes from
        # an alias or list that expanded ours; the returned headers then name the alias's row,
        # not these addresses, so each address is looked up by itself.
        single = len(report.recipients) == 1
        applied = 0
        for bounced in report.recipients:
            result = bounce_record(
                kind=bounced.kind,
                status=bounced.status,
                reason=bounced.diagnostic,
                source="dsn" if report.is_dsn else "bounce",
                signed_recipient=report.mapp_recipient if single else "",
                message_id=report.original_message_id if single else "",
                address=bounced.address,
            )
            applied += int(result.counted)
        return InboundOutcome(kind="bounce", applied=applied)
    logger.info(
        "inbound message ignored: no bounce, complaint or unsubscribe token (%d bytes, for %s)",
        len(data),
        ", ".join(sorted(kind or "?" for kind in kinds)),
    )
    return InboundOutcome(kind="ignored")


def inbound_message_decode(encoded: str) -> bytes | None:
    """The message bytes a task carries (base64: Celery's JSON cannot carry bytes)."""
    try:
        return base64.b64decode(encoded.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeError, AttributeError):
        return None


def inbound_message_enqueue(data: bytes, recipients: list[str]) -> None:
    """Hand a received message to the broker; raises when the broker did not take it."""
    from emails.tasks_feedback import apply_inbound_message

    apply_inbound_message.apply_async(
        args=(base64.b64encode(data[:MAX_MESSAGE_BYTES]).decode("ascii"), recipients),
        retry=True,
        retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
    )


# --- the SMTP server ----------------------------------------------------------------------------


class InboundHandler:
    """aiosmtpd handler: RCPT for our mailboxes only, DATA queued before it is answered 250."""

    def __init__(
        self,
        *,
        max_message_bytes: int,
        enqueue: Callable[[bytes, list[str]], None] = inbound_message_enqueue,
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.enqueue = enqueue
        self.executor = ThreadPoolExecutor(
            max_workers=HANDOFF_THREADS, thread_name_prefix="inbound-smtp"
        )
        self._domains: frozenset[str] | None = None
        self._domains_read_at = 0.0

    async def _in_thread(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run blocking work (database, broker) on the hand-off threads, off the SMTP loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, _own_connection, function, *args)

    async def _sending_domains(self) -> frozenset[str] | None:
        if (
            self._domains is not None
            and time.monotonic() - self._domains_read_at < SENDING_DOMAINS_CACHE_SECONDS
        ):
            return self._domains
        try:
            self._domains = await self._in_thread(sending_domain_names)
            self._domains_read_at = time.monotonic()
        except DatabaseError:
            logger.warning("inbound SMTP cannot read the sending domains", exc_info=True)
        return self._domains

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        needs_domains = False

        def note_needed() -> Collection[str]:
            nonlocal needs_domains
            needs_domains = True
            return ()

        kind = mailbox_kind(address, sending_domains=note_needed)
        if kind is None and needs_domains:
            domains = await self._sending_domains()
            if domains is None:
                return "451 4.3.0 Temporary failure, try again later"
            kind = mailbox_kind(address, sending_domains=lambda: domains)
        if kind is None:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content: Any = envelope.original_content or envelope.content or b""
        data = content if isinstance(content, bytes) else str(content).encode("utf-8", "replace")
        if len(data) > self.max_message_bytes:
            return "552 5.3.4 Message too big"
        if not envelope.rcpt_tos:
            return "554 5.5.1 No valid recipients"
        try:
            await self._in_thread(self.enqueue, data, list(envelope.rcpt_tos))
        except Exception:
            # Whatever the broker raised, the sender must keep the message and try again
            # (4xx); a 5xx, aiosmtpd's answer to an exception, would make it give up.
            logger.exception("inbound message could not be queued; answered 451")
            return "451 4.3.0 Could not queue the message, try again later"
        return "250 2.0.0 Queued"


def _own_connection(function: Callable[..., Any], *args: Any) -> Any:
    """Run ``function`` with a fresh database connection that is closed afterwards: these
    threads touch the database once a minute at most, and a connection kept idle between
    would be one the server may have dropped."""
    try:
        return function(*args)
    finally:
        connections.close_all()


class InboundSmtpServer:
    """``start()`` / ``stop()``; listens on INBOUND_SMTP_HOST:INBOUND_SMTP_PORT by default."""

    def __init__(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        max_message_bytes: int | None = None,
        enqueue: Callable[[bytes, list[str]], None] = inbound_message_enqueue,
    ) -> None:
        self.host = host or _setting("INBOUND_SMTP_HOST", DEFAULT_HOST)
        self.port = int(port if port is not None else _setting("INBOUND_SMTP_PORT", DEFAULT_PORT))
        limit = max_message_bytes or _setting(
            "INBOUND_SMTP_MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES
        )
        self.handler = InboundHandler(max_message_bytes=int(limit), enqueue=enqueue)
        self._controller = Controller(
            self.handler,
            hostname=self.host,
            port=self.port,
            data_size_limit=int(limit),
            ident="mapp inbound",
        )

    def start(self) -> InboundSmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
        self.handler.executor.shutdown(wait=True)
