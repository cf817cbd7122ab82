"""The grading profile page in a real Chromium: one criteria builder per criterion on the same
page, each posting its own document into its own criterion (pytest-django's live server)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from mapp.models import Role
from prospects.models import Prospect
from scoring.grading import default_profile
from scoring.models import GradingCriterion
from tests.e2e.conftest import screenshot_path
from tests.factories import ProspectFactory, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_each_criterion_has_its_own_builder(live_server: Any, browser: Any) -> None:
    from playwright.sync_api import expect

    profile = default_profile()
    profile.criteria.all().delete()  # the seeded five, if this database still has them
    for position, name in enumerate(["会社規模 / Company size", "業種 / Industry"]):
        GradingCriterion.objects.create(profile=profile, name=name, weight=2, position=position)
    ProspectFactory.create(industry="製造業", company_name="株式会社サンプル製作所")
    ProspectFactory.create(industry="小売業", company_name="株式会社サンプル商店")
    marketer = make_user(Role.MARKETING, email="grading@example.jp")
    client = Client()
    client.force_login(marketer)
    context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page = context.new_page()
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    try:
        page.goto(str(live_server.url) + reverse("grading:profile_edit", args=[profile.pk]))
        builders = page.locator("[data-criteria-builder]")
        expect(builders).to_have_count(3)  # two criteria and the blank one for a new criterion
        industry = page.locator("#criteria-builder-criteria-1-criteria")
        industry.locator('[data-path=""] > .cb-group-actions [data-action=add-condition]').click()
        row = industry.locator('[data-path="conditions.0"]')
        row.locator("[data-part=subject]").select_option("field")
        row.locator("[data-part=field]").select_option("industry")
        row.locator("[data-part=value-input]").fill("製造業")
        expect(industry.locator("[data-criteria-count]")).to_have_attribute("data-count", "1")
        expect(
            page.locator("#criteria-builder-criteria-0-criteria [data-criteria-count]")
        ).to_have_attribute("data-count", "2")
        page.screenshot(path=str(screenshot_path("grading-profile-form")), full_page=True)
        page.click("[data-testid=profile-form] button[type=submit]")
        expect(page.locator("[data-testid=grading-profiles]")).to_be_visible()
        page.screenshot(path=str(screenshot_path("grading-profiles")), full_page=True)
        # The prospect page explains the grade the background regrade will give.
        maker = Prospect.objects.get(industry="製造業")
        page.goto(str(live_server.url) + reverse("prospects:detail", args=[maker.pk]))
        panel = page.locator("[data-testid=grade-panel]")
        expect(panel).to_contain_text("C-")
        panel.screenshot(path=str(screenshot_path("grading-panel")))
    finally:
        context.close()
    assert script_errors == []
    size, industry_criterion = profile.criteria.order_by("position")
    assert size.criteria == {"match": "all", "conditions": []}
    assert industry_criterion.criteria["conditions"] == [
        {"subject": "field", "field": "industry", "operator": "equals", "value": "製造業"}
    ]
    assert profile.criteria.count() == 2  # the blank row added nothing
    assert Prospect.objects.count() == 2
