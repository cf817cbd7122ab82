"""A local SMTP server that keeps what it receives: the test sink (and the dev Outbox's base).

Built on aiosmtpd's :class:`~aiosmtpd.controller.Controller` (its own thread and event loop).
Messages are kept in memory, in arrival order. ``rcpt_responses`` lets a test make the server
answer RCPT TO for chosen addresses with a given reply (``"451 4.7.1 Try again later"``), and
``drop_during_data`` makes it hang up in the middle of DATA for chosen addresses, the first
``n`` times, as a crashing or overloaded relay would.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class ReceivedMessage:
    envelope_from: str
    recipients: tuple[str, ...]
    data: bytes


@dataclass
class SinkHandler:
    """aiosmtpd handler: records messages; optional per-address replies and dropped DATA."""

    rcpt_responses: dict[str, str] = field(default_factory=dict)
    drop_during_data: dict[str, int] = field(default_factory=dict)
    messages: list[ReceivedMessage] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        with self._lock:
            reply = self.rcpt_responses.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        recipients = tuple(address.lower() for address in envelope.rcpt_tos)
        with self._lock:
            for address in recipients:
                if self.drop_during_data.get(address, 0) > 0:
                    self.drop_during_data[address] -= 1
                    transport = server.transport
                    if isinstance(transport, asyncio.Transport):
                        transport.abort()
                    return "421 4.3.0 Connection dropped"
            content = envelope.original_content or envelope.content or b""
            self.messages.append(
                ReceivedMessage(
                    envelope_from=str(envelope.mail_from),
                    recipients=recipients,
                    data=content if isinstance(content, bytes) else content.encode(),
                )
            )
        return "250 Message accepted"

    def received_by(self, address: str) -> list[ReceivedMessage]:
        with self._lock:
            return [message for message in self.messages if address.lower() in message.recipients]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class SmtpSink:
    """Start with :meth:`start`, stop with :meth:`stop`; ``host``/``port`` to point EMAIL_* at."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.handler = SinkHandler()
        # Large messages are normal in marketing; 32 MB is far above any real list email.
        self._controller = Controller(
            self.handler, hostname=host, port=self.port, data_size_limit=32 * 1024 * 1024
        )

    @property
    def messages(self) -> list[ReceivedMessage]:
        return self.handler.messages

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
