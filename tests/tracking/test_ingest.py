"""The tracking hit queue (tracking.ingest): hits answered at once, stored by the drain in
batches, never lost and never stored twice — a drain that dies after its commit, a hit that
cannot be stored, Redis being away, two drains at once."""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
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


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_without_redis_a_hit_is_stored_at_once(client: Client, settings: Any) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"

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


# --- the hot path's own Redis connection (one per thread) ----------------------------------------


def _queued_hit() -> ingest.Accepted:
    hit = ingest.open_hit(
        prospect_id=ProspectFactory.create().pk,
        email_id="e-1",
        sent_at=None,
        user_agent=CHROME,
        ip="192.0.2.1",
    )
    return ingest.hit_accept(hit, client_address="192.0.2.1", scope="email_open")


def test_a_connection_the_server_closed_while_idle_is_replaced_without_losing_the_hit() -> None:
    # given: this thread's connection, then closed by Redis (a server timeout, a restart)
    assert _queued_hit().admission is ingest.Admission.QUEUED
    connection = ingest._hit_connection
    assert connection.sock is not None
    port = connection.sock.getsockname()[1]
    assert redis_client().client_kill_filter(laddr=None, _id=None, addr=f"127.0.0.1:{port}") == 1
    connection.used_at -= ingest.REDIS_IDLE_CHECK_SECONDS + 1

    # when
    accepted = _queued_hit()

    # then: queued on a new connection, not stored at once
    assert accepted == ingest.Accepted(ingest.Admission.QUEUED, stored_at_once=False)
    assert ingest.hits_pending() == 2
    assert connection.sock is not None and connection.sock.getsockname()[1] != port


def test_the_accept_script_is_loaded_again_after_a_script_flush() -> None:
    _queued_hit()
    redis_client().script_flush()

    accepted = _queued_hit()

    assert accepted == ingest.Accepted(ingest.Admission.QUEUED, stored_at_once=False)
    assert ingest.hits_pending() == 2


def test_a_redis_that_hangs_up_before_answering_gets_the_hit_stored_at_once(
    settings: Any,
) -> None:
    # given: a "Redis" that reads the command and closes the connection without a reply
    with socket.create_server(("127.0.0.1", 0)) as server:

        def hang_up() -> None:
            connection, _address = server.accept()
            with connection:
                connection.recv(65536)

        thread = threading.Thread(target=hang_up)
        thread.start()
        settings.REDIS_URL = f"redis://127.0.0.1:{server.getsockname()[1]}/0"

        # when
        accepted = _queued_hit()
        thread.join(5)

    # then
    assert accepted.stored_at_once
    assert Activity.objects.filter(type=ActivityType.EMAIL_OPENED).count() == 1
    assert ingest._hit_connection.sock is None  # dropped, made again for the next hit


def test_hits_from_many_threads_each_use_their_own_connection() -> None:
    prospect_id = ProspectFactory.create().pk
    together = threading.Barrier(8, timeout=30)
    results: dict[int, tuple[list[ingest.Accepted], int]] = {}

    def send(thread_number: int) -> None:
        accepted = [
            ingest.hit_accept(
                ingest.open_hit(
                    prospect_id=prospect_id,
                    email_id=f"t{thread_number}-{number}",
                    sent_at=None,
                    user_agent=CHROME,
                    ip="192.0.2.1",
                ),
                client_address=None,
                scope="email_open",
            )
            for number in range(25)
        ]
        connection = ingest._hit_connection.sock
        assert connection is not None
        together.wait()  # every thread's connection is open at once: their numbers differ
        results[thread_number] = (accepted, connection.fileno())
        together.wait()

    threads = [threading.Thread(target=send, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(results) == 8
    assert {answer for accepted, _fd in results.values() for answer in accepted} == {
        ingest.Accepted(ingest.Admission.QUEUED)
    }
    assert len({fd for _accepted, fd in results.values()}) == 8
    queued = [ingest._decode(raw) for raw in redis_client().lrange(ingest.key(ingest.HITS), 0, -1)]
    assert len({hit["e"] for hit in queued if hit is not None}) == 200


def test_a_url_the_plain_connection_does_not_speak_goes_through_redis_py(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a TLS URL (the plain socket does not do TLS); redis-py is used for it
    real = redis_client()
    settings.REDIS_URL = "rediss://redis.example.internal:6380/0"
    monkeypatch.setattr(ingest, "redis_client", lambda: real)

    accepted = _queued_hit()

    assert accepted == ingest.Accepted(ingest.Admission.QUEUED, stored_at_once=False)
    assert real.llen(ingest.key(ingest.HITS)) == 1


def test_queued_elements_are_unique_even_for_the_same_hit_and_in_a_forked_worker() -> None:
    hit = ingest.open_hit(prospect_id=1, email_id="e", sent_at=None, user_agent="", ip=None)
    hit["t"] = 1  # the same moment too

    first, second = ingest._encode(hit), ingest._encode(hit)

    assert first != second
    # a gunicorn worker forked from a process that already queued hits numbers its own
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        os.write(write_end, ingest._encode(hit).encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    from_child = os.read(read_end, 65536).decode()
    os.close(read_end)
    assert json.loads(from_child)["i"][:12] != json.loads(first)["i"][:12]


def test_a_unix_socket_redis_with_a_password_and_a_database_number_is_spoken_too(
    settings: Any, tmp_path: Any
) -> None:
    # given: a stand-in Redis on a Unix socket that answers AUTH, SELECT and the accept script
    path = str(tmp_path / "redis.sock")
    received: list[bytes] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)

        def serve() -> None:
            connection, _address = server.accept()
            with connection:
                for _command in range(3):
                    data = connection.recv(65536)
                    received.append(data)
                    queued = b"*4\r\n:1\r\n:1\r\n:0\r\n:0\r\n"
                    connection.sendall(queued if b"EVALSHA" in data else b"+OK\r\n")

        thread = threading.Thread(target=serve)
        thread.start()
        settings.REDIS_URL = f"unix://{path}?db=3&password=secret"

        # when
        accepted = _queued_hit()
        thread.join(5)

    # then: queued there, after signing in and choosing the database
    assert accepted == ingest.Accepted(ingest.Admission.QUEUED, stored_at_once=False)
    assert received[0].startswith(b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n")
    assert received[1] == b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"
    assert b"EVALSHA" in received[2] and b"email_open" in received[2]
