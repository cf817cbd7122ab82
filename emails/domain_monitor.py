"""Daily re-verification of sending domains, and an alert when a verified domain breaks.

A record that was in place can disappear later (a DNS provider change, someone "cleaning up"
TXT records, a DKIM key replaced by another service), and from then on Gmail and Yahoo reject
or spam-folder every email from the domain. Each domain is checked again once a day with the
same check and storage as the "Verify now" button (emails.services_ui.sending_domain_verify);
when one that was verified now fails, the administrators are told once per domain per day
which record broke and how to fix it.

DNS that does not answer is not proof of a broken record: a domain whose check failed only
because DNS did not answer ("dns_error") is checked again at the next hourly run, and the
administrators hear of it only when it fails again.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import dns.resolver
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.translation import gettext as _

from emails.models import DomainStatus, SendingDomain
from emails.services_ui import dns_resolver, sending_domain_verify
from mapp.notifications import notify_administrators

logger = logging.getLogger(__name__)

#: A domain is checked again once its last check is this old (the periodic task runs hourly,
#: so each domain is checked once a day, at about the same hour).
RECHECK_AFTER = datetime.timedelta(hours=23)
DNS_ERROR = "dns_error"


@dataclass(frozen=True)
class DomainRecheck:
    sending_domain_id: int
    domain: str
    is_verified: bool
    #: (record, status) of each record that is not in place, e.g. ("DKIM", "missing").
    broken: tuple[tuple[str, str], ...] = ()
    alerted: bool = False


def _failing(check_messages: Any) -> list[dict[str, Any]]:
    if not isinstance(check_messages, list):
        return []
    return [item for item in check_messages if isinstance(item, dict) and not item.get("ok")]


def _only_dns_errors(failing: list[dict[str, Any]]) -> bool:
    return bool(failing) and all(item.get("status") == DNS_ERROR for item in failing)


def sending_domains_due(*, now: datetime.datetime | None = None) -> list[int]:
    """Domains whose last check is a day old (or that were never checked), and those whose
    last check was cut short by DNS not answering."""
    now = now or timezone.now()
    due = []
    for domain_id, last_checked_at, messages in SendingDomain.objects.filter(
        Q(last_checked_at__isnull=True)
        | Q(last_checked_at__lte=now - RECHECK_AFTER)
        | Q(status=DomainStatus.FAILED)
    ).values_list("pk", "last_checked_at", "check_messages"):
        if (
            last_checked_at is None
            or last_checked_at <= now - RECHECK_AFTER
            or _only_dns_errors(_failing(messages))
        ):
            due.append(domain_id)
    return sorted(due)


def sending_domain_recheck(
    *, sending_domain_id: int, resolver: dns.resolver.Resolver | None = None
) -> DomainRecheck | None:
    """Check one domain again, store the verdict as "Verify now" does, and alert when a domain
    that was verified has broken. None when the domain no longer exists."""
    sending_domain = SendingDomain.objects.filter(pk=sending_domain_id).first()
    if sending_domain is None:
        return None
    previous_failing = _failing(sending_domain.check_messages)
    # "Was verified" includes a verified domain whose last check only lacked DNS answers.
    was_verified = sending_domain.status == DomainStatus.VERIFIED or (
        sending_domain.verified_at is not None and _only_dns_errors(previous_failing)
    )
    sending_domain_verify(
        sending_domain=sending_domain, resolver=resolver if resolver else dns_resolver()
    )
    failing = _failing(sending_domain.check_messages)
    broken = tuple((str(item.get("record", "")), str(item.get("status", ""))) for item in failing)
    result = DomainRecheck(
        sending_domain_id=sending_domain.pk,
        domain=sending_domain.domain,
        is_verified=sending_domain.is_verified,
        broken=broken,
    )
    if sending_domain.is_verified or not was_verified:
        return result
    if _only_dns_errors(failing) and not _only_dns_errors(previous_failing):
        logger.info("DNS did not answer for %s; checking again later", sending_domain.domain)
        return result
    sent = _alert(sending_domain, failing)
    return DomainRecheck(
        sending_domain_id=result.sending_domain_id,
        domain=result.domain,
        is_verified=False,
        broken=broken,
        alerted=sent > 0,
    )


def _in_each_language(make: Callable[[], str]) -> str:
    """Text made when read: notify_administrators reads it in each administrator's language."""
    return cast(str, lazy(make, str)())


def _alert(sending_domain: SendingDomain, failing: list[dict[str, Any]]) -> int:
    domain = sending_domain.domain
    records = ", ".join(str(item.get("record", "")) for item in failing)
    # The explanations were written by the check in the language active then (the site's);
    # they say what is wrong and what to publish, which is what an administrator acts on.
    details = "\n".join(
        f"- {item.get('record', '')}: {item.get('explanation', '')}" for item in failing
    )

    def title() -> str:
        return _("Sending domain %(domain)s no longer passes verification (%(records)s)") % {
            "domain": domain,
            "records": records,
        }

    def body() -> str:
        intro = _(
            "The daily check found that these DNS records of %(domain)s, which were in place, "
            "are now missing or wrong. Until they are fixed, Gmail and Yahoo may reject or "
            "spam-folder email from this domain, and new sends from it cannot be scheduled."
        ) % {"domain": domain}
        return f"{intro}\n\n{details}"

    logger.warning("sending domain %s broke: %s", domain, records)
    return notify_administrators(
        title=_in_each_language(title),
        body=_in_each_language(body),
        url=reverse("emails:domain_detail", kwargs={"domain_id": sending_domain.pk}),
        dedup_key=f"emails:domain-broken:{sending_domain.pk}:{timezone.localdate().isoformat()}",
    )
