"""One recipient's message: merge fields, inlined CSS, tracked links, pixel, headers, DKIM.

Everything that is the same for a whole send (the DKIM signer with its key parsed once, the
account's merge values, the CSS inliner) is prepared once in :class:`SendSetup`; what differs
per recipient is done in :func:`message_build`.

Header safety: every header value that contains marketer or prospect text (subject, display
names) loses its CR/LF and other control characters before it reaches the message, and
addresses go through :class:`email.headerregistry.Address`, so a prospect called
``"a\\r\\nBcc: evil@x"`` can never add a header.
"""

from __future__ import annotations

import datetime
import functools
import html
import re
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING

import css_inline
import html2text
from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from emails.dkim import DEFAULT_SIGNED_HEADERS, DkimSigner
from emails.models import EmailContent, SenderType
from emails.unsubscribe import unsubscribe_token
from mapp.models import AccountSettings
from mapp.templating import MergeContext, MergeField, register_merge_field, render_marketer_template
from tracking.links import is_safe_destination, open_pixel_url, tracked_link_url

if TYPE_CHECKING:
    from emails.models import EmailTemplate, ListEmail, ListEmailVariant, SendingDomain
    from mapp.models import User
    from prospects.models import Prospect

RECIPIENT_HEADER_SALT = "mapp.email.recipient"
#: The unsubscribe "token" of a test send: no valid token, so the link opts nobody out.
TEST_SEND_TOKEN = "test-send"  # noqa: S105 (not a secret)
# Control characters (CR, LF, NUL, …) never belong in a header value; runs of whitespace shrink.
_HEADER_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ANCHOR = re.compile(r"<a\b[^>]*>", re.IGNORECASE)
_HREF = re.compile(r"""(\bhref\s*=\s*)(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_NOTRACK = re.compile(r"\bdata-mapp-notrack\b", re.IGNORECASE)
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)


class MessageBuildError(ValueError):
    """This recipient's message cannot be made (a bad address, a template that fails)."""


def header_text(value: str) -> str:
    """A single-line header value: control characters become one space."""
    return " ".join(_HEADER_CONTROL.sub(" ", value).split())


def account_merge_values() -> dict[str, str]:
    """The account's merge fields, read once per batch instead of once per recipient.

    Empty particulars make scheduling refuse the send (emails.services.list_email_problems).
    """
    account = AccountSettings.load()
    contact = " / ".join(value for value in (account.contact_email, account.contact_phone) if value)
    return {
        "account.name": account.name,
        "account.postal_address": account.postal_address,
        "account.contact": contact,
    }


@dataclass(frozen=True)
class Sender:
    name: str
    address: str


def is_aligned(address: str, domain: str) -> bool:
    """Whether ``address`` is at ``domain`` or one of its sub-domains (DMARC relaxed alignment)."""
    address_domain = address.rpartition("@")[2].lower()
    domain = domain.lower()
    return address_domain == domain or address_domain.endswith("." + domain)


def _user_sender(user: User | None) -> Sender | None:
    if user is None or not user.is_active or not user.email:
        return None
    return Sender(name=user.display_name, address=user.email)


def sender_for(content: EmailContent, prospect: Prospect | None, *, domain: str) -> Sender:
    """Who the message is from. The assigned user is used only when their address is on the
    sending domain (else DMARC would fail); otherwise the fallback sender is."""
    if content.sender_type == SenderType.ASSIGNED_USER and prospect is not None:
        assigned = _user_sender(prospect.assigned_user)
        if assigned is not None and is_aligned(assigned.address, domain):
            return assigned
    if content.sender_type in (SenderType.USER, SenderType.ASSIGNED_USER):
        chosen = _user_sender(content.sender_user)
        if chosen is not None:
            return chosen
    return Sender(name=content.sender_name, address=content.sender_address)


def dkim_signer(domain: str, selector: str, algorithm: str, key_path: Path) -> DkimSigner:
    """The signer of a key file, parsed once per process: parsing a PEM key with OpenSSL's
    checks costs 40–80 ms, and a send builds a setup for every batch of 100. Key files are
    never rewritten (a new key gets a new name); the file's size and time are part of the key
    anyway. A missing file raises OSError, as reading it did."""
    status = key_path.stat()
    return _dkim_signer(
        domain, selector, algorithm, str(key_path), (status.st_mtime_ns, status.st_size)
    )


@functools.lru_cache(maxsize=64)
def _dkim_signer(
    domain: str, selector: str, algorithm: str, key_path: str, version: tuple[int, int]
) -> DkimSigner:
    return DkimSigner(
        domain=domain,
        selector=selector,
        private_key_pem=Path(key_path).read_bytes(),
        algorithm=algorithm,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Content:
    """The four templated parts of one message: an email's own, or an A/B variant's."""

    subject: str
    preheader: str
    html: str
    text: str

    @classmethod
    def of(cls, source: EmailContent, variant: ListEmailVariant | None = None) -> Content:
        """A variant's fields override the email's; an empty one inherits it. A variant with its
        own HTML and no text of its own gets text generated from its HTML, never the email's
        text (which describes other content)."""
        if variant is None:
            return cls(source.subject, source.preheader, source.html, source.text)
        text = variant.text or ("" if variant.html else source.text)
        return cls(
            subject=variant.subject or source.subject,
            preheader=variant.preheader or source.preheader,
            html=variant.html or source.html,
            text=text,
        )


class SendKind:
    LIST_EMAIL = "list-email"
    AUTORESPONDER = "autoresponder"
    TEST = "test"


@dataclass
class SendSetup:
    """What one batch of a send shares; built once per batch (the key file is read here).

    ``source`` is the list email or, for an autoresponder or a test send of a template, the
    template. ``contents`` maps a variant id (None: the email's own content) to its parts.
    """

    source: EmailContent
    sending_domain: SendingDomain
    signer: DkimSigner
    account_values: dict[str, str]
    email_id: str
    kind: str
    object_pk: int
    contents: dict[int | None, Content] = field(default_factory=dict)
    second_signer: DkimSigner | None = None  # the domain's Ed25519 key, if it has one
    base_url: str = field(default_factory=lambda: settings.SITE_URL)
    inliner: css_inline.CSSInliner = field(
        default_factory=lambda: css_inline.CSSInliner(
            keep_style_tags=True, load_remote_stylesheets=False
        )
    )

    @classmethod
    def for_list_email(cls, list_email: ListEmail, *, kind: str = SendKind.LIST_EMAIL) -> SendSetup:
        contents: dict[int | None, Content] = {None: Content.of(list_email)}
        for variant in list_email.variants.all():
            contents[variant.pk] = Content.of(list_email, variant)
        return cls._make(
            source=list_email,
            domain=list_email.sending_domain,
            email_id=list_email.tracking_id,
            kind=kind,
            object_pk=list_email.pk,
            contents=contents,
        )

    @classmethod
    def for_template(
        cls, template: EmailTemplate, domain: SendingDomain | None, *, kind: str
    ) -> SendSetup:
        return cls._make(
            source=template,
            domain=domain,
            email_id=f"at{template.pk}",
            kind=kind,
            object_pk=template.pk,
            contents={None: Content.of(template)},
        )

    @classmethod
    def _make(
        cls,
        *,
        source: EmailContent,
        domain: SendingDomain | None,
        email_id: str,
        kind: str,
        object_pk: int,
        contents: dict[int | None, Content],
    ) -> SendSetup:
        if domain is None:
            raise MessageBuildError("The email has no sending domain.")
        signer = dkim_signer(
            domain.domain, domain.dkim_selector, domain.dkim_algorithm, domain.private_key_path
        )
        second = (
            dkim_signer(
                domain.domain, domain.ed25519_selector, "ed25519-sha256", domain.ed25519_key_path
            )
            if domain.has_ed25519
            else None
        )
        return cls(
            source=source,
            sending_domain=domain,
            signer=signer,
            second_signer=second,
            account_values=account_merge_values(),
            email_id=email_id,
            kind=kind,
            object_pk=object_pk,
            contents=contents,
        )


@dataclass(frozen=True)
class BuiltMessage:
    message_id: str
    envelope_from: str
    data: bytes


def _text(source: str, context: MergeContext) -> str:
    """A template rendered for a plain-text place (subject, text part): no HTML escaping."""
    return html.unescape(render_marketer_template(source, context))


def links_rewrite(
    source: str,
    *,
    prospect_id: int,
    email_id: str,
    sent_at: datetime.datetime,
    base_url: str,
) -> str:
    """Every http(s) link made a tracked link, except ``data-mapp-notrack`` ones, ``mailto:``,
    ``tel:`` and anything else that is not an absolute http(s) URL, and the unsubscribe link
    (a tracked hop in front of it would count link scanners as clicks)."""
    unsubscribe_prefix = base_url + reverse("emails_public:unsubscribe", kwargs={"token": "x"})[:-1]
    counter = 0

    def anchor(match: re.Match[str]) -> str:
        nonlocal counter
        tag = match.group(0)
        href = _HREF.search(tag)
        if href is None:
            return tag
        counter += 1
        if _NOTRACK.search(tag):
            return tag
        url = html.unescape(href.group(2) if href.group(2) is not None else href.group(3))
        if not is_safe_destination(url) or url.startswith(unsubscribe_prefix):
            return tag
        tracked = tracked_link_url(
            prospect_id=prospect_id,
            email_id=email_id,
            url=url,
            link_id=str(counter),
            sent_at=sent_at,
            base_url=base_url,
        )
        replacement = f'{href.group(1)}"{html.escape(tracked, quote=True)}"'
        return tag[: href.start()] + replacement + tag[href.end() :]

    return _ANCHOR.sub(anchor, source)


def _insert_after_body_open(source: str, snippet: str) -> str:
    match = _BODY_OPEN.search(source)
    if match is None:
        return snippet + source
    return source[: match.end()] + snippet + source[match.end() :]


def _insert_before_body_close(source: str, snippet: str) -> str:
    matches = list(_BODY_CLOSE.finditer(source))
    if not matches:
        return source + snippet
    position = matches[-1].start()
    return source[:position] + snippet + source[position:]


def _html_to_text(source: str) -> str:
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.unicode_snob = True
    return converter.handle(source).strip() + "\n"


def recipient_header_value(recipient_id: int) -> str:
    """X-Mapp-Recipient: lets a bounce or complaint name the row it is about, unforgeably."""
    return signing.Signer(salt=RECIPIENT_HEADER_SALT).sign(str(recipient_id))


def list_unsubscribe_header(https_url: str, mailto_url: str) -> bytes:
    """The List-Unsubscribe header line, written as is, one URL per line.

    Python's email package cannot fold a URL longer than a line and turns the whole value into
    RFC 2047 encoded words (``=?utf-8?q?=3Chttps=3A…``), which mail clients and Gmail's one-click
    unsubscribe do not read as URLs. Both URLs are ASCII (the token is URL-safe base64), well
    under SMTP's 998-character line limit.
    """
    value = f"List-Unsubscribe: <{https_url}>,\r\n <{mailto_url}>\r\n"
    if _HEADER_CONTROL.sub("", value.replace("\r\n", "")) != value.replace("\r\n", ""):
        raise MessageBuildError("An unsubscribe URL contains control characters.")
    try:
        return value.encode("ascii")
    except UnicodeEncodeError as error:
        raise MessageBuildError("SITE_URL or the unsubscribe mailbox is not ASCII.") from error


def return_path(sender_address: str) -> str:
    """The envelope sender: EMAIL_RETURN_PATH (where bounces are read) or the From address."""
    return getattr(settings, "EMAIL_RETURN_PATH", "") or sender_address


def message_build(
    setup: SendSetup,
    *,
    recipient_id: int,
    address: str,
    prospect: Prospect | None,
    sent_at: datetime.datetime,
    variant_id: int | None = None,
    message_id: str = "",
) -> BuiltMessage:
    """The complete, DKIM-signed message for one recipient (raises MessageBuildError).

    A test send (``SendKind.TEST``) is personalised as ``prospect`` (or with each merge
    field's example when there is none) but tracks nothing: its links are not rewritten, it has
    no pixel, and its unsubscribe link is inert, so a colleague's test click never counts as
    the prospect's and cannot opt them out. Every other kind needs a saved prospect.
    """
    source = setup.source
    content = setup.contents.get(variant_id) or setup.contents[None]
    domain = setup.sending_domain.domain
    test = setup.kind == SendKind.TEST
    sender = sender_for(source, prospect, domain=domain)
    if test:
        token = TEST_SEND_TOKEN
    elif prospect is None or prospect.pk is None:
        raise MessageBuildError("Only a test send can go to an address without a prospect.")
    else:
        token = unsubscribe_token(
            prospect_id=prospect.pk,
            list_email_id=setup.object_pk if setup.kind == SendKind.LIST_EMAIL else 0,
        )
    unsubscribe_https = setup.base_url + reverse(
        "emails_public:unsubscribe", kwargs={"token": token}
    )
    mailbox = getattr(settings, "EMAIL_UNSUBSCRIBE_MAILBOX", "") or f"unsubscribe@{domain}"
    extra = {
        **setup.account_values,
        "unsubscribe_url": unsubscribe_https,
        "sender.name": sender.name,
        "sender.email": sender.address,
    }
    context = MergeContext(prospect=prospect, extra=extra, preview=test and prospect is None)
    try:
        subject = header_text(_text(content.subject, context))
        body = render_marketer_template(content.html, context)
        if content.preheader:
            preheader = render_marketer_template(content.preheader, context)
            body = _insert_after_body_open(
                body,
                '<div style="display:none;max-height:0;overflow:hidden;mso-hide:all">'
                f"{preheader}</div>",
            )
        body = setup.inliner.inline(body)
        if prospect is not None and not test:
            body = links_rewrite(
                body,
                prospect_id=prospect.pk,
                email_id=setup.email_id,
                sent_at=sent_at,
                base_url=setup.base_url,
            )
        text = _text(content.text, context) if content.text.strip() else ""
    except ValueError as error:  # TemplateError is a ValueError
        raise MessageBuildError(str(error)) from error
    if not text:
        text = _html_to_text(body)
    if test or prospect is None:
        subject = f"[TEST] {subject}"
    else:
        pixel = open_pixel_url(
            prospect_id=prospect.pk,
            email_id=setup.email_id,
            sent_at=sent_at,
            base_url=setup.base_url,
        )
        body = _insert_before_body_close(
            body,
            f'<img src="{html.escape(pixel, quote=True)}" width="1" height="1" alt="" '
            'style="display:block;border:0;width:1px;height:1px">',
        )
    message_id = message_id or f"<mapp.{setup.object_pk}.{recipient_id}@{domain}>"
    message = EmailMessage(policy=SMTP)
    try:
        message["From"] = Address(display_name=header_text(sender.name), addr_spec=sender.address)
        message["To"] = Address(
            display_name=header_text(prospect.full_name if prospect else ""), addr_spec=address
        )
        if source.reply_to:
            message["Reply-To"] = Address(addr_spec=source.reply_to)
    except (ValueError, IndexError) as error:
        raise MessageBuildError(f"Invalid address: {error}") from error
    message["Subject"] = subject
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = message_id
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Feedback-ID"] = f"{setup.object_pk}:{setup.kind}:mapp"
    message["X-Mapp-Recipient"] = recipient_header_value(recipient_id)
    message.set_content(text)
    message.add_alternative(body, subtype="html")
    data = list_unsubscribe_header(unsubscribe_https, f"mailto:{mailbox}?subject={token}")
    data += message.as_bytes()
    signature = setup.signer.sign(data, include_headers=DEFAULT_SIGNED_HEADERS)
    if setup.second_signer is not None:
        # below the RSA one: verifiers that check only the first signature check RSA
        signature += setup.second_signer.sign(data, include_headers=DEFAULT_SIGNED_HEADERS)
    return BuiltMessage(
        message_id=message_id, envelope_from=return_path(sender.address), data=signature + data
    )


# --- merge fields emails contribute to the shared sandbox --------------------------------------
# ``unsubscribe_url`` differs per recipient, so it has no resolver: message_build passes each
# recipient's signed link in ``MergeContext.extra``. The account's postal address and contact
# point (特定電子メール法) are read from AccountSettings for previews; message_build passes them
# in ``extra`` too, read once per batch.


def _account_value(key: str) -> str:
    return account_merge_values()[key]


def _postal_address(context: MergeContext) -> str:
    return _account_value("account.postal_address")


def _contact(context: MergeContext) -> str:
    return _account_value("account.contact")


def register_merge_fields() -> None:
    """Called from EmailsConfig.ready()."""
    register_merge_field(
        MergeField(
            key="unsubscribe_url",
            label=_("Unsubscribe link"),
            group=_("Email"),
            example="https://example.co.jp/email/unsubscribe/…",
        )
    )
    register_merge_field(
        MergeField(
            key="account.postal_address",
            label=_("Sender's postal address"),
            group=_("Account"),
            resolve=_postal_address,
            example="〒100-0001 東京都千代田区千代田1-1",
        )
    )
    register_merge_field(
        MergeField(
            key="account.contact",
            label=_("Sender's contact (email / phone)"),
            group=_("Account"),
            resolve=_contact,
            example="info@example.co.jp / 03-1234-5678",
        )
    )
