"""Email open pixel, click redirect and custom redirects: signed tokens, no open redirect, bots."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core import signing
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from prospects.models import Prospect
from tests.factories import ProspectFactory
from tests.tracking_queue import DrainingClient
from tracking import links
from tracking.identity import identify_token_for
from tracking.models import Activity, ActivityType, CustomRedirect, Visitor
from tracking.services import activity_record
from tracking.visitor_cookie import COOKIE_NAME, visitor_cookie_value, visitor_uuid_from_cookie

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Client:
    """Hits are queued; this client stores them after each request, as the drain task would."""
    return DrainingClient()


CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
HEADLESS_CHROME = CHROME.replace("Chrome/", "HeadlessChrome/")
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
DESTINATION = "https://www.example.co.jp/seminar/2025?utm_source=mail&id=7#apply"


@pytest.fixture(autouse=True)
def no_rate_limit(settings: Any) -> Iterator[None]:
    """Tests share one client address; the rate limit has its own test."""
    settings.TRACKING_RATE_LIMIT_HITS = 0
    yield


@pytest.fixture
def prospect() -> Prospect:
    return ProspectFactory.create()


def _email_id() -> str:
    # Unique per test: the click-burst counter lives in Redis, outside the rolled-back database.
    return f"email-{uuid.uuid4().hex[:12]}"


def _path(url: str) -> str:
    return urlsplit(url).path


def _browser(user_agent: str = CHROME) -> Client:
    return DrainingClient(HTTP_USER_AGENT=user_agent)


def _an_hour_ago() -> datetime.datetime:
    return timezone.now() - datetime.timedelta(hours=1)


def _cookie_visitor(response: Any) -> Visitor:
    visitor_uuid = visitor_uuid_from_cookie(response.cookies[COOKIE_NAME].value)
    assert visitor_uuid is not None
    return Visitor.objects.get(uuid=visitor_uuid)


def _flipped(token: str, index: int) -> str:
    replacement = "A" if token[index] != "A" else "B"
    return token[:index] + replacement + token[index + 1 :]


# --- the open pixel ------------------------------------------------------------------------------


def test_the_pixel_url_is_absolute_on_the_site_url(settings: Any, prospect: Prospect) -> None:
    # given
    settings.SITE_URL = "https://mapp.example.co.jp"

    # when
    url = links.open_pixel_url(prospect_id=prospect.pk, email_id="e1")

    # then
    assert url.startswith("https://mapp.example.co.jp/t/o/")
    assert url.endswith(".gif")


def test_an_open_is_recorded_and_answered_with_an_uncached_gif(prospect: Prospect) -> None:
    # given
    email_id = _email_id()
    url = links.open_pixel_url(prospect_id=prospect.pk, email_id=email_id, sent_at=_an_hour_ago())

    # when: the reader opens the mail twice
    first = _browser().get(_path(url))
    second = _browser().get(_path(url))

    # then
    assert first.status_code == 200
    assert first["Content-Type"] == "image/gif"
    assert first.content.startswith(b"GIF89a")
    assert "no-store" in first["Cache-Control"]
    assert second.status_code == 200
    opens = Activity.objects.filter(type=ActivityType.EMAIL_OPENED, prospect_id=prospect.pk)
    assert opens.count() == 2  # repeated opens are recorded; first-open-only is for scoring
    assert {(item.object_type, item.object_id, item.is_bot) for item in opens} == {
        ("email", email_id, False)
    }


@pytest.mark.parametrize(
    ("user_agent", "reason"),
    [(GMAIL_PROXY, "gmail_image_proxy"), ("Mozilla/5.0", "apple_mpp")],
)
def test_machine_opens_are_stored_as_bots(prospect: Prospect, user_agent: str, reason: str) -> None:
    # given
    url = links.open_pixel_url(prospect_id=prospect.pk, email_id=_email_id())

    # when
    response = _browser(user_agent).get(_path(url))

    # then
    assert response.status_code == 200
    opened = Activity.objects.get(type=ActivityType.EMAIL_OPENED, prospect_id=prospect.pk)
    assert opened.is_bot is True
    assert opened.payload == {"machine": reason}


def test_an_open_seconds_after_sending_is_a_machine_open(prospect: Prospect) -> None:
    # given: a security gateway fetches the images as the message arrives
    url = links.open_pixel_url(
        prospect_id=prospect.pk, email_id=_email_id(), sent_at=timezone.now()
    )

    # when
    _browser().get(_path(url))

    # then
    opened = Activity.objects.get(type=ActivityType.EMAIL_OPENED, prospect_id=prospect.pk)
    assert opened.is_bot is True
    assert opened.payload == {"machine": "prefetch_on_delivery"}


def test_a_crawler_fetching_the_pixel_is_a_bot(prospect: Prospect) -> None:
    # given
    url = links.open_pixel_url(prospect_id=prospect.pk, email_id=_email_id())

    # when
    _browser(GOOGLEBOT).get(_path(url))

    # then
    opened = Activity.objects.get(type=ActivityType.EMAIL_OPENED)
    assert (opened.is_bot, opened.payload) == (True, {"bot": "crawler"})


def test_every_altered_pixel_token_is_a_bodiless_404_and_records_nothing(
    prospect: Prospect,
) -> None:
    # given
    token = links.open_token(prospect_id=prospect.pk, email_id=_email_id())
    click_token = links.click_token(prospect_id=prospect.pk, email_id="e", url=DESTINATION)
    other_purpose = identify_token_for(prospect.pk)
    other_salt = signing.dumps([prospect.pk, "e", None], salt="another.purpose", compress=True)
    altered = [_flipped(token, index) for index in range(len(token))]
    altered += [token[:-1], token[: len(token) // 2], token + "A", click_token, other_purpose]
    altered += [other_salt, "x" * 5000, "%00", "..", "-"]
    client = _browser()

    # when
    responses = [client.get(f"/t/o/{value}.gif") for value in altered]

    # then
    assert {response.status_code for response in responses} == {404}
    assert {response.content for response in responses} == {b""}
    assert not Activity.objects.exists()


def test_the_pixel_of_a_deleted_prospect_still_answers_but_records_nothing() -> None:
    # given
    gone = ProspectFactory.create()
    url = links.open_pixel_url(prospect_id=gone.pk, email_id="e1")
    gone.delete()

    # when
    response = _browser().get(_path(url))

    # then
    assert response.status_code == 200
    assert not Activity.objects.exists()


# --- the click redirect --------------------------------------------------------------------------


def test_a_click_goes_to_the_signed_url_and_identifies_the_browser(prospect: Prospect) -> None:
    # given: an anonymous visitor who already read two pages
    visitor = Visitor.objects.create()
    for page in ("https://www.example.co.jp/", "https://www.example.co.jp/price"):
        activity_record(
            type=ActivityType.PAGE_VIEW,
            visitor_id=visitor.pk,
            object_type="url",
            object_label=page,
        )
    email_id = _email_id()
    url = links.tracked_link_url(
        prospect_id=prospect.pk,
        email_id=email_id,
        url=DESTINATION,
        link_id="cta-1",
        sent_at=_an_hour_ago(),
    )
    client = _browser()
    client.cookies[COOKIE_NAME] = visitor_cookie_value(visitor)

    # when
    response = client.get(_path(url))

    # then
    assert response.status_code == 302
    assert response["Location"] == DESTINATION
    clicked = Activity.objects.get(type=ActivityType.EMAIL_CLICKED)
    assert (clicked.prospect_id, clicked.visitor_id, clicked.is_bot) == (
        prospect.pk,
        visitor.pk,
        False,
    )
    assert (clicked.object_type, clicked.object_id, clicked.object_label) == (
        "link",
        "cta-1",
        DESTINATION,
    )
    assert clicked.payload == {"email_id": email_id}
    visitor.refresh_from_db()
    assert visitor.prospect_id == prospect.pk
    page_views = Activity.objects.filter(type=ActivityType.PAGE_VIEW, visitor_id=visitor.pk)
    assert set(page_views.values_list("prospect_id", flat=True)) == {prospect.pk}


def test_a_click_without_a_cookie_creates_an_identified_visitor_and_its_cookie(
    prospect: Prospect,
) -> None:
    # given
    url = links.tracked_link_url(
        prospect_id=prospect.pk, email_id=_email_id(), url=DESTINATION, sent_at=_an_hour_ago()
    )
    client = _browser()
    client.cookies[COOKIE_NAME] = "garbage:value\x00<script>"

    # when
    response = client.get(_path(url))

    # then
    assert response.status_code == 302
    cookie = response.cookies[COOKIE_NAME]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    visitor = _cookie_visitor(response)
    assert visitor.prospect_id == prospect.pk
    clicked = Activity.objects.get(type=ActivityType.EMAIL_CLICKED)
    assert clicked.object_id == links.link_object_id(DESTINATION)  # no link id: the URL's hash


def test_a_browser_identified_as_someone_else_stays_theirs(prospect: Prospect) -> None:
    # given: a colleague's browser (a forwarded email) with the colleague's history
    colleague = ProspectFactory.create()
    shared = Visitor.objects.create(prospect=colleague)
    activity_record(type=ActivityType.PAGE_VIEW, prospect_id=colleague.pk, visitor_id=shared.pk)
    url = links.tracked_link_url(
        prospect_id=prospect.pk, email_id=_email_id(), url=DESTINATION, sent_at=_an_hour_ago()
    )
    client = _browser()
    client.cookies[COOKIE_NAME] = visitor_cookie_value(shared)

    # when
    response = client.get(_path(url))

    # then: the colleague keeps their history and their browser (a forwarded email cannot
    # hand one person's browsing to another); the click is the recipient's, without a browser
    assert response.status_code == 302
    assert COOKIE_NAME not in response.cookies
    assert Activity.objects.get(type=ActivityType.PAGE_VIEW).prospect_id == colleague.pk
    shared.refresh_from_db()
    assert shared.prospect_id == colleague.pk
    assert Visitor.objects.count() == 1
    click = Activity.objects.get(type=ActivityType.EMAIL_CLICKED)
    assert (click.prospect_id, click.visitor_id, click.is_bot) == (prospect.pk, None, False)
    assert click.payload["browser_of_another_prospect"] is True


def test_headless_chrome_is_a_person(prospect: Prospect) -> None:
    # given
    url = links.tracked_link_url(
        prospect_id=prospect.pk, email_id=_email_id(), url=DESTINATION, sent_at=_an_hour_ago()
    )

    # when
    response = _browser(HEADLESS_CHROME).get(_path(url))

    # then
    assert response.status_code == 302
    assert Activity.objects.get(type=ActivityType.EMAIL_CLICKED).is_bot is False
    assert COOKIE_NAME in response.cookies


def test_a_click_within_two_seconds_of_delivery_is_a_scanner_and_identifies_nobody(
    prospect: Prospect,
) -> None:
    # given: the link is followed one second after the message was sent
    visitor = Visitor.objects.create()
    url = links.tracked_link_url(
        prospect_id=prospect.pk,
        email_id=_email_id(),
        url=DESTINATION,
        sent_at=timezone.now() - datetime.timedelta(seconds=1),
    )
    client = _browser()
    client.cookies[COOKIE_NAME] = visitor_cookie_value(visitor)

    # when
    response = client.get(_path(url))

    # then: still sent on, stored as a bot, nobody identified
    assert response.status_code == 302
    assert response["Location"] == DESTINATION
    clicked = Activity.objects.get(type=ActivityType.EMAIL_CLICKED)
    assert clicked.is_bot is True
    assert clicked.payload["bot"] == "fast_click"
    assert clicked.visitor_id is None
    assert COOKIE_NAME not in response.cookies
    visitor.refresh_from_db()
    assert visitor.prospect_id is None
    assert not Activity.objects.filter(type=ActivityType.IDENTIFIED).exists()


def test_delivery_time_comes_from_the_sent_activity_when_the_token_has_none(
    prospect: Prospect,
) -> None:
    # given: the email was recorded as sent just now; the link carries no send time
    email_id = _email_id()
    activity_record(
        type=ActivityType.EMAIL_SENT,
        prospect_id=prospect.pk,
        object_type="email",
        object_id=email_id,
    )
    url = links.tracked_link_url(prospect_id=prospect.pk, email_id=email_id, url=DESTINATION)

    # when
    _browser().get(_path(url))

    # then
    clicked = Activity.objects.get(type=ActivityType.EMAIL_CLICKED)
    assert (clicked.is_bot, clicked.payload["bot"]) == (True, "fast_click")


def test_all_links_of_an_email_clicked_at_once_are_a_scanner(prospect: Prospect) -> None:
    # given: five links of one email
    email_id = _email_id()
    urls = [
        links.tracked_link_url(
            prospect_id=prospect.pk,
            email_id=email_id,
            url=f"https://www.example.co.jp/item/{number}",
            sent_at=_an_hour_ago(),
        )
        for number in range(5)
    ]

    # when: all followed at once
    for url in urls:
        _browser().get(_path(url))

    # then: from the third on they are a burst (the first two cannot be known yet)
    clicks = Activity.objects.filter(type=ActivityType.EMAIL_CLICKED).order_by("id")
    assert [click.is_bot for click in clicks] == [False, False, True, True, True]
    assert clicks.last().payload["bot"] == "click_burst"  # type: ignore[union-attr]


@pytest.mark.parametrize("user_agent", ["python-requests/2.31.0", GOOGLEBOT, "curl/8.5.0"])
def test_known_agents_clicking_are_bots(prospect: Prospect, user_agent: str) -> None:
    # given
    url = links.tracked_link_url(
        prospect_id=prospect.pk, email_id=_email_id(), url=DESTINATION, sent_at=_an_hour_ago()
    )

    # when
    response = _browser(user_agent).get(_path(url))

    # then
    assert response.status_code == 302
    assert Activity.objects.get(type=ActivityType.EMAIL_CLICKED).is_bot is True
    assert not Visitor.objects.exists()


def test_the_click_redirect_ignores_next_and_other_parameters(prospect: Prospect) -> None:
    # given
    url = links.tracked_link_url(
        prospect_id=prospect.pk, email_id=_email_id(), url=DESTINATION, sent_at=_an_hour_ago()
    )

    # when
    responses = [
        _browser().get(_path(url) + query)
        for query in (
            "?next=https://evil.example/",
            "?url=//evil.example",
            "?redirect=javascript:alert(1)",
        )
    ]

    # then
    assert {response["Location"] for response in responses} == {DESTINATION}


@pytest.mark.parametrize(
    "destination",
    [
        "javascript:alert(document.cookie)",
        "JaVaScRiPt:alert(1)",
        "//evil.example/",
        "/relative/path",
        "data:text/html,<script>alert(1)</script>",
        "ftp://files.example.com/a",
        "mailto:someone@example.jp",
        "https://",
        "https://exa mple.com/",
        "https://example.com/\nLocation: https://evil.example",
        "https:\\\\evil.example",
        "https://www.example.co.jp/" + "a" * 2001,
        "",
    ],
)
def test_unsafe_destinations_are_refused_when_the_link_is_made(
    prospect: Prospect, destination: str
) -> None:
    # when / then
    assert links.is_safe_destination(destination) is False
    with pytest.raises(links.UnsafeDestinationError):
        links.tracked_link_url(prospect_id=prospect.pk, email_id="e", url=destination)


def test_a_signed_unsafe_destination_is_still_refused_at_redirect_time(prospect: Prospect) -> None:
    # given: a token signed with our key around a javascript: URL (a bug elsewhere, or a leak)
    token = signing.dumps(
        [prospect.pk, "e", "javascript:alert(1)", "", None], salt=links.CLICK_SALT, compress=True
    )

    # when
    response = _browser().get(f"/t/c/{token}")

    # then
    assert response.status_code == 400
    assert "Location" not in response
    assert not Activity.objects.exists()


def test_every_altered_click_token_is_refused_without_a_redirect(prospect: Prospect) -> None:
    # given
    token = links.click_token(
        prospect_id=prospect.pk, email_id=_email_id(), url=DESTINATION, link_id="x"
    )
    open_token = links.open_token(prospect_id=prospect.pk, email_id="e")
    other_salt = signing.dumps(
        [prospect.pk, "e", "https://evil.example/", "", None], salt="mapp.visitor", compress=True
    )
    altered = [_flipped(token, index) for index in range(len(token))]
    altered += [token[:-1], token[:10], open_token, other_salt, identify_token_for(prospect.pk)]
    altered += ["<script>alert(1)", "x" * 5000]
    client = _browser()

    # when
    responses = [client.get("/t/c/" + value) for value in altered]

    # then
    assert {response.status_code for response in responses} == {400}
    assert not any(response.has_header("Location") for response in responses)
    assert not Activity.objects.exists()
    assert not Visitor.objects.exists()


def test_the_invalid_link_page_escapes_what_it_shows(prospect: Prospect) -> None:
    # when
    response = _browser().get("/t/c/%3Cscript%3Ealert(1)%3C%5Cscript%3E")

    # then
    assert response.status_code == 400
    assert b"<script>alert" not in response.content


def test_a_head_request_is_answered_but_not_recorded(prospect: Prospect) -> None:
    # given: link checkers send HEAD
    url = links.tracked_link_url(
        prospect_id=prospect.pk, email_id=_email_id(), url=DESTINATION, sent_at=_an_hour_ago()
    )

    # when
    response = _browser().head(_path(url))

    # then
    assert response.status_code == 302
    assert not Activity.objects.exists()


def test_a_click_of_a_deleted_prospect_still_goes_on_and_records_nothing() -> None:
    # given
    gone = ProspectFactory.create()
    url = links.tracked_link_url(prospect_id=gone.pk, email_id="e", url=DESTINATION)
    gone.delete()

    # when
    response = _browser().get(_path(url))

    # then
    assert response["Location"] == DESTINATION
    assert not Activity.objects.exists()
    assert not Visitor.objects.exists()


def test_a_flood_of_clicks_from_one_address_is_refused_with_429(
    settings: Any, prospect: Prospect
) -> None:
    # given: a limit of 3 hits per window, a fresh address
    settings.TRACKING_RATE_LIMIT_HITS = 3
    address = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
    client = DrainingClient(HTTP_USER_AGENT=CHROME, REMOTE_ADDR=address)
    urls = [
        links.tracked_link_url(
            prospect_id=prospect.pk,
            email_id=_email_id(),
            url=f"https://www.example.co.jp/{number}",
            sent_at=_an_hour_ago(),
        )
        for number in range(5)
    ]
    pixel = links.open_pixel_url(prospect_id=prospect.pk, email_id=_email_id())

    # when
    statuses = [client.get(_path(url)).status_code for url in urls]
    pixels = [client.get(_path(pixel)) for _index in range(5)]

    # then: 3 clicks and 3 opens stored; the rest refused (the pixel still answers its image)
    assert statuses == [302, 302, 302, 429, 429]
    assert Activity.objects.filter(type=ActivityType.EMAIL_CLICKED).count() == 3
    assert {response.status_code for response in pixels} == {200}
    assert Activity.objects.filter(type=ActivityType.EMAIL_OPENED).count() == 3


# --- custom redirects ----------------------------------------------------------------------------


def _custom_redirect(**fields: Any) -> CustomRedirect:
    return links.custom_redirect_create(
        actor=None,
        name=fields.pop("name", "展示会 2025 資料"),
        destination_url=fields.pop("destination_url", DESTINATION),
        campaign_name=fields.pop("campaign_name", "展示会 2025"),
        **fields,
    )


def test_a_custom_redirect_goes_to_its_destination_and_counts_people(prospect: Prospect) -> None:
    # given: an identified visitor
    custom_redirect = _custom_redirect()
    visitor = Visitor.objects.create(prospect=prospect)
    client = _browser()
    client.cookies[COOKIE_NAME] = visitor_cookie_value(visitor)

    # when
    response = client.get(f"/r/{custom_redirect.slug}")

    # then
    assert response.status_code == 302
    assert response["Location"] == DESTINATION
    custom_redirect.refresh_from_db()
    assert (custom_redirect.click_count, custom_redirect.bot_click_count) == (1, 0)
    clicked = Activity.objects.get(type=ActivityType.CUSTOM_REDIRECT_CLICK)
    assert (clicked.prospect_id, clicked.visitor_id, clicked.is_bot) == (
        prospect.pk,
        visitor.pk,
        False,
    )
    assert clicked.object_id == str(custom_redirect.pk)
    assert clicked.payload["campaign"] == "展示会 2025"


def test_an_anonymous_redirect_click_keeps_a_history_for_later(prospect: Prospect) -> None:
    # given
    custom_redirect = _custom_redirect()

    # when
    response = _browser().get(f"/r/{custom_redirect.slug}")

    # then: a visitor and its cookie, the click is theirs until they are identified
    visitor = _cookie_visitor(response)
    clicked = Activity.objects.get(type=ActivityType.CUSTOM_REDIRECT_CLICK)
    assert (clicked.visitor_id, clicked.prospect_id) == (visitor.pk, None)


def test_redirect_clicks_count_people_and_bots_apart() -> None:
    # given
    custom_redirect = _custom_redirect()

    # when
    _browser().get(f"/r/{custom_redirect.slug}")
    _browser().get(f"/r/{custom_redirect.slug}")
    bot_response = _browser(GOOGLEBOT).get(f"/r/{custom_redirect.slug}")
    _browser("python-requests/2.31.0").get(f"/r/{custom_redirect.slug}")

    # then
    custom_redirect.refresh_from_db()
    assert (custom_redirect.click_count, custom_redirect.bot_click_count) == (2, 2)
    assert bot_response["Location"] == DESTINATION
    assert COOKIE_NAME not in bot_response.cookies
    clicks = Activity.objects.filter(type=ActivityType.CUSTOM_REDIRECT_CLICK)
    assert sorted(clicks.values_list("is_bot", flat=True)) == [False, False, True, True]


def test_custom_redirects_are_no_open_redirect() -> None:
    # given
    custom_redirect = _custom_redirect()
    client = _browser()

    # when
    with_next = client.get(f"/r/{custom_redirect.slug}?next=https://evil.example/")
    attempts = [
        client.get(path)
        for path in (
            "/r//evil.example",
            "/r/%2F%2Fevil.example",
            "/r/https://evil.example",
            "/r/javascript:alert(1)",
            f"/r/{custom_redirect.slug}x",
            "/r/" + "a" * 3000,
        )
    ]

    # then
    assert with_next["Location"] == DESTINATION
    assert {response.status_code for response in attempts} == {404}
    assert not any(response.has_header("Location") for response in attempts)


def test_an_inactive_redirect_is_not_found() -> None:
    # given
    custom_redirect = _custom_redirect()
    CustomRedirect.objects.filter(pk=custom_redirect.pk).update(is_active=False)

    # when
    response = _browser().get(f"/r/{custom_redirect.slug}")

    # then
    assert response.status_code == 404
    assert not Activity.objects.exists()


@pytest.mark.parametrize(
    "destination", ["javascript:alert(1)", "//evil.example", "data:text/html,x", "/local"]
)
def test_a_redirect_to_anything_but_http_cannot_be_created(destination: str) -> None:
    # when / then
    with pytest.raises(links.UnsafeDestinationError):
        _custom_redirect(destination_url=destination)


def test_an_empty_slug_becomes_eight_random_url_safe_characters() -> None:
    # when
    first = _custom_redirect()
    second = _custom_redirect()

    # then
    assert len(first.slug) == 8
    assert first.slug.isalnum() and first.slug.isascii()
    assert first.slug != second.slug


def test_the_redirect_endpoint_makes_a_small_constant_number_of_queries(
    prospect: Prospect,
) -> None:
    # given: an identified visitor, and one redirect already used many times
    custom_redirect = _custom_redirect()
    visitor = Visitor.objects.create(prospect=prospect)
    client = Client(HTTP_USER_AGENT=CHROME)  # custom redirects store at once: no drain
    client.cookies[COOKIE_NAME] = visitor_cookie_value(visitor)
    for _index in range(3):
        client.get(f"/r/{custom_redirect.slug}")

    # when
    with CaptureQueriesContext(connection) as first:
        client.get(f"/r/{custom_redirect.slug}")
    for _index in range(10):
        client.get(f"/r/{custom_redirect.slug}")
    with CaptureQueriesContext(connection) as later:
        client.get(f"/r/{custom_redirect.slug}")

    # then: the redirect, the visitor, the counter, the activity
    assert len(first) == len(later)
    assert len(later) <= 4, [query["sql"] for query in later.captured_queries]


def test_the_redirect_url_resolves_to_the_public_endpoint() -> None:
    # given
    custom_redirect = _custom_redirect()

    # when / then
    assert reverse("links:custom_redirect", kwargs={"slug": custom_redirect.slug}) == (
        f"/r/{custom_redirect.slug}"
    )


# --- the visitor cookie --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "x" * 10_000,
        str(uuid.uuid4()),
        signing.dumps(str(uuid.uuid4()), salt="another.salt"),
        signing.dumps(12345, salt="mapp.visitor"),
        signing.dumps("not-a-uuid", salt="mapp.visitor"),
    ],
)
def test_a_garbled_or_forged_visitor_cookie_reads_as_no_visitor(value: str) -> None:
    # when / then
    assert visitor_uuid_from_cookie(value) is None


def test_a_signed_visitor_cookie_reads_back_and_is_secure_over_https(prospect: Prospect) -> None:
    # given
    visitor = Visitor.objects.create()
    url = links.tracked_link_url(
        prospect_id=prospect.pk, email_id=_email_id(), url=DESTINATION, sent_at=_an_hour_ago()
    )

    # when
    response = _browser().get(_path(url), secure=True)

    # then
    assert visitor_uuid_from_cookie(visitor_cookie_value(visitor)) == visitor.uuid
    cookie = response.cookies[COOKIE_NAME]
    assert cookie["secure"] is True
    assert int(cookie["max-age"]) == 2 * 365 * 24 * 60 * 60
