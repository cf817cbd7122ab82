"""The WSGI application's tracking hot path (tracking/fastpath.py): the marked public views
answer without the middleware chain, with the headers the middleware would add; everything
else, and every answer that is not a quick one, goes through Django as before."""

from __future__ import annotations

import datetime
import os
import uuid
from collections.abc import Callable
from typing import Any
from unittest import mock
from urllib.parse import urlencode

import pytest
from django.core import signals, signing
from django.db import close_old_connections
from django.http import HttpResponse
from django.test import RequestFactory

from mapp.wsgi import application
from tests.factories import ProspectFactory
from tests.tracking_queue import drain_tracking_hits
from tracking import fastpath, links
from tracking.fastpath import FAST_PATH_ATTRIBUTE, TrackingFastPath
from tracking.hotpath import client_address, new_visitor_uuid, set_visitor_cookie_quick
from tracking.models import Activity, ActivityType
from tracking.visitor_cookie import (
    COOKIE_NAME,
    COOKIE_SALT,
    request_ip,
    set_visitor_cookie_uuid,
    visitor_uuid_from_cookie,
)

pytestmark = pytest.mark.django_db


class Answer:
    status = ""
    headers: list[tuple[str, str]]
    body = b""
    database_checks = 0

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


def call(
    path: str,
    *,
    method: str = "GET",
    query: str = "",
    through: Callable[..., Any] = application,
    secure: bool = False,
    **extra: Any,
) -> Answer:
    """Answer a request with the WSGI application (``through``: another WSGI app, e.g. the
    Django application behind the fast path)."""
    environ = (
        RequestFactory().generic(method, path, QUERY_STRING=query, secure=secure, **extra).environ
    )
    answer = Answer()

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer.status, answer.headers = status, headers

    # As Django's test client does: the test's database connection (inside the test's
    # transaction) must survive the request_started / request_finished signals, and the
    # fast path's own call of what request_finished does for the database.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        with mock.patch.object(fastpath, "close_old_connections") as hygiene:
            result = through(environ, start_response)
            try:
                answer.body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        answer.database_checks = hygiene.call_count
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    return answer


def _beacon_query() -> str:
    return urlencode({"url": "https://www.example.co.jp/", "pvid": uuid.uuid4().hex})


def test_the_application_is_wrapped() -> None:
    assert isinstance(application, TrackingFastPath)


def test_a_page_view_is_answered_on_the_fast_path_with_the_middleware_headers() -> None:
    answer = call("/t/pv", query=_beacon_query(), HTTP_USER_AGENT="Mozilla/5.0")

    assert answer.status == "200 OK"
    assert answer.header("Content-Type") == ["image/gif"]
    assert answer.header("Content-Length") == [str(len(answer.body))]
    assert answer.header("X-Content-Type-Options") == ["nosniff"]
    assert answer.header("X-Frame-Options") == ["DENY"]
    assert answer.header("Set-Cookie")[0].strip().startswith("mapp_vid=")
    drain_tracking_hits()
    assert Activity.objects.filter(type=ActivityType.PAGE_VIEW).count() == 1


def test_a_foreign_host_goes_through_django_and_is_refused() -> None:
    answer = call("/t/pv", query=_beacon_query(), HTTP_HOST="evil.example")

    assert answer.status.startswith("400")
    drain_tracking_hits()
    assert not Activity.objects.exists()


def test_a_tampered_click_goes_through_django_for_its_translated_page() -> None:
    answer = call("/t/c/not-a-token", HTTP_ACCEPT_LANGUAGE="en")

    assert answer.status.startswith("400")
    assert b"This link is invalid or has been altered." in answer.body


def test_a_click_redirects_on_the_fast_path() -> None:
    prospect = ProspectFactory.create()
    url = links.tracked_link_url(
        prospect_id=prospect.pk, email_id="e-1", url="https://www.example.jp/lp", link_id="l1"
    )
    path = url.split("://", 1)[1].split("/", 1)[1]

    answer = call("/" + path, HTTP_USER_AGENT="Mozilla/5.0")

    assert answer.status == "302 Found"
    assert answer.header("Location") == ["https://www.example.jp/lp"]
    drain_tracking_hits()
    assert Activity.objects.get(type=ActivityType.EMAIL_CLICKED).prospect_id == prospect.pk


def test_other_methods_and_pages_go_through_django() -> None:
    assert call("/t/pv", method="POST").status.startswith("405")
    assert call("/t/mapp.js").status == "200 OK"  # not marked: the full stack serves it


def test_only_public_views_may_be_marked(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: a signed-in-only view wrongly marked for the fast path
    from django.urls import get_resolver

    match = get_resolver().resolve("/t/pv")
    monkeypatch.setattr(match.func, "mapp_access_rule", None)
    assert getattr(match.func, FAST_PATH_ATTRIBUTE)

    # when / then: the fast path refuses it and Django's access middleware answers instead
    answer = call("/t/pv", query=_beacon_query())
    assert not answer.status.startswith("200")


def test_each_hit_checks_the_database_connections_as_request_finished_would() -> None:
    # (the test's own connection survives: call() stands in for close_old_connections)
    answer = call("/t/pv", query=_beacon_query(), HTTP_USER_AGENT="Mozilla/5.0")

    assert answer.status == "200 OK"
    assert answer.database_checks == 1


MIDDLEWARE_HEADERS = (
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
    "X-Frame-Options",
)


@pytest.mark.parametrize("secure", [False, True])
def test_the_fast_path_adds_the_headers_the_security_middleware_adds(
    settings: Any, secure: bool
) -> None:
    fast = call("/t/pv", query=_beacon_query(), secure=secure)
    full = call(
        "/t/pv", query=_beacon_query(), secure=secure, through=application.django_application
    )

    assert fast.status == full.status == "200 OK"
    assert fast.database_checks == 1 and full.database_checks == 0  # the first was fast
    for name in MIDDLEWARE_HEADERS:
        assert fast.header(name) == full.header(name) != [], name
    assert fast.header("Strict-Transport-Security") == full.header("Strict-Transport-Security")


@pytest.mark.parametrize(("secure", "expected"), [(False, []), (True, ["max-age=3600"])])
def test_hsts_is_added_to_https_hits_after_a_setting_change(
    settings: Any, secure: bool, expected: list[str]
) -> None:
    settings.SECURE_HSTS_SECONDS = 3600

    answer = call("/t/pv", query=_beacon_query(), secure=secure)

    assert answer.status == "200 OK"
    assert answer.header("Strict-Transport-Security") == expected


def test_a_host_no_longer_allowed_is_refused_at_once(settings: Any) -> None:
    assert call("/t/pv", query=_beacon_query(), HTTP_HOST="go.example.jp").status.startswith("400")
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "go.example.jp"]
    assert call("/t/pv", query=_beacon_query(), HTTP_HOST="go.example.jp").status == "200 OK"

    settings.ALLOWED_HOSTS = ["testserver"]

    assert call("/t/pv", query=_beacon_query(), HTTP_HOST="go.example.jp").status.startswith("400")


@pytest.mark.parametrize("secure", [False, True])
def test_the_quick_visitor_cookie_is_the_visitor_cookie(secure: bool) -> None:
    visitor_uuid = uuid.uuid4()
    signed = signing.dumps(str(visitor_uuid), salt=COOKIE_SALT)
    moment = datetime.datetime(2026, 11, 23, 12, 0, 0, 600000, tzinfo=datetime.UTC).timestamp()
    quick, usual = HttpResponse(), HttpResponse()

    with mock.patch("time.time", return_value=moment):
        set_visitor_cookie_quick(quick, visitor_uuid, secure=secure, signed_value=signed)
        set_visitor_cookie_uuid(usual, visitor_uuid, secure=secure, signed_value=signed)
        new_quick, new_usual = HttpResponse(), HttpResponse()
        set_visitor_cookie_quick(new_quick, visitor_uuid, secure=secure)
        set_visitor_cookie_uuid(new_usual, visitor_uuid, secure=secure)

    assert quick.cookies[COOKIE_NAME].output() == usual.cookies[COOKIE_NAME].output()
    assert dict(quick.cookies[COOKIE_NAME]) == dict(usual.cookies[COOKIE_NAME])
    assert "expires=Wed, 22 Nov 2028 12:00:00 GMT" in quick.cookies[COOKIE_NAME].output()
    # without the request's own value, a signed one for the same uuid
    assert visitor_uuid_from_cookie(new_quick.cookies[COOKIE_NAME].value) == visitor_uuid
    assert (
        new_quick.cookies[COOKIE_NAME].output().split(";", 1)[1]
        == new_usual.cookies[COOKIE_NAME].output().split(";", 1)[1]
    )


def test_the_quick_cookie_follows_the_clock_and_later_changes() -> None:
    visitor_uuid = uuid.uuid4()
    start = datetime.datetime(2026, 11, 23, 12, 0, 0, tzinfo=datetime.UTC).timestamp()
    first, second = HttpResponse(), HttpResponse()

    with mock.patch("time.time", return_value=start):
        set_visitor_cookie_quick(first, visitor_uuid, secure=False, signed_value="v")
    with mock.patch("time.time", return_value=start + 1):
        set_visitor_cookie_quick(second, visitor_uuid, secure=False, signed_value="v")
    second.cookies[COOKIE_NAME]["domain"] = "example.jp"

    assert "12:00:00 GMT" in first.cookies[COOKIE_NAME].output()
    assert "12:00:01 GMT" in second.cookies[COOKIE_NAME].output()
    assert "Domain=example.jp" in second.cookies[COOKIE_NAME].output()
    assert "Domain" not in first.cookies[COOKIE_NAME].output()


def test_the_kept_client_address_is_request_ip_and_follows_the_proxy_setting(
    settings: Any,
) -> None:
    factory = RequestFactory()

    def request(forwarded: str) -> Any:
        return factory.get("/t/pv", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)

    settings.TRUSTED_PROXY_COUNT = 0
    for forwarded in ("203.0.113.7", "garbage", "198.51.100.1, 203.0.113.9"):
        assert client_address(request(forwarded)) == request_ip(request(forwarded)) == "10.0.0.1"

    settings.TRUSTED_PROXY_COUNT = 1

    assert client_address(request("203.0.113.7")) == "203.0.113.7"
    assert client_address(request("garbage")) is None == request_ip(request("garbage"))
    assert client_address(request("198.51.100.1, 203.0.113.9")) == "203.0.113.9"


def test_new_visitor_uuids_are_random_version_4_uuids_and_a_forked_worker_has_its_own() -> None:
    made = [new_visitor_uuid() for _index in range(1000)]  # more than one read of random bytes

    assert len(set(made)) == 1000
    assert {(made_uuid.version, made_uuid.variant) for made_uuid in made} == {(4, uuid.RFC_4122)}
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        os.write(write_end, new_visitor_uuid().bytes)
        os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    from_child = uuid.UUID(bytes=os.read(read_end, 16))
    os.close(read_end)
    assert from_child != new_visitor_uuid()  # the parent's next one: not handed out twice
