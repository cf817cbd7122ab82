"""The tracking issue's end-to-end test: a customer's website on another origin loads the
tracking script from the real stack, headless Chromium browses two pages anonymously, the site
identifies the visitor with a signed token, and the anonymous page views become the prospect's
(in the order they happened) — then the Celery worker delivers them and the prospect's last
activity time is set."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mapp.models import Role
from prospects.models import Prospect
from tests.e2e.conftest import screenshot_path, serve_site, wait_for
from tests.factories import TEST_PASSWORD, ProspectFactory, make_user
from tracking.identity import identify_token_for
from tracking.models import Activity, ActivityType, Visit, Visitor
from tracking.visitor_cookie import COOKIE_NAME

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PAGE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>{title}</title>
<script>window.mappq=window.mappq||[];function mapp(){{mappq.push(arguments)}}</script>
<script async src="{tracker}/t/mapp.js" data-mapp-tracker="{tracker}"></script>
</head><body>
<h1>{title}</h1>
<p><a id="next" href="/page2.html?utm_source=e2e">料金プラン</a></p>
<button id="signup" data-token="{token}">資料請求</button>
<button id="consent">同意する</button>
<script>
document.getElementById("signup").addEventListener("click", function () {{
  mapp("identify", this.dataset.token);
}});
document.getElementById("consent").addEventListener("click", function () {{
  mapp("consent");
}});
</script>
</body></html>
"""


@pytest.fixture
def customer_site(live_stack: str) -> Iterator[Callable[[str], str]]:
    """A plain website on a different origin (another port) with the snippet in every page.

    Returns a function that sets the identify token the pages carry and gives the site's URL.
    """
    pages: dict[str, str] = {"token": ""}
    titles = {"/page1.html": "サンプル商事 | トップ", "/page2.html": "サンプル商事 | 料金"}

    def render(path: str) -> str | None:
        if path not in titles:
            return None
        token = html.escape(pages["token"])
        return PAGE.format(title=titles[path], tracker=live_stack, token=token)

    with serve_site(render) as site_url:

        def with_token(token: str) -> str:
            pages["token"] = token
            return site_url

        yield with_token


def _page_views() -> list[Activity]:
    return list(Activity.objects.filter(type=ActivityType.PAGE_VIEW).order_by("occurred_at", "id"))


def test_anonymous_page_views_on_another_site_move_to_the_identified_prospect(
    live_stack: str, browser: Any, customer_site: Callable[[str], str]
) -> None:
    prospect: Prospect = ProspectFactory.create(
        email="hanako.sato@sample-shoji.co.jp", last_name="佐藤", first_name="花子"
    )
    site = customer_site(identify_token_for(prospect.pk))
    assert site.rsplit(":", 1)[1] != live_stack.rsplit(":", 1)[1]  # a different origin
    context = browser.new_context(locale="ja-JP")
    page = context.new_page()

    # given two anonymous page views
    page.goto(site + "/page1.html")
    wait_for(lambda: len(_page_views()) == 1, 20, "the first page view")
    page.click("#next")
    page.wait_for_url("**/page2.html?utm_source=e2e")
    wait_for(lambda: len(_page_views()) == 2, 20, "the second page view")

    visitor = Visitor.objects.get()
    assert visitor.prospect_id is None
    first, second = _page_views()
    assert [first.object_label, second.object_label] == [
        site + "/page1.html",
        site + "/page2.html?utm_source=e2e",
    ]
    assert first.payload["title"] == "サンプル商事 | トップ"
    assert second.payload["referrer"] == site + "/page1.html"
    assert {first.visitor_id, second.visitor_id} == {visitor.pk}
    assert Visit.objects.get().page_view_count == 2
    cookies = {cookie["name"]: cookie for cookie in context.cookies(live_stack)}
    assert cookies[COOKIE_NAME]["httpOnly"] and cookies[COOKIE_NAME]["sameSite"] == "Lax"

    # when the site identifies the visitor
    page.click("#signup")
    wait_for(
        lambda: Visitor.objects.filter(pk=visitor.pk, prospect_id=prospect.pk).exists(),
        20,
        "the identification",
    )

    # then the anonymous history is the prospect's, in the order it happened
    assert [(view.object_label, view.prospect_id) for view in _page_views()] == [
        (site + "/page1.html", prospect.pk),
        (site + "/page2.html?utm_source=e2e", prospect.pk),
    ]
    assert Activity.objects.filter(type=ActivityType.IDENTIFIED, prospect_id=prospect.pk).exists()
    # and the worker delivered them: the prospect's last activity is set
    wait_for(
        lambda: Prospect.objects.get(pk=prospect.pk).last_activity_at is not None,
        30,
        "delivery to the last-activity consumer",
    )
    context.close()

    # a marketer sees it on the visitor page
    make_user(Role.MARKETING, email="marketer-e2e@example.jp")
    staff = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
    staff_page = staff.new_page()
    staff_page.goto(live_stack + "/accounts/login/")
    staff_page.fill("#id_username", "marketer-e2e@example.jp")
    staff_page.fill("#id_password", TEST_PASSWORD)
    staff_page.click("#login-form button[type=submit]")
    staff_page.wait_for_load_state("networkidle")
    staff_page.goto(f"{live_stack}/visitors/{visitor.pk}/")
    assert "佐藤" in staff_page.inner_text("[data-testid=visitor-details]")
    timeline = staff_page.inner_text("[data-testid=activity-timeline]")
    assert "page2.html" in timeline and "サンプル商事 | 料金" in timeline
    staff_page.screenshot(path=str(screenshot_path("tracking_visitor_page")), full_page=True)
    staff_page.goto(f"{live_stack}/prospects/{prospect.pk}/")
    staff_page.screenshot(path=str(screenshot_path("tracking_prospect_timeline")), full_page=True)
    staff.close()


def test_the_script_sends_nothing_before_consent_nor_under_do_not_track(
    live_stack: str, browser: Any, customer_site: Callable[[str], str]
) -> None:
    """The script's own side of consent mode and Do-Not-Track (the server checks them too, see
    tests/tracking/test_tracking_js.py): the account's config is replaced in the browser, so the
    server, which does not require consent, would store anything the script sent."""
    site = customer_site("")
    context = browser.new_context(locale="ja-JP")
    beacons: list[str] = []
    context.on(
        "request", lambda request: beacons.append(request.url) if "/t/pv?" in request.url else None
    )

    def strict_config(route: Any) -> None:
        route.fulfill(
            status=200,
            content_type="application/json",
            headers={"Access-Control-Allow-Origin": "*"},
            body='{"require_consent": true, "honour_do_not_track": true}',
        )

    context.route("**/t/config.json", strict_config)
    page = context.new_page()

    # consent mode: nothing until the site calls mapp('consent')
    page.goto(site + "/page1.html")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1000)
    assert beacons == []
    page.click("#consent")
    wait_for(lambda: len(_page_views()) == 1, 20, "the page view after consent")
    assert len(beacons) == 1 and "consent=1" in beacons[0]

    # Do-Not-Track: nothing at all, consent or not
    dnt_page = context.new_page()
    dnt_page.add_init_script("Object.defineProperty(navigator, 'doNotTrack', {get: () => '1'})")
    dnt_page.goto(site + "/page2.html")
    dnt_page.wait_for_load_state("networkidle")
    dnt_page.click("#consent")
    dnt_page.wait_for_timeout(1000)
    assert len(beacons) == 1
    assert len(_page_views()) == 1
    context.close()
