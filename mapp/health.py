"""Health of the parts mapp needs: database, Redis, a Celery worker, Celery beat."""

from __future__ import annotations

import functools
import time
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.db.utils import Error as DatabaseError

HEARTBEAT_KEY = "mapp:heartbeat:last"
# Beat counts as alive while its heartbeat is younger than this many intervals: one missed
# beat is tolerated (worker busy, restart), two are not.
HEARTBEAT_TOLERANCE_INTERVALS = 3
WORKER_PING_TIMEOUT_SECONDS = 1.0


@functools.lru_cache(maxsize=4)
def _redis_client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def redis_client() -> redis.Redis:
    """One client (and connection pool) per process and URL: building a client costs ≈1 ms."""
    return _redis_client_for(str(settings.REDIS_URL))


def check_database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        return {"ok": False, "error": type(error).__name__}
    return {"ok": True, "vendor": connection.vendor}


def check_redis() -> dict[str, Any]:
    try:
        redis_client().ping()
    except redis.RedisError as error:
        return {"ok": False, "error": type(error).__name__}
    return {"ok": True}


def check_worker() -> dict[str, Any]:
    from mapp.celery import app

    try:
        replies = app.control.ping(timeout=WORKER_PING_TIMEOUT_SECONDS) or []
    except (OSError, redis.RedisError) as error:
        return {"ok": False, "error": type(error).__name__}
    workers = sorted(name for reply in replies for name in reply)
    return {"ok": bool(workers), "workers": workers}


def record_heartbeat() -> float:
    now = time.time()
    redis_client().set(HEARTBEAT_KEY, repr(now))
    return now


def check_beat() -> dict[str, Any]:
    """Beat schedules the heartbeat task; a worker runs it and stamps Redis. Fresh stamp: alive."""
    try:
        raw = redis_client().get(HEARTBEAT_KEY)
    except redis.RedisError as error:
        return {"ok": False, "error": type(error).__name__}
    if raw is None:
        return {"ok": False, "error": "no heartbeat yet"}
    age = time.time() - float(raw)
    limit = settings.HEARTBEAT_INTERVAL_SECONDS * HEARTBEAT_TOLERANCE_INTERVALS
    return {"ok": age <= limit, "last_heartbeat_seconds_ago": round(age, 1)}


def health_report() -> dict[str, Any]:
    checks = {
        "database": check_database(),
        "redis": check_redis(),
        "worker": check_worker(),
        "beat": check_beat(),
    }
    return {"ok": all(check["ok"] for check in checks.values()), "checks": checks}
