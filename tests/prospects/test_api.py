"""REST API v1: prospects, upsert, lists and members, tasks, the schema; scope and hostile input."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mapp.models import Role, User
from prospects.models import (
    CustomField,
    CustomFieldType,
    ListMembership,
    Prospect,
    ProspectList,
    Task,
    TaskStatus,
)
from prospects.services import list_add_prospects, list_create, prospect_tags_add
from tests.conftest import client_for
from tests.factories import ProspectFactory, make_user

pytestmark = pytest.mark.django_db

PROSPECTS = "/api/v1/prospects/"
UPSERT = "/api/v1/prospects/upsert/"
LISTS = "/api/v1/lists/"
TASKS = "/api/v1/tasks/"
SCHEMA = "/api/v1/schema/"

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


def _send(client: Client, method: str, url: str, body: Any = None) -> Any:
    payload = body if isinstance(body, bytes) else json.dumps(body)
    return getattr(client, method)(url, data=payload, content_type="application/json")


def _ids(response: Any) -> set[int]:
    return {row["id"] for row in response.json()["results"]}


# --- prospects: CRUD, filters, upsert -----------------------------------------------------------


def test_a_marketer_creates_reads_updates_and_deletes_a_prospect(marketer: User) -> None:
    client = client_for(marketer)
    CustomField.objects.create(label="予算", key="budget", field_type=CustomFieldType.NUMBER)

    created = _send(
        client,
        "post",
        PROSPECTS,
        {
            "email": " Yamada@Example.JP ",
            "last_name": "山田",
            "first_name": "太郎",
            "company_name": "株式会社サンプル",
            "job_title": "情報システム部 部長",
            "employee_count": 250,
            "tags": ["展示会2025", "展示会2025"],
            "custom_fields": {"budget": "１,０００"},
        },
    )

    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["email"] == "yamada@example.jp"
    assert body["tags"] == ["展示会2025"]
    assert body["custom_fields"] == {"budget": "1000"}
    assert body["job_level"] >= 3 and body["job_level_label"]
    assert body["company"] is not None
    assert body["is_mailable"] is True
    prospect_id = body["id"]

    detail = client.get(f"{PROSPECTS}{prospect_id}/")
    assert detail.status_code == 200
    assert detail.json()["last_name"] == "山田"

    patched = _send(
        client,
        "patch",
        f"{PROSPECTS}{prospect_id}/",
        {"city": "渋谷区", "tags": ["ウェビナー"], "do_not_email": True},
    )
    assert patched.status_code == 200, patched.json()
    assert patched.json()["city"] == "渋谷区"
    assert patched.json()["tags"] == ["ウェビナー"]
    assert patched.json()["is_mailable"] is False
    assert patched.json()["last_name"] == "山田"  # PATCH leaves the rest alone

    deleted = client.delete(f"{PROSPECTS}{prospect_id}/")
    assert deleted.status_code == 204
    assert not Prospect.objects.filter(pk=prospect_id).exists()
    assert client.get(f"{PROSPECTS}{prospect_id}/").status_code == 404


def test_the_email_filter_is_exact_and_case_insensitive(marketer: User) -> None:
    wanted = ProspectFactory.create(email="yamada@example.jp")
    ProspectFactory.create(email="yamada@example.jp.evil.com")
    ProspectFactory.create(email="other@example.jp")

    response = client_for(marketer).get(PROSPECTS, {"email": "Yamada@Example.JP"})

    assert response.status_code == 200
    assert _ids(response) == {wanted.pk}


def test_updated_since_returns_only_prospects_changed_from_that_moment(marketer: User) -> None:
    old = ProspectFactory.create()
    recent = ProspectFactory.create()
    moment = timezone.now() - datetime.timedelta(days=1)
    Prospect.objects.filter(pk=old.pk).update(updated_at=moment - datetime.timedelta(hours=1))
    Prospect.objects.filter(pk=recent.pk).update(updated_at=moment + datetime.timedelta(hours=1))
    client = client_for(marketer)

    response = client.get(PROSPECTS, {"updated_since": moment.isoformat()})
    assert response.status_code == 200
    assert _ids(response) == {recent.pk}

    # Without an offset the time is read in the site's time zone.
    local = timezone.localtime(moment).replace(tzinfo=None).isoformat()
    assert _ids(client.get(PROSPECTS, {"updated_since": local})) == {recent.pk}

    bad = client.get(PROSPECTS, {"updated_since": "last tuesday"})
    assert bad.status_code == 400
    assert "updated_since" in bad.json()


def test_the_list_filter_and_ordering(marketer: User) -> None:
    first, second, outside = ProspectFactory.create_batch(3)
    static = list_create(actor=None, name="展示会")
    list_add_prospects(prospect_list=static, prospect_ids=[first.pk, second.pk])
    client = client_for(marketer)

    members = client.get(PROSPECTS, {"list": str(static.pk), "ordering": "-id"})

    assert [row["id"] for row in members.json()["results"]] == [second.pk, first.pk]
    assert client.get(PROSPECTS, {"list": "abc"}).status_code == 400
    assert client.get(PROSPECTS, {"ordering": "password"}).status_code == 400
    assert outside.pk not in _ids(members)


def test_upsert_creates_then_the_same_body_again_changes_nothing(marketer: User) -> None:
    CustomField.objects.create(
        label="興味",
        key="interests",
        field_type=CustomFieldType.MULTI_CHOICE,
        choices=["MA", "SFA"],
    )
    client = client_for(marketer)
    body = {
        "email": "Suzuki@Example.JP",
        "last_name": "鈴木",
        "company_name": "株式会社テスト",
        "employee_count": 120,
        "tags": ["Webinar"],
        "custom_fields": {"interests": ["SFA", "MA"]},
        "do_not_email": False,
    }

    first = _send(client, "post", UPSERT, body)
    assert first.status_code == 201, first.json()
    prospect = Prospect.objects.get(email="suzuki@example.jp")
    updated_at = prospect.updated_at

    second = _send(client, "post", UPSERT, body)

    assert second.status_code == 200, second.json()
    assert second.json()["id"] == prospect.pk
    assert Prospect.objects.filter(email__iexact="suzuki@example.jp").count() == 1
    prospect.refresh_from_db()
    assert prospect.updated_at == updated_at
    assert second.json() == first.json()

    changed = _send(client, "post", UPSERT, {"email": "suzuki@example.jp", "city": "大阪市"})
    assert changed.status_code == 200
    assert changed.json()["city"] == "大阪市"
    assert changed.json()["tags"] == ["Webinar"]  # what the body does not name stays


def test_creating_a_prospect_with_an_existing_email_is_a_400_with_a_message(
    marketer: User,
) -> None:
    ProspectFactory.create(email="yamada@example.jp")

    response = _send(client_for(marketer), "post", PROSPECTS, {"email": "YAMADA@example.jp"})

    assert response.status_code == 400
    assert response.json()["email"]
    assert Prospect.objects.count() == 1


def test_unknown_and_read_only_fields_are_refused_by_name(marketer: User) -> None:
    prospect = ProspectFactory.create()
    client = client_for(marketer)

    response = _send(client, "patch", f"{PROSPECTS}{prospect.pk}/", {"nmae": "x", "score": 100})

    assert response.status_code == 400
    assert set(response.json()) == {"nmae", "score"}
    prospect.refresh_from_db()
    assert prospect.score == 0

    status = _send(client, "patch", f"{PROSPECTS}{prospect.pk}/", {"hot_status": "hot"})
    assert status.status_code == 400
    assert set(status.json()) == {"hot_status"}


def test_a_prospect_reads_with_its_hot_status(marketer: User) -> None:
    prospect = ProspectFactory.create(hot_status="hot", hot_since=timezone.now(), score=90)

    body = client_for(marketer).get(f"{PROSPECTS}{prospect.pk}/").json()

    assert (body["score"], body["grade"], body["hot_status"]) == (90, "D", "hot")
    assert body["hot_since"]


def test_an_invalid_custom_value_is_a_400_and_writes_nothing(marketer: User) -> None:
    CustomField.objects.create(label="予算", key="budget", field_type=CustomFieldType.NUMBER)
    client = client_for(marketer)

    response = _send(
        client, "post", PROSPECTS, {"email": "a@example.jp", "custom_fields": {"budget": "多い"}}
    )
    unknown = _send(
        client, "post", PROSPECTS, {"email": "b@example.jp", "custom_fields": {"nope": None}}
    )

    assert response.status_code == 400
    assert "budget" in response.json()["custom_fields"]
    assert unknown.status_code == 400
    assert "nope" in unknown.json()["custom_fields"]
    assert not Prospect.objects.exists()


# --- Sales scope ---------------------------------------------------------------------------------


def test_a_sales_user_sees_only_their_own_prospects_everywhere(sales_user: User) -> None:
    other = make_user(Role.SALES, email="other-sales@example.jp")
    mine = ProspectFactory.create(assigned_user=sales_user)
    theirs = ProspectFactory.create(assigned_user=other)
    unassigned = ProspectFactory.create()
    static = list_create(actor=None, name="展示会")
    list_add_prospects(prospect_list=static, prospect_ids=[mine.pk, theirs.pk])
    client = client_for(sales_user)

    assert _ids(client.get(PROSPECTS)) == {mine.pk}
    assert _ids(client.get(PROSPECTS, {"email": theirs.email})) == set()
    assert client.get(f"{PROSPECTS}{theirs.pk}/").status_code == 404
    assert client.get(f"{PROSPECTS}{unassigned.pk}/").status_code == 404
    assert _send(client, "patch", f"{PROSPECTS}{theirs.pk}/", {"city": "x"}).status_code == 404
    assert client.delete(f"{PROSPECTS}{theirs.pk}/").status_code == 404
    assert _ids(client.get(f"{LISTS}{static.pk}/members/")) == {mine.pk}
    assert client.get(f"{LISTS}{static.pk}/").json()["member_count"] == 1


def test_a_sales_user_cannot_add_anothers_prospect_to_a_list(sales_user: User) -> None:
    other = make_user(Role.SALES, email="other-sales@example.jp")
    mine = ProspectFactory.create(assigned_user=sales_user)
    theirs = ProspectFactory.create(assigned_user=other)
    static = list_create(actor=None, name="フォロー")
    client = client_for(sales_user)
    url = f"{LISTS}{static.pk}/members/"

    refused = _send(client, "post", url, {"prospect_ids": [mine.pk, theirs.pk]})

    assert refused.status_code == 400
    assert str(theirs.pk) in refused.json()["prospect_ids"][0]
    assert not ListMembership.objects.filter(prospect_list=static).exists()

    added = _send(client, "post", url, {"prospect_ids": [mine.pk]})
    assert added.status_code == 200
    assert added.json() == {"added": 1}

    list_add_prospects(prospect_list=static, prospect_ids=[theirs.pk])
    assert _send(client, "delete", url, {"prospect_ids": [theirs.pk]}).status_code == 400
    assert ListMembership.objects.filter(prospect_list=static, prospect=theirs).exists()


def test_a_prospect_a_sales_user_creates_is_theirs_and_they_cannot_reassign_it(
    sales_user: User, sales_manager: User
) -> None:
    client = client_for(sales_user)

    created = _send(client, "post", PROSPECTS, {"email": "new@example.jp"})
    assert created.status_code == 201
    assert created.json()["assigned_user"] == sales_user.pk

    prospect_id = created.json()["id"]
    edited = _send(client, "patch", f"{PROSPECTS}{prospect_id}/", {"job_title": "課長"})
    assert edited.status_code == 200
    assert edited.json()["job_title"] == "課長"
    same_owner = _send(
        client, "patch", f"{PROSPECTS}{prospect_id}/", {"assigned_user": sales_user.pk}
    )
    assert same_owner.status_code == 200

    reassign = _send(
        client, "patch", f"{PROSPECTS}{prospect_id}/", {"assigned_user": sales_manager.pk}
    )
    assert reassign.status_code == 403
    assert Prospect.objects.get(pk=prospect_id).assigned_user_id == sales_user.pk

    for_other = _send(
        client, "post", PROSPECTS, {"email": "x@example.jp", "assigned_user": sales_manager.pk}
    )
    assert for_other.status_code == 403

    # A manager sees everything and may reassign.
    manager = client_for(sales_manager)
    moved = _send(
        manager, "patch", f"{PROSPECTS}{prospect_id}/", {"assigned_user": sales_manager.pk}
    )
    assert moved.status_code == 200
    assert moved.json()["assigned_user"] == sales_manager.pk
    assert client.get(f"{PROSPECTS}{prospect_id}/").status_code == 404


def test_a_sales_user_upserting_an_address_they_cannot_see_is_refused(sales_user: User) -> None:
    theirs = ProspectFactory.create(email="taken@example.jp", city="東京")

    response = _send(client_for(sales_user), "post", UPSERT, {"email": "TAKEN@example.jp"})

    assert response.status_code == 400
    assert response.json()["email"]
    theirs.refresh_from_db()
    assert theirs.assigned_user_id is None


# --- lists ---------------------------------------------------------------------------------------


def test_marketing_creates_a_dynamic_list_with_nested_criteria(marketer: User) -> None:
    client = client_for(marketer)

    response = _send(
        client,
        "post",
        LISTS,
        {"name": "IT・製造 課長以上 100名以上", "is_dynamic": True, "criteria": NESTED_CRITERIA},
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["is_dynamic"] is True
    assert body["criteria"]["conditions"][0]["match"] == "any"
    assert ProspectList.objects.get(pk=body["id"]).criteria == body["criteria"]


def test_invalid_criteria_is_a_400_naming_where(marketer: User) -> None:
    broken = json.loads(json.dumps(NESTED_CRITERIA))
    broken["conditions"][0]["conditions"][1]["operator"] = "gte"

    response = _send(
        client_for(marketer),
        "post",
        LISTS,
        {"name": "壊れた", "is_dynamic": True, "criteria": broken},
    )

    assert response.status_code == 400
    assert "conditions.0.conditions.1.operator" in response.json()["criteria"][0]
    assert not ProspectList.objects.exists()


def test_list_writes_need_marketing_and_reads_need_prospects(
    sales_manager: User, marketer: User
) -> None:
    static = list_create(actor=None, name="展示会")
    manager = client_for(sales_manager)

    assert manager.get(LISTS).status_code == 200
    assert _send(manager, "post", LISTS, {"name": "x"}).status_code == 403
    assert _send(manager, "patch", f"{LISTS}{static.pk}/", {"name": "y"}).status_code == 403
    assert manager.delete(f"{LISTS}{static.pk}/").status_code == 403

    client = client_for(marketer)
    renamed = _send(client, "patch", f"{LISTS}{static.pk}/", {"name": "展示会 2025"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "展示会 2025"
    criteria = _send(client, "patch", f"{LISTS}{static.pk}/", {"criteria": NESTED_CRITERIA})
    assert criteria.status_code == 400
    assert client.delete(f"{LISTS}{static.pk}/").status_code == 204
    assert not ProspectList.objects.filter(pk=static.pk).exists()


def test_adding_members_twice_or_with_repeated_ids_counts_each_once(marketer: User) -> None:
    first, second = ProspectFactory.create_batch(2)
    static = list_create(actor=None, name="展示会")
    client = client_for(marketer)
    url = f"{LISTS}{static.pk}/members/"

    once = _send(client, "post", url, {"prospect_ids": [first.pk, first.pk, second.pk]})
    again = _send(client, "post", url, {"prospect_ids": [first.pk, second.pk]})

    assert once.json() == {"added": 2}
    assert again.json() == {"added": 0}
    assert ListMembership.objects.filter(prospect_list=static).count() == 2
    assert _ids(client.get(url)) == {first.pk, second.pk}

    removed = _send(client, "delete", url, {"prospect_ids": [first.pk, first.pk]})
    assert removed.json() == {"removed": 1}
    assert _send(client, "delete", url, {"prospect_ids": [first.pk]}).json() == {"removed": 0}


def test_members_of_a_dynamic_list_cannot_be_changed_by_hand(marketer: User) -> None:
    prospect = ProspectFactory.create()
    dynamic = list_create(actor=None, name="IT", is_dynamic=True, criteria=NESTED_CRITERIA)

    response = _send(
        client_for(marketer),
        "post",
        f"{LISTS}{dynamic.pk}/members/",
        {"prospect_ids": [prospect.pk]},
    )

    assert response.status_code == 400
    assert response.json()["non_field_errors"]


# --- tasks ---------------------------------------------------------------------------------------


def test_tasks_are_created_listed_and_completed_through_the_api(marketer: User) -> None:
    prospect = ProspectFactory.create()
    client = client_for(marketer)

    created = _send(
        client,
        "post",
        TASKS,
        {"subject": "電話する", "prospect": prospect.pk, "due_date": "2025-04-01", "priority": 3},
    )

    assert created.status_code == 201, created.json()
    task_id = created.json()["id"]
    assert created.json()["assignee"] == marketer.pk
    assert created.json()["status"] == TaskStatus.OPEN
    assert task_id in _ids(client.get(TASKS))

    done = _send(client, "patch", f"{TASKS}{task_id}/", {"status": "done", "notes": "済"})
    assert done.status_code == 200, done.json()
    assert done.json()["status"] == "done"
    assert done.json()["completed_at"] is not None
    assert done.json()["notes"] == "済"

    moved = _send(client, "patch", f"{TASKS}{task_id}/", {"prospect": None})
    assert moved.status_code == 400


def test_a_sales_user_sees_and_creates_only_their_own_tasks(
    sales_user: User, sales_manager: User
) -> None:
    mine = Task.objects.create(subject="mine", assignee=sales_user)
    theirs = Task.objects.create(subject="theirs", assignee=sales_manager)
    others_prospect = ProspectFactory.create(assigned_user=sales_manager)
    client = client_for(sales_user)

    assert _ids(client.get(TASKS)) == {mine.pk}
    assert client.get(f"{TASKS}{theirs.pk}/").status_code == 404
    for_other = _send(client, "post", TASKS, {"subject": "x", "assignee": sales_manager.pk})
    assert for_other.status_code == 400
    assert for_other.json()["assignee"]
    about_other = _send(client, "post", TASKS, {"subject": "x", "prospect": others_prospect.pk})
    assert about_other.status_code == 400
    assert about_other.json()["prospect"]


# --- access, schema, guards --------------------------------------------------------------------


def test_anonymous_requests_are_refused_everywhere() -> None:
    prospect = ProspectFactory.create()
    static = list_create(actor=None, name="展示会")
    client = Client()

    for method, url in [
        ("get", PROSPECTS),
        ("post", PROSPECTS),
        ("get", f"{PROSPECTS}{prospect.pk}/"),
        ("patch", f"{PROSPECTS}{prospect.pk}/"),
        ("delete", f"{PROSPECTS}{prospect.pk}/"),
        ("post", UPSERT),
        ("get", LISTS),
        ("post", LISTS),
        ("get", f"{LISTS}{static.pk}/members/"),
        ("post", f"{LISTS}{static.pk}/members/"),
        ("get", TASKS),
        ("post", TASKS),
        ("get", f"{SCHEMA}?format=json"),
    ]:
        if method == "get":
            response = client.get(url)
        else:
            response = _send(client, method, url, {"email": "x@example.jp", "name": "x"})
        assert response.status_code in (401, 403), (method, url)
        assert response.json()["detail"]
    assert Prospect.objects.count() == 1


def test_the_schema_endpoint_serves_a_valid_openapi_document(marketer: User) -> None:
    from drf_spectacular.validation import validate_schema

    response = client_for(marketer).get(SCHEMA, {"format": "json"})

    assert response.status_code == 200
    document = json.loads(response.content)
    validate_schema(document)
    assert "/api/v1/prospects/upsert/" in document["paths"]
    assert "/api/v1/lists/{list_id}/members/" in document["paths"]


def test_an_api_view_cannot_override_get_queryset() -> None:
    from prospects.api import ScopedApiView

    with pytest.raises(TypeError, match="scoped_queryset"):

        class Unscoped(ScopedApiView):
            def get_queryset(self) -> Any:
                return Prospect.objects.all()


def test_the_prospect_list_needs_the_same_number_of_queries_for_5_or_30_prospects(
    marketer: User,
) -> None:
    CustomField.objects.create(label="予算", key="budget", field_type=CustomFieldType.NUMBER)
    client = client_for(marketer)
    client.get(PROSPECTS)  # session and role loaded once before counting

    def make(count: int) -> None:
        prospects = ProspectFactory.create_batch(count, assigned_user=marketer)
        prospect_tags_add(prospect_ids=[p.pk for p in prospects], names=["A", "B"])
        for prospect in prospects:
            _send(client, "patch", f"{PROSPECTS}{prospect.pk}/", {"custom_fields": {"budget": 1}})

    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(PROSPECTS)
        assert response.status_code == 200
        return len(queries)

    make(5)
    with_five = count_queries()
    make(25)
    with_thirty = count_queries()

    assert with_thirty == with_five
    assert with_five <= 8


def test_a_body_over_the_upload_limit_is_a_413(marketer: User) -> None:
    body = json.dumps({"email": "a@example.jp", "notes": "あ" * 1_000_000}).encode()

    response = _send(client_for(marketer), "post", PROSPECTS, body)

    assert response.status_code == 413
    assert response.json()["detail"]


# --- hostile input -------------------------------------------------------------------------------

GARBAGE_BODIES: list[Any] = [
    b"",
    b"not json",
    b"{",
    b"\xff\xfe\x00",
    b"null",
    b"[]",
    b"[1, 2, 3]",
    b'"a string"',
    b"12345",
    b"true",
    b'{"email": NaN}',
    b'{"email": "a\\u0000b@example.jp", "name": "a\\u0000b"}',
    b'{"email": "\\ud800@example.jp", "name": "\\ud800"}',
    b'{"\\u0000": 1}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"email": "a@example.jp", "custom_fields": {"memo": "a\\u0000b"}}',
    b'{"email": "a@example.jp", "custom_fields": {"memo": "\\udfff"}}',
    b'{"name": "x", "is_dynamic": true, "criteria": {"conditions": [{"subject": "field", '
    b'"field": "city", "operator": "equals", "value": "a\\u0000"}]}}',
    b'{"employee_count": ' + b"9" * 5000 + b"}",
    {"email": 123},
    {"email": ["a@example.jp"]},
    {"email": {"$ne": ""}},
    {"email": "x" * 1_000_000},
    {"email": "not-an-address"},
    {"email": "a@example.jp", "last_name": "山" * 1_000_000},
    {"email": "a@example.jp", "employee_count": "many"},
    {"email": "a@example.jp", "employee_count": -1},
    {"email": "a@example.jp", "employee_count": 10**30},
    {"email": "a@example.jp", "assigned_user": "abc"},
    {"email": "a@example.jp", "assigned_user": 10**30},
    {"email": "a@example.jp", "assigned_user": True},
    {"email": "a@example.jp", "tags": "not a list"},
    {"email": "a@example.jp", "tags": [None, {"a": 1}]},
    {"email": "a@example.jp", "tags": ["x" * 1000] * 1000},
    {"email": "a@example.jp", "custom_fields": []},
    {"email": "a@example.jp", "custom_fields": {"x": {"y": 1}}},
    {"email": "a@example.jp", "custom_fields": {"k" * 500: 1}},
    {"email": "a@example.jp", "do_not_email": "perhaps"},
    {"email": "a@example.jp", "id": 1, "score": 999},
    {"unknown": 1, "__proto__": {}},
    {"name": None},
    {"name": "x" * 1_000_000},
    {"name": "x", "is_dynamic": True},
    {"name": "x", "is_dynamic": True, "criteria": "all"},
    {"name": "x", "is_dynamic": True, "criteria": [1]},
    {"name": "x", "is_dynamic": True, "criteria": {"match": "all", "conditions": [[[[]]]]}},
    {
        "name": "x",
        "is_dynamic": True,
        "criteria": {
            "conditions": [
                {"subject": "field", "field": "employee_count", "operator": "gte", "value": "1e999"}
            ]
        },
    },
    {"name": "x", "is_dynamic": "yes please"},
    {"name": "x", "criteria": {"match": "all", "conditions": []}},
    {"prospect_ids": "1,2"},
    {"prospect_ids": ["a"]},
    {"prospect_ids": [-1, 0]},
    {"prospect_ids": [10**30]},
    {"prospect_ids": []},
    {"prospect_ids": list(range(1, 5000))},
    {"subject": ""},
    {"subject": "x" * 1_000_000},
    {"subject": "x", "due_date": "2025-13-45"},
    {"subject": "x", "due_date": 20250101},
    {"subject": "x", "status": "whatever"},
    {"subject": "x", "priority": 99},
    {"subject": "x", "prospect": "abc"},
    {"subject": "x", "prospect": 10**30},
    {"subject": "x", "assignee": -5},
]

WRITE_ENDPOINTS = [
    ("post", "prospects"),
    ("patch", "prospect"),
    ("post", "upsert"),
    ("post", "lists"),
    ("patch", "list"),
    ("post", "members"),
    ("delete", "members"),
    ("post", "tasks"),
    ("patch", "task"),
]


@pytest.mark.parametrize(("method", "endpoint"), WRITE_ENDPOINTS)
def test_garbage_bodies_get_a_4xx_with_a_message_never_a_500(
    administrator: User, method: str, endpoint: str
) -> None:
    prospect = ProspectFactory.create(email="kept@example.jp")
    static = list_create(actor=None, name="展示会")
    task = Task.objects.create(subject="電話", assignee=administrator)
    CustomField.objects.create(label="メモ", key="memo", field_type=CustomFieldType.TEXT)
    url = {
        "prospects": PROSPECTS,
        "prospect": f"{PROSPECTS}{prospect.pk}/",
        "upsert": UPSERT,
        "lists": LISTS,
        "list": f"{LISTS}{static.pk}/",
        "members": f"{LISTS}{static.pk}/members/",
        "tasks": TASKS,
        "task": f"{TASKS}{task.pk}/",
    }[endpoint]
    client = client_for(administrator)

    for body in GARBAGE_BODIES:
        response = _send(client, method, url, body)
        assert response.status_code < 500, body if isinstance(body, dict) else body[:80]
        if response.status_code >= 400:
            assert response.content, body
            assert response.json()
    for content_type, raw in [
        ("text/plain", b"email=a@example.jp"),
        ("application/x-www-form-urlencoded", b"email=a%40example.jp&name=x"),
        ("multipart/form-data; boundary=x", b"--x\r\n"),
    ]:
        response = client.generic(method.upper(), url, data=raw, content_type=content_type)
        assert response.status_code == 415, content_type
        assert response.json()["detail"]
    latin = client.generic(
        method.upper(),
        url,
        data=b'{"last_name": "\xe9"}',
        content_type="application/json; charset=latin-1",
    )
    assert latin.status_code < 500

    prospect.refresh_from_db()
    assert prospect.email == "kept@example.jp"


def test_garbage_query_strings_and_ids_get_a_4xx_never_a_500(administrator: User) -> None:
    client = client_for(administrator)
    for params in [
        {"page": "-1"},
        {"page": "abc"},
        {"page": "9" * 40},
        {"email": "a\x00b"},
        {"email": "x" * 100_000},
        {"updated_since": "9999-99-99T99:99:99"},
        {"updated_since": "0001-01-01T00:00:00"},
        {"updated_since": "9999-12-31T23:59:59-14:00"},
        {"updated_since": "\x00"},
        {"list": "-5"},
        {"list": "9" * 40},
        {"ordering": "-password"},
    ]:
        response = client.get(PROSPECTS, params)
        assert response.status_code < 500, params
    for url in [
        f"{PROSPECTS}{'9' * 40}/",
        f"{PROSPECTS}99999999999999999999/",
        f"{LISTS}99999999999999999999/members/",
        f"{TASKS}99999999999999999999/",
        f"{PROSPECTS}abc/",
    ]:
        assert client.get(url).status_code == 404, url
    assert client.get(TASKS, {"status": "nope"}).status_code == 400


def test_every_endpoint_answers_options_and_unknown_methods_without_a_500(
    administrator: User,
) -> None:
    prospect = ProspectFactory.create()
    static = list_create(actor=None, name="展示会")
    task = Task.objects.create(subject="電話", assignee=administrator)
    client = client_for(administrator)
    urls = [
        PROSPECTS,
        UPSERT,
        f"{PROSPECTS}{prospect.pk}/",
        LISTS,
        f"{LISTS}{static.pk}/",
        f"{LISTS}{static.pk}/members/",
        TASKS,
        f"{TASKS}{task.pk}/",
    ]
    for url in urls:
        for method in ("OPTIONS", "PUT", "HEAD", "TRACE"):
            response = client.generic(method, url)
            assert response.status_code < 500, (method, url)
