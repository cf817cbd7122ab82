"""The page actions pages: roles, creating with actions, validation that never 500s, pausing,
deleting and the views column."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import reverse

from mapp.models import AuditLogEntry, User
from prospects.services import prospect_create
from scoring.models import PageAction, UrlMatch
from tests.conftest import client_for
from tracking.models import ActivityType
from tracking.services import activity_record

pytestmark = pytest.mark.django_db

SITE = "https://example.co.jp"


def _page_action(**fields: Any) -> PageAction:
    defaults: dict[str, Any] = {
        "name": "価格ページ",
        "match_type": UrlMatch.EXACT,
        "url_pattern": f"{SITE}/pricing",
        "points": 10,
    }
    return PageAction.objects.create(**{**defaults, **fields})


def _data(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "価格ページ",
        "match_type": UrlMatch.EXACT,
        "url_pattern": f"{SITE}/料金/",
        "points": 30,
        "is_priority": "on",
        "actions": json.dumps([{"action": "add_tag", "config": {"tag": "価格検討"}}]),
        "is_active": "on",
    }
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


def test_sales_users_cannot_see_or_change_page_actions(sales_user: User) -> None:
    page_action = _page_action()
    client = client_for(sales_user)
    assert client.get(reverse("page_actions:list")).status_code == 403
    assert client.post(reverse("page_actions:create"), _data()).status_code == 403
    assert client.post(reverse("page_actions:delete", args=[page_action.pk])).status_code == 403
    assert PageAction.objects.count() == 1


def test_sales_managers_see_the_list_but_cannot_edit(sales_manager: User) -> None:
    page_action = _page_action()
    client = client_for(sales_manager)
    listing = client.get(reverse("page_actions:list"))
    assert listing.status_code == 200 and "価格ページ" in listing.content.decode()
    assert reverse("page_actions:create") not in listing.content.decode()
    assert client.get(reverse("page_actions:create")).status_code == 403
    assert client.get(reverse("page_actions:edit", args=[page_action.pk])).status_code == 403
    assert client.post(reverse("page_actions:toggle", args=[page_action.pk])).status_code == 403
    assert client.post(reverse("page_actions:delete", args=[page_action.pk])).status_code == 403
    page_action.refresh_from_db()
    assert page_action.is_active


def test_a_marketer_creates_a_priority_page_with_actions(marketer: User, english: None) -> None:
    client = client_for(marketer)
    form = client.get(reverse("page_actions:create"))
    assert form.status_code == 200 and "data-action-editor" in form.content.decode()
    response = client.post(reverse("page_actions:create"), _data())
    assert response.status_code == 302
    page_action = PageAction.objects.get()
    assert page_action.url_pattern == f"{SITE}/料金/"
    assert page_action.is_priority and page_action.points == 30
    assert page_action.actions == [{"action": "add_tag", "config": {"tag": "価格検討"}}]
    assert page_action.created_by == marketer
    assert AuditLogEntry.objects.filter(action="scoring.page_action_create").exists()
    listing = client.get(reverse("page_actions:list")).content.decode()
    assert f"{SITE}/料金/" in listing and "Add tag" in listing and "Priority page" in listing


def test_editing_keeps_the_url_shown_as_typed(marketer: User) -> None:
    page_action = _page_action()
    client = client_for(marketer)
    assert client.get(reverse("page_actions:edit", args=[page_action.pk])).status_code == 200
    response = client.post(
        reverse("page_actions:edit", args=[page_action.pk]),
        _data(match_type=UrlMatch.PREFIX, url_pattern=f"{SITE}/blog/", is_priority=None),
    )
    assert response.status_code == 302
    page_action.refresh_from_db()
    assert page_action.match_type == UrlMatch.PREFIX and not page_action.is_priority
    assert AuditLogEntry.objects.filter(action="scoring.page_action_change").exists()


@pytest.mark.parametrize(
    ("fields", "field_with_error"),
    [
        ({"url_pattern": "example.co.jp/pricing"}, "url_pattern"),  # no scheme
        ({"url_pattern": "ftp://example.co.jp/"}, "url_pattern"),
        ({"url_pattern": f"{SITE}/a b"}, "url_pattern"),
        ({"url_pattern": f"{SITE}/*"}, "url_pattern"),  # a star in an exact URL
        ({"match_type": UrlMatch.WILDCARD, "url_pattern": f"{SITE}/pricing"}, "url_pattern"),
        ({"match_type": UrlMatch.WILDCARD, "url_pattern": "**/*"}, "url_pattern"),
        ({"url_pattern": f"{SITE}/" + "a" * 2000}, "url_pattern"),
        ({"url_pattern": f"{SITE}/" + "料" * 700}, "url_pattern"),  # 6,300 characters encoded
        ({"url_pattern": ""}, "url_pattern"),
        ({"match_type": "regex"}, "match_type"),
        ({"points": "5000"}, "points"),
        ({"points": "-5000"}, "points"),
        ({"points": "many"}, "points"),
        ({"name": ""}, "name"),
        ({"actions": "{not json"}, "actions"),
        ({"actions": json.dumps([{"action": "no_such_action"}])}, "actions"),
        ({"actions": json.dumps([{"action": "add_tag", "config": {}}])}, "actions"),
    ],
)
def test_bad_input_is_refused_with_a_message(
    marketer: User, fields: dict[str, Any], field_with_error: str
) -> None:
    response = client_for(marketer).post(reverse("page_actions:create"), _data(**fields))
    assert response.status_code == 200
    assert field_with_error in response.context["form"].errors
    assert not PageAction.objects.exists()


def test_unknown_ids_are_404(marketer: User) -> None:
    client = client_for(marketer)
    assert client.get(reverse("page_actions:edit", args=[999_999])).status_code == 404
    assert client.post(reverse("page_actions:toggle", args=[999_999])).status_code == 404
    assert client.post(reverse("page_actions:delete", args=[999_999])).status_code == 404
    assert client.get(reverse("page_actions:delete", args=[999_999])).status_code == 405


def test_pausing_activating_and_deleting(marketer: User) -> None:
    page_action = _page_action()
    client = client_for(marketer)
    assert client.post(reverse("page_actions:toggle", args=[page_action.pk])).status_code == 302
    page_action.refresh_from_db()
    assert not page_action.is_active
    client.post(reverse("page_actions:toggle", args=[page_action.pk]))
    page_action.refresh_from_db()
    assert page_action.is_active
    assert client.post(reverse("page_actions:delete", args=[page_action.pk])).status_code == 302
    assert not PageAction.objects.exists()
    assert AuditLogEntry.objects.filter(action="scoring.page_action_delete").exists()


def test_the_list_counts_prospect_views_of_the_last_30_days(
    marketer: User, django_assert_max_num_queries: Any
) -> None:
    pricing = _page_action(url_pattern=f"{SITE}/料金/")
    blog = _page_action(name="ブログ", match_type=UrlMatch.PREFIX, url_pattern=f"{SITE}/blog/")
    prospect = prospect_create(actor=None, data={"email": "p@a.jp"}, refresh_lists=False)
    for url, prospect_id, is_bot in [
        (f"{SITE}/%E6%96%99%E9%87%91/", prospect.pk, False),
        (f"{SITE}/料金", prospect.pk, False),
        (f"{SITE}/%E6%96%99%E9%87%91/", prospect.pk, True),  # a bot
        (f"{SITE}/%E6%96%99%E9%87%91/", None, False),  # anonymous
    ]:
        activity_record(
            type=ActivityType.PAGE_VIEW,
            prospect_id=prospect_id,
            object_type="url",
            object_label=url,
            is_bot=is_bot,
        )
    client = client_for(marketer)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("page_actions:list"))
    rows = {
        page_action.pk: views
        for page_action, views in (
            (row["page_action"], row["views"]) for row in response.context["rows"]
        )
    }
    assert rows == {pricing.pk: 2, blog.pk: 0}


def test_when_counting_takes_too_long_the_list_shows_no_numbers(
    marketer: User, english: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scoring import page_actions

    _page_action()
    prospect = prospect_create(actor=None, data={"email": "p@a.jp"}, refresh_lists=False)
    activity_record(
        type=ActivityType.PAGE_VIEW,
        prospect_id=prospect.pk,
        object_type="url",
        object_label=f"{SITE}/pricing",
    )
    slow = page_actions._COUNTS.replace(
        "AND ({where})", "AND (SELECT true FROM pg_sleep(0.5)) AND ({where})"
    )
    monkeypatch.setattr(page_actions, "_COUNTS", slow)
    monkeypatch.setattr(page_actions, "VIEW_COUNT_TIMEOUT_MS", 50)
    response = client_for(marketer).get(reverse("page_actions:list"))
    assert response.status_code == 200
    assert response.context["rows"][0]["views"] is None
    assert "took too long" in response.content.decode()
    assert PageAction.objects.count() == 1  # the connection is still usable


def test_the_admin_checks_page_actions_like_the_editor(administrator: User) -> None:
    client = client_for(administrator)
    add = reverse("admin:scoring_pageaction_add")
    assert client.get(add).status_code == 200
    refused = client.post(add, _data(url_pattern="example.co.jp/pricing", is_priority=None))
    assert refused.status_code == 200 and not PageAction.objects.exists()
    bad_actions = client.post(add, _data(actions=json.dumps([{"action": "no_such_action"}])))
    assert bad_actions.status_code == 200 and not PageAction.objects.exists()
    assert client.post(add, _data()).status_code == 302
    page_action = PageAction.objects.get()
    assert page_action.actions == [{"action": "add_tag", "config": {"tag": "価格検討"}}]
    change = reverse("admin:scoring_pageaction_change", args=[page_action.pk])
    assert client.get(change).status_code == 200


def test_counting_leaves_the_statement_timeout_as_it_was() -> None:
    from django.db import connection

    from scoring.page_actions import page_action_view_counts

    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        before = cursor.fetchone()[0]
        assert page_action_view_counts(page_actions=[_page_action()]) == {
            PageAction.objects.get().pk: 0
        }
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == before
