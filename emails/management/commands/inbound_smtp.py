"""``manage.py inbound_smtp``: run the inbound SMTP endpoint (emails.inbound) until stopped."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from emails.inbound import InboundSmtpServer


class Command(BaseCommand):
    help = (
        "Run the inbound SMTP server that receives bounces, spam complaints and List-Unsubscribe "
        "mails (INBOUND_SMTP_HOST / INBOUND_SMTP_PORT) and queues them for the worker."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", help="Address to listen on (default INBOUND_SMTP_HOST).")
        parser.add_argument("--port", type=int, help="Port (default INBOUND_SMTP_PORT).")

    def handle(self, *args: Any, **options: Any) -> None:
        server = InboundSmtpServer(host=options.get("host"), port=options.get("port"))
        stopping = threading.Event()

        def stop(signum: int, frame: Any) -> None:
            stopping.set()

        previous = {
            signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)
        }
        server.start()
        self.stdout.write(f"Inbound SMTP listening on {server.host}:{server.port}")
        try:
            while not stopping.wait(1.0):
                pass
        finally:
            server.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        self.stdout.write("Inbound SMTP stopped")
