"""What the marketer pages of emails need beyond emails/services.py: the DNS records of a
sending domain, "verify now" (storing the verdict on the domain), previews, and progress.

They call the existing services and checks; nothing here sends mail. Previews render with the
same sandbox and the same sender and subject rules as the send pipeline (emails.rendering), but
with a placeholder unsubscribe link, and the HTML is sanitised for showing in the app.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dns.resolver
from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from emails.dns_checks import (
    DNS_LIFETIME_SECONDS,
    DnsRecord,
    DomainCheck,
    RecordCheck,
    check_dkim,
    check_domain,
    expected_dkim_record,
    expected_records,
)
from emails.models import (
    DkimAlgorithm,
    DomainStatus,
    EmailContent,
    ListEmail,
    RecipientStatus,
    SendingDomain,
)
from emails.rendering import account_merge_values, header_text, sender_for
from mapp.templating import MergeContext, render_marketer_template, sanitize_html

if TYPE_CHECKING:
    from prospects.models import Prospect

#: What a preview's unsubscribe link points to: nowhere, so a click in the preview does nothing.
PREVIEW_UNSUBSCRIBE_URL = "#unsubscribe"


def _key_type(sending_domain: SendingDomain) -> Any:
    return "ed25519" if sending_domain.dkim_algorithm == DkimAlgorithm.ED25519 else "rsa"


def _spf_include() -> str | None:
    """The host whose SPF record lists the sending servers, when the site has one."""
    return getattr(settings, "EMAIL_SPF_INCLUDE", None) or None


def dns_resolver() -> dns.resolver.Resolver | None:
    """The resolver verification uses: the system's (None) unless the site names its own name
    servers (``EMAIL_DNS_NAMESERVERS``, optionally ``EMAIL_DNS_PORT``), e.g. an internal DNS
    that sees the records before the world does."""
    nameservers = list(getattr(settings, "EMAIL_DNS_NAMESERVERS", None) or [])
    if not nameservers:
        return None
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = nameservers
    resolver.port = int(getattr(settings, "EMAIL_DNS_PORT", 53))
    resolver.timeout = DNS_LIFETIME_SECONDS / 2
    resolver.lifetime = DNS_LIFETIME_SECONDS
    return resolver


def sending_domain_records(sending_domain: SendingDomain) -> list[DnsRecord]:
    """The exact DKIM, SPF and DMARC records the customer must publish for the domain (with
    the second, Ed25519 DKIM key's record after the first when the domain has one)."""
    records = expected_records(
        sending_domain.domain,
        sending_domain.dkim_selector,
        sending_domain.dkim_public_key,
        _spf_include(),
        algorithm=_key_type(sending_domain),
    )
    if sending_domain.has_ed25519:
        records.insert(
            1,
            expected_dkim_record(
                sending_domain.domain,
                sending_domain.ed25519_selector,
                sending_domain.ed25519_public_key,
                algorithm="ed25519",
            ),
        )
    return records


def _record_result(label: str, check: RecordCheck) -> dict[str, Any]:
    return {
        "record": label,
        "ok": check.ok,
        "status": check.status,
        "explanation": check.explanation,
        "detail": check.detail,
        "found": list(check.found),
    }


def domain_status_for(check: DomainCheck) -> DomainStatus:
    """Verified only with all three records in place; any DNS failure is a failed check (the
    per-record status says "dns_error", so the page can say "try again" rather than "publish")."""
    return DomainStatus.VERIFIED if check.is_verified else DomainStatus.FAILED


def sending_domain_verify(
    *, sending_domain: SendingDomain, resolver: dns.resolver.Resolver | None = None
) -> SendingDomain:
    """Check the domain's records now and store the verdict (status, per-record results).

    A domain that was verified once keeps its first ``verified_at``; one that breaks becomes
    failed, so list emails from it are refused until it is fixed (list_email_problems).
    """
    check = check_domain(
        sending_domain.domain,
        selector=sending_domain.dkim_selector,
        public_key_b64=sending_domain.dkim_public_key,
        resolver=resolver,
        spf_include=_spf_include(),
        algorithm=_key_type(sending_domain),
    )
    now = timezone.now()
    status = domain_status_for(check)
    results = [
        _record_result("DKIM", check.dkim),
        _record_result("SPF", check.spf),
        _record_result("DMARC", check.dmarc),
    ]
    dkim_ok = check.dkim_ok
    if sending_domain.has_ed25519:
        # the second key must be published too: a signature nobody can verify is noise
        ed_check = check_dkim(
            sending_domain.domain,
            selector=sending_domain.ed25519_selector,
            public_key_b64=sending_domain.ed25519_public_key,
            algorithm="ed25519",
            resolver=resolver,
        )
        results.insert(1, _record_result("DKIM (Ed25519)", ed_check))
        dkim_ok = dkim_ok and ed_check.ok
        if not ed_check.ok and status == DomainStatus.VERIFIED:
            status = DomainStatus.FAILED
    sending_domain.status = status
    sending_domain.dkim_ok = dkim_ok
    sending_domain.spf_ok = check.spf_ok
    sending_domain.dmarc_ok = check.dmarc_ok
    sending_domain.check_messages = results
    sending_domain.last_checked_at = now
    if status == DomainStatus.VERIFIED and sending_domain.verified_at is None:
        sending_domain.verified_at = now
    sending_domain.save(
        update_fields=[
            "status",
            "dkim_ok",
            "spf_ok",
            "dmarc_ok",
            "check_messages",
            "last_checked_at",
            "verified_at",
            "updated_at",
        ]
    )
    return sending_domain


# --- previews -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmailPreview:
    """A rendered email for the editor: header texts and sanitised HTML for a sandboxed frame."""

    subject: str
    sender_name: str
    sender_address: str
    html: str
    error: str = ""


def email_preview(
    *, content: EmailContent, prospect: Prospect | None, domain: str = ""
) -> EmailPreview:
    """``content`` as ``prospect`` would get it (example values when there is none).

    Raises nothing for template errors: the error is returned for the page to show, since a
    preview of a broken draft is a normal thing to ask for.
    """
    sender = sender_for(content, prospect, domain=domain)
    extra = {
        **account_merge_values(),
        "unsubscribe_url": PREVIEW_UNSUBSCRIBE_URL,
        "sender.name": sender.name,
        "sender.email": sender.address,
    }
    context = MergeContext(prospect=prospect, extra=extra, preview=True)
    try:
        subject = header_text(html.unescape(render_marketer_template(content.subject, context)))
        body = render_marketer_template(content.html, context)
        if content.preheader:
            preheader = render_marketer_template(content.preheader, context)
            body = f"<p>{preheader}</p>{body}"
    except ValueError as error:  # TemplateError is a ValueError
        return EmailPreview(
            subject="",
            sender_name=sender.name,
            sender_address=sender.address,
            html="",
            error=str(error),
        )
    return EmailPreview(
        subject=subject,
        sender_name=sender.name,
        sender_address=sender.address,
        html=sanitize_html(body),
    )


# --- list emails --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """Where a send is: counted from its recipient rows, so it is right while workers run."""

    total: int
    queued: int
    sending: int
    sent: int
    failed: int
    skipped: int
    held: int = 0

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


def list_email_progress(list_email: ListEmail) -> Progress:
    """Counts per recipient status, in one query."""
    counts = list_email.recipients.aggregate(
        total=Count("id"),
        queued=Count("id", filter=Q(status=RecipientStatus.QUEUED)),
        sending=Count("id", filter=Q(status=RecipientStatus.CLAIMED)),
        sent=Count("id", filter=Q(status=RecipientStatus.SENT)),
        failed=Count("id", filter=Q(status=RecipientStatus.FAILED)),
        skipped=Count("id", filter=Q(status=RecipientStatus.SKIPPED)),
        held=Count("id", filter=Q(status=RecipientStatus.HELD)),
    )
    return Progress(**counts)
