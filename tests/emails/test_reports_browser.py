"""The list email report page in a real Chromium: the A/B table, the hourly chart drawn at full
width, the per-link table, a hostile URL that stays text, no script errors (screenshot for
review in test-artifacts/e2e/email-report.png)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from emails.models import SendingDomain
from emails.smtp_sink import SmtpSink
from mapp.models import AccountSettings, Role, User
from tests.e2e.conftest import screenshot_path
from tests.emails.test_reports import Scenario, build_scenario, report_url, store_click
from tests.factories import make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# The report's URLs are not in mapp.urls yet: the page is served with the tests' URLconf.
TEST_URLCONF = "tests.emails.test_reports"


@pytest.fixture(autouse=True)
def english_interface(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"
    settings.ROOT_URLCONF = TEST_URLCONF


@pytest.fixture
def marketer_user(db: None) -> User:
    return make_user(Role.MARKETING, email="report-e2e@example.jp")


@pytest.fixture
def page(browser: Any, live_server: Any, marketer_user: User) -> Iterator[Any]:
    """A signed-in marketer's English page; script errors and dialogs fail the test."""
    client = Client()
    client.force_login(marketer_user)
    session = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    context = browser.new_context(
        locale="en-US", viewport={"width": 1280, "height": 1000}, base_url=str(live_server.url)
    )
    context.add_cookies(
        [
            {
                "name": django_settings.SESSION_COOKIE_NAME,
                "value": session,
                "url": str(live_server.url),
            },
            {"name": "django_language", "value": "en", "url": str(live_server.url)},
        ]
    )
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    def on_dialog(dialog: Any) -> None:  # alert() run by markup from a URL would open one
        problems.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    yield page
    context.close()
    assert problems == []


@pytest.fixture
def scenario(
    smtp_sink: SmtpSink, verified_domain: SendingDomain, account_identity: AccountSettings
) -> Scenario:
    data = build_scenario(verified_domain)
    store_click(
        data.list_email,
        data.prospects[8],
        data.first_hour + datetime.timedelta(hours=5, minutes=40),
        url='https://example.co.jp/?q="><img src=x onerror=alert(1)>',
        link_id="3",
        sent_at=data.first_hour,
    )
    return data


def test_the_report_page_renders_the_table_chart_and_links(page: Any, scenario: Scenario) -> None:
    from playwright.sync_api import expect

    page.goto(report_url(scenario.list_email))

    expect(page.get_by_test_id("open-rate-value")).to_have_text("85.7%")
    winner = page.get_by_test_id("winner")
    expect(winner).to_have_count(1)
    expect(page.get_by_test_id("ab-column").nth(1)).to_contain_text("Variant B")
    chart = page.get_by_test_id("hour-chart")
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 600 and box["height"] > 150
    # seven hours: four with opens, four with clicks (the hostile click joins an hour with one)
    expect(page.locator("svg .chart-opens")).to_have_count(4)
    expect(page.locator("svg .chart-clicks")).to_have_count(4)
    links = page.get_by_test_id("link-row")
    expect(links).to_have_count(5)
    expect(page.locator("table[data-testid=links] img")).to_have_count(0)
    expect(links.filter(has_text="onerror=alert(1)")).to_have_count(1)
    page.screenshot(path=str(screenshot_path("email-report")), full_page=True)
