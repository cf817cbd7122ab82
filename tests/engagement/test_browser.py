"""The rule form in a real Chromium: the database-hygiene rule built with the criteria builder and
the action editor, saved and run, and the rule page it lands on."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from engagement.models import AutomationRule, RuleStatus
from mapp.models import Role
from prospects.models import Prospect
from prospects.services import list_create
from tests.e2e.conftest import screenshot_path
from tests.engagement.conftest import make_prospect
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    """A Japanese browser page signed in as a marketer; uncaught script errors fail the test."""
    marketer = make_user(Role.MARKETING, email="rules-e2e@example.jp")
    client = Client()
    client.force_login(marketer)
    context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page = context.new_page()
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    yield page
    context.close()
    assert script_errors == []


def test_a_marketer_builds_the_hygiene_rule_and_runs_it(
    page: Any, live_server: Any, eager_celery: None
) -> None:
    from playwright.sync_api import expect

    # given a dormant prospect, a recent one and the cold list
    now = timezone.now()
    dormant = make_prospect("dormant@a.jp")
    recent = make_prospect("recent@a.jp")
    Prospect.objects.filter(pk=dormant.pk).update(last_activity_at=now - datetime.timedelta(400))
    Prospect.objects.filter(pk=recent.pk).update(last_activity_at=now - datetime.timedelta(3))
    cold = list_create(actor=None, name="休眠・コールドリスト")

    # when the marketer fills the form: "last activity more than 365 days ago" …
    page.goto(str(live_server.url) + reverse("automation:create"))
    page.fill("input[name=name]", "データベース整理")
    page.locator('[data-path=""] > .cb-group-actions [data-action=add-condition]').click()
    row = '[data-path="conditions.0"]'
    page.select_option(f"{row} [data-part=subject]", "field")
    page.select_option(f"{row} [data-part=field]", "last_activity_at")
    page.select_option(f"{row} [data-part=operator]", "more_than_days_ago")
    page.fill(f"{row} [data-part=value-input]", "365")
    expect(page.locator("[data-criteria-count]")).to_have_attribute("data-count", "1")
    # … then "add to the cold list" and "set do not email"
    page.select_option("[data-part=add-action]", "add_to_list")
    page.click("[data-action=add-action]")
    page.locator("[data-action-items] > li[data-index='0'] [data-field=list]").select_option(
        str(cold.pk)
    )
    page.select_option("[data-part=add-action]", "set_do_not_email")
    page.click("[data-action=add-action]")
    page.screenshot(path=str(screenshot_path("automation-rule-form")), full_page=True)
    page.click("button[name=run]")

    # then the rule runs at once on the prospects that already match, and only on them
    rule = AutomationRule.objects.get()
    expect(page).to_have_url(str(live_server.url) + reverse("automation:detail", args=[rule.pk]))
    expect(page.locator("[data-testid=matched-count]")).to_have_text("1")
    expect(page.locator("[data-testid=rule-history]")).to_contain_text("dormant@a.jp")
    page.screenshot(path=str(screenshot_path("automation-rule-page")), full_page=True)
    assert rule.status == RuleStatus.RUNNING
    assert set(cold.memberships.values_list("prospect_id", flat=True)) == {dormant.pk}
    assert Prospect.objects.get(pk=dormant.pk).do_not_email is True
    assert Prospect.objects.get(pk=recent.pk).do_not_email is False
