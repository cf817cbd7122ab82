"""Sending-domain pages: list, add (records to publish shown), "Verify now" storing the verdict
(against a name server that never answers: no internet in tests), badges, and access."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from emails.models import (
    BounceKind,
    DomainStatus,
    ListEmail,
    Recipient,
    RecipientStatus,
    SendingDomain,
)
from emails.services import sending_domain_create
from mapp.models import User
from tests.conftest import client_for
from tests.factories import ProspectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(administrator: User) -> Client:
    return client_for(administrator)


@pytest.fixture
def silent_dns(settings: Any) -> Iterator[None]:
    """A UDP port that receives queries and never answers: every lookup times out."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    settings.EMAIL_DNS_NAMESERVERS = ["127.0.0.1"]
    settings.EMAIL_DNS_PORT = server.getsockname()[1]
    yield
    server.close()


def test_add_domain_shows_records_to_publish(admin_client: Client, english: None) -> None:
    # when an administrator adds a domain
    response = admin_client.post(
        reverse("emails:domain_create"),
        {"domain": "Mail.Example.JP", "selector": "s2025", "algorithm": "rsa-sha256"},
    )
    # then it is stored with a key, and its page lists the exact records to publish
    domain = SendingDomain.objects.get()
    assert domain.domain == "mail.example.jp"
    assert response["Location"] == reverse("emails:domain_detail", args=[domain.pk])
    page = admin_client.get(response["Location"]).content.decode()
    assert 'value="s2025._domainkey.mail.example.jp"' in page
    assert domain.dkim_public_key[:40] in page
    assert "v=DMARC1" in page
    assert "v=spf1" in page
    assert "Not verified yet" in page
    assert "Verify now" in page


def test_invalid_domain_is_refused_with_message(admin_client: Client, english: None) -> None:
    response = admin_client.post(
        reverse("emails:domain_create"),
        {"domain": "not a domain", "selector": "mapp", "algorithm": "rsa-sha256"},
    )
    assert response.status_code == 400
    assert "Enter a domain name such as example.co.jp." in response.content.decode()
    assert not SendingDomain.objects.exists()


def test_verify_now_stores_dns_error(admin_client: Client, english: None, silent_dns: None) -> None:
    domain = sending_domain_create(domain="mail.example.jp", selector="s2025")
    # when "Verify now" is pressed and DNS does not answer
    response = admin_client.post(reverse("emails:domain_verify", args=[domain.pk]))
    # then the result is stored on the domain: failed, every record a dns_error, explained
    domain.refresh_from_db()
    assert domain.status == DomainStatus.FAILED
    assert domain.last_checked_at is not None
    assert (domain.dkim_ok, domain.spf_ok, domain.dmarc_ok) == (False, False, False)
    assert [check["status"] for check in domain.check_messages] == ["dns_error"] * 3
    assert [check["record"] for check in domain.check_messages] == ["DKIM", "SPF", "DMARC"]
    page = admin_client.get(response["Location"]).content.decode()
    assert "DNS did not answer" in page
    assert 'data-status="dns_error"' in page
    assert "Verification failed" in page
    # and the list shows the badge
    listing = admin_client.get(reverse("emails:domains")).content.decode()
    assert 'class="badge bad" data-testid="domain-status">Verification failed' in listing


def test_pages_render_in_japanese(admin_client: Client) -> None:
    domain = sending_domain_create(domain="mail.example.jp")
    for url in (
        reverse("emails:domains"),
        reverse("emails:domain_create"),
        reverse("emails:domain_detail", args=[domain.pk]),
    ):
        response = admin_client.get(url, HTTP_ACCEPT_LANGUAGE="ja")
        assert response.status_code == 200
        assert '<html lang="ja">' in response.content.decode()


@pytest.mark.parametrize("user_fixture", ["sales_user", "marketer"])
def test_domains_need_settings_edit(user_fixture: str, request: pytest.FixtureRequest) -> None:
    user = request.getfixturevalue(user_fixture)
    domain = sending_domain_create(domain="mail.example.jp")
    client = client_for(user)
    assert client.get(reverse("emails:domains")).status_code == 403
    assert client.get(reverse("emails:domain_detail", args=[domain.pk])).status_code == 403
    assert client.post(reverse("emails:domain_verify", args=[domain.pk])).status_code == 403
    domain.refresh_from_db()
    assert domain.last_checked_at is None


def test_domain_page_shows_its_reputation_over_30_days(admin_client: Client, english: None) -> None:
    domain = sending_domain_create(domain="mail.example.jp", selector="s1")
    list_email = ListEmail.objects.create(name="n", subject="s", html="h", sending_domain=domain)
    prospects = ProspectFactory.create_batch(3)
    now = timezone.now()
    for index, prospect in enumerate(prospects):
        Recipient.objects.create(
            list_email=list_email,
            prospect=prospect,
            email=prospect.email,
            status=RecipientStatus.SENT,
            sent_at=now,
            bounce_kind=BounceKind.HARD if index == 0 else "",
            bounced_at=now if index == 0 else None,
            complained_at=now if index == 1 else None,
        )
    page = admin_client.get(f"/settings/sending-domains/{domain.pk}/").content.decode()
    assert 'data-testid="domain-rates"' in page
    assert "1 (33.33%)" in page
    assert 'data-testid="complaints-over"' in page
    assert 'data-testid="hard-bounce-over"' in page


def test_add_domain_with_a_second_ed25519_signature(admin_client: Client, english: None) -> None:
    response = admin_client.post(
        reverse("emails:domain_create"),
        {"domain": "mail.example.jp", "selector": "s2026", "add_ed25519": "on"},
    )
    assert response.status_code == 302
    domain = SendingDomain.objects.get(domain="mail.example.jp")
    assert domain.has_ed25519
    page = admin_client.get(response["Location"]).content.decode()
    assert "s2026._domainkey.mail.example.jp" in page
    assert "s2026-ed._domainkey.mail.example.jp" in page
    assert "k=ed25519" in page
