"""The tracking script's endpoints: the script itself, its config, the page-view beacon (visitors,
visits, UTM, consent, Do-Not-Track, replays, floods, hostile input) and identification."""

from __future__ import annotations

import datetime
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core import signing
from django.test import Client
from django.utils import timezone

from prospects.models import Prospect
from tests.factories import ProspectFactory
from tests.tracking_queue import DrainingClient
from tracking import beacon as beacon_module
from tracking.identity import identify_token_for
from tracking.models import Activity, ActivityType, TrackingSettings, Visit, Visitor
from tracking.visitor_cookie import COOKIE_NAME, visitor_uuid_from_cookie

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Client:
    """Hits are queued; this client stores them after each request, as the drain task would."""
    return DrainingClient()


CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture(autouse=True)
def own_cache_namespace(settings: Any) -> Iterator[None]:
    """(Redis keys are per test: tests/conftest.py own_tracking_keys.)"""
    # Tests change the settings row directly: read it on every hit.
    settings.TRACKING_SETTINGS_CACHE_SECONDS = 0
    yield


def _pvid() -> str:
    return uuid.uuid4().hex


def beacon(client: Client, *, user_agent: str = CHROME, **params: Any) -> Any:
    values = {"pvid": _pvid(), **params}
    return client.get("/t/pv?" + urlencode(values), HTTP_USER_AGENT=user_agent)


def raw_beacon(client: Client, query_string: str) -> Any:
    return client.get("/t/pv?" + query_string, HTTP_USER_AGENT=CHROME)


def page_views() -> list[Activity]:
    return list(Activity.objects.filter(type=ActivityType.PAGE_VIEW).order_by("occurred_at", "id"))


def nothing_stored() -> bool:
    return not Activity.objects.exists() and not Visitor.objects.exists()


# --- the script and its config ------------------------------------------------------------------


def test_the_script_is_served_cacheable_and_readable_from_any_origin(client: Client) -> None:
    response = client.get("/t/mapp.js")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/javascript; charset=utf-8"
    assert response["Cache-Control"] == "public, max-age=3600"
    assert response["Access-Control-Allow-Origin"] == "*"
    body = response.content.decode()
    assert "mappq" in body and "/t/pv" in body and "/t/config.json" in body
    assert len(response.content) < 4096


def test_the_config_tells_the_script_the_privacy_settings(client: Client) -> None:
    settings_row = TrackingSettings.load()
    settings_row.require_consent = True
    settings_row.save()

    response = client.get("/t/config.json")

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response.json() == {"require_consent": True, "honour_do_not_track": False}


def test_the_settings_are_read_again_after_a_few_seconds_or_a_change(
    client: Client, settings: Any
) -> None:
    settings.TRACKING_SETTINGS_CACHE_SECONDS = 60
    beacon_module.forget_tracking_settings()
    assert beacon(client, url="https://www.example.jp/1").status_code == 200
    row = TrackingSettings.load()
    row.require_consent = True
    row.save()

    cached = beacon(client, url="https://www.example.jp/2")
    beacon_module.forget_tracking_settings()  # what the settings page does after saving
    fresh = beacon(client, url="https://www.example.jp/3")

    assert (cached.status_code, fresh.status_code) == (200, 204)


# --- page views, visitors and visits ------------------------------------------------------------


def test_a_beacon_stores_a_page_view_with_title_referrer_and_utm(client: Client) -> None:
    url = "https://www.example.co.jp/products/?utm_source=newsletter&utm_medium=email&utm_campaign=spring"

    response = beacon(
        client, url=url, title="製品一覧 | サンプル商事", ref="https://www.google.com/search?q=mapp"
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    cookie = response.cookies[COOKIE_NAME]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]
    assert int(cookie["max-age"]) == 2 * 365 * 24 * 60 * 60
    visitor = Visitor.objects.get()
    assert visitor_uuid_from_cookie(cookie.value) == visitor.uuid
    assert visitor.page_view_count == 1 and visitor.user_agent == CHROME and not visitor.is_bot
    visit = Visit.objects.get()
    assert visit.landing_url == url
    assert visit.referrer == "https://www.google.com/search?q=mapp"
    assert (visit.utm_source, visit.utm_medium, visit.utm_campaign) == (
        "newsletter",
        "email",
        "spring",
    )
    (page_view,) = page_views()
    assert page_view.object_type == "url" and page_view.object_label == url
    assert page_view.visitor_id == visitor.pk and page_view.prospect_id is None
    assert page_view.payload == {
        "title": "製品一覧 | サンプル商事",
        "referrer": "https://www.google.com/search?q=mapp",
        "visit_id": visit.pk,
    }
    visit_activity = Activity.objects.get(type=ActivityType.VISIT)
    assert visit_activity.object_id == str(visit.pk)
    assert visit_activity.payload["utm_campaign"] == "spring"


def test_the_cookie_is_secure_over_https(client: Client) -> None:
    response = client.get(
        "/t/pv?" + urlencode({"url": "https://www.example.jp/", "pvid": _pvid()}), secure=True
    )

    assert response.status_code == 200
    assert response.cookies[COOKIE_NAME]["secure"]


def test_a_second_page_view_within_the_gap_continues_the_visit_after_it_starts_a_new_one(
    client: Client,
) -> None:
    beacon(client, url="https://www.example.jp/a")
    beacon(client, url="https://www.example.jp/b")

    visitor = Visitor.objects.get()
    visit = Visit.objects.get()
    assert visit.page_view_count == 2 and visitor.page_view_count == 2
    assert Activity.objects.filter(type=ActivityType.VISIT).count() == 1

    # given 31 minutes of silence (the default gap is 30)
    Visit.objects.update(last_activity_at=timezone.now() - datetime.timedelta(minutes=31))
    beacon(client, url="https://www.example.jp/c?utm_source=ad")

    assert Visitor.objects.count() == 1
    visits = list(Visit.objects.order_by("started_at"))
    assert len(visits) == 2
    assert visits[1].landing_url == "https://www.example.jp/c?utm_source=ad"
    assert visits[1].utm_source == "ad" and visits[1].page_view_count == 1
    assert [view.payload["visit_id"] for view in page_views()] == [
        visits[0].pk,
        visits[0].pk,
        visits[1].pk,
    ]
    assert Activity.objects.filter(type=ActivityType.VISIT).count() == 2


def test_the_session_gap_comes_from_the_settings(client: Client) -> None:
    settings_row = TrackingSettings.load()
    settings_row.session_gap_minutes = 5
    settings_row.save()
    beacon(client, url="https://www.example.jp/a")
    Visit.objects.update(last_activity_at=timezone.now() - datetime.timedelta(minutes=6))

    beacon(client, url="https://www.example.jp/b")

    assert Visit.objects.count() == 2


def test_a_garbage_cookie_is_a_new_visitor_without_error(client: Client) -> None:
    client.cookies[COOKIE_NAME] = "garbage'\"<>;" + "x" * 5000

    response = beacon(client, url="https://www.example.jp/")

    assert response.status_code == 200
    visitor = Visitor.objects.get()
    assert visitor_uuid_from_cookie(response.cookies[COOKIE_NAME].value) == visitor.uuid


def test_a_forged_cookie_is_ignored(client: Client) -> None:
    beacon(client, url="https://www.example.jp/")
    victim = Visitor.objects.get()
    attacker = DrainingClient()
    # The victim's uuid, signed with the wrong salt / key: it must not reach the victim's history.
    attacker.cookies[COOKIE_NAME] = signing.dumps(str(victim.uuid), salt="mapp.other")
    beacon(attacker, url="https://www.example.jp/forged")
    attacker.cookies[COOKIE_NAME] = signing.dumps(
        str(victim.uuid), key="not-the-secret", salt="mapp.visitor"
    )
    beacon(attacker, url="https://www.example.jp/forged-again")

    victim.refresh_from_db()
    assert victim.page_view_count == 1
    assert Activity.objects.filter(visitor_id=victim.pk, type=ActivityType.PAGE_VIEW).count() == 1
    assert Visitor.objects.count() == 3


@pytest.mark.parametrize(
    "query_string",
    [
        pytest.param(
            "url=https%3A%2F%2Fwww.example.jp%2F%FF%FE&pvid=abcdef0123456789", id="bad-utf8"
        ),
        pytest.param(
            "url=https%3A%2F%2Fwww.example.jp%2F&title=%C3%28&pvid=abcdef0123456789",
            id="bad-utf8-title",
        ),
        pytest.param(
            "url=https%3A%2F%2Fwww.example.jp%2F" + "a" * 10_000 + "&pvid=abcdef0123456789",
            id="10kb-url",
        ),
        pytest.param("url=javascript%3Aalert(1)&pvid=abcdef0123456789", id="javascript-url"),
        pytest.param("url=data%3Atext%2Fhtml%2C%3Cscript%3E&pvid=abcdef0123456789", id="data-url"),
        pytest.param("url=%2Frelative&pvid=abcdef0123456789", id="relative-url"),
        pytest.param("url=https%3A%2F%2F%5B%3A%3A1&pvid=abcdef0123456789", id="broken-ipv6"),
        pytest.param("url=https%3A%2F%2Fwww.example.jp%2F%0Aa&pvid=abcdef0123456789", id="newline"),
        pytest.param("url=https%3A%2F%2Fwww.example.jp%2F%00&pvid=abcdef0123456789", id="nul"),
        pytest.param("pvid=abcdef0123456789", id="no-url"),
        pytest.param("url=https%3A%2F%2Fwww.example.jp%2F", id="no-pvid"),
        pytest.param("url=https%3A%2F%2Fwww.example.jp%2F&pvid=%3Cscript%3E", id="bad-pvid"),
        pytest.param("", id="nothing"),
        pytest.param("&".join(f"p{n}=1" for n in range(100)), id="too-many-fields"),
    ],
)
def test_hostile_or_broken_beacons_are_quiet_and_store_nothing(
    client: Client, query_string: str
) -> None:
    response = raw_beacon(client, query_string)

    assert response.status_code == 204
    assert COOKIE_NAME not in response.cookies
    assert nothing_stored()


def test_control_characters_and_long_titles_are_clipped_not_refused(client: Client) -> None:
    response = beacon(
        client,
        url="https://www.example.jp/",
        title="ok\x00\x07" + "長" * 900,
        ref="javascript:alert(1)",
    )

    assert response.status_code == 200
    (page_view,) = page_views()
    assert page_view.payload["title"].startswith("ok")
    assert "\x00" not in page_view.payload["title"]
    assert len(page_view.payload["title"]) == 500
    assert page_view.payload["referrer"] == ""  # not http(s): dropped, the page view kept


def test_other_methods_are_refused_without_error(client: Client) -> None:
    assert client.post("/t/pv", {"url": "https://www.example.jp/"}).status_code == 405
    assert nothing_stored()


def test_a_replayed_beacon_is_stored_once(client: Client) -> None:
    params = {"url": "https://www.example.jp/", "pvid": "replayed-page-view-id-1"}

    first = client.get("/t/pv?" + urlencode(params))
    second = client.get("/t/pv?" + urlencode(params))
    third = DrainingClient().get("/t/pv?" + urlencode(params))

    assert first.status_code == second.status_code == third.status_code == 200
    assert len(page_views()) == 1
    assert Visitor.objects.count() == 1


# --- consent and Do-Not-Track -------------------------------------------------------------------


def test_consent_mode_stores_nothing_without_consent(client: Client) -> None:
    settings_row = TrackingSettings.load()
    settings_row.require_consent = True
    settings_row.save()

    refused = beacon(client, url="https://www.example.jp/")

    assert refused.status_code == 204 and nothing_stored()
    assert beacon(client, url="https://www.example.jp/", consent="1").status_code == 200
    assert len(page_views()) == 1


def test_do_not_track_is_honoured_only_when_configured(client: Client) -> None:
    assert beacon(client, url="https://www.example.jp/1", dnt="1").status_code == 200
    settings_row = TrackingSettings.load()
    settings_row.honour_do_not_track = True
    settings_row.save()

    flagged = beacon(client, url="https://www.example.jp/2", dnt="1")
    header = client.get(
        "/t/pv?" + urlencode({"url": "https://www.example.jp/3", "pvid": _pvid()}), HTTP_DNT="1"
    )

    assert flagged.status_code == header.status_code == 204
    assert [view.object_label for view in page_views()] == ["https://www.example.jp/1"]


# --- floods -------------------------------------------------------------------------------------


def test_a_flood_from_one_address_is_cut_quietly_and_logged(
    client: Client, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.TRACKING_RATE_LIMIT_HITS = 5
    settings.TRACKING_RATE_LIMIT_WINDOW_SECONDS = 60

    with caplog.at_level(logging.WARNING, logger="tracking.beacon"):
        statuses = [
            beacon(client, url=f"https://www.example.jp/{number}").status_code
            for number in range(8)
        ]
    other_address = client.get(
        "/t/pv?" + urlencode({"url": "https://www.example.jp/x", "pvid": _pvid()}),
        REMOTE_ADDR="192.0.2.7",
    )

    assert statuses == [200] * 5 + [204] * 3
    assert len(page_views()) == 6
    assert other_address.status_code == 200
    assert any("tracking rate limit" in record.getMessage() for record in caplog.records)


# --- bots ---------------------------------------------------------------------------------------


def test_crawlers_are_stored_and_flagged(client: Client) -> None:
    beacon(client, url="https://www.example.jp/", user_agent=GOOGLEBOT)

    visitor = Visitor.objects.get()
    assert visitor.is_bot
    (page_view,) = page_views()
    assert page_view.is_bot and page_view.payload["bot"] == "crawler"
    assert Activity.objects.get(type=ActivityType.VISIT).is_bot


# --- identification by the site -----------------------------------------------------------------


def test_identify_moves_the_anonymous_page_views_to_the_prospect_in_order(
    client: Client,
) -> None:
    prospect: Prospect = ProspectFactory.create()
    beacon(client, url="https://www.example.jp/first")
    time.sleep(0.01)
    beacon(client, url="https://www.example.jp/second")

    response = client.get("/t/identify?" + urlencode({"token": identify_token_for(prospect.pk)}))

    assert response.status_code == 200
    visitor = Visitor.objects.get()
    assert visitor.prospect_id == prospect.pk and visitor.identified_at is not None
    assert [(view.object_label, view.prospect_id) for view in page_views()] == [
        ("https://www.example.jp/first", prospect.pk),
        ("https://www.example.jp/second", prospect.pk),
    ]
    assert Visit.objects.get().prospect_id == prospect.pk
    identified = Activity.objects.get(type=ActivityType.IDENTIFIED)
    assert identified.payload["source"] == "site"
    # later page views belong to the prospect straight away
    beacon(client, url="https://www.example.jp/third")
    assert page_views()[-1].prospect_id == prospect.pk


def test_identify_before_any_page_view_makes_the_visitor(client: Client) -> None:
    prospect: Prospect = ProspectFactory.create()

    response = client.post("/t/identify", {"token": identify_token_for(prospect.pk)})

    assert response.status_code == 200
    visitor = Visitor.objects.get()
    assert visitor.prospect_id == prospect.pk
    assert visitor_uuid_from_cookie(response.cookies[COOKIE_NAME].value) == visitor.uuid


def test_a_tampered_expired_or_unknown_token_identifies_nobody(
    client: Client, monkeypatch: pytest.MonkeyPatch, english: None
) -> None:
    prospect: Prospect = ProspectFactory.create()
    other: Prospect = ProspectFactory.create()
    beacon(client, url="https://www.example.jp/")
    token = identify_token_for(prospect.pk)
    tampered = token.replace(f"{prospect.pk}:", f"{other.pk}:", 1)
    with monkeypatch.context() as patch:
        two_days_ago = time.time() - 2 * 24 * 60 * 60
        patch.setattr(time, "time", lambda: two_days_ago)
        expired = identify_token_for(prospect.pk)
    unknown = identify_token_for(prospect.pk + other.pk + 1000)

    answers = [
        client.get("/t/identify?" + urlencode({"token": value}))
        for value in (tampered, token[:-2] + "xx", expired, unknown, "", "a" * 5000)
    ]

    assert [answer.status_code for answer in answers] == [400] * 6
    assert "not valid" in answers[0].content.decode()
    assert "expired" in answers[2].content.decode()
    assert "no prospect" in answers[3].content.decode()
    assert Visitor.objects.get().prospect_id is None
    assert not Activity.objects.filter(type=ActivityType.IDENTIFIED).exists()
    assert not Activity.objects.filter(prospect_id__isnull=False).exists()


def test_identify_respects_consent_mode(client: Client) -> None:
    prospect: Prospect = ProspectFactory.create()
    settings_row = TrackingSettings.load()
    settings_row.require_consent = True
    settings_row.save()

    response = client.get("/t/identify?" + urlencode({"token": identify_token_for(prospect.pk)}))

    assert response.status_code == 204
    assert not Visitor.objects.exists()


def test_a_back_end_gets_an_identify_token_through_the_api(
    client: Client, marketer: Any, sales_user: Any
) -> None:
    # given: a prospect the marketer may edit and a sales user who may not see it
    from tests.conftest import client_for

    prospect = ProspectFactory.create()
    url = f"/api/v1/prospects/{prospect.pk}/identify-token/"

    # when
    response = client_for(marketer).post(url)

    # then: the token identifies the browser that presents it
    assert response.status_code == 200
    body = response.json()
    assert body["prospect_id"] == prospect.pk and body["expires_in_seconds"] == 86400
    beacon(client, url="https://www.example.jp/member")
    answer = client.get("/t/identify?" + urlencode({"token": body["token"]}))
    assert answer.status_code == 200
    assert Visitor.objects.get().prospect_id == prospect.pk
    # and: outside the caller's scope, or without a session, there is no token
    assert client_for(sales_user).post(url).status_code == 404
    assert Client().post(url).status_code in (401, 403)
