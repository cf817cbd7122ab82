"""The page-view beacon: parse hostile input, rate-limit, de-duplicate, then record.

The tracking script sends each page view as an image request (``GET /t/pv?url=…&pvid=…``), see
``static/tracking/mapp.js``. Everything here treats the request as hostile: values are parsed
from the raw query string (invalid UTF-8 is refused, not replaced), URLs must be http(s) and at
most 2,000 characters, text is clipped and stripped of control characters. A refused beacon
stores nothing and is answered with a quiet 204; it never raises.

An accepted page view is queued in one Redis round trip and stored in batches by a Celery task
(:mod:`tracking.ingest`); the visitors, visits and activities are made there. The per-address
limiter :func:`admit_hit` below serves the endpoints that still write at once (identify,
custom redirects, files).
"""

from __future__ import annotations

import enum
import logging
import re
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import redis
from django.conf import settings

from mapp.health import redis_client
from tracking.ingest import key as tracking_key
from tracking.ingest import log_limited, rate_limit
from tracking.models import TrackingSettings

logger = logging.getLogger(__name__)

MAX_URL_LENGTH = 2000
MAX_TITLE_LENGTH = 500
MAX_UTM_LENGTH = 200
# A beacon has six parameters; a query string with many more is not ours.
MAX_FIELDS = 20
MAX_QUERY_STRING_BYTES = 12_000
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
PAGE_VIEW_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class PageViewInput:
    """A page view as the script reported it, already validated and clipped."""

    url: str
    page_view_id: str
    title: str = ""
    referrer: str = ""
    utm: dict[str, str] = field(default_factory=dict)
    has_consent: bool = False
    do_not_track: bool = False


def parse_query_string(raw: bytes) -> dict[str, str] | None:
    """The parameters of a raw query string, or None if it is not clean UTF-8 or too big.

    Django's ``request.GET`` replaces invalid UTF-8 with U+FFFD; a beacon carrying that is not
    from our script, so it is refused instead of being stored garbled.
    """
    if len(raw) > MAX_QUERY_STRING_BYTES:
        return None
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        return None
    # The first value wins: a repeated parameter cannot smuggle a second URL past validation.
    parameters: dict[str, str] = {}
    for key, value in pairs:
        parameters.setdefault(key, value)
    return parameters


def clean_http_url(value: str) -> str | None:
    """``value`` if it is an absolute http(s) URL of at most 2,000 characters, else None."""
    if not value or len(value) > MAX_URL_LENGTH or URL_FORBIDDEN.search(value):
        return None
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return None
    if parts.scheme.lower() not in {"http", "https"} or not hostname:
        return None
    return value


def clean_text(value: str, max_length: int) -> str:
    return CONTROL_CHARACTERS.sub(" ", value).strip()[:max_length]


def utm_parameters(url: str) -> dict[str, str]:
    """The utm_* parameters of the page's own URL (clipped; undecodable bytes replaced)."""
    query = urlsplit(url).query
    if "utm_" not in query:
        return {}
    found: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=False, errors="replace"):
        if key in UTM_KEYS and key not in found:
            found[key] = clean_text(value, MAX_UTM_LENGTH)
    return found


def parse_page_view(parameters: dict[str, str]) -> PageViewInput | None:
    """A valid page view from the beacon's parameters, or None (the beacon is then ignored)."""
    url = clean_http_url(parameters.get("url", ""))
    page_view_id = parameters.get("pvid", "")
    if url is None or not PAGE_VIEW_ID.fullmatch(page_view_id):
        return None
    return PageViewInput(
        url=url,
        page_view_id=page_view_id,
        title=clean_text(parameters.get("title", ""), MAX_TITLE_LENGTH),
        # A referrer is optional context: an unusable one is dropped, the page view is kept.
        referrer=clean_http_url(parameters.get("ref", "")) or "",
        utm=utm_parameters(url),
        has_consent=parameters.get("consent") == "1",
        do_not_track=parameters.get("dnt") == "1",
    )


# --- refusals before any database work --------------------------------------------------------

_settings_snapshot: tuple[float, TrackingSettings] | None = None


def current_tracking_settings() -> TrackingSettings:
    """The account's tracking settings, re-read at most every few seconds per process.

    Every hit needs them; a query per hit for a row that changes once a year is not worth it.
    ``TRACKING_SETTINGS_CACHE_SECONDS`` (default 5) bounds how late a change applies.
    """
    global _settings_snapshot
    seconds = float(getattr(settings, "TRACKING_SETTINGS_CACHE_SECONDS", 5))
    snapshot = _settings_snapshot
    now = time.monotonic()
    if seconds > 0 and snapshot is not None and now - snapshot[0] < seconds:
        return snapshot[1]
    row = TrackingSettings.load()
    _settings_snapshot = (now, row)
    return row


def forget_tracking_settings() -> None:
    """After a change: this process reads the settings again on the next hit."""
    global _settings_snapshot
    _settings_snapshot = None


def is_refused_by_privacy(
    *, tracking_settings: TrackingSettings, has_consent: bool, do_not_track: bool
) -> bool:
    """The server's own check of consent mode and Do-Not-Track (the script checks them too)."""
    if tracking_settings.require_consent and not has_consent:
        return True
    return bool(tracking_settings.honour_do_not_track and do_not_track)


class Admission(enum.Enum):
    ACCEPTED = "accepted"
    LIMITED = "limited"  # over the per-address limit: drop quietly


def admit_hit(*, client_address: str | None, scope: str = "hit") -> Admission:
    """Per-address fixed-window rate limit for the endpoints that write at once: one round trip.

    The same counters as the queued hits (``tracking.ingest.hit_accept``). The counter is
    ``SET key 0 NX EX`` + ``INCR`` (Redis 6 has no ``EXPIRE … NX``). Redis being down must
    neither stop tracking nor raise: every hit is then admitted.
    """
    limit, window = rate_limit()
    if limit <= 0 or not client_address:
        return Admission.ACCEPTED
    key = tracking_key(f"rate:{scope}:{client_address}:{int(time.time() // window)}")
    try:
        pipeline = redis_client().pipeline(transaction=False)
        pipeline.set(key, 0, ex=window * 2, nx=True)
        pipeline.incr(key)
        count = int(pipeline.execute()[1])
    except (redis.RedisError, OSError):
        logger.warning("tracking rate limiter unavailable; admitting the hit")
        return Admission.ACCEPTED
    if count > limit:
        log_limited(client_address, count, limit, window)
        return Admission.LIMITED
    return Admission.ACCEPTED
