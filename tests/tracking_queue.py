"""Tracking hits are queued in Redis and stored by a Celery task (tracking.ingest): tests that
look at what a hit stored drain the queue first, as the worker would."""

from __future__ import annotations

from typing import Any

from django.test import Client

from tracking import ingest


def drain_tracking_hits() -> ingest.DrainResult:
    """Store every queued hit now; fails the test if a hit could not be stored."""
    result = ingest.hits_drain(max_seconds=60)
    assert not result.more, "hits are left in the tracking queue"
    assert result.dead == 0, list(ingest.iter_dead_hits())
    return result


class DrainingClient(Client):
    """A test client that stores queued tracking hits after each request, as the drain task
    would a moment later, so a test can look at the database right after a hit."""

    def request(self, **request: Any) -> Any:
        response = super().request(**request)
        drain_tracking_hits()
        return response
