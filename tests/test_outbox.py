"""`mapp run` without an SMTP server: the built-in catcher keeps every message (real SMTP into
mapp/mailcatcher.py), and administrators read them on the Outbox page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.urls import reverse

from mapp.mailcatcher import MailCatcher
from mapp.models import User
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def catcher(settings: Any, tmp_path: Path) -> Any:
    running = MailCatcher(tmp_path / "outbox").start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = running.host, running.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.OUTBOX_DIR = tmp_path / "outbox"
    yield running
    running.stop()


def test_a_sent_message_is_kept_and_shown_escaped_and_sanitised(
    catcher: Any, administrator: User
) -> None:
    # given: a message sent over SMTP as the app sends any mail
    message = mail.EmailMultiAlternatives(
        subject="資料請求ありがとうございます <b>",
        body="山田様\nご請求の資料です。",
        from_email="info@example.jp",
        to=["taro@example.co.jp"],
    )
    message.attach_alternative(
        '<p>山田様</p><script>alert(1)</script><img src=x onerror="alert(2)">', "text/html"
    )
    assert message.send() == 1

    # when
    client = client_for(administrator)
    listing = client.get(reverse("outbox:list")).content.decode()

    # then: listed, escaped; the message page shows both parts, the HTML sanitised and sandboxed
    assert "資料請求ありがとうございます &lt;b&gt;" in listing
    assert "taro@example.co.jp" in listing
    name = next(path.name for path in Path(catcher.controller.handler.directory).iterdir())
    page = client.get(reverse("outbox:message", args=[name])).content.decode()
    assert "ご請求の資料です。" in page
    assert 'sandbox=""' in page
    assert "alert(1)" not in page and "onerror" not in page
    assert "山田様" in page


def test_the_outbox_is_for_administrators_and_refuses_odd_names(
    catcher: Any, sales_user: User, administrator: User
) -> None:
    assert client_for(sales_user).get(reverse("outbox:list")).status_code == 403
    response = client_for(administrator).get("/settings/outbox/..%2F..%2Fsecret_key")
    assert response.status_code == 404
