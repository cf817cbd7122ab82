"""The issue's "done when", in a real browser, on the real stack (gunicorn, a Celery worker,
Redis, Postgres), in Japanese: import an Excel Shift_JIS CSV with duplicates, build the nested
dynamic list and watch its count, assign its members round-robin, and a sales user sees only
theirs — in the browser and through the API."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest
from knox.models import AuthToken

from mapp.models import Role
from prospects.models import AssignmentGroup, Prospect, ProspectList
from tests.e2e.conftest import screenshot_path
from tests.e2e.test_criteria_builder import NESTED_CRITERIA, _build_nested_criteria
from tests.factories import TEST_PASSWORD, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WAIT_MS = 60_000

# What Excel in Japan writes: CP932, CRLF, Japanese headers, companies spelled several ways.
CSV_ROWS = [
    ["会社名", "氏名", "メールアドレス", "部署", "役職", "業種", "従業員数"],
    [
        "株式会社サンプル商事",
        "山田 太郎",
        "yamada@sample.co.jp",
        "情報システム部",
        "部長",
        "IT",
        "500",
    ],
    ["(株)サンプル商事", "山田　太郎", "t.yamada@gmail.com", "情報システム部", "部長", "IT", "500"],
    ["ミライ工業㈱", "鈴木 一郎", "suzuki@mirai.jp", "製造部", "課長", "製造", "１２０"],
    ["ネクスト株式会社", "佐藤 花子", "sato@next.jp", "営業部", "担当", "IT", "800"],
    ["有限会社青空デザイン", "田中 美咲", "tanaka@aozora.jp", "デザイン部", "部長", "小売", "30"],
    [
        "東京データシステム株式会社",
        "高橋 誠",
        "takahashi@tokyo-data.jp",
        "経営企画室",
        "取締役",
        "IT",
        "300",
    ],
    ["不明", "無効 太郎", "not-an-email", "", "", "", ""],
]
MATCHING = {"yamada@sample.co.jp", "suzuki@mirai.jp", "takahashi@tokyo-data.jp"}


def _csv_bytes() -> bytes:
    return "".join(",".join(row) + "\r\n" for row in CSV_ROWS).encode("cp932")


def _sign_in(page: Any, base_url: str, email: str) -> None:
    page.goto(base_url + "/accounts/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", TEST_PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_load_state("networkidle")


def _wait_for(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def test_import_dedupe_dynamic_list_round_robin_and_sales_scope(
    live_stack: str, browser: Any
) -> None:
    from playwright.sync_api import expect

    marketer = make_user(
        Role.MARKETING, email="misaki@example.jp", last_name="佐藤", first_name="美咲"
    )
    sellers = [
        make_user(Role.SALES, email="sales1@example.jp", last_name="高橋", first_name="翔太"),
        make_user(Role.SALES, email="sales2@example.jp", last_name="田中", first_name="陽菜"),
    ]
    group = AssignmentGroup.objects.create(name="東日本営業")
    group.members.set(sellers)
    context = browser.new_context(locale="ja-JP", viewport={"width": 1360, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    # 1. Import the Shift_JIS file through the browser; a Celery worker runs the job.
    _sign_in(page, live_stack, marketer.email)
    page.goto(live_stack + "/prospects/import/new/")
    page.set_input_files(
        "input[type=file]",
        {"name": "展示会リスト.csv", "mimeType": "text/csv", "buffer": _csv_bytes()},
    )
    page.locator("form.form button.primary").click()
    page.wait_for_load_state("networkidle")
    assert "Shift_JIS" in page.content() or "CP932" in page.content()
    page.locator("form button.primary").click()
    expect(page.get_by_test_id("created-count")).to_have_text("5", timeout=WAIT_MS)
    expect(page.get_by_test_id("rejected-count")).to_have_text("1")
    page.screenshot(path=str(screenshot_path("flow-1-import-ja")), full_page=True)
    # The same person under (株) and a second address became one prospect.
    assert Prospect.objects.filter(last_name="山田").count() == 1
    assert Prospect.objects.count() == 5

    # 2. Build the nested dynamic list and watch the live count.
    page.goto(live_stack + "/lists/new/?dynamic=1")
    page.fill("#id_name", "IT・製造 課長以上 (従業員100名以上)")
    _build_nested_criteria(page)
    expect(page.locator("[data-criteria-count]")).to_have_attribute(
        "data-count", "3", timeout=10_000
    )
    page.screenshot(path=str(screenshot_path("flow-2-dynamic-list-ja")), full_page=True)
    page.locator("#list-form button.primary").click()
    page.wait_for_load_state("networkidle")
    prospect_list = ProspectList.objects.get(name__startswith="IT・製造")
    assert prospect_list.criteria == NESTED_CRITERIA
    # The worker fills the list (the refresh is a Celery task after the save).
    _wait_for(lambda: prospect_list.memberships.count() == 3)
    page.reload()
    expect(page.get_by_test_id("member-total")).to_contain_text("3")

    # 3. Assign every member round-robin to the sales group, from the prospect list.
    page.goto(f"{live_stack}/prospects/?list={prospect_list.pk}")
    page.check("#select-all-matching")
    page.select_option("#bulk-form select[name=action]", "assign_group")
    page.select_option("#bulk-form select[name=group]", str(group.pk))
    page.locator("#bulk-form .bulk-bar button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    owners = dict(
        Prospect.objects.filter(email__in=MATCHING).values_list("email", "assigned_user__email")
    )
    assert sorted(owners.values()) == [
        "sales1@example.jp",
        "sales1@example.jp",
        "sales2@example.jp",
    ]
    assert (
        Prospect.objects.exclude(email__in=MATCHING).filter(assigned_user__isnull=False).count()
        == 0
    )
    context.close()

    # 4. A sales user sees only theirs, in the browser...
    first_seller = sellers[0]
    own = {email for email, owner in owners.items() if owner == first_seller.email}
    context = browser.new_context(locale="ja-JP", viewport={"width": 1360, "height": 900})
    page = context.new_page()
    _sign_in(page, live_stack, first_seller.email)
    page.goto(live_stack + "/prospects/")
    shown = set(page.locator("table.table tbody td:nth-child(3)").all_inner_texts())
    assert {text.split()[0] for text in shown} == own
    expect(page.locator("h1")).to_contain_text("プロスペクト")
    page.screenshot(path=str(screenshot_path("flow-3-sales-view-ja")), full_page=True)
    context.close()

    # ... and through the API with their token.
    _instance, token = AuthToken.objects.create(user=first_seller)
    request = urllib.request.Request(  # noqa: S310 - loopback test server
        live_stack + "/api/v1/prospects/", headers={"Authorization": f"Token {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        body = json.loads(response.read())
    assert {row["email"] for row in body["results"]} == own
    assert errors == []
