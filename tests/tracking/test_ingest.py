"""The tracking hit queue (tracking.ingest): hits answered at once, stored by the drain in
batches, never lost and never stored twice — a drain that dies after its commit, a hit that
cannot be stored, Redis being away, two drains at once."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
from django.test import Client

from mapp.health import redis_client
from tests.factories import ProspectFactory
from tests.tracking_queue import drain_tracking_hits
from tracking import ingest
from tracking.identity import identify_token_for
from tracking.models import Activity, ActivityType, HitQueueCursor, Visit, Visitor
from tracking.visitor_cookie import COOKIE_NAME, visitor_uuid_from_cookie

pytestmark = pytest.mark.django_db

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


def _page_view(client: Client, url: str = "https://www.example.co.jp/") -> Any:
    query = urlencode({"url": url, "pvid": uuid.uuid4().hex, "title": "製品"})
    return client.get("/t/pv?" + query, HTTP_USER_AGENT=CHROME)


def _page_views() -> int:
    return Activity.objects.filter(type=ActivityType.PAGE_VIEW).count()


def test_a_page_view_is_answered_at_once_and_stored_by_the_drain(client: Client) -> None:
    # when
    response = _page_view(client)

    # then: answered with the cookie's uuid before anything is in the database
    assert response.status_code == 200
    cookie_uuid = visitor_uuid_from_cookie(response.cookies[COOKIE_NAME].value)
    assert ingest.hits_pending() == 1
    assert _page_views() == 0 and not Visitor.objects.exists()
    # and a drain was asked for (at most one per second, however many hits arrive)
    assert redis_client().ttl(ingest.key(ingest.KICK)) in (0, 1)

    result = drain_tracking_hits()

    assert (result.hits, result.activities) == (1, 2)  # the visit and the page view
    visitor = Visitor.objects.get()
    assert visitor.uuid == cookie_uuid and visitor.page_view_count == 1
    assert ingest.hits_pending() == 0
    assert HitQueueCursor.objects.get(queue=ingest.key(ingest.HITS)).stored_count == 1


def test_many_visitors_in_one_batch_get_their_own_visits_in_order(client: Client) -> None:
    browsers = [Client() for _index in range(5)]
    for round_number in range(3):
        for browser in browsers:
            assert _page_view(browser, f"https://www.example.jp/{round_number}").status_code == 200

    result = drain_tracking_hits()

    assert result.hits == 15 and result.batches == 1
    assert Visitor.objects.count() == 5
    assert Visit.objects.count() == 5
    assert set(Visit.objects.values_list("page_view_count", flat=True)) == {3}
    for visit in Visit.objects.all():
        assert visit.landing_url == "https://www.example.jp/0"


def test_a_batch_stored_but_not_trimmed_is_not_stored_again(client: Client) -> None:
    # given: a drain committed its batch and died before trimming it from the queue
    for _index in range(3):
        _page_view(client)
    raw = redis_client().lrange(ingest.key(ingest.HITS), 0, -1)
    stored, dead = ingest._store_batch(raw)
    assert (stored, dead) == (4, [])  # one visit, three page views
    _page_view(client)  # and a new hit arrived after it

    # when: the next drain runs
    result = drain_tracking_hits()

    # then: only the new hit is stored
    assert result.hits == 1
    assert _page_views() == 4
    assert ingest.hits_pending() == 0


def test_a_hit_that_cannot_be_stored_is_set_aside_and_the_others_are_stored(
    client: Client,
) -> None:
    # given: among good hits, one the database refuses and one that is not a hit at all
    _page_view(client)
    poison = ingest.page_view_hit(
        visitor_uuid=uuid.uuid4(),
        url="https://www.example.jp/",
        title="",
        referrer="",
        utm={},
        user_agent=CHROME,
        ip="not an address",  # the inet column refuses it
    )
    queue = redis_client()
    queue.rpush(ingest.key(ingest.HITS), "0|" + ingest._encode(poison), "garbage")
    _page_view(client)

    # when
    result = ingest.hits_drain()

    # then: the two good page views are stored, the two bad elements are set aside
    assert (result.hits, result.dead) == (4, 2)
    assert _page_views() == 2
    assert ingest.hits_pending() == 0
    assert queue.llen(ingest.key(ingest.DEAD)) == 2


def test_only_one_drain_runs_at_a_time(client: Client) -> None:
    _page_view(client)
    redis_client().set(ingest.key(ingest.LOCK), "another drain", ex=30)

    result = ingest.hits_drain()

    # then: it leaves the queue to the drain that holds the lock (that one looks again after
    # releasing it, see hits_drain)
    assert result.hits == 0
    assert _page_views() == 0
    redis_client().delete(ingest.key(ingest.LOCK))
    assert drain_tracking_hits().hits == 1


def test_without_redis_a_hit_is_stored_at_once(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable() -> Any:
        raise redis.ConnectionError("Redis is down")

    monkeypatch.setattr(ingest, "redis_client", unreachable)

    response = _page_view(client)

    assert response.status_code == 200
    assert _page_views() == 1
    assert Visitor.objects.get().uuid == visitor_uuid_from_cookie(
        response.cookies[COOKIE_NAME].value
    )


def test_a_visitor_identified_before_its_hits_are_stored_gets_them(client: Client) -> None:
    # given: page views still in the queue when the site identifies the browser
    prospect = ProspectFactory.create()
    _page_view(client)
    _page_view(client)
    response = client.get("/t/identify?" + urlencode({"token": identify_token_for(prospect.pk)}))
    assert response.status_code == 200

    # when
    drain_tracking_hits()

    # then: one visitor (the cookie's), and the page views are the prospect's
    visitor = Visitor.objects.get()
    assert visitor.prospect_id == prospect.pk
    assert list(
        Activity.objects.filter(type=ActivityType.PAGE_VIEW).values_list("prospect_id", flat=True)
    ) == [prospect.pk, prospect.pk]


def test_the_drain_task_stores_the_queue(client: Client) -> None:
    from tracking.tasks import drain_hits

    _page_view(client)

    outcome = drain_hits.apply().get()

    assert outcome == {"hits": 1, "activities": 2, "dead": 0}
    assert _page_views() == 1
