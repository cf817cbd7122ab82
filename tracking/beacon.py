"""The page-view beacon: parse hostile input, rate-limit, de-duplicate, then record.

The tracking script sends each page view as an image request (``GET /t/pv?url=…&pvid=…``), see
``static/tracking/mapp.js``. Everything here treats the request as hostile: values are parsed
from the raw query string (invalid UTF-8 is refused, not replaced), URLs must be http(s) and at
most 2,000 characters, text is clipped and stripped of control characters. A refused beacon
stores nothing and is answered with a quiet 204; it never raises.

Recording a page view (:func:`page_view_record`) finds or creates the visitor, continues the
visitor's current visit or starts a new one (recording a VISIT activity), increments the
counters in the database (``count = count + 1``, as ``F()`` would) and records the PAGE_VIEW
activity through ``tracking.services.activity_record``. The hot path is a few statements and one
Redis round trip: see bench/tracking_hits.py.
"""

from __future__ import annotations

import datetime
import enum
import logging
import re
import time
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from tracking.bots import classify_user_agent
from tracking.models import ActivityType, TrackingSettings, Visit, Visitor
from tracking.services import activity_record

logger = logging.getLogger(__name__)

MAX_URL_LENGTH = 2000
MAX_TITLE_LENGTH = 500
MAX_UTM_LENGTH = 200
MAX_USER_AGENT_LENGTH = 500
# A beacon has six parameters; a query string with many more is not ours.
MAX_FIELDS = 20
MAX_QUERY_STRING_BYTES = 12_000
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
PAGE_VIEW_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")

# A page-view id is remembered this long: a beacon replayed within it is stored once.
REPLAY_WINDOW_SECONDS = 24 * 60 * 60
# Per client address, fixed windows: generous for a company behind one NAT, tight for a flood.
DEFAULT_RATE_LIMIT_HITS = 120
DEFAULT_RATE_LIMIT_WINDOW_SECONDS = 10


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
    REPLAY = "replay"  # this page-view id was accepted before: answer as if stored
    LIMITED = "limited"  # over the per-address limit: drop quietly


_redis_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _redis_for(key: str) -> Any:
    """The cache's own pooled Redis client, to send several commands in one round trip.

    Django builds a new client object around its connection pool on every call, which costs
    more than the round trip; one is kept per cache connection (Django's are per thread).
    """
    backend = getattr(cache, "_cache", None)  # django.core.cache.backends.redis.RedisCache
    get_client = getattr(backend, "get_client", None)
    if backend is None or not callable(get_client):
        return None
    client = _redis_clients.get(backend)
    if client is None:
        client = _redis_clients[backend] = get_client(key, write=True)
    return client


def admit_hit(
    *, client_address: str | None, page_view_id: str | None = None, scope: str = "hit"
) -> Admission:
    """Per-address fixed-window rate limit and replay guard, in one Redis round trip.

    The counter is ``SET key 0 NX EX`` + ``INCR`` (Redis 6 has no ``EXPIRE … NX``); the replay
    guard is ``SET pvid 1 NX EX 1 day``. Redis being down must neither stop tracking nor raise:
    every hit is then admitted (a rare duplicate is better than a lost page view).
    """
    limit = int(getattr(settings, "TRACKING_RATE_LIMIT_HITS", DEFAULT_RATE_LIMIT_HITS))
    window = int(
        getattr(settings, "TRACKING_RATE_LIMIT_WINDOW_SECONDS", DEFAULT_RATE_LIMIT_WINDOW_SECONDS)
    )
    rate_name = f"tracking:rate:{scope}:{client_address}:{int(time.time() // window)}"
    replay_name = f"tracking:pvid:{page_view_id}" if page_view_id else None
    count = 0
    is_first = True
    try:
        client = _redis_for(cache.make_key(rate_name))
        if client is not None:
            pipeline = client.pipeline(transaction=False)
            pipeline.set(cache.make_key(rate_name), 0, ex=window * 2, nx=True)
            pipeline.incr(cache.make_key(rate_name))
            if replay_name:
                pipeline.set(cache.make_key(replay_name), 1, ex=REPLAY_WINDOW_SECONDS, nx=True)
            results = pipeline.execute()
            count = int(results[1])
            is_first = bool(results[2]) if replay_name else True
        else:  # another cache backend: the same logic in more round trips
            cache.add(rate_name, 0, timeout=window * 2)
            count = cache.incr(rate_name)
            if replay_name:
                is_first = cache.add(replay_name, 1, timeout=REPLAY_WINDOW_SECONDS)
    except ValueError:  # the counter expired between add and incr: a new window has begun
        count = 1
    except (redis.RedisError, OSError):
        logger.warning("tracking rate limiter / replay guard unavailable; admitting the hit")
        return Admission.ACCEPTED
    if limit > 0 and client_address and count > limit:
        if count == limit + 1 or (count - limit) % 1000 == 0:
            logger.warning(
                "tracking rate limit: %s sent %d hits in a %d s window (limit %d); "
                "ignoring the rest",
                client_address,
                count,
                window,
                limit,
            )
        return Admission.LIMITED
    return Admission.ACCEPTED if is_first else Admission.REPLAY


def release_page_view_id(page_view_id: str) -> None:
    """The page view could not be stored: let the script's retry (or a reload) count."""
    try:
        cache.delete(f"tracking:pvid:{page_view_id}")
    except (redis.RedisError, OSError):
        logger.warning("could not release page view id after a failed write")


# --- recording --------------------------------------------------------------------------------


def bot_reason(user_agent: str) -> str | None:
    """Why this user agent is a bot ("crawler", "scanner"), or None for a person."""
    return classify_user_agent(user_agent)


@dataclass(frozen=True)
class PageViewResult:
    visitor_id: int
    visitor_uuid: uuid.UUID
    prospect_id: int | None
    visit_id: int
    is_new_visitor: bool
    is_new_visit: bool


def _touch_visitor(
    *,
    visitor_uuid: uuid.UUID,
    now: datetime.datetime,
    user_agent: str,
    ip_address: str | None,
    is_bot: bool,
) -> tuple[int, int | None] | None:
    """Count the hit on the cookie's visitor; (id, prospect_id), or None if it does not exist.

    One statement that also locks the row until commit, so two beacons of one visitor at once
    cannot both start a visit.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Visitor._meta.db_table} SET last_seen_at = %s, user_agent = %s, "  # noqa: S608
            "ip_address = %s, is_bot = %s, page_view_count = page_view_count + 1 "
            "WHERE uuid = %s RETURNING id, prospect_id",
            [now, user_agent, ip_address, is_bot, visitor_uuid],
        )
        row = cursor.fetchone()
    return (int(row[0]), row[1]) if row else None


def _continue_visit(
    *, visitor_id: int, now: datetime.datetime, gap: datetime.timedelta
) -> int | None:
    """Count the hit on the visitor's visit still open after ``gap``; its id, or None."""
    table = Visit._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_activity_at = %s, page_view_count = page_view_count + 1 "  # noqa: S608
            f"WHERE id = (SELECT id FROM {table} WHERE visitor_id = %s "
            "AND last_activity_at >= %s ORDER BY last_activity_at DESC LIMIT 1) RETURNING id",
            [now, visitor_id, now - gap],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else None


@transaction.atomic
def page_view_record(
    *,
    visitor_uuid: uuid.UUID | None,
    page_view: PageViewInput,
    user_agent: str,
    ip_address: str | None,
    tracking_settings: TrackingSettings,
    now: datetime.datetime | None = None,
) -> PageViewResult:
    """Store one accepted page view: visitor, visit (new after the inactivity gap), activities.

    A returning visitor costs three statements (visitor, visit, activity); a new one four.
    """
    now = now or timezone.now()
    user_agent = clean_text(user_agent, MAX_USER_AGENT_LENGTH)
    reason = bot_reason(user_agent)
    is_bot = reason is not None

    touched = None
    if visitor_uuid is not None:
        touched = _touch_visitor(
            visitor_uuid=visitor_uuid,
            now=now,
            user_agent=user_agent,
            ip_address=ip_address,
            is_bot=is_bot,
        )
    visit_id = None
    if touched is None:
        visitor = Visitor.objects.create(
            user_agent=user_agent, ip_address=ip_address, is_bot=is_bot, page_view_count=1
        )
        visitor_id, visitor_uuid, prospect_id = visitor.pk, visitor.uuid, None
    else:
        assert visitor_uuid is not None
        visitor_id, prospect_id = touched
        gap = datetime.timedelta(minutes=tracking_settings.session_gap_minutes)
        visit_id = _continue_visit(visitor_id=visitor_id, now=now, gap=gap)

    is_new_visit = visit_id is None
    if visit_id is None:
        visit = Visit.objects.create(
            visitor_id=visitor_id,
            prospect_id=prospect_id,
            started_at=now,
            last_activity_at=now,
            landing_url=page_view.url,
            referrer=page_view.referrer,
            page_view_count=1,
            **page_view.utm,
        )
        visit_id = visit.pk
        visit_payload: dict[str, Any] = {"referrer": page_view.referrer, **page_view.utm}
        if reason:
            visit_payload["bot"] = reason
        activity_record(
            type=ActivityType.VISIT,
            prospect_id=prospect_id,
            visitor_id=visitor_id,
            object_type="visit",
            object_id=visit_id,
            object_label=page_view.url,
            payload=visit_payload,
            is_bot=is_bot,
            occurred_at=now,
        )

    payload: dict[str, Any] = {
        "title": page_view.title,
        "referrer": page_view.referrer,
        "visit_id": visit_id,
    }
    if reason:
        payload["bot"] = reason
    activity_record(
        type=ActivityType.PAGE_VIEW,
        prospect_id=prospect_id,
        visitor_id=visitor_id,
        object_type="url",
        object_label=page_view.url,
        payload=payload,
        is_bot=is_bot,
        occurred_at=now,
    )
    return PageViewResult(
        visitor_id=visitor_id,
        visitor_uuid=visitor_uuid,
        prospect_id=prospect_id,
        visit_id=visit_id,
        is_new_visitor=touched is None,
        is_new_visit=is_new_visit,
    )


def visitor_for_identify(
    *, visitor_uuid: uuid.UUID | None, user_agent: str, ip_address: str | None
) -> tuple[Visitor, bool]:
    """The cookie's visitor, or a new one if the site identifies before any page view."""
    if visitor_uuid is not None:
        visitor = Visitor.objects.filter(uuid=visitor_uuid).first()
        if visitor is not None:
            return visitor, False
    user_agent = clean_text(user_agent, MAX_USER_AGENT_LENGTH)
    visitor = Visitor.objects.create(
        user_agent=user_agent, ip_address=ip_address, is_bot=bot_reason(user_agent) is not None
    )
    return visitor, True
