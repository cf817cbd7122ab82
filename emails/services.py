"""Writes of emails: sending domains and their keys, templates, list emails and their schedule.

The send itself is emails/sending.py; what may be scheduled is decided here
(:func:`list_email_problems`), so no send can start without an unsubscribe link, the sender's
identity (特定電子メール法: name, postal address, a contact point) and a verified domain.
"""

from __future__ import annotations

import datetime
import os
import re
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from emails.dkim import dkim_txt_record, generate_ed25519_key, generate_rsa_key
from emails.models import (
    AbWinnerMetric,
    DkimAlgorithm,
    EmailContent,
    EmailTemplate,
    ListEmail,
    ListEmailStatus,
    ListEmailVariant,
    SenderType,
    SendingDomain,
    dkim_key_directory,
)
from emails.rendering import Content, account_merge_values, is_aligned
from mapp.templating import template_validate

if TYPE_CHECKING:
    from mapp.models import User
    from prospects.models import ProspectList

_DOMAIN = re.compile(r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$")
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# The unsubscribe link must be inserted as the merge field, not typed: only then is it each
# recipient's own signed link.
_UNSUBSCRIBE_FIELD = re.compile(r"{{[^}]*\bunsubscribe_url\b[^}]*}}")
_POSTAL_ADDRESS_FIELD = re.compile(r"{{[^}]*\baccount\.postal_address\b[^}]*}}")
CONTENT_FIELDS = (
    "subject",
    "preheader",
    "html",
    "text",
    "sender_type",
    "sender_user",
    "sender_name",
    "sender_address",
    "reply_to",
)


# --- sending domains ----------------------------------------------------------------------------


def _write_private_key(filename: str, private_key_pem: bytes) -> None:
    """Write the key readable by the app's user only; never overwrite an existing file."""
    directory = dkim_key_directory()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(directory / filename, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as key_file:
        key_file.write(private_key_pem)


def sending_domain_create(
    *,
    domain: str,
    selector: str = "mapp",
    algorithm: str = DkimAlgorithm.RSA,
    add_ed25519: bool = False,
) -> SendingDomain:
    """Add a domain with a fresh DKIM key pair (private key in a 0600 file outside the DB).

    ``add_ed25519`` adds a second key, selector ``<selector>-ed``, so every message carries an
    Ed25519 signature beside the RSA one (RFC 8463): receivers that do not verify Ed25519 yet
    (most, in 2026) use the RSA signature, so RSA stays the one that matters.
    """
    domain = domain.strip().lower().rstrip(".")
    selector = selector.strip().lower()
    if not _DOMAIN.match(domain):
        raise ValidationError(_("Enter a domain name such as example.co.jp."))
    if not _SELECTOR.match(selector) or len(selector) > 60:
        raise ValidationError(_("A selector may contain only letters, digits and hyphens."))
    if SendingDomain.objects.filter(domain=domain).exists():
        raise ValidationError(_("This domain has been added already."))
    if algorithm == DkimAlgorithm.ED25519:
        private_key_pem, public_key = generate_ed25519_key()
        add_ed25519 = False  # the only key is Ed25519 already
    else:
        algorithm = DkimAlgorithm.RSA
        private_key_pem, public_key = generate_rsa_key(2048)
    written: list[str] = []
    filename = f"{domain}.{selector}.{secrets.token_hex(4)}.pem"
    _write_private_key(filename, private_key_pem)
    written.append(filename)
    ed25519_fields: dict[str, str] = {}
    try:
        if add_ed25519:
            ed_selector = f"{selector}-ed"
            ed_private_pem, ed_public_key = generate_ed25519_key()
            ed_filename = f"{domain}.{ed_selector}.{secrets.token_hex(4)}.pem"
            _write_private_key(ed_filename, ed_private_pem)
            written.append(ed_filename)
            ed25519_fields = {
                "ed25519_selector": ed_selector,
                "ed25519_public_key": ed_public_key,
                "ed25519_key_file": ed_filename,
            }
        return SendingDomain.objects.create(
            domain=domain,
            dkim_selector=selector,
            dkim_algorithm=algorithm,
            dkim_public_key=public_key,
            dkim_key_file=filename,
            **ed25519_fields,
        )
    except Exception:
        for name in written:
            (dkim_key_directory() / name).unlink(missing_ok=True)  # no row, no orphan key
        raise


def sending_domain_dkim_record(sending_domain: SendingDomain) -> tuple[str, str]:
    """The DKIM TXT record (name, value) to publish for the domain."""
    return dkim_txt_record(
        selector=sending_domain.dkim_selector,
        domain=sending_domain.domain,
        public_key_b64=sending_domain.dkim_public_key,
        algorithm="ed25519" if sending_domain.dkim_algorithm == DkimAlgorithm.ED25519 else "rsa",
    )


# --- templates ----------------------------------------------------------------------------------


def _content_problems(content: dict[str, Any]) -> list[str]:
    """Template problems of each marketer-written part, named by part."""
    problems: list[str] = []
    labels = {
        "subject": _("Subject"),
        "preheader": _("Preheader"),
        "html": _("HTML"),
        "text": _("Plain text"),
    }
    for name, label in labels.items():
        source = str(content.get(name) or "")
        if not source:
            continue
        problems.extend(
            _("%(part)s: %(problem)s") % {"part": label, "problem": problem}
            for problem in template_validate(source)
        )
    return problems


def _sender_problems(content: dict[str, Any]) -> list[str]:
    sender_type = content.get("sender_type") or SenderType.CUSTOM
    if sender_type == SenderType.USER and content.get("sender_user") is None:
        return [_("Choose the user the email is sent from.")]
    if sender_type == SenderType.CUSTOM and not (
        content.get("sender_name") and content.get("sender_address")
    ):
        return [_("Enter the sender's name and email address.")]
    if (
        sender_type == SenderType.ASSIGNED_USER
        and content.get("sender_user") is None
        and not (content.get("sender_name") and content.get("sender_address"))
    ):
        return [
            _(
                "Choose a user or enter a name and address to send from when a prospect has "
                "no assigned user."
            )
        ]
    return []


def _apply_content(target: EmailContent, content: dict[str, Any]) -> None:
    for name in CONTENT_FIELDS:
        if name not in content:
            continue
        value = content[name]
        if name == "sender_user":
            target.sender_user = value or None
        else:
            setattr(target, name, value if value is not None else "")
    if target.sender_type == SenderType.CUSTOM:
        target.sender_user = None


def email_template_save(
    *, actor: User | None, template: EmailTemplate | None = None, name: str, **content: Any
) -> EmailTemplate:
    """Create or update a template; refuses one with template errors (before any send)."""
    if "sender_user" in content and content["sender_user"] == "":
        content["sender_user"] = None
    problems = _content_problems(content) + _sender_problems(content)
    if not name.strip():
        problems.insert(0, _("Enter a name."))
    if problems:
        raise ValidationError(problems)
    template = template or EmailTemplate(created_by=actor)
    template.name = name.strip()
    _apply_content(template, content)
    template.save()
    return template


# --- list emails --------------------------------------------------------------------------------


def list_email_create(
    *,
    actor: User | None,
    name: str,
    template: EmailTemplate | None = None,
    recipient_lists: Sequence[ProspectList] = (),
    suppression_lists: Sequence[ProspectList] = (),
    sending_domain: SendingDomain | None = None,
    **content: Any,
) -> ListEmail:
    """A draft send; content copied from ``template`` (then overridden by ``content``)."""
    base: dict[str, Any] = {}
    if template is not None:
        base = {field_name: getattr(template, field_name) for field_name in CONTENT_FIELDS}
    base.update(content)
    problems = _content_problems(base)
    if problems:
        raise ValidationError(problems)
    with transaction.atomic():
        list_email = ListEmail(
            name=name.strip() or (template.name if template is not None else ""),
            template=template,
            sending_domain=sending_domain,
            created_by=actor,
        )
        _apply_content(list_email, base)
        list_email.save()
        list_email.recipient_lists.set(recipient_lists)
        list_email.suppression_lists.set(suppression_lists)
    return list_email


def list_email_problems(list_email: ListEmail) -> list[str]:
    """Why this list email cannot be scheduled; empty when it can.

    Checked: the template parts are valid; the HTML has the unsubscribe link and the sender's
    postal address (merge fields); the account settings give the sender's name, postal address
    and a contact point (特定電子メール法); a sender whose address is on a verified sending
    domain; at least one recipient list.
    """
    content = {field_name: getattr(list_email, field_name) for field_name in CONTENT_FIELDS}
    problems = _content_problems(content) + _sender_problems(content)
    variants = list(list_email.variants.order_by("letter")) if list_email.pk else []
    for variant in variants:
        variant_parts = {
            name: getattr(variant, name) for name in ("subject", "preheader", "html", "text")
        }
        problems.extend(
            _("Variant %(letter)s: %(problem)s") % {"letter": variant.letter, "problem": problem}
            for problem in _content_problems(variant_parts)
        )
    # every message that can go out must carry the required content: each variant's own
    checked = [("", Content.of(list_email))] if not variants else []
    checked += [(variant.letter, Content.of(list_email, variant)) for variant in variants]
    for letter, parts in checked:
        missing: list[str] = []
        if not _UNSUBSCRIBE_FIELD.search(parts.html):
            missing.append(
                _("Insert the unsubscribe link ({{ unsubscribe_url }}) into the email's HTML.")
            )
        if parts.text.strip() and not _UNSUBSCRIBE_FIELD.search(parts.text):
            missing.append(
                _("Insert the unsubscribe link ({{ unsubscribe_url }}) into the plain-text part.")
            )
        if not _POSTAL_ADDRESS_FIELD.search(parts.html):
            missing.append(
                _(
                    "Insert the sender's postal address ({{ account.postal_address }}) into "
                    "the HTML."
                )
            )
        problems.extend(
            _("Variant %(letter)s: %(problem)s") % {"letter": letter, "problem": problem}
            if letter
            else problem
            for problem in missing
        )
    account = account_merge_values()
    if not account["account.name"].strip():
        problems.append(_("Enter the sender's name (company name) in the account settings."))
    if not account["account.postal_address"].strip():
        problems.append(_("Enter the sender's postal address in the account settings."))
    if not account["account.contact"].strip():
        problems.append(_("Enter a contact email address or phone number in the account settings."))
    domain = list_email.sending_domain
    if domain is None:
        problems.append(_("Choose a sending domain."))
    elif not domain.is_verified:
        problems.append(
            _(
                "The sending domain %(domain)s is not verified: publish its DNS records and "
                "verify it first, or receivers will reject or hide the email."
            )
            % {"domain": domain.domain}
        )
    elif list_email.sender_type != SenderType.ASSIGNED_USER or list_email.sender_user is None:
        address = (
            list_email.sender_user.email
            if list_email.sender_type == SenderType.USER and list_email.sender_user is not None
            else list_email.sender_address
        )
        if address and not is_aligned(address, domain.domain):
            problems.append(
                _("The sender address %(address)s is not on the sending domain %(domain)s.")
                % {"address": address, "domain": domain.domain}
            )
    if not list_email.recipient_lists.exists():
        problems.append(_("Choose at least one recipient list."))
    return problems


#: Variants an A/B test may have (Account Engagement allows up to five).
AB_MAX_VARIANTS = 5
VARIANT_FIELDS = ("subject", "preheader", "html", "text")


def list_email_ab_test_set(
    *,
    list_email: ListEmail,
    variants: Sequence[dict[str, str]],
    percent: int,
    hours: int,
    metric: str,
) -> list[ListEmailVariant]:
    """Make ``list_email`` an A/B test with these variants (A, B, … in order), replacing any.

    Each variant's parts override the email's; empty parts inherit them. Only a draft or a
    scheduled send can be changed: once recipients are split, changing variants would send
    some people content nobody measured.
    """
    problems: list[str] = []
    if list_email.status not in (ListEmailStatus.DRAFT, ListEmailStatus.SCHEDULED):
        problems.append(_("The A/B test of a send that has started cannot be changed."))
    if not 2 <= len(variants) <= AB_MAX_VARIANTS:
        problems.append(
            _("An A/B test needs between 2 and %(max)s variants.") % {"max": AB_MAX_VARIANTS}
        )
    if not 1 <= percent <= 100:
        problems.append(_("The test share must be between 1 and 100%."))
    if not 1 <= hours <= 24 * 7:
        problems.append(_("The test duration must be between 1 and 168 hours."))
    if metric not in AbWinnerMetric.values:
        problems.append(_("Choose the winner metric."))
    for index, parts in enumerate(variants[:AB_MAX_VARIANTS]):
        letter = chr(ord("A") + index)
        problems.extend(
            _("Variant %(letter)s: %(problem)s") % {"letter": letter, "problem": problem}
            for problem in _content_problems(parts)
        )
    distinct = {tuple(str(parts.get(name) or "") for name in VARIANT_FIELDS) for parts in variants}
    if len(variants) >= 2 and len(distinct) < len(variants):
        problems.append(_("Two variants are the same: change the subject or the content."))
    if problems:
        raise ValidationError(problems)
    with transaction.atomic():
        locked = ListEmail.objects.select_for_update().get(pk=list_email.pk)
        if locked.status not in (ListEmailStatus.DRAFT, ListEmailStatus.SCHEDULED):
            raise ValidationError(_("The A/B test of a send that has started cannot be changed."))
        locked.variants.all().delete()
        created = [
            ListEmailVariant.objects.create(
                list_email=locked,
                letter=chr(ord("A") + index),
                **{name: str(parts.get(name) or "") for name in VARIANT_FIELDS},
            )
            for index, parts in enumerate(variants)
        ]
        locked.ab_test_percent = percent
        locked.ab_test_hours = hours
        locked.ab_winner_metric = metric
        locked.save(
            update_fields=["ab_test_percent", "ab_test_hours", "ab_winner_metric", "updated_at"]
        )
    list_email.refresh_from_db()
    return created


def list_email_ab_test_clear(*, list_email: ListEmail) -> None:
    """Back to one content for everyone (draft or scheduled sends only)."""
    with transaction.atomic():
        locked = ListEmail.objects.select_for_update().get(pk=list_email.pk)
        if locked.status not in (ListEmailStatus.DRAFT, ListEmailStatus.SCHEDULED):
            raise ValidationError(_("The A/B test of a send that has started cannot be changed."))
        locked.variants.all().delete()
        locked.ab_test_percent = None
        locked.save(update_fields=["ab_test_percent", "updated_at"])
    list_email.refresh_from_db()


def list_email_schedule(
    *, list_email: ListEmail, send_at: datetime.datetime | None = None
) -> ListEmail:
    """Schedule a draft (``send_at`` aware; None: now). Raises ValidationError with the
    problems of :func:`list_email_problems`."""
    if send_at is not None and timezone.is_naive(send_at):
        raise ValueError("send_at must be an aware datetime")
    problems = list_email_problems(list_email)
    if problems:
        raise ValidationError(problems)
    send_at = send_at or timezone.now()
    updated = ListEmail.objects.filter(pk=list_email.pk, status=ListEmailStatus.DRAFT).update(
        status=ListEmailStatus.SCHEDULED, scheduled_at=send_at, updated_at=timezone.now()
    )
    if not updated:
        raise ValidationError(_("Only a draft can be scheduled."))
    list_email.refresh_from_db()
    if send_at <= timezone.now():
        from emails.tasks import start_list_email

        list_email_id = list_email.pk
        transaction.on_commit(lambda: start_list_email.delay(list_email_id))
    return list_email


def _transition(
    list_email: ListEmail, *, from_statuses: Sequence[str], to_status: str, **changes: Any
) -> bool:
    updated = ListEmail.objects.filter(pk=list_email.pk, status__in=list(from_statuses)).update(
        status=to_status, updated_at=timezone.now(), **changes
    )
    list_email.refresh_from_db()
    return bool(updated)


def list_email_pause(*, list_email: ListEmail, reason: str = "") -> bool:
    """Stop claiming new batches; rows already claimed finish (≤ one batch per worker)."""
    return _transition(
        list_email,
        from_statuses=[ListEmailStatus.SENDING],
        to_status=ListEmailStatus.PAUSED,
        paused_reason=reason[:500],
    )


def list_email_resume(*, list_email: ListEmail) -> bool:
    resumed = _transition(
        list_email,
        from_statuses=[ListEmailStatus.PAUSED],
        to_status=ListEmailStatus.SENDING,
        paused_reason="",
    )
    if resumed:
        from emails.tasks import send_list_email

        list_email_id = list_email.pk
        transaction.on_commit(lambda: send_list_email.delay(list_email_id))
    return resumed


def list_email_cancel(*, list_email: ListEmail) -> bool:
    """Cancel a draft, scheduled, sending or paused send; queued rows are left unsent."""
    return _transition(
        list_email,
        from_statuses=[
            ListEmailStatus.DRAFT,
            ListEmailStatus.SCHEDULED,
            ListEmailStatus.SENDING,
            ListEmailStatus.PAUSED,
        ],
        to_status=ListEmailStatus.CANCELLED,
        finished_at=timezone.now(),
    )
