"""The Outbox: what `mapp run` without an SMTP server would have sent (mapp/mailcatcher.py).

Administrators read every caught message as a recipient would get it: headers, the plain-text
part (escaped) and the HTML part, sanitised with nh3 and shown in a sandboxed iframe, since a
message may carry a marketer's or a prospect's markup.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from mapp.access import access_required
from mapp.models import Module
from mapp.templating import sanitize_html

MESSAGE_NAME = re.compile(r"\d{8}T\d{12}-[0-9a-f]{8}\.eml")
LIST_LENGTH = 200
MAX_READ_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class OutboxEntry:
    name: str
    subject: str
    sender: str
    recipients: str
    date: str


def _directory() -> Path:
    return Path(settings.OUTBOX_DIR)


def _parse(path: Path) -> EmailMessage:
    with path.open("rb") as handle:
        data = handle.read(MAX_READ_BYTES)
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _header(message: EmailMessage, name: str) -> str:
    try:
        return str(message.get(name, "") or "")
    except (ValueError, TypeError, IndexError):  # a malformed header is shown as missing
        return ""


def outbox_entries(limit: int = LIST_LENGTH) -> list[OutboxEntry]:
    directory = _directory()
    if not directory.is_dir():
        return []
    names = sorted(
        (path.name for path in directory.iterdir() if MESSAGE_NAME.fullmatch(path.name)),
        reverse=True,
    )[:limit]
    entries = []
    for name in names:
        message = _parse(directory / name)
        entries.append(
            OutboxEntry(
                name=name,
                subject=_header(message, "Subject"),
                sender=_header(message, "From"),
                recipients=_header(message, "X-Mapp-Outbox-Envelope-To") or _header(message, "To"),
                date=_header(message, "Date"),
            )
        )
    return entries


def _part(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return ""
    try:
        return str(part.get_content())
    except (LookupError, ValueError):
        return ""


@access_required(Module.SETTINGS)
@require_safe
def outbox_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "emails/outbox/list.html",
        {"entries": outbox_entries(), "directory": str(_directory())},
    )


@access_required(Module.SETTINGS)
@require_safe
def outbox_message(request: HttpRequest, name: str) -> HttpResponse:
    if not MESSAGE_NAME.fullmatch(name):
        raise Http404
    path = _directory() / name
    if not path.is_file():
        raise Http404
    message = _parse(path)
    headers = [
        (header, _header(message, header))
        for header in ("Subject", "From", "To", "Reply-To", "Date", "List-Unsubscribe")
        if _header(message, header)
    ]
    return render(
        request,
        "emails/outbox/message.html",
        {
            "name": name,
            "headers": headers,
            "recipients": _header(message, "X-Mapp-Outbox-Envelope-To"),
            "text": _part(message, "plain"),
            "html": sanitize_html(_part(message, "html")),
            "signed": bool(_header(message, "DKIM-Signature")),
        },
    )
