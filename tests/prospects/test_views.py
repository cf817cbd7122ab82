"""The prospect and list pages through the HTTP layer, as each role meets them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from mapp.models import Role, User
from prospects.models import AssignmentGroup, ListMembership, Prospect, ProspectList
from prospects.services import list_create, prospect_create
from tests.conftest import client_for
from tests.factories import make_user

pytestmark = pytest.mark.django_db

NESTED = {
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


def _prospect(email: str, owner: User | None = None, **data: Any) -> Prospect:
    prospect = prospect_create(actor=None, data={"email": email, **data}, refresh_lists=False)
    if owner is not None:
        Prospect.objects.filter(pk=prospect.pk).update(assigned_user=owner)
    return prospect


def test_list_page_searches_filters_by_criteria_and_pages_by_keyset(marketer: User) -> None:
    for index in range(60):
        _prospect(
            f"p{index:02d}@a.jp",
            industry="IT" if index % 2 else "小売",
            job_title="部長",
            employee_count=500,
        )
    client = client_for(marketer)

    page = client.get(reverse("prospects:list"), {"criteria": json.dumps(NESTED)})
    assert page.status_code == 200
    assert page.context["total"] == 30
    assert len(page.context["prospects"]) == 30

    first = client.get(reverse("prospects:list"), {"sort": "email"})
    assert len(first.context["prospects"]) == 50
    second = client.get("/prospects/?" + first.context["next_query"])
    emails = [p.email for p in first.context["prospects"]] + [
        p.email for p in second.context["prospects"]
    ]
    assert emails == sorted(emails) and len(set(emails)) == 60

    searched = client.get(reverse("prospects:list"), {"q": "p07@"})
    assert [p.email for p in searched.context["prospects"]] == ["p07@a.jp"]


def test_list_page_query_count_does_not_grow_with_rows(marketer: User) -> None:
    owner = make_user(Role.SALES, email="owner@example.jp")
    client = client_for(marketer)
    _prospect("one@a.jp", owner=owner)
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("prospects:list"))
    for index in range(30):
        _prospect(f"many{index}@a.jp", owner=owner)
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("prospects:list"))
    assert len(many) == len(few)


def test_bad_criteria_in_the_query_string_show_an_error_not_a_crash(marketer: User) -> None:
    response = client_for(marketer).get(reverse("prospects:list"), {"criteria": "{not json"})
    assert response.status_code == 200
    assert response.context["criteria_error"]


def test_sales_user_sees_only_their_prospects_in_list_search_and_bulk(sales_user: User) -> None:
    own = _prospect("own@a.jp", owner=sales_user, industry="IT")
    other = _prospect("other@a.jp", industry="IT")
    client = client_for(sales_user)

    listing = client.get(reverse("prospects:list"), {"q": "@a.jp"})
    assert [p.email for p in listing.context["prospects"]] == ["own@a.jp"]
    static = list_create(actor=None, name="static")
    response = client.post(
        reverse("prospects:bulk"),
        {
            "action": "add_to_list",
            "prospect_ids": f"{own.pk},{other.pk}",
            "prospect_list": static.pk,
        },
    )
    assert response.status_code == 302
    assert set(static.members.values_list("email", flat=True)) == {"own@a.jp"}
    # Sales cannot reassign or delete in bulk.
    forbidden = client.post(
        reverse("prospects:bulk"), {"action": "delete", "prospect_ids": str(own.pk)}
    )
    assert forbidden.status_code == 403
    assert Prospect.objects.filter(pk=own.pk).exists()


def test_bulk_round_robin_on_all_matching_prospects(marketer: User) -> None:
    sellers = [make_user(Role.SALES, email=f"s{index}@example.jp") for index in range(2)]
    group = AssignmentGroup.objects.create(name="営業")
    group.members.set(sellers)
    for index in range(4):
        _prospect(f"it{index}@a.jp", industry="IT", job_title="課長", employee_count=300)
    _prospect("retail@a.jp", industry="小売")
    query_string = "criteria=" + json.dumps(NESTED)
    response = client_for(marketer).post(
        reverse("prospects:bulk"),
        {
            "action": "assign_group",
            "select_all_matching": "on",
            "group": group.pk,
            "query_string": query_string,
        },
    )
    assert response.status_code == 302
    owners = list(
        Prospect.objects.filter(industry="IT")
        .order_by("pk")
        .values_list("assigned_user__email", flat=True)
    )
    assert owners == ["s0@example.jp", "s1@example.jp", "s0@example.jp", "s1@example.jp"]
    assert Prospect.objects.get(email="retail@a.jp").assigned_user is None


def test_create_and_edit_a_prospect_through_the_form(marketer: User) -> None:
    client = client_for(marketer)
    response = client.post(
        reverse("prospects:create"),
        {
            "email": "Suzuki@Mirai.JP",
            "last_name": "鈴木",
            "first_name": "一郎",
            "company_name": "ミライ工業㈱",
            "job_title": "製造部 課長",
            "employee_count": "250",
            "tags": "展示会, セミナー",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    prospect = Prospect.objects.get(email="suzuki@mirai.jp")
    assert prospect.job_level == 3 and prospect.company_name_normalized == "ミライ工業"
    assert set(prospect.tags.values_list("name", flat=True)) == {"展示会", "セミナー"}

    edit = client.post(
        reverse("prospects:edit", args=[prospect.pk]),
        {
            "email": "suzuki@mirai.jp",
            "last_name": "鈴木",
            "first_name": "一郎",
            "company_name": "ミライ工業㈱",
            "job_title": "取締役",
            "tags": "展示会",
        },
    )
    assert edit.status_code == 302
    prospect.refresh_from_db()
    assert prospect.job_level == 5
    assert list(prospect.tags.values_list("name", flat=True)) == ["展示会"]

    duplicate = client.post(reverse("prospects:create"), {"email": "SUZUKI@mirai.jp"})
    assert duplicate.status_code == 200
    assert Prospect.objects.filter(email__iexact="suzuki@mirai.jp").count() == 1


def test_prospect_page_offers_duplicates_and_the_merge_screen_merges(marketer: User) -> None:
    first = _prospect(
        "yamada@sample.co.jp", last_name="山田", first_name="太郎", company_name="株式会社サンプル"
    )
    second = _prospect(
        "t-yamada@gmail.com",
        last_name="山田",
        first_name="太郎",
        company_name="(株)サンプル",
        phone="090",
    )
    client = client_for(marketer)
    page = client.get(reverse("prospects:detail", args=[first.pk]))
    assert second.email in page.content.decode()
    screen = client.get(reverse("prospects:merge", args=[first.pk]))
    assert screen.status_code == 200 and "090" in screen.content.decode()
    merged = client.post(reverse("prospects:merge", args=[first.pk]), {"with": second.pk})
    assert merged.status_code == 302
    assert not Prospect.objects.filter(pk=second.pk).exists()
    assert Prospect.objects.get(pk=first.pk).phone == "090"


def test_sales_cannot_merge(sales_user: User) -> None:
    prospect = _prospect(
        "mine@a.jp", owner=sales_user, last_name="山田", first_name="太郎", company_name="A社"
    )
    _prospect(
        "dupe@a.jp", owner=sales_user, last_name="山田", first_name="太郎", company_name="A社"
    )
    assert (
        client_for(sales_user).get(reverse("prospects:merge", args=[prospect.pk])).status_code
        == 403
    )


def test_marketer_builds_a_dynamic_list_and_its_members_appear(marketer: User) -> None:
    _prospect("match@a.jp", industry="製造", job_title="部長", employee_count=150)
    _prospect("small@a.jp", industry="製造", job_title="部長", employee_count=50)
    client = client_for(marketer)
    response = client.post(
        reverse("lists:create"),
        {"name": "製造・IT 課長以上", "is_dynamic": "on", "criteria": json.dumps(NESTED)},
    )
    assert response.status_code == 302
    prospect_list = ProspectList.objects.get(name="製造・IT 課長以上")
    assert prospect_list.criteria == NESTED
    client.post(reverse("lists:refresh", args=[prospect_list.pk]))
    detail = client.get(reverse("lists:detail", args=[prospect_list.pk]))
    assert detail.context["member_total"] == 1
    assert "match@a.jp" in detail.content.decode()


def test_invalid_list_criteria_are_shown_on_the_form(marketer: User) -> None:
    bad = {
        "conditions": [
            {"subject": "field", "field": "employee_count", "operator": "gte", "value": "many"}
        ]
    }
    response = client_for(marketer).post(
        reverse("lists:create"), {"name": "bad", "is_dynamic": "on", "criteria": json.dumps(bad)}
    )
    assert response.status_code == 200
    assert "conditions.0.value" in response.content.decode()
    assert not ProspectList.objects.filter(name="bad").exists()


def test_live_preview_counts_within_the_users_scope(sales_user: User, marketer: User) -> None:
    _prospect("mine@a.jp", owner=sales_user, industry="IT", job_title="部長", employee_count=500)
    _prospect("theirs@a.jp", industry="IT", job_title="部長", employee_count=500)
    url = reverse("lists:criteria_preview")
    body = json.dumps({"criteria": NESTED})
    assert client_for(marketer).post(url, body, content_type="application/json").json() == {
        "count": 2
    }
    assert client_for(sales_user).post(url, body, content_type="application/json").json() == {
        "count": 1
    }


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"criteria": "x"}',
        b'{"criteria": {"conditions": [{"subject": 1}]}}',
        b"\xff\xfe",
        b"{}" + b" " * 300_000,
    ],
)
def test_live_preview_answers_garbage_with_400(marketer: User, body: bytes) -> None:
    response = client_for(marketer).post(
        reverse("lists:criteria_preview"), body, content_type="application/json"
    )
    assert response.status_code in {200, 400}
    if response.status_code == 400:
        assert "error" in response.json()


def test_lists_are_marketing_assets(sales_user: User) -> None:
    client = client_for(sales_user)
    assert client.get(reverse("lists:index")).status_code == 200  # reading is fine
    assert client.get(reverse("lists:create")).status_code == 403
    prospect_list = list_create(actor=None, name="x")
    assert client.post(reverse("lists:delete", args=[prospect_list.pk])).status_code == 403
    assert ListMembership.objects.count() == 0
