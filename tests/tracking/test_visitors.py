"""Visitor pages, the activity timeline and Settings → Tracking, as each role meets them."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from mapp.hosts import AllowedHosts
from mapp.models import Level, Module, ProspectScope, Role, User
from prospects.models import Prospect
from tests.conftest import client_for
from tests.factories import ProspectFactory, make_user
from tests.tracking_queue import DrainingClient
from tracking.forms import normalize_tracker_domain
from tracking.models import Activity, ActivityType, TrackerDomain, TrackingSettings, Visitor
from tracking.services import activity_record, visitor_identify
from tracking.timeline import timeline_entries
from tracking.views_visitors import tracker_domain_add

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Client:
    """Hits are queued; this client stores them after each request, as the drain task would."""
    return DrainingClient()


SCRIPT_AGENT = "<script>alert('ua')</script> Mozilla/5.0"
SCRIPT_TITLE = "<script>alert('title')</script>"
SCRIPT_REFERRER = "https://evil.example/?q=<script>alert('ref')</script>"


@pytest.fixture(autouse=True)
def own_cache_namespace(settings: Any) -> Iterator[None]:
    # Tests change the settings row directly: read it on every hit.
    settings.TRACKING_SETTINGS_CACHE_SECONDS = 0
    yield


def _visit(client: Client, url: str, **params: Any) -> None:
    user_agent = params.pop("user_agent", "Mozilla/5.0")
    query = urlencode({"url": url, "pvid": uuid.uuid4().hex, **params})
    assert client.get("/t/pv?" + query, HTTP_USER_AGENT=user_agent).status_code == 200


def _visitor(**fields: Any) -> Visitor:
    return Visitor.objects.create(user_agent="Mozilla/5.0", **fields)


# --- escaping -----------------------------------------------------------------------------------


def test_visitor_pages_escape_script_from_the_user_agent_title_and_referrer(
    marketer: User,
) -> None:
    browser = DrainingClient()
    _visit(
        browser,
        "https://www.example.jp/<script>alert('url')</script>",
        title=SCRIPT_TITLE,
        ref=SCRIPT_REFERRER,
        user_agent=SCRIPT_AGENT,
    )
    visitor = Visitor.objects.get()
    activity_record(
        type=ActivityType.PAGE_VIEW, visitor_id=visitor.pk, object_label="javascript:alert(1)"
    )
    client = client_for(marketer)

    pages = [
        client.get(reverse("visitors:list")),
        client.get(reverse("visitors:detail", args=[visitor.pk])),
    ]

    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        assert "&lt;script&gt;" in html
        assert "<script>alert" not in html
    detail = pages[1].content.decode()
    assert "&lt;script&gt;alert(&#x27;title&#x27;)&lt;/script&gt;" in detail
    assert "&lt;script&gt;alert(&#x27;ua&#x27;)&lt;/script&gt;" in detail
    assert "q=&lt;script&gt;alert(&#x27;ref&#x27;)" in detail
    # an http(s) URL is a link; javascript: is only ever text
    assert 'href="https://www.example.jp/&lt;script&gt;' in detail
    assert 'href="javascript:' not in detail
    assert "javascript:alert(1)" in detail


def test_timeline_entries_link_only_http_urls() -> None:
    activities = [
        Activity(
            occurred_at=timezone.now(), type=ActivityType.PAGE_VIEW, object_label=label, payload={}
        )
        for label in (
            "https://www.example.jp/a",
            "http://www.example.jp/b",
            "javascript:alert(1)",
            "data:text/html,<script>",
            "//evil.example/",
            "メール 2024年春",
        )
    ]

    links = [entry.link for entry in timeline_entries(activities)]

    assert links == ["https://www.example.jp/a", "http://www.example.jp/b", None, None, None, None]
    assert timeline_entries(activities)[0].get_type_display == str(ActivityType.PAGE_VIEW.label)


# --- access -------------------------------------------------------------------------------------


def test_sales_users_have_no_visitor_pages_nor_tracking_settings(
    sales_user: User, marketer: User
) -> None:
    visitor = _visitor()
    sales = client_for(sales_user)
    marketing = client_for(marketer)

    assert sales.get(reverse("visitors:list")).status_code == 403
    assert sales.get(reverse("visitors:detail", args=[visitor.pk])).status_code == 403
    assert sales.get(reverse("visitors:settings")).status_code == 403
    # Marketing reads visitors but has no account settings (as in Account Engagement)
    assert marketing.get(reverse("visitors:list")).status_code == 200
    assert marketing.get(reverse("visitors:settings")).status_code == 403


def test_the_prospect_link_shows_only_for_prospects_the_user_may_see(
    sales_manager: User, sales_user: User
) -> None:
    prospect: Prospect = ProspectFactory.create(assigned_user=sales_user, last_name="山本")
    visitor = _visitor()
    visitor_identify(visitor=visitor, prospect_id=prospect.pk, source="test")
    scoped_role = Role.objects.create(
        name="Visitors, own prospects",
        slug="visitors-own",
        prospect_scope=ProspectScope.ASSIGNED,
        permissions={Module.PROSPECTS.value: Level.VIEW, Module.VISITORS.value: Level.VIEW},
    )
    scoped_user = make_user(scoped_role.slug, email="scoped@example.jp")
    prospect_url = reverse("prospects:detail", args=[prospect.pk])

    for user, sees_link in ((sales_manager, True), (scoped_user, False)):
        client = client_for(user)
        for page in (
            client.get(reverse("visitors:list")),
            client.get(reverse("visitors:detail", args=[visitor.pk])),
        ):
            html = page.content.decode()
            assert page.status_code == 200
            assert (prospect_url in html) is sees_link
            assert ("山本" in html) is sees_link


# --- the list -----------------------------------------------------------------------------------


def test_the_list_filters_identified_anonymous_and_bots(marketer: User) -> None:
    prospect: Prospect = ProspectFactory.create()
    identified = _visitor()
    visitor_identify(visitor=identified, prospect_id=prospect.pk, source="test")
    anonymous = _visitor()
    bot = _visitor(is_bot=True)
    client = client_for(marketer)

    def shown(show: str) -> set[int]:
        page = client.get(reverse("visitors:list"), {"show": show})
        return {row["visitor"].pk for row in page.context["rows"]}

    assert shown("all") == {identified.pk, anonymous.pk, bot.pk}
    assert shown("identified") == {identified.pk}
    assert shown("anonymous") == {anonymous.pk, bot.pk}
    assert shown("bots") == {bot.pk}
    assert shown("nonsense") == {identified.pk, anonymous.pk, bot.pk}


def test_the_list_pages_by_keyset_with_a_constant_number_of_queries(marketer: User) -> None:
    now = timezone.now()
    prospects = ProspectFactory.create_batch(10)
    for index in range(55):
        visitor = _visitor(prospect=prospects[index % 10] if index % 2 else None)
        # two visitors share each timestamp: the id breaks ties without skipping anyone
        Visitor.objects.filter(pk=visitor.pk).update(
            last_seen_at=now - datetime.timedelta(minutes=index // 2)
        )
    client = client_for(marketer)

    with CaptureQueriesContext(connection) as first_queries:
        first = client.get(reverse("visitors:list"))
    second = client.get("/visitors/?" + first.context["next_query"])
    with CaptureQueriesContext(connection) as garbage_queries:
        garbage = client.get(reverse("visitors:list"), {"after": "!!not-a-cursor"})

    first_ids = [row["visitor"].pk for row in first.context["rows"]]
    second_ids = [row["visitor"].pk for row in second.context["rows"]]
    assert len(first_ids) == 50 and len(second_ids) == 5
    assert set(first_ids) | set(second_ids) == set(Visitor.objects.values_list("pk", flat=True))
    assert second.context["next_query"] is None
    assert garbage.status_code == 200
    # user, role, visitors, visible prospects: never one per row
    assert len(first_queries) <= 5
    assert len(garbage_queries) <= 5


def test_the_visitor_page_shows_visits_and_activities(marketer: User) -> None:
    browser = DrainingClient()
    _visit(browser, "https://www.example.jp/?utm_source=mail&utm_campaign=spring", title="トップ")
    _visit(browser, "https://www.example.jp/price", title="料金")
    visitor = Visitor.objects.get()

    page = client_for(marketer).get(reverse("visitors:detail", args=[visitor.pk]))

    html = page.content.decode()
    assert page.status_code == 200
    assert "mail / — / spring" in html
    assert "料金" in html and "トップ" in html
    (visit_row,) = page.context["visits"]
    assert visit_row["visit"].page_view_count == 2
    assert [entry.object_label for entry in page.context["activities"]][:2] == [
        "https://www.example.jp/price",
        "https://www.example.jp/?utm_source=mail&utm_campaign=spring",
    ]


def test_an_unknown_visitor_is_404(marketer: User) -> None:
    assert client_for(marketer).get(reverse("visitors:detail", args=[999999])).status_code == 404


# --- Settings → Tracking ------------------------------------------------------------------------


def test_the_settings_page_shows_the_snippet_and_saves_the_options(
    administrator: User, settings: Any
) -> None:
    settings.SITE_URL = "https://mapp.example.com"
    client = client_for(administrator)

    page = client.get(reverse("visitors:settings"))
    html = page.content.decode()
    assert page.status_code == 200
    assert (
        "&lt;script async src=&quot;https://mapp.example.com/t/mapp.js&quot; "
        "data-mapp-tracker=&quot;https://mapp.example.com&quot;&gt;&lt;/script&gt;"
    ) in html
    assert "tracking/settings.js" in html and "onclick" not in html

    saved = client.post(
        reverse("visitors:settings"),
        {"session_gap_minutes": "45", "require_consent": "on", "honour_do_not_track": "on"},
    )
    refused = client.post(reverse("visitors:settings"), {"session_gap_minutes": "0"})

    assert saved.status_code == 302
    row = TrackingSettings.load()
    assert (row.session_gap_minutes, row.require_consent, row.honour_do_not_track) == (
        45,
        True,
        True,
    )
    assert refused.status_code == 400


def test_settings_readers_cannot_change_them() -> None:
    reader_role = Role.objects.create(
        name="Settings reader",
        slug="settings-reader",
        permissions={Module.SETTINGS.value: Level.VIEW},
    )
    reader = client_for(make_user(reader_role.slug, email="reader@example.jp"))

    assert reader.get(reverse("visitors:settings")).status_code == 200
    assert (
        reader.post(reverse("visitors:settings"), {"session_gap_minutes": "5"}).status_code == 403
    )
    assert reader.post(reverse("visitors:domain_create"), {"domain": "go.a.jp"}).status_code == 403
    assert TrackingSettings.load().session_gap_minutes == 30


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("go.example.co.jp", "go.example.co.jp"),
        ("  Go.Example.CO.JP. ", "go.example.co.jp"),
        ("ｇｏ．ｅｘａｍｐｌｅ．ｊｐ", "go.example.jp"),  # full-width, as typed with a Japanese IME
        ("トラッキング.例え.jp", "xn--nckg9cta9nmc.xn--r8jz45g.jp"),
    ],
)
def test_tracker_domains_are_normalised(typed: str, stored: str) -> None:
    assert normalize_tracker_domain(typed) == stored


@pytest.mark.parametrize(
    "typed",
    [
        "https://go.example.jp",
        "go.example.jp/path",
        "go.example.jp:8443",
        "user@go.example.jp",
        "go example.jp",
        "localhost",
        "192.168.0.1",
        "-go.example.jp",
        "go..example.jp",
        "a" * 64 + ".example.jp",
        "",
        ".",
        "<script>.jp",
    ],
)
def test_tracker_domains_that_are_not_host_names_are_refused(typed: str) -> None:
    with pytest.raises(ValidationError):
        normalize_tracker_domain(typed)


def test_tracker_domains_are_added_made_primary_and_removed(
    administrator: User, settings: Any
) -> None:
    settings.SITE_URL = "https://mapp.example.com"
    settings.ALLOWED_HOSTS = ["mapp.example.com", "go.example.co.jp", "testserver"]
    client = client_for(administrator)

    client.post(reverse("visitors:domain_create"), {"domain": "GO.example.co.jp"})
    client.post(reverse("visitors:domain_create"), {"domain": "t.example.jp"})
    duplicate = client.post(reverse("visitors:domain_create"), {"domain": "go.example.co.jp"})
    invalid = client.post(reverse("visitors:domain_create"), {"domain": "https://x.jp/a"})

    assert duplicate.status_code == invalid.status_code == 400
    first = TrackerDomain.objects.get(domain="go.example.co.jp")
    second = TrackerDomain.objects.get(domain="t.example.jp")
    assert first.is_primary and not second.is_primary
    html = client.get(reverse("visitors:settings")).content.decode()
    assert "go.example.co.jp CNAME mapp.example.com" in html
    assert "src=&quot;https://go.example.co.jp/t/mapp.js&quot;" in html
    assert html.count("ALLOWED_HOSTS") == 1  # only t.example.jp is not served yet

    client.post(reverse("visitors:domain_primary", args=[second.pk]))
    first.refresh_from_db()
    second.refresh_from_db()
    assert second.is_primary and not first.is_primary
    assert "src=&quot;https://t.example.jp/t/mapp.js&quot;" in (
        client.get(reverse("visitors:settings")).content.decode()
    )

    client.post(reverse("visitors:domain_delete", args=[second.pk]))
    first.refresh_from_db()
    assert first.is_primary
    assert list(TrackerDomain.objects.values_list("domain", flat=True)) == ["go.example.co.jp"]
    assert client.get(reverse("visitors:domain_delete", args=[first.pk])).status_code == 405


# --- the prospect page (timeline panel) ---------------------------------------------------------


def test_the_prospect_page_shows_page_views_escaped(marketer: User) -> None:
    prospect: Prospect = ProspectFactory.create()
    browser = DrainingClient()
    _visit(browser, "https://www.example.jp/seminar", title=SCRIPT_TITLE)
    visitor_identify(visitor=Visitor.objects.get(), prospect_id=prospect.pk, source="test")

    html = (
        client_for(marketer).get(reverse("prospects:detail", args=[prospect.pk])).content.decode()
    )

    assert "https://www.example.jp/seminar" in html
    assert "&lt;script&gt;alert(&#x27;title&#x27;)&lt;/script&gt;" in html
    assert "<script>alert" not in html


def test_a_tracker_domain_is_an_allowed_host_as_soon_as_it_is_added(
    settings: Any, marketer: User, django_capture_on_commit_callbacks: Any
) -> None:
    # given: the hosts as configured (Django's test set-up copies them into a plain list)
    settings.ALLOWED_HOSTS = AllowedHosts(["testserver"])
    query = urlencode({"url": "https://www.example.co.jp/", "pvid": uuid.uuid4().hex})
    browser = DrainingClient(HTTP_HOST="go.example.co.jp")
    assert browser.get("/t/pv?" + query).status_code == 400

    # when
    with django_capture_on_commit_callbacks(execute=True):
        tracker_domain_add(actor=marketer, domain="go.example.co.jp")

    # then
    assert browser.get("/t/pv?" + query).status_code == 200


def test_action_runs_are_on_the_prospect_timeline_with_their_cause(marketer: User) -> None:
    # given: a page view, then a completion action run caused by a form submission
    from prospects.actions import ActionContext, action_run
    from prospects.models import ProspectList

    prospect: Prospect = ProspectFactory.create()
    activity_record(
        type=ActivityType.PAGE_VIEW, prospect_id=prospect.pk, object_label="https://a.jp/"
    )
    prospect_list = ProspectList.objects.create(name="<b>資料請求者</b>")
    action_run(
        key="add_to_list",
        prospect=prospect,
        config={"list": prospect_list.pk},
        context=ActionContext(
            cause_type="form_submission", cause_id="7", cause_label="<i>資料請求フォーム</i>"
        ),
    )

    # when
    html = (
        client_for(marketer).get(reverse("prospects:detail", args=[prospect.pk])).content.decode()
    )

    # then: newest first, escaped
    timeline = html[html.index('data-testid="activity-timeline"') :]
    assert 'data-activity="action_run"' in timeline
    assert timeline.index('data-activity="action_run"') < timeline.index(
        'data-activity="page_view"'
    )
    assert "&lt;i&gt;資料請求フォーム&lt;/i&gt;" in timeline
    assert "<i>資料請求フォーム" not in html
