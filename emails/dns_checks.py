"""Sending-domain DNS: the records a customer must publish, and whether they are published.

Gmail and Yahoo reject or spam-folder bulk mail without SPF, DKIM and a DMARC record, and a
marketer cannot read a raw TXT answer, so each check says in plain words (translated) what is
wrong and gives the exact record that fixes it. dnspython reads the DKIM record; checkdmarc
parses SPF (following includes, counting lookups) and DMARC (organisational-domain fallback),
both through the same resolver, so tests and sites with their own DNS point one object at it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import dns.exception
import dns.resolver
from checkdmarc import utils as checkdmarc_utils
from checkdmarc.dmarc import check_dmarc
from checkdmarc.spf import check_spf
from django.utils.translation import gettext as _
from dkim.util import InvalidTagValueList, parse_tag_value

from emails.dkim import KeyType, ascii_domain, dkim_txt_record, txt_strings, txt_zone_value

#: Seconds one check may wait on DNS per lookup; a domain check makes about ten lookups (SPF
#: includes count), so a dead name server costs the page at most a few of these.
DNS_LIFETIME_SECONDS = 4.0
#: Extra attempts checkdmarc makes after a timeout, per lookup.
DNS_RETRIES = 1

RecordStatus = Literal[
    "ok", "missing", "key_mismatch", "revoked", "multiple", "malformed", "include_missing",
    "invalid", "dns_error",
]  # fmt: skip

_SPF_TERMINAL = re.compile(r"^(?:[+\-~?]?all|redirect=.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class DnsRecord:
    """One record to publish, as a DNS console asks for it."""

    type: str
    name: str
    value: str
    purpose: str

    @property
    def strings(self) -> list[str]:
        """The value as ≤255-byte TXT strings (for APIs that take them one by one)."""
        return txt_strings(self.value)

    @property
    def zone_value(self) -> str:
        """The value in zone-file syntax: quoted strings, split where DNS needs it."""
        return txt_zone_value(self.value)


@dataclass(frozen=True)
class RecordCheck:
    """The verdict on one of DKIM / SPF / DMARC.

    `status` is a stable code to store (e.g. for the daily re-check that alerts when a record
    breaks); `explanation` is the sentence for people, in the language active during the check;
    `detail` is the parser's own message (English, technical) when it had one; `found` is what
    DNS returned.
    """

    ok: bool
    status: RecordStatus
    explanation: str
    expected: DnsRecord
    found: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class DomainCheck:
    """DKIM, SPF and DMARC of one sending domain, checked together."""

    domain: str
    dkim: RecordCheck
    spf: RecordCheck
    dmarc: RecordCheck

    @property
    def dkim_ok(self) -> bool:
        return self.dkim.ok

    @property
    def spf_ok(self) -> bool:
        return self.spf.ok

    @property
    def dmarc_ok(self) -> bool:
        return self.dmarc.ok

    @property
    def is_verified(self) -> bool:
        """All three in place: what sending from the domain requires."""
        return self.dkim.ok and self.spf.ok and self.dmarc.ok


def expected_records(
    domain: str,
    selector: str,
    public_key_b64: str,
    spf_include: str | None,
    *,
    dmarc_report_address: str | None = None,
    algorithm: KeyType = "rsa",
) -> list[DnsRecord]:
    """The three records to publish for `domain`: DKIM key, SPF, DMARC.

    `spf_include` is the host whose SPF record lists mapp's sending servers (the record becomes
    `v=spf1 include:<it> ~all`); without one the suggestion authorises the domain's own MX
    hosts. DMARC starts at p=none with aggregate reports, the step Gmail and Yahoo require
    before a stricter policy; reports go to `dmarc_report_address` (default
    dmarc-reports@<domain>, on the domain itself so no extra authorisation record is needed).
    """
    ascii_name = ascii_domain(domain)
    return [
        _expected_dkim(ascii_name, selector, public_key_b64, algorithm),
        _expected_spf(ascii_name, spf_include, existing=None),
        _expected_dmarc(ascii_name, dmarc_report_address),
    ]


def check_domain(
    domain: str,
    *,
    selector: str,
    public_key_b64: str,
    resolver: dns.resolver.Resolver | None = None,
    spf_include: str | None = None,
    dmarc_report_address: str | None = None,
    algorithm: KeyType = "rsa",
) -> DomainCheck:
    """Look the three records up and judge them. Never raises on what DNS answers.

    `resolver` defaults to the system's; tests and sites with their own DNS pass one. When DNS
    does not answer at all, all three come back not ok with status "dns_error" (distinct from a
    missing record, so an alert can say "try again" rather than "publish this").
    """
    ascii_name = ascii_domain(domain)
    if resolver is None:
        resolver = dns.resolver.Resolver()
        resolver.lifetime = DNS_LIFETIME_SECONDS
    dkim_check = _check_dkim(ascii_name, selector, public_key_b64, algorithm, resolver)
    if dkim_check.status == "dns_error":
        return DomainCheck(
            domain=ascii_name,
            dkim=dkim_check,
            spf=_unreachable(ascii_name, _expected_spf(ascii_name, spf_include, existing=None)),
            dmarc=_unreachable(ascii_name, _expected_dmarc(ascii_name, dmarc_report_address)),
        )
    # checkdmarc keeps every answer for 30 minutes in a process-wide cache: a marketer who has
    # just fixed a record and presses "check again" would be shown the old answer.
    checkdmarc_utils.DNS_CACHE.clear()
    return DomainCheck(
        domain=ascii_name,
        dkim=dkim_check,
        spf=_check_spf(ascii_name, spf_include, resolver),
        dmarc=_check_dmarc(ascii_name, dmarc_report_address, resolver),
    )


def expected_dkim_record(
    domain: str, selector: str, public_key_b64: str, *, algorithm: KeyType = "rsa"
) -> DnsRecord:
    """The DKIM TXT record of one more key (a second, Ed25519 signature)."""
    return _expected_dkim(ascii_domain(domain), selector, public_key_b64, algorithm)


def check_dkim(
    domain: str,
    *,
    selector: str,
    public_key_b64: str,
    algorithm: KeyType = "rsa",
    resolver: dns.resolver.Resolver | None = None,
) -> RecordCheck:
    """Check one more DKIM key's record (check_domain checks the first with SPF and DMARC)."""
    if resolver is None:
        resolver = dns.resolver.Resolver()
        resolver.lifetime = DNS_LIFETIME_SECONDS
    return _check_dkim(ascii_domain(domain), selector, public_key_b64, algorithm, resolver)


def _expected_dkim(
    domain: str, selector: str, public_key_b64: str, algorithm: KeyType
) -> DnsRecord:
    name, value = dkim_txt_record(
        selector=selector, domain=domain, public_key_b64=public_key_b64, algorithm=algorithm
    )
    return DnsRecord(
        type="TXT",
        name=name,
        value=value,
        purpose=_("DKIM: the public key receivers use to check the signature on every email."),
    )


def _expected_spf(domain: str, spf_include: str | None, *, existing: str | None) -> DnsRecord:
    """The SPF record to publish. A domain may have only one SPF record (RFC 7208 §4.5), so
    when one exists the include is added to it rather than suggested as a second record."""
    mechanism = f"include:{ascii_domain(spf_include)}" if spf_include else "mx"
    if existing:
        terms = existing.split()
        position = next(
            (index for index, term in enumerate(terms) if _SPF_TERMINAL.match(term)), len(terms)
        )
        value = " ".join([*terms[:position], mechanism, *terms[position:]])
    else:
        value = f"v=spf1 {mechanism} ~all"
    return DnsRecord(
        type="TXT",
        name=domain,
        value=value,
        purpose=_spf_purpose(),
    )


def _spf_purpose() -> str:
    return _("SPF: the servers allowed to send email for this domain.")


def _expected_dmarc(domain: str, dmarc_report_address: str | None) -> DnsRecord:
    address = dmarc_report_address or f"dmarc-reports@{domain}"
    return DnsRecord(
        type="TXT",
        name=f"_dmarc.{domain}",
        value=f"v=DMARC1; p=none; rua=mailto:{address}",
        purpose=_(
            "DMARC: tells receivers what to do with mail that fails SPF and DKIM, and where to "
            "send reports. p=none only asks for reports and does not change delivery."
        ),
    )


def _unreachable(domain: str, expected: DnsRecord) -> RecordCheck:
    return RecordCheck(
        ok=False,
        status="dns_error",
        explanation=_(
            "DNS did not answer for %(domain)s, so the records could not be checked. Try again "
            "later; if this keeps happening, check that the domain's name servers work."
        )
        % {"domain": domain},
        expected=expected,
    )


def _check_dkim(
    domain: str, selector: str, public_key_b64: str, algorithm: KeyType, resolver: Any
) -> RecordCheck:
    expected = _expected_dkim(domain, selector, public_key_b64, algorithm)
    name = expected.name
    try:
        answer = resolver.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return RecordCheck(
            ok=False,
            status="missing",
            explanation=_(
                "No DKIM record was found at %(name)s. Publish the TXT record below at your DNS "
                "provider; a new record can take up to a few hours to be visible."
            )
            % {"name": name},
            expected=expected,
        )
    except (dns.exception.Timeout, dns.resolver.NoNameservers):
        # No answer at all (timeouts, servers failing or refusing): unknown, not negative.
        return _unreachable(domain, expected)
    except dns.exception.DNSException as error:
        return RecordCheck(
            ok=False,
            status="malformed",
            explanation=_malformed_dkim(name),
            expected=expected,
            detail=str(error),
        )
    # A TXT record may arrive as several strings: the record is their concatenation.
    found = tuple(b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer)
    dkim_records = [value for value in found if "p=" in value]
    if len(dkim_records) > 1:
        return RecordCheck(
            ok=False,
            status="multiple",
            explanation=_(
                "%(name)s has several DKIM records, and receivers may use any of them. Keep only "
                "the record below."
            )
            % {"name": name},
            expected=expected,
            found=found,
        )
    if not dkim_records:
        return RecordCheck(
            ok=False,
            status="malformed",
            explanation=_malformed_dkim(name),
            expected=expected,
            found=found,
        )
    try:
        tags = parse_tag_value(dkim_records[0].encode("utf-8"))
    except InvalidTagValueList as error:
        return RecordCheck(
            ok=False,
            status="malformed",
            explanation=_malformed_dkim(name),
            expected=expected,
            found=found,
            detail=str(error),
        )
    published_key = b"".join(tags.get(b"p", b"").split()).decode("ascii", "replace")
    published_type = tags.get(b"k", b"rsa").decode("ascii", "replace").strip().lower()
    if not published_key:
        return RecordCheck(
            ok=False,
            status="revoked",
            explanation=_(
                "The DKIM record at %(name)s has an empty key (p=), which means the key was "
                "revoked. Publish the record below."
            )
            % {"name": name},
            expected=expected,
            found=found,
        )
    if published_key != "".join(public_key_b64.split()) or published_type != algorithm:
        return RecordCheck(
            ok=False,
            status="key_mismatch",
            explanation=_(
                "A DKIM record exists at %(name)s, but its key is not this domain's key (an old "
                "key, or one from another service). Replace it with the record below."
            )
            % {"name": name},
            expected=expected,
            found=found,
        )
    return RecordCheck(
        ok=True,
        status="ok",
        explanation=_("The DKIM key published at %(name)s matches this domain's key.")
        % {"name": name},
        expected=expected,
        found=found,
    )


def _malformed_dkim(name: str) -> str:
    return _(
        "The record at %(name)s is not a DKIM key that receivers can read. Replace it with the "
        "record below."
    ) % {"name": name}


def _check_spf(domain: str, spf_include: str | None, resolver: Any) -> RecordCheck:
    result = check_spf(domain, resolver=resolver, timeout=DNS_LIFETIME_SECONDS, retries=DNS_RETRIES)
    record = result.get("record")
    # checkdmarc gives no record when there are several; what was published is shown anyway.
    found = (record,) if record else _spf_txt_records(domain, resolver)
    detail = str(result.get("error") or "")
    if not found:
        return RecordCheck(
            ok=False,
            status="missing",
            explanation=_(
                "%(domain)s has no SPF record, so receivers cannot tell which servers may send "
                "its email. Publish the TXT record below."
            )
            % {"domain": domain},
            expected=_expected_spf(domain, spf_include, existing=None),
            detail=detail,
        )
    if not record or not result.get("valid"):
        return RecordCheck(
            ok=False,
            status="invalid",
            explanation=_(
                "The SPF record of %(domain)s is not valid, so receivers ignore it. Replace it "
                "with the record below."
            )
            % {"domain": domain},
            expected=_expected_spf(domain, spf_include, existing=None),
            found=found,
            detail=detail,
        )
    if spf_include and not _spf_includes(result.get("parsed"), ascii_domain(spf_include)):
        return RecordCheck(
            ok=False,
            status="include_missing",
            explanation=_(
                "The SPF record of %(domain)s does not include %(include)s, so email sent by "
                "mapp fails SPF. Replace the record with the one below: a domain may have only "
                "one SPF record, so add the include to it rather than publishing a second one."
            )
            % {"domain": domain, "include": spf_include},
            expected=_expected_spf(domain, spf_include, existing=record),
            found=found,
        )
    if spf_include:
        explanation = _("The SPF record of %(domain)s allows mapp's sending servers.")
    else:
        explanation = _("%(domain)s has a valid SPF record.")
    return RecordCheck(
        ok=True,
        status="ok",
        explanation=explanation % {"domain": domain},
        expected=DnsRecord(type="TXT", name=domain, value=record, purpose=_spf_purpose()),
        found=found,
    )


def _spf_txt_records(domain: str, resolver: Any) -> tuple[str, ...]:
    try:
        answer = resolver.resolve(domain, "TXT")
    except dns.exception.DNSException:
        return ()
    values = (b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer)
    return tuple(value for value in values if value.lower().startswith("v=spf1"))


def _spf_includes(parsed: Any, include: str) -> bool:
    """Whether `include` is reached from the record: directly, through nested includes, or
    through a redirect= (checkdmarc has already resolved both)."""
    if not isinstance(parsed, dict):
        return False
    for mechanism in parsed.get("mechanisms") or []:
        if mechanism.get("mechanism") != "include":
            continue
        if str(mechanism.get("value", "")).lower().rstrip(".") == include:
            return True
        if _spf_includes(mechanism.get("parsed"), include):
            return True
    redirect = parsed.get("redirect")
    if isinstance(redirect, dict):
        if str(redirect.get("domain", "")).lower().rstrip(".") == include:
            return True
        return _spf_includes(redirect.get("parsed"), include)
    return False


def _check_dmarc(domain: str, dmarc_report_address: str | None, resolver: Any) -> RecordCheck:
    result: dict[str, Any] = dict(
        check_dmarc(domain, resolver=resolver, timeout=DNS_LIFETIME_SECONDS, retries=DNS_RETRIES)
    )
    expected = _expected_dmarc(domain, dmarc_report_address)
    record = result.get("record")
    found = (record,) if record else ()
    detail = str(result.get("error") or "")
    if not record:
        return RecordCheck(
            ok=False,
            status="missing",
            explanation=_(
                "%(domain)s has no DMARC record. Gmail and Yahoo require one from senders of bulk "
                "email: publish the record below."
            )
            % {"domain": domain},
            expected=expected,
            detail=detail,
        )
    if not result.get("valid"):
        return RecordCheck(
            ok=False,
            status="invalid",
            explanation=_(
                "The DMARC record of %(domain)s is not valid, so receivers ignore it. Replace it "
                "with the record below."
            )
            % {"domain": domain},
            expected=expected,
            found=found,
            detail=detail,
        )
    location = str(result.get("location") or domain)
    policy = str(result.get("tags", {}).get("p", {}).get("value", ""))
    return RecordCheck(
        ok=True,
        status="ok",
        explanation=_("A DMARC policy (p=%(policy)s) published at %(location)s covers %(domain)s.")
        % {"policy": policy, "location": f"_dmarc.{location}", "domain": domain},
        expected=DnsRecord(
            type="TXT", name=f"_dmarc.{location}", value=record, purpose=expected.purpose
        ),
        found=found,
    )
