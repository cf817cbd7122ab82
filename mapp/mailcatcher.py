"""The built-in mail catcher of `make run` on embedded defaults.

Without ``EMAIL_HOST``, ``mapp run`` starts this small SMTP server (aiosmtpd, in a thread of the
``mapp run`` process) on a free loopback port and points the web server and the worker at it, so
everything the product sends — list emails, autoresponders, notifications, password resets —
travels over real SMTP and lands, unsent, as one ``.eml`` file per message in ``var/outbox/``.
Administrators read them on the Outbox page (emails/views_outbox.py). With ``EMAIL_HOST`` set,
nothing of this runs and mail goes out for real.
"""

from __future__ import annotations

import datetime
import os
import secrets
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

# A message bigger than this is refused (552) rather than written.
MAX_MESSAGE_BYTES = 25 * 1024 * 1024


def outbox_directory(var_dir: Path) -> Path:
    return var_dir / "outbox"


class OutboxHandler:
    """aiosmtpd handler: each accepted message becomes ``<UTC time>-<random>.eml``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content: Any = envelope.original_content or envelope.content or b""
        data = content if isinstance(content, bytes) else str(content).encode()
        if len(data) > MAX_MESSAGE_BYTES:
            return "552 5.3.4 Message too big"
        recipients = ", ".join(str(address) for address in envelope.rcpt_tos)
        header = (
            f"X-Mapp-Outbox-Envelope-From: {envelope.mail_from}\r\n"
            f"X-Mapp-Outbox-Envelope-To: {recipients}\r\n"
        ).encode()
        stamp = datetime.datetime.now(tz=datetime.UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{secrets.token_hex(4)}.eml"
        temporary = self.directory / f".{name}.tmp"
        temporary.write_bytes(header + data)
        os.replace(temporary, self.directory / name)  # readers never see half a message
        return "250 2.0.0 Kept in the outbox"


class MailCatcher:
    """``start()`` / ``stop()``; ``host`` and ``port`` to put into EMAIL_HOST / EMAIL_PORT."""

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self.controller = Controller(
            OutboxHandler(directory),
            hostname=host,
            port=self.port,
            data_size_limit=MAX_MESSAGE_BYTES,
        )

    def start(self) -> MailCatcher:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
