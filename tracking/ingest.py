"""Tracking hits: accepted in one Redis round trip, stored in batches by a Celery task.

Page views, email opens and email clicks arrive far faster than one database transaction each
can store them (see bench/tracking_hits.py). Their endpoints therefore validate the request,
then hand the hit to :func:`hit_accept`, which in **one** Redis round trip (a Lua script):

* counts the client address in its rate-limit window (over the limit: refused),
* refuses a replayed page-view id (already accepted: answered as stored, queued once),
* counts a recipient's clicks on one email in the burst window (link scanners click everything
  at once; the count travels with the hit),
* appends the hit to the queue ``mapp:tracking:hits``, and
* at most once a second, asks for a drain task.

The Celery task ``tracking.drain_hits`` (:func:`hits_drain`) takes up to
:data:`BATCH_SIZE` hits from the head of the queue, stores them set-based in one transaction
(visitors upserted by their cookie's uuid, visits continued or started, activities bulk-inserted
and queued for the consumers), records the last stored hit in ``HitQueueCursor`` in that same
transaction, and only then trims the batch from the queue. A worker killed between the commit
and the trim leaves the batch in the queue; the next drain finds the cursor's hit near the head
and skips everything up to it. One drain runs at a time (a Redis lock).

The round trip goes over each web thread's own plain connection to Redis (``_HitConnection``:
a blocking socket with kernel timeouts, replies read by hiredis), not through redis-py, whose
pool, retries and readiness poll cost more CPU than the rest of a page view's work and tripled
the round trip's wait on loopback; a URL it does not speak (TLS) goes through redis-py.

Nothing accepted is lost: if Redis cannot be reached when a hit arrives, the endpoint stores
that one hit at once through the same code (:func:`hits_store`). (A connection that breaks after
the command was sent and before its answer came leaves it unknown whether Redis queued it: the
hit is then stored at once too — possibly twice, never not at all.) A hit that cannot be stored
even on its own (it should not exist: hits are validated before they are queued) is moved to
``mapp:tracking:hits:dead`` with a logged error instead of blocking the queue.

The visitor cookie's uuid is chosen by the endpoint (a new browser gets a fresh uuid at once),
so the browser's cookie is right before its first hit is stored; the visitor row is created with
that uuid by whichever comes first: the drain, an identification or a form submission
(:func:`visitor_for_cookie`).
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import hashlib
import itertools
import json
import logging
import os
import secrets
import socket
import struct
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import hiredis
import kombu.exceptions
import redis
from django.conf import settings
from django.core.signals import setting_changed
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connection,
    transaction,
)
from django.db.models import F
from django.utils import timezone

from mapp.health import redis_client
from prospects.models import Prospect
from tracking import bots
from tracking.models import (
    Activity,
    ActivityType,
    HitQueueCursor,
    TrackingSettings,
    Visit,
    Visitor,
)
from tracking.services import activities_record_many, visitors_identify

logger = logging.getLogger(__name__)

# Redis keys, under ``settings.TRACKING_KEY_PREFIX`` (tests give each test its own).
DEFAULT_KEY_PREFIX = "mapp:tracking:"
HITS = "hits"
DEAD = "hits:dead"
KICK = "hits:kick"
LOCK = "hits:lock"
BATCH_SIZE = 1000
# One drain task stores batches for at most this long, then hands over to a fresh task.
DRAIN_SECONDS = 20
LOCK_SECONDS = 120
# A drain is asked for at most once per this many seconds, and runs that much later, so it
# sees every hit accepted in the window (see hit_accept).
KICK_SECONDS = 1
# A page-view id is remembered this long: a beacon replayed within it is stored once.
REPLAY_WINDOW_SECONDS = 24 * 60 * 60
DEFAULT_RATE_LIMIT_HITS = 120
DEFAULT_RATE_LIMIT_WINDOW_SECONDS = 10
MAX_USER_AGENT_LENGTH = 500
# A hit's time comes from the endpoint; a queue backed up for longer than this still stores
# it at that time (the activity service's own bound is a day).
MAX_HIT_AGE = datetime.timedelta(hours=23)


class Admission(enum.Enum):
    QUEUED = "queued"  # accepted and queued (or stored at once when Redis is away)
    REPLAY = "replay"  # this page-view id was accepted before: answer as if stored
    LIMITED = "limited"  # over the per-address limit: nothing stored


# KEYS: rate counter, replay key or "", burst key or "", queue, kick key.
# ARGV: rate ttl, limit, replay ttl, burst ttl, hit, kick ttl.
# Returns {status, count, burst, kicked}; status 0 limited, 1 queued, 2 replay.
_ACCEPT_SCRIPT = """
redis.call('SET', KEYS[1], 0, 'EX', ARGV[1], 'NX')
local count = redis.call('INCR', KEYS[1])
local limit = tonumber(ARGV[2])
if limit > 0 and count > limit then return {0, count, 0, 0} end
if KEYS[2] ~= '' then
  if not redis.call('SET', KEYS[2], 1, 'EX', ARGV[3], 'NX') then return {2, count, 0, 0} end
end
local burst = 0
if KEYS[3] ~= '' then
  redis.call('SET', KEYS[3], 0, 'EX', ARGV[4], 'NX')
  burst = redis.call('INCR', KEYS[3]) - 1
end
redis.call('RPUSH', KEYS[4], burst .. '|' .. ARGV[5])
local kicked = 0
if redis.call('SET', KEYS[5], 1, 'EX', ARGV[6], 'NX') then kicked = 1 end
return {1, count, burst, kicked}
"""

# KEYS: lock. ARGV: token. Deletes the lock only if this drain still holds it.
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_scripts: dict[tuple[int, str], Any] = {}


def _script(client: Any, source: str) -> Any:
    key = (id(client), source)
    script = _scripts.get(key)
    if script is None:
        script = _scripts[key] = client.register_script(source)
    return script


_ACCEPT_SHA = hashlib.sha1(_ACCEPT_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis's script id


# --- the hot path's settings and Redis connection ------------------------------------------------


@dataclass(frozen=True)
class _HotSettings:
    """The settings every hit reads, read once (and again after a setting changes)."""

    key_prefix: str
    rate_limit: int
    rate_window: int
    redis_url: str


_hot_settings: _HotSettings | None = None


def _settings() -> _HotSettings:
    global _hot_settings
    current = _hot_settings
    if current is None:
        window = int(
            getattr(
                settings, "TRACKING_RATE_LIMIT_WINDOW_SECONDS", DEFAULT_RATE_LIMIT_WINDOW_SECONDS
            )
        )
        current = _hot_settings = _HotSettings(
            key_prefix=str(getattr(settings, "TRACKING_KEY_PREFIX", DEFAULT_KEY_PREFIX)),
            rate_limit=int(getattr(settings, "TRACKING_RATE_LIMIT_HITS", DEFAULT_RATE_LIMIT_HITS)),
            rate_window=max(window, 1),
            redis_url=str(settings.REDIS_URL),
        )
    return current


def _forget_settings(**_kwargs: Any) -> None:
    global _hot_settings
    _hot_settings = None


# override_settings (and pytest-django's ``settings``) announce every change.
setting_changed.connect(_forget_settings, dispatch_uid="tracking.ingest.settings")

REDIS_TIMEOUT_SECONDS = 2  # as mapp.health.redis_client
# A connection unused this long is checked for a close by the server before it is reused.
REDIS_IDLE_CHECK_SECONDS = 5.0


class _HitConnection(threading.local):
    """Each thread's own connection to Redis for :func:`hit_accept`.

    redis-py costs ≈ 40 µs of CPU per command here (pool, retries, a readiness poll) and, with
    its socket timeout, waits for the answer in ``poll`` — ≈ 90 µs a round trip on loopback
    against ≈ 30 µs for a blocking read. The hot path therefore keeps one plain socket per
    thread (blocking, with kernel send/receive timeouts) and reads the answer with hiredis.
    """

    sock: socket.socket | None = None
    reader: Any = None
    pid: int = 0
    url: str = ""
    used_at: float = 0.0


_hit_connection = _HitConnection()


class _PlainRedisUnsupported(Exception):
    """The URL needs what the plain connection does not do (TLS): redis-py is used instead."""


_PLAIN_URL_OPTIONS = frozenset({"host", "port", "db", "username", "password", "path"})
_plain_unsupported: set[str] = set()


def _hit_connect(state: _HitConnection, url: str) -> None:
    if url in _plain_unsupported:
        raise _PlainRedisUnsupported(url)
    options = redis.connection.parse_url(url)
    connection_class = options.pop("connection_class", None)
    if connection_class not in (None, redis.UnixDomainSocketConnection) or not (
        options.keys() <= _PLAIN_URL_OPTIONS
    ):
        _plain_unsupported.add(url)
        raise _PlainRedisUnsupported(url)
    if "path" in options:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(REDIS_TIMEOUT_SECONDS)
            sock.connect(options["path"])
        except OSError:
            sock.close()
            raise
    else:
        sock = socket.create_connection(
            (options.get("host", "localhost"), int(options.get("port", 6379))),
            timeout=REDIS_TIMEOUT_SECONDS,
        )
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # Blocking, with the timeouts in the kernel: the read then waits in recv, not in poll.
    sock.settimeout(None)
    timeout = struct.pack("ll", REDIS_TIMEOUT_SECONDS, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeout)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeout)
    state.sock, state.reader = sock, hiredis.Reader()
    state.pid, state.url = os.getpid(), url
    try:
        password, username = options.get("password"), options.get("username")
        if password:
            credentials = (username, password) if username else (password,)
            _hit_check_ok(_hit_round_trip(state, ("AUTH", *credentials)))
        if int(options.get("db") or 0):
            _hit_check_ok(_hit_round_trip(state, ("SELECT", int(options["db"]))))
    except BaseException:
        _hit_disconnect(state)
        raise


def _hit_check_ok(reply: Any) -> None:
    if isinstance(reply, Exception):
        raise redis.ConnectionError(f"Redis refused the connection set-up: {reply}")


def _hit_disconnect(state: _HitConnection) -> None:
    sock, state.sock, state.reader = state.sock, None, None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()


def _hit_closed_by_server(sock: socket.socket) -> bool:
    """True if the server closed this idle connection (it would fail the next command)."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False  # nothing to read: open and idle, as it should be
    except OSError:
        return True


def _hit_round_trip(state: _HitConnection, command: tuple[Any, ...]) -> Any:
    """Send one command on ``state``'s socket and read its reply (an error reply is returned
    as a ``hiredis.ReplyError``). Any failure closes the connection and raises."""
    sock, reader = state.sock, state.reader
    if sock is None or reader is None:
        raise redis.ConnectionError("not connected")
    try:
        sock.sendall(hiredis.pack_command(command))
        reply = reader.gets()
        while reply is False:
            data = sock.recv(65536)
            if not data:
                raise redis.ConnectionError("Redis closed the connection")
            reader.feed(data)
            reply = reader.gets()
    except (OSError, hiredis.ProtocolError) as error:
        _hit_disconnect(state)
        raise redis.ConnectionError(f"tracking queue connection failed: {error}") from error
    except BaseException:
        _hit_disconnect(state)
        raise
    return reply


def _hit_command(command: tuple[Any, ...]) -> Any:
    """One command on this thread's hot-path connection; raises redis.RedisError (or OSError)."""
    state = _hit_connection
    url = _settings().redis_url
    now = time.monotonic()
    if state.sock is not None and (
        state.pid != os.getpid()
        or state.url != url
        or (now - state.used_at > REDIS_IDLE_CHECK_SECONDS and _hit_closed_by_server(state.sock))
    ):
        _hit_disconnect(state)
    if state.sock is None:
        _hit_connect(state, url)
    state.used_at = now
    reply = _hit_round_trip(state, command)
    if isinstance(reply, hiredis.ReplyError):
        raise redis.ResponseError(str(reply))
    return reply


def _run_accept_script(keys: list[str], args: list[Any]) -> Any:
    """EVALSHA of the accept script, loading it on the first NOSCRIPT (a new Redis, a flush)."""
    command = ("EVALSHA", _ACCEPT_SHA, len(keys), *keys, *args)
    try:
        try:
            return _hit_command(command)
        except redis.ResponseError as error:
            if not str(error).startswith("NOSCRIPT"):
                raise
            _hit_command(("SCRIPT", "LOAD", _ACCEPT_SCRIPT))
            return _hit_command(command)
    except _PlainRedisUnsupported:
        client = redis_client()
        try:
            return client.execute_command(*command)
        except redis.exceptions.NoScriptError:
            client.script_load(_ACCEPT_SCRIPT)
            return client.execute_command(*command)


def key(name: str) -> str:
    """The Redis key ``name`` of the tracking queue, counters and locks."""
    return f"{_settings().key_prefix}{name}"


def rate_limit() -> tuple[int, int]:
    """(hits allowed per address and window, the window in seconds)."""
    hot = _settings()
    return hot.rate_limit, hot.rate_window


# --- the hit ---------------------------------------------------------------------------------


def _now_micros() -> int:
    return time.time_ns() // 1000


def page_view_hit(
    *,
    visitor_uuid: uuid.UUID,
    url: str,
    title: str,
    referrer: str,
    utm: dict[str, str],
    user_agent: str,
    ip: str | None,
) -> dict[str, Any]:
    """A page view as queued: everything the drain needs, nothing from the request object."""
    return {
        "k": "pv",
        "t": _now_micros(),
        "v": str(visitor_uuid),
        "u": url,
        "ti": title,
        "r": referrer,
        "utm": utm,
        "ua": user_agent[:MAX_USER_AGENT_LENGTH],
        "ip": ip,
    }


def open_hit(
    *,
    prospect_id: int,
    email_id: str,
    sent_at: datetime.datetime | None,
    user_agent: str,
    ip: str | None,
) -> dict[str, Any]:
    return {
        "k": "open",
        "t": _now_micros(),
        "p": prospect_id,
        "e": email_id,
        "s": int(sent_at.timestamp()) if sent_at else None,
        "ua": user_agent[:MAX_USER_AGENT_LENGTH],
        "ip": ip,
    }


def click_hit(
    *,
    prospect_id: int,
    email_id: str,
    url: str,
    link_id: str,
    sent_at: datetime.datetime | None,
    visitor_uuid: uuid.UUID,
    user_agent: str,
    ip: str | None,
) -> dict[str, Any]:
    return {
        "k": "click",
        "t": _now_micros(),
        "p": prospect_id,
        "e": email_id,
        "u": url,
        "l": link_id,
        "s": int(sent_at.timestamp()) if sent_at else None,
        "v": str(visitor_uuid),
        "ua": user_agent[:MAX_USER_AGENT_LENGTH],
        "ip": ip,
    }


# json.dumps with options builds an encoder per call; one made once encodes the same text.
_HIT_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class _HitIds:
    """Ids that make every queued element unique, which the drain cursor relies on: a random
    prefix per process (made again in a forked child) and a counter — no system call per hit,
    as ``secrets.token_hex`` per hit made."""

    def __init__(self) -> None:
        self.renew()

    def renew(self) -> None:
        self.prefix = secrets.token_hex(6)
        self.numbers = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}{next(self.numbers):x}"


_hit_ids = _HitIds()
os.register_at_fork(after_in_child=_hit_ids.renew)


def _encode(hit: dict[str, Any]) -> str:
    return _HIT_ENCODER.encode({**hit, "i": _hit_ids.next()})


def _decode(raw: bytes | str) -> dict[str, Any] | None:
    text = raw.decode() if isinstance(raw, bytes) else raw
    burst, _separator, body = text.partition("|")
    try:
        hit = json.loads(body)
        hit["b"] = int(burst)
    except (ValueError, TypeError):
        return None
    return hit if isinstance(hit, dict) and hit.get("k") in HIT_KINDS else None


# --- accepting -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    admission: Admission
    stored_at_once: bool = False


def hit_accept(
    hit: dict[str, Any],
    *,
    client_address: str | None,
    scope: str,
    page_view_id: str | None = None,
    burst_key: str | None = None,
    burst_seconds: int = 0,
) -> Accepted:
    """Rate-limit, de-duplicate and queue one validated hit (see the module docstring).

    Redis being unreachable neither stops tracking nor loses the hit: it is stored at once.
    A database failure then propagates (the caller answers 503).
    """
    hot = _settings()
    limit, window, prefix = hot.rate_limit, hot.rate_window, hot.key_prefix
    rate_key = f"{prefix}rate:{scope}:{client_address}:{int(time.time() // window)}"
    replay_key = f"{prefix}pvid:{page_view_id}" if page_view_id else ""
    raw = _encode(hit)
    try:
        status, count, _burst, kicked = _run_accept_script(
            [rate_key, replay_key, burst_key or "", prefix + HITS, prefix + KICK],
            [
                window * 2,
                limit if client_address else 0,
                REPLAY_WINDOW_SECONDS,
                burst_seconds or 1,
                raw,
                KICK_SECONDS,
            ],
        )
    except (redis.RedisError, OSError):
        logger.warning("tracking queue unavailable; storing the %s hit at once", hit.get("k"))
        hits_store([{**hit, "b": 0}])
        return Accepted(Admission.QUEUED, stored_at_once=True)
    if int(status) == 0:
        log_limited(client_address, int(count), limit, window)
        return Accepted(Admission.LIMITED)
    if int(status) == 2:
        return Accepted(Admission.REPLAY)
    if int(kicked):
        _request_drain()
    return Accepted(Admission.QUEUED)


def log_limited(client_address: str | None, count: int, limit: int, window: int) -> None:
    if count == limit + 1 or (count - limit) % 1000 == 0:
        logger.warning(
            "tracking rate limit: %s sent %d hits in a %d s window (limit %d); ignoring the rest",
            client_address,
            count,
            window,
            limit,
        )


def _request_drain(countdown: int = KICK_SECONDS) -> None:
    from tracking.tasks import drain_hits

    try:
        drain_hits.apply_async(countdown=countdown)
    except (kombu.exceptions.OperationalError, redis.RedisError, OSError):
        # The broker is Redis too; the periodic drain picks the hits up.
        logger.warning("could not request a tracking drain; the periodic drain will run it")


# --- storing ---------------------------------------------------------------------------------

HIT_KINDS = frozenset({"pv", "open", "click"})


def _hit_time(hit: dict[str, Any], now: datetime.datetime) -> datetime.datetime:
    try:
        moment = datetime.datetime.fromtimestamp(int(hit["t"]) / 1_000_000, tz=datetime.UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return now
    return moment if now - MAX_HIT_AGE <= moment <= now + datetime.timedelta(minutes=5) else now


@lru_cache(maxsize=4096)
def _bot_reason(user_agent: str) -> str | None:
    return bots.classify_user_agent(user_agent)


def _parse_uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


@dataclass
class _VisitorRow:
    id: int
    prospect_id: int | None


def _visitors_upsert(rows: dict[uuid.UUID, dict[str, Any]]) -> dict[uuid.UUID, _VisitorRow]:
    """Create or touch visitors by cookie uuid in one statement (rows locked in uuid order)."""
    if not rows:
        return {}
    table = Visitor._meta.db_table
    values: list[str] = []
    params: list[Any] = []
    for visitor_uuid in sorted(rows):
        row = rows[visitor_uuid]
        values.append("(%s, %s, %s, %s, %s, %s, %s)")
        params.extend(
            [
                visitor_uuid,
                row["first"],
                row["last"],
                row["ua"],
                row["ip"],
                row["bot"],
                row["views"],
            ]
        )
    sql = (
        f"INSERT INTO {table} AS v (uuid, first_seen_at, last_seen_at, user_agent, "  # noqa: S608
        "ip_address, is_bot, page_view_count) VALUES "
        + ", ".join(values)
        + " ON CONFLICT (uuid) DO UPDATE SET "
        "last_seen_at = GREATEST(v.last_seen_at, EXCLUDED.last_seen_at), "
        "user_agent = EXCLUDED.user_agent, ip_address = EXCLUDED.ip_address, "
        "is_bot = EXCLUDED.is_bot, page_view_count = v.page_view_count + EXCLUDED.page_view_count "
        "RETURNING uuid, id, prospect_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {_as_uuid(row[0]): _VisitorRow(id=row[1], prospect_id=row[2]) for row in cursor}


def _as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _visitor_row_data(
    rows: dict[uuid.UUID, dict[str, Any]],
    visitor_uuid: uuid.UUID,
    *,
    moment: datetime.datetime,
    user_agent: str,
    ip: str | None,
    views: int,
) -> None:
    row = rows.get(visitor_uuid)
    if row is None:
        rows[visitor_uuid] = {
            "first": moment,
            "last": moment,
            "ua": user_agent,
            "ip": ip,
            "bot": _bot_reason(user_agent) is not None,
            "views": views,
        }
        return
    row["first"] = min(row["first"], moment)
    if moment >= row["last"]:
        row.update(last=moment, ua=user_agent, ip=ip, bot=_bot_reason(user_agent) is not None)
    row["views"] += views


def _store_page_views(
    hits: list[dict[str, Any]], now: datetime.datetime, gap: datetime.timedelta
) -> list[Activity]:
    """Visitors, visits and PAGE_VIEW / VISIT activities for a batch of page views."""
    prepared: list[tuple[dict[str, Any], uuid.UUID, datetime.datetime]] = []
    visitor_data: dict[uuid.UUID, dict[str, Any]] = {}
    for hit in hits:
        visitor_uuid = _parse_uuid(hit.get("v"))
        if visitor_uuid is None:
            continue
        moment = _hit_time(hit, now)
        prepared.append((hit, visitor_uuid, moment))
        _visitor_row_data(
            visitor_data,
            visitor_uuid,
            moment=moment,
            user_agent=str(hit.get("ua", "")),
            ip=hit.get("ip"),
            views=1,
        )
    if not prepared:
        return []
    visitors = _visitors_upsert(visitor_data)
    prepared.sort(key=lambda item: item[2])

    # Each visitor's latest visit, to continue it if the first hit comes within the gap.
    latest: dict[int, Visit] = {
        visit.visitor_id: visit
        for visit in Visit.objects.filter(visitor_id__in=[row.id for row in visitors.values()])
        .order_by("visitor_id", "-last_activity_at", "-id")
        .distinct("visitor_id")
    }
    continued: dict[int, Visit] = {}
    added_views: dict[int, int] = defaultdict(int)
    new_visits: list[Visit] = []
    assignments: list[tuple[dict[str, Any], _VisitorRow, Visit, bool]] = []
    for hit, visitor_uuid, moment in prepared:
        visitor = visitors[visitor_uuid]
        visit = latest.get(visitor.id)
        is_new = visit is None or moment - visit.last_activity_at > gap
        if visit is None or is_new:
            utm = {
                key: str(value)[:200]
                for key, value in (hit.get("utm") or {}).items()
                if key in _UTM_FIELDS
            }
            visit = Visit(
                visitor_id=visitor.id,
                prospect_id=visitor.prospect_id,
                started_at=moment,
                last_activity_at=moment,
                landing_url=str(hit.get("u", ""))[:2000],
                referrer=str(hit.get("r", ""))[:2000],
                page_view_count=1,
                **utm,
            )
            new_visits.append(visit)
            latest[visitor.id] = visit
        else:
            visit.last_activity_at = max(visit.last_activity_at, moment)
            visit.page_view_count += 1
            if visit.pk is not None:
                continued[visit.pk] = visit
                added_views[visit.pk] += 1
        assignments.append((hit, visitor, visit, is_new))

    Visit.objects.bulk_create(new_visits)
    if continued:
        _visits_continue(
            [(pk, visit.last_activity_at, added_views[pk]) for pk, visit in continued.items()]
        )

    activities: list[Activity] = []
    for hit, visitor, visit, is_new in assignments:
        user_agent = str(hit.get("ua", ""))
        reason = _bot_reason(user_agent)
        moment = _hit_time(hit, now)
        url = str(hit.get("u", ""))
        if is_new:
            visit_payload: dict[str, Any] = {"referrer": visit.referrer, **(hit.get("utm") or {})}
            if reason:
                visit_payload["bot"] = reason
            activities.append(
                Activity(
                    type=ActivityType.VISIT,
                    prospect_id=visitor.prospect_id,
                    visitor_id=visitor.id,
                    object_type="visit",
                    object_id=str(visit.pk),
                    object_label=url,
                    payload=visit_payload,
                    is_bot=reason is not None,
                    occurred_at=moment,
                )
            )
        payload: dict[str, Any] = {
            "title": str(hit.get("ti", "")),
            "referrer": str(hit.get("r", "")),
            "visit_id": visit.pk,
        }
        if reason:
            payload["bot"] = reason
        activities.append(
            Activity(
                type=ActivityType.PAGE_VIEW,
                prospect_id=visitor.prospect_id,
                visitor_id=visitor.id,
                object_type="url",
                object_label=url,
                payload=payload,
                is_bot=reason is not None,
                occurred_at=moment,
            )
        )
    return activities


def _visits_continue(rows: list[tuple[int, datetime.datetime, int]]) -> None:
    """Count page views on visits that went on, in one statement (increments, not values)."""
    table = Visit._meta.db_table
    values = ", ".join(["(%s::bigint, %s::timestamptz, %s::integer)"] * len(rows))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS v SET "  # noqa: S608
            "last_activity_at = GREATEST(v.last_activity_at, t.last_activity_at), "
            "page_view_count = v.page_view_count + t.added "
            f"FROM (VALUES {values}) AS t(id, last_activity_at, added) WHERE v.id = t.id",
            [value for row in rows for value in row],
        )


_UTM_FIELDS = frozenset({"utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"})


def _sent_at(hit: dict[str, Any]) -> datetime.datetime | None:
    value = hit.get("s")
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**33:
        return datetime.datetime.fromtimestamp(value, tz=datetime.UTC)
    return None


def _store_opens(
    hits: list[dict[str, Any]], now: datetime.datetime, existing: set[int]
) -> list[Activity]:
    """EMAIL_OPENED activities; machine opens (proxies, prefetch) and crawlers flagged."""
    activities: list[Activity] = []
    for hit in hits:
        prospect_id = hit.get("p")
        if prospect_id not in existing:
            continue
        moment = _hit_time(hit, now)
        sent_at = _sent_at(hit)
        user_agent = str(hit.get("ua", ""))
        seconds = (moment - sent_at).total_seconds() if sent_at else None
        machine = bots.machine_open_reason(user_agent, hit.get("ip"), seconds_since_sent=seconds)
        kind = None if machine else _bot_reason(user_agent)
        payload: dict[str, Any] = {}
        if machine:
            payload["machine"] = machine
        elif kind:
            payload["bot"] = kind
        activities.append(
            Activity(
                type=ActivityType.EMAIL_OPENED,
                prospect_id=prospect_id,
                object_type="email",
                object_id=str(hit.get("e", ""))[:64],
                payload=payload,
                is_bot=bool(machine or kind),
                occurred_at=moment,
            )
        )
    return activities


def _delivery_times(hits: list[dict[str, Any]]) -> dict[tuple[int, str], datetime.datetime]:
    """For clicks whose token has no send time: when the email was sent or delivered."""
    wanted = {(hit["p"], str(hit.get("e", ""))) for hit in hits if _sent_at(hit) is None}
    if not wanted:
        return {}
    rows = (
        Activity.objects.filter(
            prospect_id__in={prospect_id for prospect_id, _email in wanted},
            object_id__in={email for _prospect, email in wanted},
            type__in=[ActivityType.EMAIL_DELIVERED, ActivityType.EMAIL_SENT],
        )
        .order_by("occurred_at")
        .values_list("prospect_id", "object_id", "occurred_at")
    )
    return {(prospect_id, email): moment for prospect_id, email, moment in rows}


def _store_clicks(
    hits: list[dict[str, Any]], now: datetime.datetime, existing: set[int]
) -> list[Activity]:
    """EMAIL_CLICKED activities; a person's click also identifies their browser.

    A scanner's click (known agent, seconds after delivery, or a burst of clicks) is flagged
    and identifies nobody. A browser already identified as *another* prospect (a forwarded
    email, a shared computer) stays that prospect's: the click is recorded for the recipient
    without moving the browser.
    """
    hits = [hit for hit in hits if hit.get("p") in existing]
    delivered = _delivery_times(hits)
    activities: list[Activity] = []
    people: list[tuple[dict[str, Any], uuid.UUID, datetime.datetime]] = []
    visitor_data: dict[uuid.UUID, dict[str, Any]] = {}
    for hit in hits:
        moment = _hit_time(hit, now)
        sent_at = _sent_at(hit) or delivered.get((hit["p"], str(hit.get("e", ""))))
        user_agent = str(hit.get("ua", ""))
        reason = bots.is_scanner_click(
            user_agent=user_agent,
            seconds_since_delivery=(moment - sent_at).total_seconds() if sent_at else None,
            clicks_in_last_seconds=int(hit.get("b", 0)),
        )
        visitor_uuid = _parse_uuid(hit.get("v"))
        if reason is not None or visitor_uuid is None:
            activities.append(_click_activity(hit, moment, visitor_id=None, bot=reason))
            continue
        people.append((hit, visitor_uuid, moment))
        _visitor_row_data(
            visitor_data,
            visitor_uuid,
            moment=moment,
            user_agent=user_agent,
            ip=hit.get("ip"),
            views=0,
        )
    visitors = _visitors_upsert(visitor_data)
    identify: list[tuple[int, int]] = []
    for hit, visitor_uuid, moment in people:
        visitor = visitors[visitor_uuid]
        prospect_id = hit["p"]
        visitor_id: int | None = visitor.id
        if visitor.prospect_id is None:
            identify.append((visitor.id, prospect_id))
            visitor.prospect_id = prospect_id  # a later click in this batch sees it
        elif visitor.prospect_id != prospect_id:
            visitor_id = None
        activities.append(
            _click_activity(
                hit, moment, visitor_id=visitor_id, bot=None, other_browser=visitor_id is None
            )
        )
    visitors_identify(identify, source="email_click")
    return activities


def _click_activity(
    hit: dict[str, Any],
    moment: datetime.datetime,
    *,
    visitor_id: int | None,
    bot: str | None,
    other_browser: bool = False,
) -> Activity:
    from tracking.links import link_object_id

    url = str(hit.get("u", ""))
    payload: dict[str, Any] = {"email_id": str(hit.get("e", ""))}
    if bot:
        payload["bot"] = bot
    if other_browser:
        payload["browser_of_another_prospect"] = True
    return Activity(
        type=ActivityType.EMAIL_CLICKED,
        prospect_id=hit["p"],
        visitor_id=visitor_id,
        object_type="link",
        object_id=link_object_id(url, str(hit.get("l", ""))),
        object_label=url,
        payload=payload,
        is_bot=bot is not None,
        occurred_at=moment,
    )


@transaction.atomic
def hits_store(hits: Sequence[dict[str, Any]], *, now: datetime.datetime | None = None) -> int:
    """Store decoded hits in one transaction; returns how many activities were recorded."""
    now = now or timezone.now()
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for hit in hits:
        by_kind[str(hit.get("k"))].append(hit)
    activities: list[Activity] = []
    if by_kind["pv"]:
        gap = datetime.timedelta(minutes=TrackingSettings.load().session_gap_minutes)
        activities.extend(_store_page_views(by_kind["pv"], now, gap))
    email_hits = by_kind["open"] + by_kind["click"]
    if email_hits:
        prospect_ids = {hit.get("p") for hit in email_hits if isinstance(hit.get("p"), int)}
        existing = set(Prospect.objects.filter(pk__in=prospect_ids).values_list("pk", flat=True))
        activities.extend(_store_opens(by_kind["open"], now, existing))
        activities.extend(_store_clicks(by_kind["click"], now, existing))
    activities_record_many(activities)
    return len(activities)


# --- draining --------------------------------------------------------------------------------


def visitor_for_cookie(
    *, visitor_uuid: uuid.UUID | None, user_agent: str, ip: str | None
) -> tuple[Visitor, bool]:
    """The cookie's visitor, created with the cookie's uuid if its hits are not stored yet.

    Without a (valid) cookie a new visitor with a fresh uuid; ``created`` tells the caller to
    set the cookie.
    """
    user_agent = user_agent[:MAX_USER_AGENT_LENGTH]
    is_bot = _bot_reason(user_agent) is not None
    if visitor_uuid is None:
        visitor = Visitor.objects.create(user_agent=user_agent, ip_address=ip, is_bot=is_bot)
        return visitor, True
    visitor, created = Visitor.objects.get_or_create(
        uuid=visitor_uuid,
        defaults={"user_agent": user_agent, "ip_address": ip, "is_bot": is_bot},
    )
    return visitor, created


@dataclass(frozen=True)
class DrainResult:
    batches: int = 0
    hits: int = 0
    activities: int = 0
    dead: int = 0
    more: bool = False


def _skip_stored_head(client: Any) -> None:
    """Trim a batch a previous drain stored but could not trim (it died after its commit)."""
    cursor = HitQueueCursor.objects.filter(queue=key(HITS)).first()
    if cursor is None:
        return
    position = client.lpos(key(HITS), cursor.last_hit, maxlen=BATCH_SIZE * 10)
    if position is not None:
        logger.warning("skipping %d tracking hits stored by an interrupted drain", position + 1)
        client.ltrim(key(HITS), position + 1, -1)


def _store_batch(raw: list[Any]) -> tuple[int, list[Any]]:
    """Store one batch and move the cursor in one transaction; returns (activities, dead)."""
    decoded = [(item, _decode(item)) for item in raw]
    dead = [item for item, hit in decoded if hit is None]
    hits = [hit for _item, hit in decoded if hit is not None]
    try:
        with transaction.atomic():
            stored = hits_store(hits)
            _cursor_move(raw[-1], len(raw))
        return stored, dead
    except (OperationalError, InterfaceError):
        raise  # the database is away: retry the whole batch later
    except (DatabaseError, ValueError, TypeError, KeyError):
        logger.exception("a tracking batch failed; storing its %d hits one by one", len(hits))
    stored = 0
    with transaction.atomic():
        for item, hit in decoded:
            if hit is None:
                continue
            try:
                with transaction.atomic():
                    stored += hits_store([hit])
            except (OperationalError, InterfaceError):
                raise
            except (DatabaseError, DataError, IntegrityError, ValueError, TypeError, KeyError):
                logger.exception("tracking hit could not be stored; moved to %s", key(DEAD))
                dead.append(item)
        _cursor_move(raw[-1], len(raw))
    return stored, dead


def _cursor_move(last_raw: bytes | str, count: int) -> None:
    last_hit = last_raw.decode() if isinstance(last_raw, bytes) else str(last_raw)
    updated = HitQueueCursor.objects.filter(queue=key(HITS)).update(
        last_hit=last_hit, stored_count=F("stored_count") + count, updated_at=timezone.now()
    )
    if not updated:
        HitQueueCursor.objects.create(queue=key(HITS), last_hit=last_hit, stored_count=count)


def hits_drain(*, max_seconds: float = DRAIN_SECONDS, batch_size: int = BATCH_SIZE) -> DrainResult:
    """Store queued hits batch by batch until the queue is empty or time is up.

    Only one drain runs at a time; a second one returns at once (the running one sees its hits,
    see the module docstring). ``more`` says the queue still holds hits (time was up).
    """
    client = redis_client()
    token = secrets.token_hex(8)
    if not client.set(key(LOCK), token, nx=True, ex=LOCK_SECONDS):
        return DrainResult()
    batches = hits_total = activities_total = dead_total = 0
    started = time.monotonic()
    try:
        _skip_stored_head(client)
        while time.monotonic() - started < max_seconds:
            raw = client.lrange(key(HITS), 0, batch_size - 1)
            if not raw:
                break
            stored, dead = _store_batch(raw)
            if dead:
                client.rpush(key(DEAD), *dead)
            client.ltrim(key(HITS), len(raw), -1)
            client.expire(key(LOCK), LOCK_SECONDS)
            batches += 1
            hits_total += len(raw)
            activities_total += stored
            dead_total += len(dead)
    finally:
        _script(client, _RELEASE_SCRIPT)(keys=[key(LOCK)], args=[token])
    # Checked after the lock is released: a hit queued while this drain held the lock and
    # whose own drain request found it held is seen here.
    more = bool(client.llen(key(HITS)))
    return DrainResult(batches, hits_total, activities_total, dead_total, more)


def hits_pending() -> int:
    """How many hits wait in the queue (for health pages and tests)."""
    return int(redis_client().llen(key(HITS)))


def iter_dead_hits() -> Iterable[dict[str, Any] | None]:
    for raw in redis_client().lrange(key(DEAD), 0, -1):
        yield _decode(raw)
