"""Tracked email links, custom redirects and tracked files: tokens, URLs and the writes behind them.

Email open pixels and click redirects carry a token signed with ``django.core.signing`` (one salt
per purpose, so a token made for one cannot be used for the other). The click token carries the
destination URL itself: the signature *is* the record of "the link of that email", so the
redirect can only ever go where mapp sent it, and nothing needs to be stored per link at send
time. Tokens do not expire — an email is read years later — and a token never names anything
but ids the recipient already has.

Custom redirects (``/r/<slug>``) and tracked files (``/f/<slug>/<name>``) are rows the marketer
made; their endpoints go only to the stored destination or the stored file.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import logging
import mimetypes
import os
import re
import secrets
import string
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import SuspiciousFileOperation, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import URLValidator
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django.utils.text import get_valid_filename
from django.utils.translation import gettext as _

from mapp.models import User
from tracking.models import Activity, ActivityType, CustomRedirect, TrackedFile, Visitor
from tracking.services import activity_record

logger = logging.getLogger(__name__)

OPEN_SALT = "mapp.email.open"
CLICK_SALT = "mapp.email.click"
MAX_URL_LENGTH = 2000
# A click token holds a URL of at most 2,000 characters (≈ 2,800 once signed and encoded,
# less when it compresses); anything longer is not ours and is not even unsigned.
MAX_TOKEN_LENGTH = 3000
MAX_EMAIL_ID_LENGTH = 64
MAX_LINK_ID_LENGTH = 64
# Characters that have no place in a URL we hand to a browser (spaces, controls, and the
# backslash browsers read as "/", which would make the shown and the followed host differ).
URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\]")
_url_validator = URLValidator(schemes=["http", "https"])


class UnsafeDestinationError(ValueError):
    """The URL is not an absolute http(s) URL mapp is willing to redirect to."""


def is_safe_destination(url: object) -> bool:
    """An absolute http(s) URL with a host, no whitespace or control characters, ≤ 2,000 chars.

    ``javascript:``, ``data:``, scheme-relative ``//host`` and relative paths are refused.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        return False
    return _is_safe_url(url)


# Every click checks its URL twice (the token's, then the redirect's) and a list email's links
# are clicked by many recipients; Django's URL validator is a long regular expression.
@functools.lru_cache(maxsize=4096)
def _is_safe_url(url: str) -> bool:
    if URL_FORBIDDEN.search(url):
        return False
    try:
        _url_validator(url)
    except ValidationError:
        return False
    return True


def _check_destination(url: str) -> str:
    if not is_safe_destination(url):
        raise UnsafeDestinationError(_("Only absolute http:// or https:// URLs can be tracked."))
    return url


def _base_url(base_url: str | None) -> str:
    return (base_url or settings.SITE_URL).rstrip("/")


def _timestamp(moment: datetime.datetime | None) -> int | None:
    if moment is None:
        return None
    if timezone.is_naive(moment):
        raise ValueError("sent_at must be an aware datetime")
    return int(moment.timestamp())


def _from_timestamp(value: object) -> datetime.datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**33:
        return datetime.datetime.fromtimestamp(value, tz=datetime.UTC)
    return None


def link_object_id(url: str, link_id: str = "") -> str:
    """What a click concerns: the email's own link id, else a stable hash of the URL."""
    return link_id or hashlib.sha256(url.encode()).hexdigest()[:32]


# --- tokens --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenToken:
    prospect_id: int
    email_id: str
    sent_at: datetime.datetime | None


@dataclass(frozen=True)
class ClickToken:
    prospect_id: int
    email_id: str
    url: str
    link_id: str
    sent_at: datetime.datetime | None


def _check_ids(prospect_id: int, email_id: str) -> None:
    if not isinstance(prospect_id, int) or isinstance(prospect_id, bool) or prospect_id <= 0:
        raise ValueError("prospect_id must be a positive integer")
    if not isinstance(email_id, str) or not email_id or len(email_id) > MAX_EMAIL_ID_LENGTH:
        raise ValueError(f"email_id must be 1–{MAX_EMAIL_ID_LENGTH} characters")


def open_token(*, prospect_id: int, email_id: str, sent_at: datetime.datetime | None = None) -> str:
    _check_ids(prospect_id, email_id)
    return signing.dumps(
        [prospect_id, email_id, _timestamp(sent_at)], salt=OPEN_SALT, compress=True
    )


def click_token(
    *,
    prospect_id: int,
    email_id: str,
    url: str,
    link_id: str = "",
    sent_at: datetime.datetime | None = None,
) -> str:
    _check_ids(prospect_id, email_id)
    _check_destination(url)
    if len(link_id) > MAX_LINK_ID_LENGTH:
        raise ValueError(f"link_id must be at most {MAX_LINK_ID_LENGTH} characters")
    return signing.dumps(
        [prospect_id, email_id, url, link_id, _timestamp(sent_at)], salt=CLICK_SALT, compress=True
    )


def _unsign(token: str, *, salt: str) -> Any:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        return signing.loads(token, salt=salt)
    except signing.BadSignature:
        return None
    except ValueError:
        # Correctly signed yet undecodable: only possible with our own key; still a refusal.
        logger.warning("validly signed tracking token that does not decode")
        return None


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_text(value: object, max_length: int, *, allow_empty: bool = False) -> bool:
    return isinstance(value, str) and (allow_empty or bool(value)) and len(value) <= max_length


def open_token_load(token: str) -> OpenToken | None:
    """The open the token vouches for, or None for anything tampered, truncated or foreign."""
    data = _unsign(token, salt=OPEN_SALT)
    if not isinstance(data, list) or len(data) != 3:
        return None
    prospect_id, email_id, sent_at = data
    if not _is_id(prospect_id) or not _is_text(email_id, MAX_EMAIL_ID_LENGTH):
        return None
    return OpenToken(prospect_id=prospect_id, email_id=email_id, sent_at=_from_timestamp(sent_at))


def click_token_load(token: str) -> ClickToken | None:
    """The click the token vouches for, or None. The URL is re-checked: never a bad redirect."""
    data = _unsign(token, salt=CLICK_SALT)
    if not isinstance(data, list) or len(data) != 5:
        return None
    prospect_id, email_id, url, link_id, sent_at = data
    if not _is_id(prospect_id) or not _is_text(email_id, MAX_EMAIL_ID_LENGTH):
        return None
    if not _is_text(link_id, MAX_LINK_ID_LENGTH, allow_empty=True) or not is_safe_destination(url):
        return None
    return ClickToken(
        prospect_id=prospect_id,
        email_id=email_id,
        url=url,
        link_id=link_id,
        sent_at=_from_timestamp(sent_at),
    )


def open_pixel_url(
    *,
    prospect_id: int,
    email_id: str,
    sent_at: datetime.datetime | None = None,
    base_url: str | None = None,
) -> str:
    """The absolute URL of the 1×1 open pixel for one recipient of one email."""
    token = open_token(prospect_id=prospect_id, email_id=email_id, sent_at=sent_at)
    return _base_url(base_url) + reverse("links:open_pixel", kwargs={"token": token})


def tracked_link_url(
    *,
    prospect_id: int,
    email_id: str,
    url: str,
    link_id: str = "",
    sent_at: datetime.datetime | None = None,
    base_url: str | None = None,
) -> str:
    """The absolute tracked URL for one link of one email to one recipient.

    Raises :class:`UnsafeDestinationError` for anything but an absolute http(s) URL (check
    :func:`is_safe_destination` first to leave ``mailto:`` and the like untracked). ``sent_at``
    lets the click endpoint tell a link scanner (a click seconds after delivery) from a reader.
    """
    token = click_token(
        prospect_id=prospect_id, email_id=email_id, url=url, link_id=link_id, sent_at=sent_at
    )
    return _base_url(base_url) + reverse("links:click", kwargs={"token": token})


# --- rate limiting -------------------------------------------------------------------------------


def is_rate_limited(*, scope: str, client_address: str | None) -> bool:
    """True once ``client_address`` passed the tracking limit for ``scope`` in this window.

    The same per-address counters as the queued hits (tracking.beacon.admit_hit): one
    Redis round trip, and hits are let through when Redis is unavailable.
    """
    from tracking.beacon import Admission, admit_hit

    return admit_hit(client_address=client_address, scope=scope) is Admission.LIMITED


# --- custom redirects ----------------------------------------------------------------------------

SLUG_LENGTH = 8
SLUG_ALPHABET = string.ascii_letters + string.digits
SLUG_PATTERN = re.compile(r"[-a-zA-Z0-9_]+")


def slug_generate(model: type[CustomRedirect] | type[TrackedFile]) -> str:
    """8 random URL-safe characters (62^8 ≈ 2×10^14), retried on the rare collision."""
    while True:
        slug = "".join(secrets.choice(SLUG_ALPHABET) for _index in range(SLUG_LENGTH))
        if not model.objects.filter(slug=slug).exists():
            return slug


def custom_redirect_create(
    *,
    actor: User | None,
    name: str,
    destination_url: str,
    slug: str = "",
    campaign_name: str = "",
) -> CustomRedirect:
    _check_destination(destination_url)
    if slug and not SLUG_PATTERN.fullmatch(slug):
        raise ValidationError(_("The short code may contain only letters, digits, - and _."))
    if slug and CustomRedirect.objects.filter(slug=slug).exists():
        raise ValidationError(_("This short code is already in use."))
    try:
        # The unique index decides a race between two marketers choosing the same code.
        with transaction.atomic():
            return CustomRedirect.objects.create(
                name=name,
                slug=slug or slug_generate(CustomRedirect),
                destination_url=destination_url,
                campaign_name=campaign_name,
                created_by=actor if actor is not None and actor.pk else None,
            )
    except IntegrityError as error:
        raise ValidationError(_("This short code is already in use.")) from error


def custom_redirect_update(
    *,
    custom_redirect: CustomRedirect,
    name: str,
    destination_url: str,
    slug: str,
    campaign_name: str,
    is_active: bool,
) -> CustomRedirect:
    _check_destination(destination_url)
    slug = slug or custom_redirect.slug
    if not SLUG_PATTERN.fullmatch(slug):
        raise ValidationError(_("The short code may contain only letters, digits, - and _."))
    if CustomRedirect.objects.filter(slug=slug).exclude(pk=custom_redirect.pk).exists():
        raise ValidationError(_("This short code is already in use."))
    custom_redirect.name = name
    custom_redirect.slug = slug
    custom_redirect.destination_url = destination_url
    custom_redirect.campaign_name = campaign_name
    custom_redirect.is_active = is_active
    try:
        with transaction.atomic():
            custom_redirect.save(
                update_fields=["name", "slug", "destination_url", "campaign_name", "is_active"]
            )
    except IntegrityError as error:
        raise ValidationError(_("This short code is already in use.")) from error
    return custom_redirect


def custom_redirect_hit(
    *, custom_redirect: CustomRedirect, visitor: Visitor | None, bot_kind: str | None
) -> Activity:
    """Count one click (human or bot, separately) and record it for the visitor's prospect."""
    counter = "bot_click_count" if bot_kind else "click_count"
    CustomRedirect.objects.filter(pk=custom_redirect.pk).update(**{counter: F(counter) + 1})
    payload: dict[str, Any] = {
        "slug": custom_redirect.slug,
        "destination": custom_redirect.destination_url,
    }
    if custom_redirect.campaign_name:
        payload["campaign"] = custom_redirect.campaign_name
    if bot_kind:
        payload["bot"] = bot_kind
    return activity_record(
        type=ActivityType.CUSTOM_REDIRECT_CLICK,
        prospect_id=visitor.prospect_id if visitor is not None else None,
        visitor_id=visitor.pk if visitor is not None else None,
        object_type="custom_redirect",
        object_id=custom_redirect.pk,
        object_label=custom_redirect.name,
        payload=payload,
        is_bot=bot_kind is not None,
    )


# --- tracked files -------------------------------------------------------------------------------

MAX_FILE_SIZE = 50 * 1024 * 1024  # 50 MB
MAX_STORED_STEM_LENGTH = 80
# Served inline (the browser shows them): raster images only. Every other type — SVG included,
# which can carry script — is served as an opaque download.
INLINE_CONTENT_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"}
)
DOWNLOAD_CONTENT_TYPE = "application/octet-stream"
# Headers on every served file: the browser may not sniff a type, and even a document opened
# directly runs no script and loads nothing (a sandboxed, opaque origin).
FILE_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
}


def safe_filename(original_name: str) -> str:
    """A file name safe for storage and URLs: no directories, only letters, digits, -, _ and ."""
    base = os.path.basename(original_name.replace("\\", "/")).strip()
    try:
        cleaned = get_valid_filename(base)
    except SuspiciousFileOperation:
        cleaned = ""
    stem, extension = os.path.splitext(cleaned)
    stem = stem.lstrip(".")[:MAX_STORED_STEM_LENGTH] or "file"
    extension = extension[:16]
    return f"{stem}{extension}"


def guess_content_type(filename: str) -> str:
    content_type, _encoding = mimetypes.guess_type(filename, strict=False)
    return content_type or DOWNLOAD_CONTENT_TYPE


def is_inline_image(content_type: str) -> bool:
    return content_type in INLINE_CONTENT_TYPES


def tracked_file_create(*, actor: User | None, name: str, uploaded: UploadedFile) -> TrackedFile:
    """Store an upload under files/ with a sanitised, unguessable name; keep the original name."""
    if uploaded.size is None or uploaded.size > MAX_FILE_SIZE:
        raise ValidationError(_("The file is larger than 50 MB."))
    original = os.path.basename((uploaded.name or "").replace("\\", "/"))[:255] or "file"
    filename = safe_filename(original)
    stem, extension = os.path.splitext(filename)
    stored_name = f"{stem}-{secrets.token_hex(6)}{extension}"
    tracked = TrackedFile(
        name=name or original[:200],
        slug=slug_generate(TrackedFile),
        original_filename=original,
        content_type=guess_content_type(filename),
        size=uploaded.size,
        created_by=actor if actor is not None and actor.pk else None,
    )
    tracked.file.save(stored_name, uploaded, save=False)
    try:
        tracked.save()
    except DatabaseError:
        tracked.file.delete(save=False)  # no row, no orphan file
        raise
    return tracked


def tracked_file_download_name(tracked_file: TrackedFile) -> str:
    """The name in the file's URL and in Content-Disposition (the sanitised original name)."""
    return safe_filename(tracked_file.original_filename)


def tracked_file_hit(
    *, tracked_file: TrackedFile, visitor: Visitor | None, bot_kind: str | None
) -> Activity | None:
    """Count and record a download; images are embedded, not downloaded, and are not counted."""
    if is_inline_image(tracked_file.content_type):
        return None
    counter = "bot_download_count" if bot_kind else "download_count"
    TrackedFile.objects.filter(pk=tracked_file.pk).update(**{counter: F(counter) + 1})
    payload: dict[str, Any] = {"filename": tracked_file.original_filename}
    if bot_kind:
        payload["bot"] = bot_kind
    return activity_record(
        type=ActivityType.FILE_DOWNLOAD,
        prospect_id=visitor.prospect_id if visitor is not None else None,
        visitor_id=visitor.pk if visitor is not None else None,
        object_type="file",
        object_id=tracked_file.pk,
        object_label=tracked_file.name,
        payload=payload,
        is_bot=bot_kind is not None,
    )
