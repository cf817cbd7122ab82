"""The form builder, the copy buttons and the merge-field menu in a real Chromium: adding,
editing, reordering (buttons and drag) and removing fields, a progressive rule, the server's
errors next to the faulty field, saving, and inserting a merge field where the caret is.
Served by pytest-django's live server with the test URLconf of the forms pages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from forms.models import FieldType, Form
from mapp.models import Role, User
from tests.e2e.conftest import screenshot_path
from tests.factories import make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def english_interface(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"


@pytest.fixture
def marketer_user(db: None) -> User:
    return make_user(Role.MARKETING, email="builder-e2e@example.jp")


@pytest.fixture
def page(browser: Any, live_server: Any, marketer_user: User) -> Iterator[Any]:
    """A signed-in marketer's English page; uncaught script errors fail the test."""
    client = Client()
    client.force_login(marketer_user)
    session = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    context = browser.new_context(
        locale="en-US", viewport={"width": 1280, "height": 2400}, base_url=str(live_server.url)
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
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    yield page
    context.close()
    assert script_errors == []


def _rows(page: Any) -> Any:
    return page.locator("[data-field-items] > li.fb-row")


def _row(page: Any, index: int) -> Any:
    return page.locator(f"[data-field-items] > li[data-index='{index}']")


def _output(page: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(page.locator("input[name=form_fields]").input_value())
    return rows


def _add(page: Any, target: str) -> None:
    page.select_option("[data-part=add-target]", target)
    page.click("[data-action=add-field]")


def test_a_marketer_builds_reorders_and_saves_a_form(page: Any) -> None:
    from playwright.sync_api import expect

    # given the new-form page: it starts with the email field
    page.goto("/marketing/forms/new/")
    expect(_rows(page)).to_have_count(1)
    assert _output(page)[0]["target"] == "email"
    page.fill("#id_name", "資料請求フォーム")

    # when the marketer adds the company (label filled from the mapping) and a question
    _add(page, "company_name")
    expect(_row(page, 1).locator("[data-field=label]")).to_be_focused()
    expect(_row(page, 1).locator("[data-field=label]")).to_have_value("Company")
    _row(page, 1).locator("[data-field=label]").fill("会社名")
    _add(page, "")
    _row(page, 2).locator("[data-field=label]").fill("ご興味のある製品")
    _row(page, 2).locator("[data-field=field_type]").select_option(FieldType.RADIO)
    _row(page, 2).locator("[data-field=choices]").fill("MA\nCRM\n\nSFA")
    # asked only once the company is known (progressive profiling)
    _row(page, 2).locator("[data-field=show_if_known]").select_option(label="会社名")
    _add(page, "phone")

    # and moves the question to the top with the buttons, then drags the phone above it
    _row(page, 2).locator("[data-action=move-up]").click()
    _row(page, 1).locator("[data-action=move-up]").click()
    # (the viewport is tall enough for both rows: a drag cannot scroll the page)
    _row(page, 3).locator(".fb-handle").drag_to(_row(page, 0))
    # and removes the phone again
    expect(_row(page, 0).locator(".fb-title")).to_have_text("Phone")
    _row(page, 0).locator("[data-action=remove-field]").click()
    page.screenshot(path=str(screenshot_path("form-builder")), full_page=True)

    # then the hidden input carries the rows in that order
    rows = _output(page)
    assert [row["label"] for row in rows] == ["ご興味のある製品", "Email address", "会社名"]
    assert rows[0]["choices"] == ["MA", "CRM", "SFA"]
    assert rows[0]["show_if_known"] == f"field:{rows[2]['key']}"

    # and saving stores them
    page.click("#form-builder-form button[type=submit]")
    expect(page.locator(".message.success")).to_contain_text("created")
    form = Form.objects.get(name="資料請求フォーム")
    fields = list(form.fields.filter(is_active=True).order_by("position"))
    assert [item.field_type for item in fields] == [
        FieldType.RADIO,
        FieldType.EMAIL,
        FieldType.TEXT,
    ]
    assert fields[0].progressive_show_if_known == fields[2]
    # the edit page shows the saved rows with their ids as keys
    expect(_rows(page)).to_have_count(3)
    assert _output(page)[0]["key"] == str(fields[0].pk)


def test_server_errors_appear_next_to_the_faulty_field(page: Any) -> None:
    from playwright.sync_api import expect

    page.goto("/marketing/forms/new/")
    page.fill("#id_name", "Errors")
    _add(page, "")
    _row(page, 1).locator("[data-field=label]").fill("Product")
    _row(page, 1).locator("[data-field=field_type]").select_option(FieldType.SELECT)

    page.click("#form-builder-form button[type=submit]")

    expect(page.get_by_test_id("field-list-errors")).to_contain_text("Some fields need attention")
    expect(_row(page, 1)).to_have_class("fb-row fb-invalid")
    expect(_row(page, 1).locator(".fb-row-errors")).to_contain_text(
        "Add at least one choice (one per line) for a drop-down or radio buttons."
    )
    expect(_row(page, 0).locator(".fb-row-errors")).to_have_count(0)
    # what was posted is shown back, and typing clears the stale message
    expect(_row(page, 1).locator("[data-field=label]")).to_have_value("Product")
    _row(page, 1).locator("[data-field=choices]").fill("A")
    expect(_row(page, 1).locator(".fb-row-errors")).to_have_count(0)


def test_merge_field_menu_inserts_at_the_caret_and_copy_buttons_copy(page: Any) -> None:
    from playwright.sync_api import expect

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto("/marketing/landing-pages/new/")
    content = page.locator("#id_content")
    content.fill("<p>様</p>")
    content.evaluate("element => element.setSelectionRange(3, 3)")

    page.select_option("[data-merge-insert]", "{{ prospect.last_name }}")

    expect(content).to_have_value("<p>{{ prospect.last_name }}様</p>")
    expect(page.locator("[data-merge-insert]")).to_have_value("")

    page.goto("/marketing/forms/new/")
    page.fill("#id_name", "Copy")
    page.click("#form-builder-form button[type=submit]")
    page.click("[data-copy-from=embed-script]")
    expect(page.locator("[data-copy-from=embed-script]")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "embed.js" in copied


def test_report_handler_and_landing_page_screens(page: Any, live_server: Any) -> None:
    """The other pages render in a browser without script errors (screenshots for review)."""
    from playwright.sync_api import expect

    from forms.models import LandingPage
    from tests.forms.conftest import make_form, make_handler
    from tracking.models import ActivityType, Visitor
    from tracking.services import activity_record

    form = make_form(name="Seminar")
    visitor = Visitor.objects.create()
    for activity_type in (
        ActivityType.FORM_VIEW,
        ActivityType.FORM_VIEW,
        ActivityType.FORM_SUCCESS,
    ):
        activity_record(
            type=activity_type, visitor_id=visitor.pk, object_type="form", object_id=form.pk
        )
    handler = make_handler()
    landing_page = LandingPage.objects.create(
        name="Whitepaper",
        slug="whitepaper",
        title="Whitepaper",
        form=form,
        layout=LandingPage.Layout.TWO_COLUMN,
        content="<h1>{{ prospect.last_name|default('Hello') }}</h1><p>Download the report.</p>",
        is_published=True,
    )

    page.goto(f"/marketing/forms/{form.pk}/report/")
    expect(page.get_by_test_id("day-chart")).to_be_visible()
    expect(page.get_by_test_id("total-views")).to_have_text("2")
    page.screenshot(path=str(screenshot_path("form-report")), full_page=True)

    page.goto(f"/marketing/form-handlers/{handler.pk}/")
    expect(page.get_by_test_id("handler-example")).to_contain_text(f"/handler/{handler.uuid}")
    page.screenshot(path=str(screenshot_path("form-handler")), full_page=True)

    page.goto(f"/marketing/landing-pages/{landing_page.pk}/")
    page.click("button[name=action][value=preview]")
    frame = page.frame_locator("[data-testid=preview-frame]")
    expect(frame.locator("h1")).to_have_text("山田")
    expect(frame.get_by_test_id("lp-form-placeholder")).to_be_visible()
    page.screenshot(path=str(screenshot_path("landing-page-editor")), full_page=True)

    page.goto("/lp/whitepaper")
    expect(page.locator("h1")).to_have_text("Hello")
    expect(page.get_by_test_id("mapp-form")).to_be_visible()
    page.screenshot(path=str(screenshot_path("landing-page-public")), full_page=True)
