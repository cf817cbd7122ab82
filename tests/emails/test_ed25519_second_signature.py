"""A sending domain with a second, Ed25519 DKIM key (RFC 8463): both records to publish, both
checked by "verify", and every message signed twice — each signature verified by dkimpy."""

from __future__ import annotations

import stat
from typing import Any

import dkim
import dns.resolver
import pytest
from django.utils import timezone

from emails.dkim import dkim_txt_record
from emails.models import DomainStatus, SendingDomain
from emails.rendering import SendKind, SendSetup, message_build
from emails.services import list_email_create, sending_domain_create
from emails.services_ui import sending_domain_records, sending_domain_verify
from mapp.models import AccountSettings
from tests.emails.test_dkim import _DkimVerifierWithEd25519
from tests.emails.test_dns_checks import (  # noqa: F401 (fixtures used by name)
    SPF_INCLUDE,
    LocalDnsServer,
    dns_server,
    resolver,
)
from tests.factories import ProspectFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

DOMAIN = "news.example.jp"


@pytest.fixture
def dual_domain(settings: Any) -> SendingDomain:
    settings.EMAIL_SPF_INCLUDE = SPF_INCLUDE
    return sending_domain_create(domain=DOMAIN, selector="mapp1", add_ed25519=True)


def _publish(server: LocalDnsServer, domain: SendingDomain, *, ed25519: bool = True) -> None:
    name, value = dkim_txt_record(
        selector=domain.dkim_selector, domain=DOMAIN, public_key_b64=domain.dkim_public_key
    )
    server.txt(name, value)
    if ed25519:
        name, value = dkim_txt_record(
            selector=domain.ed25519_selector,
            domain=DOMAIN,
            public_key_b64=domain.ed25519_public_key,
            algorithm="ed25519",
        )
        server.txt(name, value)
    server.txt(DOMAIN, f"v=spf1 include:{SPF_INCLUDE} ~all")
    server.txt(SPF_INCLUDE, "v=spf1 ip4:192.0.2.0/24 -all")
    server.txt(f"_dmarc.{DOMAIN}", "v=DMARC1; p=none; rua=mailto:dmarc@news.example.jp")


def test_second_key_has_its_own_record_and_private_file(dual_domain: SendingDomain) -> None:
    assert dual_domain.dkim_algorithm == "rsa-sha256"
    assert dual_domain.ed25519_selector == "mapp1-ed"
    assert stat.S_IMODE(dual_domain.ed25519_key_path.stat().st_mode) == 0o600
    records = sending_domain_records(dual_domain)
    names = [record.name for record in records]
    assert names[:2] == [f"mapp1._domainkey.{DOMAIN}", f"mapp1-ed._domainkey.{DOMAIN}"]
    assert "k=ed25519" in records[1].value
    plain = sending_domain_create(domain="plain.example.jp")
    assert not plain.has_ed25519
    assert len(sending_domain_records(plain)) == 3


def test_verified_only_with_both_keys_published(
    dual_domain: SendingDomain,
    dns_server: LocalDnsServer,  # noqa: F811
    resolver: dns.resolver.Resolver,  # noqa: F811
) -> None:
    _publish(dns_server, dual_domain, ed25519=False)
    sending_domain_verify(sending_domain=dual_domain, resolver=resolver)
    assert dual_domain.status == DomainStatus.FAILED
    labels = {result["record"]: result["ok"] for result in dual_domain.check_messages}
    assert labels == {"DKIM": True, "DKIM (Ed25519)": False, "SPF": True, "DMARC": True}
    _publish(dns_server, dual_domain)
    sending_domain_verify(sending_domain=dual_domain, resolver=resolver)
    assert dual_domain.status == DomainStatus.VERIFIED


def test_every_message_carries_two_signatures_that_verify(
    dual_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    list_email = list_email_create(
        actor=None,
        name="dual",
        sending_domain=dual_domain,
        subject="{{ prospect.last_name }}様",
        html="<p>本文</p><p>{{ account.postal_address }}</p><a href='{{ unsubscribe_url }}'>x</a>",
        sender_type="custom",
        sender_name="マップ",
        sender_address="news@news.example.jp",
    )
    prospect = ProspectFactory.create()
    setup = SendSetup.for_list_email(list_email, kind=SendKind.LIST_EMAIL)
    built = message_build(
        setup, recipient_id=1, address=prospect.email, prospect=prospect, sent_at=timezone.now()
    )
    records = {
        f"{dual_domain.dkim_selector}._domainkey.{DOMAIN}.": dkim_txt_record(
            selector=dual_domain.dkim_selector,
            domain=DOMAIN,
            public_key_b64=dual_domain.dkim_public_key,
        )[1],
        f"{dual_domain.ed25519_selector}._domainkey.{DOMAIN}.": dkim_txt_record(
            selector=dual_domain.ed25519_selector,
            domain=DOMAIN,
            public_key_b64=dual_domain.ed25519_public_key,
            algorithm="ed25519",
        )[1],
    }

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return records[name.decode()].encode()

    verifier = dkim.DKIM(built.data)
    assert built.data.count(b"DKIM-Signature:") == 2
    assert verifier.verify(idx=0, dnsfunc=dnsfunc)
    # (dkimpy's Ed25519 key loader needs PyNaCl; the tests' verifier swaps in `cryptography`)
    assert _DkimVerifierWithEd25519(built.data).verify(idx=1, dnsfunc=dnsfunc)
    algorithms = sorted(
        line.split(b"a=")[1].split(b";")[0] for line in built.data.split(b"DKIM-Signature:")[1:]
    )
    assert algorithms == [b"ed25519-sha256", b"rsa-sha256"]


def test_a_key_is_parsed_once_per_process_and_a_missing_file_is_an_error(
    dual_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    list_email = list_email_create(
        actor=None, name="n", sending_domain=dual_domain, subject="s", html="<p>x</p>"
    )
    first = SendSetup.for_list_email(list_email)
    second = SendSetup.for_list_email(list_email)
    assert first.signer is second.signer  # one PEM parse, not one per batch
    assert first.second_signer is second.second_signer is not None
    dual_domain.private_key_path.unlink()
    with pytest.raises(OSError):
        SendSetup.for_list_email(list_email)
