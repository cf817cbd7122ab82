"""Fixtures for the emails tests: a real local SMTP sink, a verified sending domain with its
DKIM key in a temporary key directory, and the account identity a send requires.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from emails.models import DomainStatus, SendingDomain
from emails.services import sending_domain_create
from emails.smtp_sink import SmtpSink
from mapp.models import AccountSettings


@pytest.fixture(autouse=True)
def dkim_key_dir(settings: Any, tmp_path: Any) -> Any:
    directory = tmp_path / "dkim"
    settings.DKIM_KEY_DIR = str(directory)
    return directory


@pytest.fixture
def smtp_sink(settings: Any) -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    settings.EMAIL_HOST = sink.host
    settings.EMAIL_PORT = sink.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_TIMEOUT = 10
    yield sink
    sink.stop()


@pytest.fixture
def verified_domain(db: None) -> SendingDomain:
    domain = sending_domain_create(domain="mail.example.jp", selector="s2025")
    SendingDomain.objects.filter(pk=domain.pk).update(status=DomainStatus.VERIFIED)
    domain.refresh_from_db()
    return domain


@pytest.fixture
def account_identity(db: None) -> AccountSettings:
    """The sender identity 特定電子メール法 requires."""
    account = AccountSettings.load()
    account.name = "株式会社マップ"
    account.postal_address = "〒100-0001 東京都千代田区千代田1-1"
    account.contact_email = "info@example.jp"
    account.contact_phone = "03-1234-5678"
    account.save()
    return account
