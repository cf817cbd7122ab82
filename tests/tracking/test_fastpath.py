"""The WSGI application's tracking hot path (tracking/fastpath.py): the marked public views
answer without the middleware chain, with the headers the middleware would add; everything
else, and every answer that is not a quick one, goes through Django as before."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core import signals
from django.db import close_old_connections
from django.test import RequestFactory

from mapp.wsgi import application
from tests.factories import ProspectFactory
from tests.tracking_queue import drain_tracking_hits
from tracking import links
from tracking.fastpath import FAST_PATH_ATTRIBUTE, TrackingFastPath
from tracking.models import Activity, ActivityType

pytestmark = pytest.mark.django_db


class Answer:
    status = ""
    headers: list[tuple[str, str]]
    body = b""

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


def call(path: str, *, method: str = "GET", query: str = "", **extra: Any) -> Answer:
    environ = RequestFactory().generic(method, path, QUERY_STRING=query, **extra).environ
    answer = Answer()

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer.status, answer.headers = status, headers

    # As Django's test client does: the test's database connection (inside the test's
    # transaction) must survive the request_started / request_finished signals.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        result = application(environ, start_response)
        try:
            answer.body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
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
