"""The preference centre in a real Chromium, in Japanese at a phone's width: the page fits
without sideways scrolling, its CSRF-protected forms work from a real browser (the page's
Referrer-Policy still lets the browser send its Origin), and nothing is refused by the page's
Content-Security-Policy. Screenshots for review: test-artifacts/e2e/preferences-ja-*.png
(phone and desktop)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import reverse

from emails.unsubscribe import unsubscribe_token
from mapp.models import AccountSettings
from prospects.models import ListMembership, Prospect, ProspectList
from tests.e2e.conftest import screenshot_path
from tests.factories import ProspectFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def japanese_page(browser: Any, settings: Any) -> Iterator[Any]:
    """A Japanese phone browser; script errors and console errors (CSP refusals) fail the test."""
    settings.LANGUAGE_CODE = "ja"
    context = browser.new_context(locale="ja-JP", viewport=PHONE, device_scale_factor=2)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "console",
        lambda message: problems.append(message.text) if message.type == "error" else None,
    )
    yield page
    context.close()
    assert problems == []


def _fits_the_screen(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_a_person_manages_their_email_on_a_phone_in_japanese(
    live_server: Any, japanese_page: Any, account_identity: AccountSettings
) -> None:
    from playwright.sync_api import expect

    page = japanese_page
    # given a prospect on one of two public lists, and a private list they are also on
    prospect: Prospect = ProspectFactory.create(email="hanako.sato@sample-shoji.co.jp")
    news = ProspectList.objects.create(
        name="news",
        public_name="月刊マップ通信",
        description="新機能や活用事例を毎月お届けします。",
        is_public=True,
    )
    seminars = ProspectList.objects.create(
        name="セミナー・イベントのご案内",
        description="東京・大阪で開催するセミナーとウェビナーの日程をお知らせします。",
        is_public=True,
    )
    private = ProspectList.objects.create(name="社内VIP")
    for prospect_list in (news, private):
        ListMembership.objects.create(prospect_list=prospect_list, prospect=prospect)
    token = unsubscribe_token(prospect_id=prospect.pk, list_email_id=3)
    url = str(live_server.url) + reverse("emails_public:unsubscribe", kwargs={"token": token})

    # when they open the link from the email
    page.goto(url)
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.get_by_test_id("address")).to_contain_text("ha•••@sample-shoji.co.jp")
    expect(page.get_by_test_id("sender")).to_contain_text("〒100-0001 東京都千代田区千代田1-1")
    expect(page.locator(f"input[name=list][value='{news.pk}']")).to_be_checked()
    expect(page.locator(f"input[name=list][value='{seminars.pk}']")).not_to_be_checked()
    assert _fits_the_screen(page)
    page.screenshot(path=str(screenshot_path("preferences-ja-phone")), full_page=True)
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(screenshot_path("preferences-ja-desktop")), full_page=True)
    page.set_viewport_size(PHONE)

    # and swap the newsletter for the seminars, then save
    page.get_by_text("月刊マップ通信").click()
    page.get_by_text("セミナー・イベントのご案内").click()
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("notice")).to_be_visible()
    expect(page.locator(f"input[name=list][value='{seminars.pk}']")).to_be_checked()
    assert set(
        ListMembership.objects.filter(prospect=prospect).values_list("prospect_list", flat=True)
    ) == {seminars.pk, private.pk}

    # then unsubscribe from everything
    page.get_by_test_id("unsubscribe-confirm").click()
    expect(page.get_by_test_id("opted-out")).to_be_visible()
    assert _fits_the_screen(page)
    page.screenshot(path=str(screenshot_path("preferences-ja-phone-opted-out")), full_page=True)
    prospect.refresh_from_db()
    assert prospect.opted_out

    # and change their mind
    page.get_by_test_id("resubscribe").click()
    expect(page.get_by_test_id("unsubscribe-confirm")).to_be_visible()
    prospect.refresh_from_db()
    assert not prospect.opted_out
