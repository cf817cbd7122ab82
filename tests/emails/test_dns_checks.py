"""Sending-domain checks against a real DNS server: a small authoritative responder on
127.0.0.1 (dnspython's message API over UDP, in a thread), queried by dnspython and checkdmarc
through one `dns.resolver.Resolver` pointed at it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.rrset
import pytest

from emails.dkim import dkim_txt_record, generate_ed25519_key, generate_rsa_key, txt_zone_value
from emails.dns_checks import DnsRecord, check_domain, expected_records

DOMAIN = "news.example.jp"
SELECTOR = "mapp1"
SPF_INCLUDE = "_spf.mapp.example"

pytestmark = pytest.mark.usefixtures("english")


class LocalDnsServer:
    """Answers from `zone` ({(name, type): [presentation-format rdata]}) with authority:
    NXDOMAIN for names it does not know, an empty answer for other types of known names.
    `mode` "silent" drops queries (a dead server), "servfail" fails them."""

    def __init__(self) -> None:
        self.zone: dict[tuple[str, str], list[str]] = {}
        self.mode = "answer"
        self.queries: list[tuple[str, str]] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self.port: int = self._socket.getsockname()[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="local-dns", daemon=True)
        self._thread.start()

    def txt(self, name: str, *values: str) -> None:
        """Publish TXT values, split into ≤255-byte strings as a DNS console would."""
        self.zone[(name, "TXT")] = [txt_zone_value(value) for value in values]

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                wire, client = self._socket.recvfrom(65535)
            except TimeoutError:
                continue
            try:
                query = dns.message.from_wire(wire)
            except dns.exception.DNSException:
                continue
            response = self._respond(query)
            if response is not None:
                self._socket.sendto(response.to_wire(max_size=65535), client)

    def _respond(self, query: dns.message.Message) -> dns.message.Message | None:
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if self.mode == "silent":
            return None
        response = dns.message.make_response(query)
        if self.mode == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        response.flags |= dns.flags.AA
        values = self.zone.get((name, rdtype))
        if values:
            response.answer.append(
                dns.rrset.from_text_list(question.name, 300, "IN", rdtype, values)
            )
        elif not any(known == name for known, _type in self.zone):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response

    def close(self) -> None:
        self._stopping.set()
        self._thread.join()
        self._socket.close()


@pytest.fixture
def dns_server() -> Iterator[LocalDnsServer]:
    server = LocalDnsServer()
    yield server
    server.close()


@pytest.fixture
def resolver(dns_server: LocalDnsServer) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = dns_server.port
    resolver.timeout = 0.5
    resolver.lifetime = 1.0
    return resolver


@pytest.fixture(scope="module")
def key() -> tuple[bytes, str]:
    return generate_rsa_key()


def publish_all(server: LocalDnsServer, public_key_b64: str) -> None:
    """A correctly set-up domain: DKIM key, SPF reaching mapp's include through another
    provider's include, DMARC published on the organisational domain only."""
    name, value = dkim_txt_record(selector=SELECTOR, domain=DOMAIN, public_key_b64=public_key_b64)
    server.txt(name, value)
    server.txt(DOMAIN, "v=spf1 include:_spf.example.net ~all", "google-site-verification=abc")
    server.txt("_spf.example.net", "v=spf1 ip4:198.51.100.0/24 include:_spf.mapp.example -all")
    server.txt(SPF_INCLUDE, "v=spf1 ip4:192.0.2.0/24 -all")
    server.txt("_dmarc.example.jp", "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.jp")
    server.zone[("example.jp", "MX")] = ["10 mx.example.jp."]


def test_a_correctly_published_domain_passes(
    dns_server: LocalDnsServer, resolver: dns.resolver.Resolver, key: tuple[bytes, str]
) -> None:
    # given every record in place (the DKIM value split over two TXT strings)
    publish_all(dns_server, key[1])
    assert len(dns_server.zone[(f"{SELECTOR}._domainkey.{DOMAIN}", "TXT")][0].split('" "')) == 2

    # when the domain is checked
    check = check_domain(
        DOMAIN, selector=SELECTOR, public_key_b64=key[1], resolver=resolver, spf_include=SPF_INCLUDE
    )

    # then all three pass, each saying why, and the queries went to our server
    assert (check.dkim_ok, check.spf_ok, check.dmarc_ok, check.is_verified) == (True,) * 4
    assert check.dkim.status == check.spf.status == check.dmarc.status == "ok"
    assert check.dkim.explanation == (
        f"The DKIM key published at {SELECTOR}._domainkey.{DOMAIN} matches this domain's key."
    )
    assert check.spf.explanation == f"The SPF record of {DOMAIN} allows mapp's sending servers."
    assert check.dmarc.explanation == (
        f"A DMARC policy (p=quarantine) published at _dmarc.example.jp covers {DOMAIN}."
    )
    assert check.dmarc.found == ("v=DMARC1; p=quarantine; rua=mailto:dmarc@example.jp",)
    assert (f"{SELECTOR}._domainkey.{DOMAIN}", "TXT") in dns_server.queries
    assert ("_spf.mapp.example", "TXT") in dns_server.queries

    # without an include to look for (mail leaves through the customer's own servers), a
    # valid SPF record is enough
    own_servers = check_domain(DOMAIN, selector=SELECTOR, public_key_b64=key[1], resolver=resolver)
    assert own_servers.spf.status == "ok"
    assert own_servers.spf.explanation == f"{DOMAIN} has a valid SPF record."
    assert own_servers.spf.expected.value == "v=spf1 include:_spf.example.net ~all"


def test_nothing_published_gives_the_records_to_publish(
    dns_server: LocalDnsServer, resolver: dns.resolver.Resolver, key: tuple[bytes, str]
) -> None:
    dns_server.zone[("example.jp", "SOA")] = [
        "ns.example.jp. admin.example.jp. 1 3600 600 86400 300"
    ]

    check = check_domain(
        DOMAIN, selector=SELECTOR, public_key_b64=key[1], resolver=resolver, spf_include=SPF_INCLUDE
    )

    assert not check.is_verified
    assert (check.dkim.status, check.spf.status, check.dmarc.status) == ("missing",) * 3
    assert [check.dkim.expected, check.spf.expected, check.dmarc.expected] == expected_records(
        DOMAIN, SELECTOR, key[1], SPF_INCLUDE
    )
    assert check.dkim.explanation.startswith(
        f"No DKIM record was found at {SELECTOR}._domainkey.{DOMAIN}."
    )
    assert check.spf.explanation.startswith(f"{DOMAIN} has no SPF record")
    assert check.dmarc.explanation.startswith(f"{DOMAIN} has no DMARC record.")
    assert check.spf.expected.value == f"v=spf1 include:{SPF_INCLUDE} ~all"


def test_dkim_problems_are_told_apart(
    dns_server: LocalDnsServer, resolver: dns.resolver.Resolver, key: tuple[bytes, str]
) -> None:
    name = f"{SELECTOR}._domainkey.{DOMAIN}"
    old_key = generate_rsa_key()[1]
    cases = {
        "key_mismatch": [
            dkim_txt_record(selector=SELECTOR, domain=DOMAIN, public_key_b64=old_key)[1]
        ],
        "revoked": ["v=DKIM1; k=rsa; p="],
        "multiple": [f"v=DKIM1; k=rsa; p={key[1]}", f"v=DKIM1; k=rsa; p={old_key}"],
        "malformed": ["hello world"],
    }
    for status, values in cases.items():
        dns_server.txt(name, *values)

        check = check_domain(DOMAIN, selector=SELECTOR, public_key_b64=key[1], resolver=resolver)

        assert (check.dkim.ok, check.dkim.status) == (False, status)
        assert sorted(check.dkim.found) == sorted(values)
        assert name in check.dkim.explanation
        assert check.dkim.expected.value == f"v=DKIM1; k=rsa; p={key[1]}"


def test_ed25519_key_is_checked_with_its_key_type(
    dns_server: LocalDnsServer, resolver: dns.resolver.Resolver
) -> None:
    public_b64 = generate_ed25519_key()[1]
    name, value = dkim_txt_record(
        selector=SELECTOR, domain=DOMAIN, public_key_b64=public_b64, algorithm="ed25519"
    )
    dns_server.txt(name, value)

    as_ed25519 = check_domain(
        DOMAIN, selector=SELECTOR, public_key_b64=public_b64, resolver=resolver, algorithm="ed25519"
    )
    as_rsa = check_domain(DOMAIN, selector=SELECTOR, public_key_b64=public_b64, resolver=resolver)

    assert as_ed25519.dkim.status == "ok"
    assert as_rsa.dkim.status == "key_mismatch"


def test_spf_without_the_include_gets_the_include_added_and_a_recheck_sees_the_fix(
    dns_server: LocalDnsServer, resolver: dns.resolver.Resolver, key: tuple[bytes, str]
) -> None:
    # given an SPF record for another provider only
    publish_all(dns_server, key[1])
    dns_server.txt(DOMAIN, "v=spf1 include:_spf.google.com -all")
    dns_server.txt("_spf.google.com", "v=spf1 ip4:203.0.113.0/24 ~all")

    # when checked
    check = check_domain(
        DOMAIN, selector=SELECTOR, public_key_b64=key[1], resolver=resolver, spf_include=SPF_INCLUDE
    )

    # then the suggestion is the same single record with the include before its "all"
    assert (check.spf.ok, check.spf.status) == (False, "include_missing")
    assert check.spf.expected == DnsRecord(
        type="TXT",
        name=DOMAIN,
        value=f"v=spf1 include:_spf.google.com include:{SPF_INCLUDE} -all",
        purpose="SPF: the servers allowed to send email for this domain.",
    )
    assert SPF_INCLUDE in check.spf.explanation
    assert check.dkim_ok and check.dmarc_ok

    # and once that record is published, checking again (no stale cache) passes
    dns_server.txt(DOMAIN, check.spf.expected.value)
    again = check_domain(
        DOMAIN, selector=SELECTOR, public_key_b64=key[1], resolver=resolver, spf_include=SPF_INCLUDE
    )
    assert again.spf.status == "ok"
    assert again.is_verified


def test_spf_include_reached_through_redirect(
    dns_server: LocalDnsServer, resolver: dns.resolver.Resolver, key: tuple[bytes, str]
) -> None:
    publish_all(dns_server, key[1])
    dns_server.txt(DOMAIN, "v=spf1 redirect=_spf.example.net")

    check = check_domain(
        DOMAIN, selector=SELECTOR, public_key_b64=key[1], resolver=resolver, spf_include=SPF_INCLUDE
    )

    assert check.spf.status == "ok"


@pytest.mark.parametrize(
    "records",
    [
        ["v=spf1 include:_spf.mapp.example ~all", "v=spf1 mx -all"],
        ["v=spf1 include:_spf.mapp.example ~al"],
    ],
    ids=["two records", "syntax error"],
)
def test_invalid_spf_is_reported_with_the_parser_detail(
    dns_server: LocalDnsServer,
    resolver: dns.resolver.Resolver,
    key: tuple[bytes, str],
    records: list[str],
) -> None:
    publish_all(dns_server, key[1])
    dns_server.txt(DOMAIN, *records)

    check = check_domain(
        DOMAIN, selector=SELECTOR, public_key_b64=key[1], resolver=resolver, spf_include=SPF_INCLUDE
    )

    assert (check.spf.ok, check.spf.status) == (False, "invalid")
    assert sorted(check.spf.found) == sorted(records)
    assert check.spf.detail
    assert check.spf.explanation.startswith(f"The SPF record of {DOMAIN} is not valid")
    assert check.spf.expected.value == f"v=spf1 include:{SPF_INCLUDE} ~all"


def test_invalid_dmarc_is_reported(
    dns_server: LocalDnsServer, resolver: dns.resolver.Resolver, key: tuple[bytes, str]
) -> None:
    publish_all(dns_server, key[1])
    dns_server.txt(f"_dmarc.{DOMAIN}", "v=DMARC1; p=block")

    check = check_domain(
        DOMAIN, selector=SELECTOR, public_key_b64=key[1], resolver=resolver, spf_include=SPF_INCLUDE
    )

    assert (check.dmarc.ok, check.dmarc.status) == (False, "invalid")
    assert check.dmarc.found == ("v=DMARC1; p=block",)
    assert "block" in check.dmarc.detail
    assert check.dmarc.expected.value == f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{DOMAIN}"


@pytest.mark.parametrize("mode", ["silent", "servfail"])
def test_dns_that_does_not_answer_is_not_a_missing_record(
    dns_server: LocalDnsServer, resolver: dns.resolver.Resolver, key: tuple[bytes, str], mode: str
) -> None:
    publish_all(dns_server, key[1])
    dns_server.mode = mode
    resolver.lifetime = 0.3

    check = check_domain(
        DOMAIN, selector=SELECTOR, public_key_b64=key[1], resolver=resolver, spf_include=SPF_INCLUDE
    )

    assert (check.dkim.status, check.spf.status, check.dmarc.status) == ("dns_error",) * 3
    assert not check.is_verified
    assert check.spf.explanation.startswith(f"DNS did not answer for {DOMAIN}")
    assert check.spf.expected.value == f"v=spf1 include:{SPF_INCLUDE} ~all"


def test_expected_records_for_a_japanese_domain() -> None:
    public_b64 = generate_rsa_key()[1]

    dkim_record, spf_record, dmarc_record = expected_records(
        "メール.例え.jp", SELECTOR, public_b64, None, dmarc_report_address="reports@example.jp"
    )

    assert dkim_record.name == f"{SELECTOR}._domainkey.xn--4dkua4c.xn--r8jz45g.jp"
    assert dkim_record.value == f"v=DKIM1; k=rsa; p={public_b64}"
    assert [len(part) for part in dkim_record.strings] == [255, len(dkim_record.value) - 255]
    assert dkim_record.zone_value.startswith('"v=DKIM1; k=rsa; p=')
    assert (spf_record.name, spf_record.value) == ("xn--4dkua4c.xn--r8jz45g.jp", "v=spf1 mx ~all")
    assert dmarc_record.name == "_dmarc.xn--4dkua4c.xn--r8jz45g.jp"
    assert dmarc_record.value == "v=DMARC1; p=none; rua=mailto:reports@example.jp"
    assert {record.type for record in (dkim_record, spf_record, dmarc_record)} == {"TXT"}
    assert dkim_record.purpose.startswith("DKIM:")
