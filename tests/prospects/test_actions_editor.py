"""The action list editor in a real Chromium: choosing actions from the catalogue, filling their
settings, reordering and removing, the JSON a plain form POST carries, and the server's errors
shown next to the faulty action. The page is this module's own URLconf: a form with an
ActionListField, as the forms app will embed it, served by pytest-django's live server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django import forms
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import engines
from django.urls import path

from mapp.access import public
from mapp.models import Role
from prospects.actions import Action, registry
from prospects.actions.editor import ActionListField
from prospects.models import ProspectList, TaskPriority
from prospects.services import list_create
from tests.e2e.conftest import screenshot_path
from tests.factories import make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Completion actions</title></head>
<body>
  <form method="post" id="actions-form">{% csrf_token %}
    {% if form.actions.errors %}<div class="form-errors" data-testid="field-errors">{{ form.actions.errors }}</div>{% endif %}
    {{ form.actions }}
    <button type="submit">Save</button>
  </form>
</body>
</html>
"""  # noqa: E501 - the template reads best unsplit


class CompletionActionsForm(forms.Form):
    actions = ActionListField()


@public
def editor_page(request: HttpRequest) -> HttpResponse:
    """GET: the editor, empty. POST: the cleaned list as JSON, or the form with its errors."""
    form = CompletionActionsForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        return JsonResponse({"actions": form.cleaned_data["actions"]})
    template = engines["django"].from_string(PAGE)
    return HttpResponse(template.render({"form": form}, request))


urlpatterns = [path("action-editor/", editor_page, name="action_editor_page")]


@pytest.fixture
def editor_url(settings: Any, live_server: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    # an action listed before what it needs exists, to show how the editor greys it out
    monkeypatch.setitem(
        registry._actions,
        "send_sms",
        Action(key="send_sms", label="Send SMS", unavailable_reason="SMS needs a provider first."),
    )
    settings.ROOT_URLCONF = __name__
    settings.LANGUAGE_CODE = "en"
    return str(live_server.url) + "/action-editor/"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """An English browser page; uncaught script errors fail the test."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    yield page
    context.close()
    assert script_errors == []


def _output(page: Any) -> Any:
    return json.loads(page.locator("input[name=actions]").input_value())


def _add(page: Any, key: str) -> None:
    page.select_option("[data-part=add-action]", key)
    page.click("[data-action=add-action]")


def _item(page: Any, index: int) -> Any:
    return page.locator(f"[data-action-items] > li[data-index='{index}']")


def test_a_marketer_builds_an_action_list_and_posts_it(editor_url: str, page: Any) -> None:
    from playwright.sync_api import expect

    # given a static list and a sales user
    fair: ProspectList = list_create(actor=None, name="展示会 2026")
    sales = make_user(Role.SALES, email="sales-e2e@example.jp", last_name="鈴木", first_name="一郎")

    # when the marketer opens the editor, an unavailable action is greyed out with its reason
    page.goto(editor_url)
    unavailable = page.locator("[data-part=add-action] option[value=send_sms]")
    expect(unavailable).to_be_disabled()
    expect(unavailable).to_contain_text("SMS needs a provider first")
    assert _output(page) == []

    # and adds three actions, filling their settings
    _add(page, "add_to_list")
    _item(page, 0).locator("[data-field=list]").select_option(str(fair.pk))
    _add(page, "create_task")
    task = _item(page, 1)
    task.locator("[data-field=assignee]").select_option(str(sales.pk))
    task.locator("[data-field=subject]").fill("お礼の電話")
    task.locator("[data-field=due_in_days]").fill("７")  # full-width, as typed in Japan
    task.locator("[data-field=priority]").select_option(str(TaskPriority.HIGH.value))
    _add(page, "add_tag")
    expect(_item(page, 2).locator("[data-field=tag]")).to_be_focused()
    _item(page, 2).locator("[data-field=tag]").fill("展示会")

    # and moves the tag first, then removes the list action
    _item(page, 2).locator("[data-action=move-up]").click()
    _item(page, 1).locator("[data-action=move-up]").click()
    _item(page, 1).locator("[data-action=remove-action]").click()

    page.screenshot(path=str(screenshot_path("action-editor")), full_page=True)

    # then the hidden input carries the list in that order
    assert _output(page) == [
        {"action": "add_tag", "config": {"tag": "展示会"}},
        {
            "action": "create_task",
            "config": {
                "assignee": str(sales.pk),
                "subject": "お礼の電話",
                "due_in_days": 7,
                "priority": str(TaskPriority.HIGH.value),
                "notes": "",
            },
        },
    ]

    # and a plain form POST is cleaned by the server into storable JSON
    page.click("#actions-form button[type=submit]")
    assert json.loads(page.locator("body").inner_text())["actions"] == [
        {"action": "add_tag", "config": {"tag": "展示会"}},
        {
            "action": "create_task",
            "config": {
                "assignee": sales.pk,
                "subject": "お礼の電話",
                "due_in_days": 7,
                "priority": TaskPriority.HIGH.value,
                "notes": "",
            },
        },
    ]


def test_the_servers_errors_appear_next_to_the_faulty_action(editor_url: str, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(editor_url)
    _add(page, "add_tag")
    _add(page, "adjust_score")
    _item(page, 1).locator("[data-field=points]").fill("10")
    _add(page, "create_task_for_assigned_user")
    _item(page, 2).locator("[data-field=subject]").fill("電話")
    _item(page, 2).locator("[data-field=due_in_days]").fill("400")

    page.click("#actions-form button[type=submit]")

    # the page comes back with the field's errors and each faulty action marked
    expect(page.get_by_test_id("field-errors")).to_contain_text("Action 1 (Add tag): Tag:")
    expect(_item(page, 0)).to_have_class("cb-condition ae-item cb-invalid")
    expect(_item(page, 0).locator(".cb-error")).to_contain_text("Tag: This field is required.")
    expect(_item(page, 1).locator(".cb-error")).to_be_hidden()
    expect(_item(page, 2).locator(".cb-error")).to_contain_text(
        "Due in (days): Ensure this value is less than or equal to 365."
    )
    page.screenshot(path=str(screenshot_path("action-editor-errors")), full_page=True)
    # what was posted is shown back as posted, and typing clears the stale message
    expect(_item(page, 1).locator("[data-field=points]")).to_have_value("10")
    _item(page, 0).locator("[data-field=tag]").fill("VIP")
    expect(_item(page, 0).locator(".cb-error")).to_be_hidden()
    assert _output(page)[0] == {"action": "add_tag", "config": {"tag": "VIP"}}
