"""End to end: the real web server, Celery worker, beat, Redis, Postgres and Chromium."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTasks

from mapp.health import HEARTBEAT_KEY, redis_client
from mapp.models import Role
from mapp.tasks import echo
from tests.factories import TEST_PASSWORD, ProspectFactory, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HEALTH_TIMEOUT_SECONDS = 90


def _get_json(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_task_makes_the_round_trip_through_redis_and_a_worker_process(live_stack: str) -> None:
    assert echo.delay("こんにちは").get(timeout=30) == "こんにちは"


def test_healthz_turns_green_when_beat_and_the_worker_run(live_stack: str) -> None:
    redis_client().delete(HEARTBEAT_KEY)
    call_command("sync_periodic_tasks")  # what `make run` does at start
    # Earlier transactional tests emptied every table under the running beat; its
    # DatabaseScheduler then takes the first change after that as its new baseline instead of
    # reloading (django-celery-beat compares against the last timestamp it saw, here none). A
    # second change after its next check (at most 5 s) makes it reload the tasks.
    time.sleep(6)
    PeriodicTasks.update_changed()

    deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
    status, body = _get_json(live_stack + "/healthz")
    while not body["ok"] and time.monotonic() < deadline:
        time.sleep(1)
        status, body = _get_json(live_stack + "/healthz")

    assert status == 200, body
    assert body["checks"]["database"]["ok"]
    assert body["checks"]["redis"]["ok"]
    assert body["checks"]["worker"]["ok"] and body["checks"]["worker"]["workers"]
    assert body["checks"]["beat"]["ok"]


def _sign_in(page: Any, base_url: str, email: str) -> None:
    page.goto(base_url + "/")
    page.fill("#id_username", email)
    page.fill("#id_password", TEST_PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_load_state("networkidle")


def test_a_marketer_signs_in_and_sees_the_dashboard_in_japanese_then_english(
    live_stack: str, browser: Any
) -> None:
    from tests.e2e.conftest import screenshot_path

    marketer = make_user(
        Role.MARKETING, email="misaki@example.jp", last_name="佐藤", first_name="美咲"
    )
    ProspectFactory.create_batch(3)
    context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 800})
    page = context.new_page()

    page.goto(live_stack + "/")
    assert page.locator("h1").inner_text() == "ログイン"
    _sign_in(page, live_stack, marketer.email)
    assert page.locator("h1").inner_text() == "ダッシュボード"
    assert "佐藤 美咲" in page.get_by_test_id("user-name").inner_text()
    assert page.locator("[data-card=prospects_visible] .card-value").inner_text() == "3"
    assert page.get_by_role("link", name="プロスペクト").first.is_visible()
    page.screenshot(path=str(screenshot_path("dashboard-ja")))

    page.get_by_role("button", name="English").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text() == "Dashboard"
    assert page.get_by_role("link", name="Prospects").first.is_visible()
    page.reload()
    assert page.locator("h1").inner_text() == "Dashboard"  # the choice is remembered
    page.screenshot(path=str(screenshot_path("dashboard-en")))
    context.close()

    marketer.refresh_from_db()
    assert marketer.language == "en"


def test_an_english_browser_gets_the_english_interface(live_stack: str, browser: Any) -> None:
    manager = make_user(Role.SALES_MANAGER, email="manager@example.jp")
    context = browser.new_context(locale="en-US")
    page = context.new_page()

    page.goto(live_stack + "/")
    assert page.locator("h1").inner_text() == "Sign in"
    _sign_in(page, live_stack, manager.email)
    assert page.locator("h1").inner_text() == "Dashboard"
    context.close()


def test_a_sales_user_is_refused_the_administrator_pages_in_the_browser(
    live_stack: str, browser: Any
) -> None:
    seller = make_user(Role.SALES, email="seller@example.jp")
    context = browser.new_context(locale="ja-JP")
    page = context.new_page()
    _sign_in(page, live_stack, seller.email)

    response = page.goto(live_stack + "/settings/users/")
    assert response is not None and response.status == 403
    response = page.goto(live_stack + "/admin/")
    assert response is not None and response.status == 403
    # The navigation offers them nothing they cannot open.
    page.goto(live_stack + "/")
    assert page.get_by_role("link", name="ユーザー").count() == 0
    context.close()
