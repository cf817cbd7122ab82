"""Daily re-verification of sending domains against a real DNS server (the local authoritative
responder of test_dns_checks), through the same resolver settings the app uses."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone

from emails.domain_monitor import sending_domain_recheck, sending_domains_due
from emails.models import DomainStatus, SendingDomain
from emails.services import sending_domain_create, sending_domain_dkim_record
from emails.tasks_feedback import reverify_domains
from mapp.models import Notification, User
from tests.emails.test_dns_checks import LocalDnsServer

pytestmark = pytest.mark.django_db

DOMAIN = "news.example.jp"


@pytest.fixture
def dns(settings: Any) -> Iterator[LocalDnsServer]:
    server = LocalDnsServer()
    settings.EMAIL_DNS_NAMESERVERS = ["127.0.0.1"]
    settings.EMAIL_DNS_PORT = server.port
    settings.EMAIL_SPF_INCLUDE = ""
    yield server
    server.close()


@pytest.fixture
def domain(db: None) -> SendingDomain:
    return sending_domain_create(domain=DOMAIN, selector="s2025")


def publish(server: LocalDnsServer, domain: SendingDomain) -> None:
    name, value = sending_domain_dkim_record(domain)
    server.txt(name, value)
    server.txt(DOMAIN, "v=spf1 ip4:192.0.2.0/24 -all")
    server.txt(f"_dmarc.{DOMAIN}", f"v=DMARC1; p=none; rua=mailto:dmarc@{DOMAIN}")


def notifications(user: User) -> list[Notification]:
    return list(Notification.objects.filter(user=user))


def test_a_verified_domain_that_breaks_alerts_administrators_once_a_day(
    dns: LocalDnsServer, domain: SendingDomain, administrator: User
) -> None:
    # given a domain whose three records are published
    publish(dns, domain)
    first = sending_domain_recheck(sending_domain_id=domain.pk)
    assert first is not None and first.is_verified and not first.alerted
    assert not notifications(administrator)

    # when its DKIM record disappears
    del dns.zone[(sending_domain_dkim_record(domain)[0], "TXT")]
    broken = sending_domain_recheck(sending_domain_id=domain.pk)

    # then it is stored as failed, and administrators are told which record broke
    assert broken is not None and not broken.is_verified
    assert broken.broken == (("DKIM", "missing"),) and broken.alerted
    domain.refresh_from_db()
    assert domain.status == DomainStatus.FAILED and not domain.dkim_ok and domain.spf_ok
    (notice,) = notifications(administrator)
    assert DOMAIN in notice.title and "DKIM" in notice.title
    assert "DKIM" in notice.body and "s2025._domainkey" in notice.body
    assert notice.url == f"/settings/sending-domains/{domain.pk}/"

    # when the next checks find it still broken: no more notices
    again = sending_domain_recheck(sending_domain_id=domain.pk)
    assert again is not None and not again.alerted
    # and when it is fixed and breaks again the same day: still one notice that day
    publish(dns, domain)
    fixed = sending_domain_recheck(sending_domain_id=domain.pk)
    assert fixed is not None and fixed.is_verified
    del dns.zone[(f"_dmarc.{DOMAIN}", "TXT")]
    rebroken = sending_domain_recheck(sending_domain_id=domain.pk)
    assert rebroken is not None and ("DMARC", "missing") in rebroken.broken
    assert not rebroken.alerted
    assert len(notifications(administrator)) == 1


def test_dns_that_does_not_answer_is_checked_again_before_anyone_is_alerted(
    dns: LocalDnsServer, domain: SendingDomain, administrator: User
) -> None:
    # given a verified domain
    publish(dns, domain)
    assert sending_domain_recheck(sending_domain_id=domain.pk).is_verified  # type: ignore[union-attr]

    # when its name server stops answering once
    dns.mode = "silent"
    silent = sending_domain_recheck(sending_domain_id=domain.pk)

    # then no alert yet, and the domain is due again at the next hourly run
    assert silent is not None and not silent.alerted
    assert {status for _record, status in silent.broken} == {"dns_error"}
    assert domain.pk in sending_domains_due()
    assert not notifications(administrator)

    # when it still does not answer an hour later: administrators are told
    still = sending_domain_recheck(sending_domain_id=domain.pk)
    assert still is not None and still.alerted
    assert len(notifications(administrator)) == 1


def test_a_dns_hiccup_that_passes_alerts_nobody(
    dns: LocalDnsServer, domain: SendingDomain, administrator: User
) -> None:
    publish(dns, domain)
    sending_domain_recheck(sending_domain_id=domain.pk)
    dns.mode = "servfail"
    assert not sending_domain_recheck(sending_domain_id=domain.pk).alerted  # type: ignore[union-attr]
    dns.mode = "answer"
    back = sending_domain_recheck(sending_domain_id=domain.pk)
    assert back is not None and back.is_verified and not back.alerted
    assert not notifications(administrator)


def test_domains_are_due_once_a_day(dns: LocalDnsServer, domain: SendingDomain) -> None:
    never_checked = sending_domain_create(domain="new.example.jp", selector="s2025")
    publish(dns, domain)
    sending_domain_recheck(sending_domain_id=domain.pk)
    assert sending_domains_due() == [never_checked.pk]
    SendingDomain.objects.filter(pk=domain.pk).update(
        last_checked_at=timezone.now() - datetime.timedelta(hours=24)
    )
    assert sending_domains_due() == sorted([domain.pk, never_checked.pk])
    assert sending_domain_recheck(sending_domain_id=10**9) is None


def test_the_hourly_task_rechecks_the_due_domains(
    dns: LocalDnsServer, domain: SendingDomain, settings: Any
) -> None:
    from mapp.celery import app

    publish(dns, domain)
    app.conf.task_always_eager = True
    try:
        assert reverify_domains() == 1
        assert reverify_domains() == 0  # checked now: not due for a day
    finally:
        app.conf.task_always_eager = False
    domain.refresh_from_db()
    assert domain.status == DomainStatus.VERIFIED and domain.last_checked_at is not None
