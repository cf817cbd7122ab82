"""Static and dynamic lists; full and incremental refreshes; duplicates and merging; assignment."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from mapp.models import AccountSettings, Notification, Role
from mapp.services import user_deactivate
from prospects.models import (
    AssignmentGroup,
    ListMembership,
    ListRefresh,
    Prospect,
    Task,
)
from prospects.services import (
    dynamic_list_refresh,
    dynamic_lists_refresh_for_prospects,
    list_add_prospects,
    list_create,
    mailable_limit_check,
    prospect_create,
    prospect_duplicates_of,
    prospect_find_duplicate,
    prospect_tags_add,
    prospect_update,
    prospects_assign_round_robin,
    prospects_merge,
)
from tests.factories import make_user

pytestmark = pytest.mark.django_db

IT_MANAGERS = {
    "match": "all",
    "conditions": [
        {"subject": "field", "field": "industry", "operator": "equals", "value": "IT"},
        {"subject": "field", "field": "job_level", "operator": "gte", "value": 3},
    ],
}


def _prospect(email: str, **data: Any) -> Prospect:
    return prospect_create(actor=None, data={"email": email, **data}, refresh_lists=False)


def _members(prospect_list: Any) -> set[str]:
    return set(prospect_list.members.values_list("email", flat=True))


def test_a_full_refresh_adds_and_removes_members_and_records_counts(
    django_capture_on_commit_callbacks: Any,
) -> None:
    matching = _prospect("kacho@a.jp", industry="IT", job_title="課長")
    _prospect("staff@b.jp", industry="IT", job_title="担当")
    dynamic = list_create(actor=None, name="IT 課長以上", is_dynamic=True, criteria=IT_MANAGERS)

    first = dynamic_list_refresh(prospect_list=dynamic)
    assert _members(dynamic) == {"kacho@a.jp"}
    assert (first.added_count, first.removed_count, first.member_count) == (1, 0, 1)

    Prospect.objects.filter(pk=matching.pk).update(job_level=1)  # changed behind the services' back
    second = dynamic_list_refresh(prospect_list=dynamic)
    assert _members(dynamic) == set()
    assert (second.added_count, second.removed_count) == (0, 1)
    dynamic.refresh_from_db()
    assert dynamic.last_refreshed_at == second.finished_at
    assert ListRefresh.objects.filter(prospect_list=dynamic, mode="full").count() == 2


def test_incremental_refresh_follows_a_prospect_change() -> None:
    prospect = _prospect("p@a.jp", industry="IT", job_title="担当")
    dynamic = list_create(actor=None, name="IT 課長以上", is_dynamic=True, criteria=IT_MANAGERS)
    dynamic_list_refresh(prospect_list=dynamic)
    assert _members(dynamic) == set()

    prospect_update(
        actor=None,
        prospect=prospect,
        data={"job_title": "情報システム部 部長"},
        refresh_lists=False,
    )
    refreshes = dynamic_lists_refresh_for_prospects([prospect.pk])
    assert _members(dynamic) == {"p@a.jp"}
    assert refreshes[0].mode == "incremental" and refreshes[0].added_count == 1
    # Running it again (a retried task) changes nothing.
    again = dynamic_lists_refresh_for_prospects([prospect.pk])
    assert (again[0].added_count, again[0].removed_count) == (0, 0)


def test_prospect_changes_schedule_the_incremental_refresh(
    django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from mapp.celery import app

    app.conf.task_always_eager = True
    try:
        dynamic = list_create(actor=None, name="IT", is_dynamic=True, criteria=IT_MANAGERS)
        with django_capture_on_commit_callbacks(execute=True):
            prospect_create(
                actor=None, data={"email": "new@a.jp", "industry": "IT", "job_title": "部長"}
            )
        assert _members(dynamic) == {"new@a.jp"}
    finally:
        app.conf.task_always_eager = False


def test_static_lists_take_members_dynamic_lists_refuse_them() -> None:
    prospect = _prospect("p@a.jp")
    static = list_create(actor=None, name="展示会 2026")
    assert list_add_prospects(prospect_list=static, prospect_ids=[prospect.pk]) == 1
    assert list_add_prospects(prospect_list=static, prospect_ids=[prospect.pk]) == 0  # no duplicate
    dynamic = list_create(actor=None, name="dyn", is_dynamic=True, criteria=IT_MANAGERS)
    with pytest.raises(ValidationError):
        list_add_prospects(prospect_list=dynamic, prospect_ids=[prospect.pk])


def test_duplicates_are_found_by_email_or_company_and_name() -> None:
    original = _prospect(
        "yamada@sample.co.jp", last_name="山田", first_name="太郎", company_name="株式会社サンプル"
    )
    assert prospect_find_duplicate(email="YAMADA@SAMPLE.CO.JP") == original
    assert (
        prospect_find_duplicate(
            email="t.yamada@gmail.com",
            company_name="(株)サンプル",
            last_name="山田",
            first_name="太郎",
        )
        == original
    )
    assert (
        prospect_find_duplicate(
            email="t.yamada@gmail.com", company_name="別会社", last_name="山田", first_name="太郎"
        )
        is None
    )
    twin = _prospect(
        "t.yamada@gmail.com", last_name="山田 ", first_name="太郎", company_name="ｻﾝﾌﾟﾙ㈱"
    )
    assert list(prospect_duplicates_of(original)) == [twin]


def test_merge_keeps_newest_values_unions_relations_and_never_loses_an_opt_out() -> None:
    seller = make_user(Role.SALES, email="seller@example.jp")
    survivor = _prospect(
        "yamada@sample.co.jp", last_name="山田", first_name="太郎", phone="03-0000-0000"
    )
    newer = _prospect(
        "t.yamada@gmail.com",
        last_name="山田",
        first_name="太郎",
        job_title="部長",
        phone="090-1111-2222",
    )
    Prospect.objects.filter(pk=newer.pk).update(opted_out=True, assigned_user=seller)
    newer.refresh_from_db()
    prospect_tags_add(prospect_ids=[survivor.pk], names=["A"])
    prospect_tags_add(prospect_ids=[newer.pk], names=["B"])
    static = list_create(actor=None, name="webinar")
    list_add_prospects(prospect_list=static, prospect_ids=[newer.pk])
    task = Task.objects.create(subject="電話", prospect=newer, assignee=seller)

    merged = prospects_merge(actor=None, survivor=survivor, others=[newer])

    assert not Prospect.objects.filter(pk=newer.pk).exists()
    assert merged.email == "yamada@sample.co.jp"
    assert merged.phone == "090-1111-2222"  # the newer record's value
    assert merged.job_title == "部長" and merged.job_level == 4
    assert merged.opted_out is True
    assert merged.assigned_user == seller
    assert set(merged.tags.values_list("name", flat=True)) == {"A", "B"}
    assert ListMembership.objects.filter(prospect_list=static, prospect=merged).exists()
    task.refresh_from_db()
    assert task.prospect == merged


def test_round_robin_assigns_in_turn_and_keeps_existing_owners() -> None:
    first, second = (
        make_user(Role.SALES, email="s1@example.jp"),
        make_user(Role.SALES, email="s2@example.jp"),
    )
    group = AssignmentGroup.objects.create(name="東日本営業")
    group.members.set([first, second])
    owner = make_user(Role.SALES, email="owner@example.jp")
    prospects = [_prospect(f"p{index}@a.jp") for index in range(5)]
    Prospect.objects.filter(pk=prospects[0].pk).update(assigned_user=owner)

    assigned = prospects_assign_round_robin(
        actor=None, prospect_ids=[p.pk for p in prospects], group=group
    )

    assert assigned == 4
    owners = [Prospect.objects.get(pk=p.pk).assigned_user for p in prospects]
    assert owners[0] == owner
    assert owners[1:] == [first, second, first, second]
    # The turn continues where it stopped.
    later = _prospect("later@a.jp")
    prospects_assign_round_robin(actor=None, prospect_ids=[later.pk], group=group)
    assert Prospect.objects.get(pk=later.pk).assigned_user == first


def test_deactivating_a_user_hands_their_prospects_over(administrator: Any) -> None:
    leaving, successor = (
        make_user(Role.SALES, email="l@example.jp"),
        make_user(Role.SALES, email="s@example.jp"),
    )
    prospect = _prospect("p@a.jp")
    Prospect.objects.filter(pk=prospect.pk).update(assigned_user=leaving)
    moved = user_deactivate(actor=administrator, user=leaving, reassign_to=successor)
    assert moved["prospects"] == 1
    assert Prospect.objects.get(pk=prospect.pk).assigned_user == successor


def test_administrators_are_warned_once_a_day_over_the_mailable_limit(administrator: Any) -> None:
    AccountSettings.objects.update_or_create(pk=1, defaults={"mailable_prospect_limit": 1})
    _prospect("a@a.jp")
    _prospect("b@b.jp")
    assert mailable_limit_check() == 2
    assert mailable_limit_check() == 2
    assert Notification.objects.filter(user=administrator).count() == 1


def test_reclassifying_follows_a_changed_dictionary() -> None:
    from prospects.models import ClassificationRule
    from prospects.services import prospects_reclassify

    prospect = _prospect("p@a.jp", job_title="エバンジェリスト")
    assert prospect.job_level == 0
    ClassificationRule.objects.create(kind="job_level", pattern="エバンジェリスト", value="3")
    last_id, changed = prospects_reclassify(after_id=0, batch_size=10)
    assert (last_id, changed) == (prospect.pk, 1)
    assert Prospect.objects.get(pk=prospect.pk).job_level == 3
    assert prospects_reclassify(after_id=last_id) == (0, 0)


def test_tagging_a_prospect_schedules_the_incremental_refresh(
    django_capture_on_commit_callbacks: Any,
) -> None:
    from mapp.celery import app

    prospect = _prospect("p@a.jp")
    tagged = {"match": "all", "conditions": [{"subject": "tag", "operator": "has", "value": "VIP"}]}
    dynamic = list_create(actor=None, name="VIP", is_dynamic=True, criteria=tagged)
    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            prospect_tags_add(prospect_ids=[prospect.pk], names=["vip"])
    finally:
        app.conf.task_always_eager = False
    assert _members(dynamic) == {"p@a.jp"}
