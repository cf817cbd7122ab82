"""Tracker domains as allowed hosts: a CNAME the marketer adds works at once, without a restart.

Registered with mapp.hosts from TrackingConfig.ready(). Each process keeps the list for a few
seconds (``TRACKER_DOMAINS_CACHE_SECONDS``, default 30) and forgets it when the tracking
settings page changes it (:func:`forget_tracker_domains`), so a request costs no query.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import DatabaseError

from tracking.models import TrackerDomain

logger = logging.getLogger(__name__)

_snapshot: tuple[float, tuple[str, ...]] | None = None


def tracker_domain_hosts() -> tuple[str, ...]:
    global _snapshot
    seconds = float(getattr(settings, "TRACKER_DOMAINS_CACHE_SECONDS", 30))
    now = time.monotonic()
    snapshot = _snapshot
    if snapshot is not None and now - snapshot[0] < seconds:
        return snapshot[1]
    try:
        domains = tuple(TrackerDomain.objects.values_list("domain", flat=True))
    except (DatabaseError, RuntimeError):  # no database yet (start-up, a test's set-up)
        logger.info("tracker domains unavailable; admitting only the configured hosts")
        return snapshot[1] if snapshot is not None else ()
    _snapshot = (now, domains)
    return domains


def forget_tracker_domains() -> None:
    global _snapshot
    _snapshot = None
