"""The criteria builder in a real Chromium: nested groups built by clicking, the live count from
the preview endpoint, errors mapped back to the faulty condition, and the round trip of a saved
document. The page is tests/e2e/criteria_builder_urls.py (the builder include on its own, with a
preview that counts through the real criteria engine), served by pytest-django's live server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client
from django.urls import reverse

from mapp.models import Role
from prospects.criteria import prospects_matching, validate_criteria
from prospects.models import JobLevel, Prospect, ProspectList, Tag
from tests.e2e.conftest import screenshot_path
from tests.factories import ProspectFactory, make_user
from tracking.models import ActivityType
from tracking.services import activity_record

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROOT = '[data-path=""]'
SUBGROUP = '[data-path="conditions.0"]'

# (業種 = IT OR 業種 = 製造) AND 役職 ≥ 課長クラス AND 従業員数 ≥ 100
NESTED_CRITERIA = {
    "match": "all",
    "conditions": [
        {
            "match": "any",
            "conditions": [
                {"subject": "field", "field": "industry", "operator": "equals", "value": "IT"},
                {"subject": "field", "field": "industry", "operator": "equals", "value": "製造"},
            ],
        },
        {"subject": "field", "field": "job_level", "operator": "gte", "value": 3},
        {"subject": "field", "field": "employee_count", "operator": "gte", "value": 100},
    ],
}


@pytest.fixture
def five_prospects(db: None) -> dict[str, Prospect]:
    """Five prospects of which exactly two (it_manager, maker_director) meet NESTED_CRITERIA."""
    rows = {
        "it_manager": ("IT", JobLevel.MANAGER, 500),
        "maker_director": ("製造", JobLevel.DIRECTOR, 100),
        "it_supervisor": ("IT", JobLevel.SUPERVISOR, 1000),  # job level too low
        "bank_executive": ("金融", JobLevel.EXECUTIVE, 5000),  # other industry
        "small_maker": ("製造", JobLevel.MANAGER, 50),  # too few employees
    }
    return {
        name: ProspectFactory.create(industry=industry, job_level=level, employee_count=employees)
        for name, (industry, level, employees) in rows.items()
    }


# (did view the pricing page 3+ times in the last 30 days) AND 役職 ≥ 課長クラス
ACTIVITY_CONDITION = {
    "subject": "activity",
    "operator": "did",
    "activity_type": "page_view",
    "object": "pricing",
    "count": 3,
    "days": 30,
}
ACTIVITY_CRITERIA = {
    "match": "all",
    "conditions": [
        ACTIVITY_CONDITION,
        {"subject": "field", "field": "job_level", "operator": "gte", "value": 3},
    ],
}
PRICING = "https://example.jp/pricing"


def _page_views(
    prospect: Prospect, times: int, *, url: str = PRICING, is_bot: bool = False
) -> None:
    for _ in range(times):
        activity_record(
            type=ActivityType.PAGE_VIEW, prospect_id=prospect.pk, object_label=url, is_bot=is_bot
        )


@pytest.fixture
def visitors(db: None) -> dict[str, Prospect]:
    """Four prospects of which only ``reader`` meets ACTIVITY_CRITERIA."""
    prospects = {
        "reader": ProspectFactory.create(job_level=JobLevel.MANAGER),
        "glancer": ProspectFactory.create(job_level=JobLevel.MANAGER),  # pricing only once
        "crawled": ProspectFactory.create(job_level=JobLevel.MANAGER),  # only a bot's views
        "staff_reader": ProspectFactory.create(job_level=JobLevel.STAFF),  # job level too low
    }
    _page_views(prospects["reader"], 3)
    _page_views(prospects["glancer"], 1)
    _page_views(prospects["glancer"], 3, url="https://example.jp/about")
    _page_views(prospects["crawled"], 3, is_bot=True)
    _page_views(prospects["staff_reader"], 3)
    return prospects


@pytest.fixture
def builder_url(settings: Any, live_server: Any) -> str:
    settings.ROOT_URLCONF = "tests.e2e.criteria_builder_urls"
    return str(live_server.url) + "/criteria-builder/"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A Japanese browser page; uncaught script errors fail the test."""
    context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    yield page
    context.close()
    assert script_errors == []


def _count(page: Any) -> Any:
    return page.locator("[data-criteria-count]")


def _output(page: Any) -> Any:
    return json.loads(page.locator("textarea[name=criteria]").input_value())


def _add_condition(page: Any, group: str) -> None:
    page.locator(f"{group} > .cb-group-actions [data-action=add-condition]").click()


def _set_condition(page: Any, path: str, *, field: str, operator: str | None = None) -> str:
    row = f'[data-path="{path}"]'
    page.select_option(f"{row} [data-part=subject]", "field")
    page.select_option(f"{row} [data-part=field]", field)
    if operator is not None:
        page.select_option(f"{row} [data-part=operator]", operator)
    return row


def _build_nested_criteria(page: Any) -> None:
    """Click and type (IT OR 製造) AND job level ≥ Manager AND employees ≥ 100."""
    from playwright.sync_api import expect

    page.locator(f"{ROOT} > .cb-group-actions [data-action=add-group]").click()
    expect(page.locator(f"{SUBGROUP} > .cb-group-head [data-part=match]")).to_have_value("any")
    first = _set_condition(page, "conditions.0.conditions.0", field="industry")
    expect(page.locator(f"{first} [data-part=operator]")).to_have_value("equals")
    page.fill(f"{first} [data-part=value-input]", "IT")
    _add_condition(page, SUBGROUP)
    # A condition without a value is not sent: no error while typing, the count shows "—".
    expect(_count(page)).to_have_attribute("data-state", "incomplete")
    expect(_count(page)).to_contain_text("—")
    second = _set_condition(page, "conditions.0.conditions.1", field="industry")
    page.fill(f"{second} [data-part=value-input]", "製造")
    page.select_option(f"{SUBGROUP} > .cb-group-head [data-part=match]", "any")

    _add_condition(page, ROOT)
    level = _set_condition(page, "conditions.1", field="job_level", operator="gte")
    page.select_option(f"{level} [data-part=value-input]", str(JobLevel.MANAGER.value))
    _add_condition(page, ROOT)
    employees = _set_condition(page, "conditions.2", field="employee_count", operator="gte")
    page.fill(f"{employees} [data-part=value-input]", "100")


def test_a_marketer_builds_nested_criteria_and_sees_the_live_count(
    builder_url: str, page: Any, five_prospects: dict[str, Prospect]
) -> None:
    from playwright.sync_api import expect

    # Given five prospects and an empty builder, which matches all of them
    page.goto(builder_url)
    expect(_count(page)).to_have_attribute("data-count", "5")

    # When the marketer builds the criteria by selecting and typing
    _build_nested_criteria(page)

    # Then the count is the two prospects that meet it, and the form carries the nested document
    expect(_count(page)).to_have_attribute("data-count", "2")
    expect(_count(page).locator(".cb-count-value")).to_have_text("2")
    assert _output(page) == NESTED_CRITERIA
    assert set(prospects_matching(validate_criteria(NESTED_CRITERIA))) == {
        five_prospects["it_manager"],
        five_prospects["maker_director"],
    }
    expect(page.locator(f"{ROOT} > .cb-items > .cb-item > .cb-join").first).to_be_visible()
    page.screenshot(path=str(screenshot_path("criteria-builder")), full_page=True)

    # And a plain form POST submits the same JSON
    page.click("#criteria-form button[type=submit]")
    assert json.loads(page.locator("body").inner_text())["criteria"] == NESTED_CRITERIA


def test_removing_a_condition_updates_the_count(
    builder_url: str, page: Any, five_prospects: dict[str, Prospect]
) -> None:
    from playwright.sync_api import expect

    page.goto(builder_url)
    _build_nested_criteria(page)
    expect(_count(page)).to_have_attribute("data-count", "2")

    # When the employee-count condition is removed, the small 製造 manager matches too
    page.locator('[data-path="conditions.2"] [data-action=remove-condition]').click()

    expect(_count(page)).to_have_attribute("data-count", "3")
    assert len(_output(page)["conditions"]) == 2

    # And removing the whole OR group leaves only the job level
    page.locator(f"{SUBGROUP} > .cb-group-head [data-action=remove-group]").click()
    expect(_count(page)).to_have_attribute("data-count", "4")
    assert _output(page) == {"match": "all", "conditions": [NESTED_CRITERIA["conditions"][1]]}


def test_an_invalid_value_shows_the_error_on_its_condition_without_breaking_the_builder(
    builder_url: str, page: Any, five_prospects: dict[str, Prospect]
) -> None:
    from playwright.sync_api import expect

    page.goto(builder_url)
    _build_nested_criteria(page)
    expect(_count(page)).to_have_attribute("data-count", "2")

    # When letters are typed into the number field
    employees = '[data-path="conditions.2"]'
    page.fill(f"{employees} [data-part=value-input]", "百人")

    # Then the server's error is shown and the faulty condition is marked, nothing else
    expect(_count(page)).to_have_attribute("data-state", "error")
    expect(_count(page)).to_contain_text("数値を入力してください")
    expect(page.locator(employees)).to_have_class("cb-condition cb-invalid")
    expect(page.locator(f"{employees} .cb-error")).to_contain_text("数値を入力してください")
    expect(page.locator(f"{employees} [data-part=value-input]")).to_have_attribute(
        "aria-invalid", "true"
    )
    expect(page.locator(".cb-invalid")).to_have_count(1)
    page.screenshot(path=str(screenshot_path("criteria-builder-error")), full_page=True)

    # And the builder keeps working: full-width digits (as a Japanese IME types them) are a number
    page.fill(f"{employees} [data-part=value-input]", "１００")
    expect(_count(page)).to_have_attribute("data-count", "2")
    expect(page.locator(".cb-invalid")).to_have_count(0)
    assert _output(page)["conditions"][2]["value"] == 100


def test_saved_criteria_are_rendered_back_and_survive_the_round_trip(
    builder_url: str, page: Any, five_prospects: dict[str, Prospect]
) -> None:
    from playwright.sync_api import expect

    # Given a saved document using chips, toggles, between, days, none-arity and a nested group
    vip = Tag.objects.create(name="VIP")
    five_prospects["it_manager"].tags.add(vip)
    exhibition = ProspectList.objects.create(name="展示会 2025")
    saved = validate_criteria(
        {
            "match": "all",
            "conditions": [
                {
                    "subject": "field",
                    "field": "industry",
                    "operator": "in",
                    "value": ["IT", "製造"],
                },
                {"subject": "field", "field": "job_level", "operator": "in", "value": [3, 4, 5]},
                {
                    "subject": "field",
                    "field": "employee_count",
                    "operator": "between",
                    "value": [100, 10000],
                },
                {"subject": "mailability", "operator": "is_mailable"},
                {
                    "subject": "field",
                    "field": "created_at",
                    "operator": "within_last_days",
                    "value": 30,
                },
                {
                    "match": "any",
                    "conditions": [
                        {"subject": "tag", "operator": "has", "value": "VIP"},
                        {"subject": "list", "operator": "not_member_of", "value": exhibition.pk},
                        {"subject": "assigned_user", "operator": "is_unassigned"},
                    ],
                },
            ],
        }
    )

    # When the builder opens with it
    page.goto(builder_url + "?criteria=" + quote(json.dumps(saved)))

    # Then every part is shown as saved, and the form would post it back unchanged
    expect(_count(page)).to_have_attribute("data-count", "2")
    assert _output(page) == saved
    industry = '[data-path="conditions.0"]'
    expect(page.locator(f"{industry} [data-part=operator]")).to_have_value("in")
    expect(page.locator(f"{industry} .cb-chip > span")).to_have_text(["IT", "製造"])
    level = '[data-path="conditions.1"]'
    expect(page.locator(f"{level} .cb-option input:checked")).to_have_count(3)
    between = page.locator('[data-path="conditions.2"] [data-part=value-input]')
    expect(between).to_have_count(2)
    expect(between.nth(0)).to_have_value("100")
    expect(between.nth(1)).to_have_value("10000")
    expect(page.locator('[data-path="conditions.3"] [data-part=operator]')).to_have_value(
        "is_mailable"
    )
    expect(page.locator('[data-path="conditions.4"] [data-part=value-input]')).to_have_value("30")
    expect(
        page.locator('[data-path="conditions.5"] > .cb-group-head [data-part=match]')
    ).to_have_value("any")
    expect(
        page.locator('[data-path="conditions.5.conditions.1"] [data-part=value-input]')
    ).to_have_value(str(exhibition.pk))

    # And editing a chip list works from there: adding 金融 brings in the bank executive
    chips = page.locator(f"{industry} .cb-chip-input")
    chips.fill("金融")
    chips.press("Enter")
    expect(_count(page)).to_have_attribute("data-count", "3")
    assert _output(page)["conditions"][0]["value"] == ["IT", "製造", "金融"]
    page.screenshot(path=str(screenshot_path("criteria-builder-round-trip")), full_page=True)


def test_a_marketer_builds_an_activity_condition_and_sees_the_live_count(
    builder_url: str, page: Any, visitors: dict[str, Prospect]
) -> None:
    from playwright.sync_api import expect

    # Given four prospects with page views (one only seen by a bot) and an empty builder
    page.goto(builder_url)
    expect(_count(page)).to_have_attribute("data-count", "4")

    # When the marketer picks "Activity": the sentence appears with its defaults, and nothing is
    # counted until an activity type is chosen
    _add_condition(page, ROOT)
    row = '[data-path="conditions.0"]'
    page.select_option(f"{row} [data-part=subject]", "activity")
    expect(page.locator(f"{row} [data-part=operator]")).to_have_value("did")
    expect(page.locator(f"{row} [data-part=activity_type]")).to_have_value("")
    expect(page.locator(f"{row} [data-part=count]")).to_have_value("1")
    expect(page.locator(f"{row} [data-part=days]")).to_have_value("")
    expect(_count(page)).to_have_attribute("data-state", "incomplete")

    # Then choosing page views counts everyone who viewed a page, except the bot's prospect
    page.select_option(f"{row} [data-part=activity_type]", "page_view")
    expect(_count(page)).to_have_attribute("data-count", "3")
    assert _output(page)["conditions"] == [
        {
            "subject": "activity",
            "operator": "did",
            "activity_type": "page_view",
            "object": "",
            "count": 1,
            "days": None,
        }
    ]
    page.fill(f"{row} [data-part=object]", "pricing")
    expect(_count(page)).to_have_attribute("data-count", "3")

    # And a count the server refuses is shown on the count input, nowhere else
    page.fill(f"{row} [data-part=count]", "0")
    expect(_count(page)).to_have_attribute("data-state", "error")
    expect(page.locator(row)).to_have_class("cb-condition cb-invalid")
    expect(page.locator(f"{row} [data-part=count]")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("[aria-invalid]")).to_have_count(1)
    expect(page.locator(f"{row} .cb-error")).not_to_be_empty()

    # And full-width digits (a Japanese IME) are a number: 3+ pricing views leaves two
    page.fill(f"{row} [data-part=count]", "３")
    expect(_count(page)).to_have_attribute("data-count", "2")
    expect(page.locator(".cb-invalid")).to_have_count(0)
    page.fill(f"{row} [data-part=days]", "30")
    expect(_count(page)).to_have_attribute("data-count", "2")

    # When job level ≥ Manager is added, only the reader is left
    _add_condition(page, ROOT)
    level = _set_condition(page, "conditions.1", field="job_level", operator="gte")
    page.select_option(f"{level} [data-part=value-input]", str(JobLevel.MANAGER.value))
    expect(_count(page)).to_have_attribute("data-count", "1")
    assert _output(page) == ACTIVITY_CRITERIA
    assert list(prospects_matching(validate_criteria(ACTIVITY_CRITERIA))) == [visitors["reader"]]
    page.screenshot(path=str(screenshot_path("criteria-builder-activity")), full_page=True)

    # And "did not" keeps the rest of the sentence: the glancer and the bot-only prospect
    page.select_option(f"{row} [data-part=operator]", "did_not")
    expect(_count(page)).to_have_attribute("data-count", "2")
    expect(page.locator(f"{row} [data-part=object]")).to_have_value("pricing")
    assert _output(page)["conditions"][0] == {**ACTIVITY_CONDITION, "operator": "did_not"}


def test_saved_activity_conditions_survive_the_round_trip(
    builder_url: str, page: Any, visitors: dict[str, Prospect]
) -> None:
    from playwright.sync_api import expect

    # Given saved criteria: 2+ page views at any time, and no view of /about this year
    saved = validate_criteria(
        {
            "match": "all",
            "conditions": [
                {
                    "subject": "activity",
                    "operator": "did",
                    "activity_type": "page_view",
                    "count": 2,
                },
                {
                    "subject": "activity",
                    "operator": "did_not",
                    "activity_type": "page_view",
                    "object": "about",
                    "count": 1,
                    "days": 365,
                },
            ],
        }
    )

    # When the builder opens with them
    page.goto(builder_url + "?criteria=" + quote(json.dumps(saved)))

    # Then each control shows what was saved, and the form would post it back unchanged
    expect(_count(page)).to_have_attribute("data-count", "2")  # reader and staff_reader
    assert _output(page) == saved
    first, second = '[data-path="conditions.0"]', '[data-path="conditions.1"]'
    expect(page.locator(f"{first} [data-part=activity_type]")).to_have_value("page_view")
    expect(page.locator(f"{first} [data-part=object]")).to_have_value("")
    expect(page.locator(f"{first} [data-part=count]")).to_have_value("2")
    expect(page.locator(f"{first} [data-part=days]")).to_have_value("")
    expect(page.locator(f"{second} [data-part=operator]")).to_have_value("did_not")
    expect(page.locator(f"{second} [data-part=object]")).to_have_value("about")
    expect(page.locator(f"{second} [data-part=count]")).to_have_value("1")
    expect(page.locator(f"{second} [data-part=days]")).to_have_value("365")

    # And editing works from there: "did" view /about leaves only the glancer
    page.select_option(f"{second} [data-part=operator]", "did")
    expect(_count(page)).to_have_attribute("data-count", "1")
    assert _output(page)["conditions"] == [
        saved["conditions"][0],
        {**saved["conditions"][1], "operator": "did"},
    ]


def test_the_dynamic_list_page_hosts_the_builder(live_server: Any, browser: Any) -> None:
    """The real page (lists:create with lists:criteria_preview)."""
    from playwright.sync_api import expect

    create_url = reverse("lists:create")
    marketer = make_user(Role.MARKETING, email="builder@example.jp")
    ProspectFactory.create(industry="IT", job_level=JobLevel.MANAGER, employee_count=300)
    ProspectFactory.create(industry="小売", job_level=JobLevel.STAFF, employee_count=30)
    client = Client()
    client.force_login(marketer)
    context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page = context.new_page()
    try:
        page.goto(str(live_server.url) + create_url)
        expect(_count(page)).to_have_attribute("data-count", "2")
        _add_condition(page, ROOT)
        row = _set_condition(page, "conditions.0", field="industry")
        page.fill(f"{row} [data-part=value-input]", "it")  # text equality ignores case
        expect(_count(page)).to_have_attribute("data-count", "1")
        page.screenshot(path=str(screenshot_path("criteria-builder-list-page")), full_page=True)
    finally:
        context.close()
