"""Grading pages: roles, the profile editor with its criteria, the undeletable Default
profile, deleting a profile, and the prospect page's "Why this grade" panel and controls."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from mapp.models import AuditLogEntry, User
from prospects.models import Prospect
from scoring.grading import default_profile
from scoring.models import (
    CriterionMark,
    CriterionState,
    GradingCriterion,
    GradingProfile,
    ProspectProfile,
    Regrade,
    RescoreStatus,
)
from tests.conftest import client_for
from tests.factories import ProspectFactory

pytestmark = pytest.mark.django_db

MANUFACTURING = {
    "match": "all",
    "conditions": [
        {"subject": "field", "field": "industry", "operator": "equals", "value": "製造業"}
    ],
}


def _grade(prospect: Prospect) -> str:
    return Prospect.objects.values_list("grade", flat=True).get(pk=prospect.pk)


def _prospect(**fields: Any) -> Prospect:
    fields.setdefault("company_name", "株式会社サンプル製作所")
    return ProspectFactory.create(**fields)


def _formset_data(
    profile: GradingProfile | None, rows: list[dict[str, Any]], **fields: Any
) -> dict[str, Any]:
    """What the profile page posts: the profile's fields and one block per criterion row."""
    existing = list(profile.criteria.all()) if profile is not None else []
    data: dict[str, Any] = {
        "name": profile.name if profile is not None else "",
        "description": "",
        "criteria-TOTAL_FORMS": str(len(rows)),
        "criteria-INITIAL_FORMS": str(len(existing)),
        "criteria-MIN_NUM_FORMS": "0",
        "criteria-MAX_NUM_FORMS": "1000",
        **fields,
    }
    for index, row in enumerate(rows):
        prefix = f"criteria-{index}-"
        if index < len(existing):
            data[f"{prefix}id"] = str(existing[index].pk)
            data[f"{prefix}profile"] = str(profile.pk) if profile is not None else ""
        data[f"{prefix}name"] = row.get("name", "")
        data[f"{prefix}weight"] = str(row.get("weight", 2))
        data[f"{prefix}criteria"] = json.dumps(
            row.get("criteria", {"match": "all", "conditions": []}), ensure_ascii=False
        )
        data[f"{prefix}ORDER"] = str(row.get("order", index + 1))
        if row.get("delete"):
            data[f"{prefix}DELETE"] = "on"
    return data


# --- roles and ids ----------------------------------------------------------------------------


def test_sales_cannot_see_or_edit_grading_and_view_only_roles_cannot_edit(
    sales_user: User, sales_manager: User
) -> None:
    client = client_for(sales_user)
    assert client.get(reverse("grading:profiles")).status_code == 403
    assert client.get(reverse("grading:profile_create")).status_code == 403
    response = client.post(
        reverse("grading:profile_create"), _formset_data(None, [], name="営業の提案")
    )
    assert response.status_code == 403
    assert not GradingProfile.objects.filter(name="営業の提案").exists()
    manager = client_for(sales_manager)  # automation: view only
    assert manager.get(reverse("grading:profiles")).status_code == 200
    assert manager.get(reverse("grading:profile_create")).status_code == 403
    special = GradingProfile.objects.create(name="金融業")
    assert manager.post(reverse("grading:profile_delete", args=[special.pk])).status_code == 403
    assert GradingProfile.objects.filter(pk=special.pk).exists()


def test_unknown_ids_give_404(marketer: User) -> None:
    client = client_for(marketer)
    assert client.get(reverse("grading:profile_edit", args=[999999])).status_code == 404
    assert client.post(reverse("grading:profile_delete", args=[999999])).status_code == 404
    prospect = _prospect()
    assert (
        client.post(
            reverse("grading:prospect_mark", args=[prospect.pk, 999999]), {"state": "matched"}
        ).status_code
        == 404
    )
    criterion = default_profile().criteria.first()
    assert criterion is not None
    assert (
        client.post(
            reverse("grading:prospect_mark", args=[999999, criterion.pk]), {"state": "matched"}
        ).status_code
        == 404
    )
    assert (
        client.post(
            reverse("grading:prospect_profile", args=[999999]), {"profile": criterion.profile_id}
        ).status_code
        == 404
    )


# --- the profiles page and editor -------------------------------------------------------------


def test_profiles_page_shows_counts_and_the_latest_regrade(marketer: User, english: None) -> None:
    special = GradingProfile.objects.create(name="<b>大企業</b>")
    on_special = [_prospect() for _ in range(2)]
    [_prospect() for _ in range(3)]
    ProspectProfile.objects.bulk_create(
        ProspectProfile(prospect=prospect, profile=special) for prospect in on_special
    )
    Regrade.objects.create(profile=special, status=RescoreStatus.RUNNING, total=10, processed=4)
    client = client_for(marketer)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("grading:profiles"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "&lt;b&gt;大企業&lt;/b&gt;" in html and "<b>大企業</b>" not in html
    assert "Regrading: 40%" in html
    counts = [
        cell.split(">")[1].split("<")[0]
        for cell in html.split('data-testid="profile-prospects"')[1:]
    ]
    assert counts == ["3", "2"]  # Default first, then by name
    for _ in range(20):
        GradingProfile.objects.create(name=f"プロファイル{_}")
    with CaptureQueriesContext(connection) as more:
        client.get(reverse("grading:profiles"))
    assert len(more.captured_queries) == len(queries.captured_queries)


def test_a_marketer_creates_a_profile_with_criteria_and_its_prospects_are_regraded(
    marketer: User,
    english: None,
    django_capture_on_commit_callbacks: Any,
    eager_celery: None,
) -> None:
    client = client_for(marketer)
    page = client.get(reverse("grading:profile_create"))
    assert page.status_code == 200
    assert "data-criteria-builder" in page.content.decode()
    data = _formset_data(
        None,
        [
            {"name": "業種", "weight": 3, "criteria": MANUFACTURING},
            {"name": "部長以上", "weight": 1, "criteria": {"match": "all", "conditions": []}},
            {"name": "", "weight": 2},  # the blank row for a new criterion: ignored
        ],
        name="製造業の部長",
        description="製造業の決裁者",
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("grading:profile_create"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    profile = GradingProfile.objects.get(name="製造業の部長")
    assert list(profile.criteria.values_list("name", "weight", "position")) == [
        ("業種", 3, 0),
        ("部長以上", 1, 1),
    ]
    assert profile.criteria.get(position=0).criteria["conditions"][0]["value"] == "製造業"
    assert Regrade.objects.get(profile=profile).status == RescoreStatus.DONE
    assert AuditLogEntry.objects.filter(action="grading.profile_create").exists()
    followed = client.get(reverse("grading:profiles")).content.decode()
    assert "製造業の部長" in followed

    # Editing: reorder, change a weight, delete one; the profile's prospect is regraded.
    prospect = _prospect(industry="製造業")
    ProspectProfile.objects.create(prospect=prospect, profile=profile)
    edit = _formset_data(
        profile,
        [
            {"name": "業種", "weight": 1, "criteria": MANUFACTURING, "order": 2},
            {"name": "部長以上", "weight": 1, "order": 1, "delete": True},
            {"name": "地域", "weight": 2, "order": 1},
        ],
        name="製造業の部長",
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("grading:profile_edit", args=[profile.pk]), edit)
    assert response.status_code == 302
    assert list(profile.criteria.values_list("name", "weight", "position")) == [
        ("地域", 2, 0),
        ("業種", 1, 1),
    ]
    assert _grade(prospect) == "D+"


def test_invalid_criteria_are_refused_with_a_message(marketer: User, english: None) -> None:
    client = client_for(marketer)
    on_grade = {
        "match": "all",
        "conditions": [{"subject": "grade", "operator": "gte", "value": "B"}],
    }
    response = client.post(
        reverse("grading:profile_create"),
        _formset_data(None, [{"name": "自己参照", "criteria": on_grade}], name="不正"),
    )
    assert response.status_code == 200
    assert "cannot test the grade itself" in response.content.decode()
    bad_json = _formset_data(None, [{"name": "壊れた"}], name="不正")
    bad_json["criteria-0-criteria"] = "{not json"
    assert client.post(reverse("grading:profile_create"), bad_json).status_code == 200
    no_weight = _formset_data(None, [{"name": "重み", "weight": 9}], name="不正")
    assert client.post(reverse("grading:profile_create"), no_weight).status_code == 200
    assert not GradingProfile.objects.filter(name="不正").exists()


def test_the_default_profile_can_be_edited_but_not_renamed_or_deleted(
    marketer: User, english: None
) -> None:
    default = default_profile()
    client = client_for(marketer)
    assert client.post(reverse("grading:profile_delete", args=[default.pk])).status_code == 403
    assert GradingProfile.objects.filter(pk=default.pk, is_default=True).exists()
    rows = [
        {"name": criterion.name, "weight": criterion.weight} for criterion in default.criteria.all()
    ]
    renamed = _formset_data(default, rows, name="別名")
    response = client.post(reverse("grading:profile_edit", args=[default.pk]), renamed)
    assert response.status_code == 200
    assert "The Default profile cannot be renamed." in response.content.decode()
    default.refresh_from_db()
    assert default.name == "Default"
    rows[1]["criteria"] = MANUFACTURING
    response = client.post(
        reverse("grading:profile_edit", args=[default.pk]), _formset_data(default, rows)
    )
    assert response.status_code == 302
    assert default.criteria.get(position=1).criteria["conditions"][0]["value"] == "製造業"
    listing = client.get(reverse("grading:profiles")).content.decode()
    assert reverse("grading:profile_delete", args=[default.pk]) not in listing


def test_deleting_a_profile_moves_its_prospects_back_to_default_and_regrades(
    marketer: User, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    special = GradingProfile.objects.create(name="大企業")
    GradingCriterion.objects.create(profile=special, name="業種", criteria=MANUFACTURING, weight=3)
    prospect = _prospect(industry="製造業")
    ProspectProfile.objects.create(prospect=prospect, profile=special)
    Prospect.objects.filter(pk=prospect.pk).update(grade="C")
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(marketer).post(reverse("grading:profile_delete", args=[special.pk]))
    assert response.status_code == 302
    assert not GradingProfile.objects.filter(pk=special.pk).exists()
    assert not ProspectProfile.objects.filter(prospect=prospect).exists()
    assert _grade(prospect) == "D"  # the Default criteria are still empty
    assert Regrade.objects.get(profile=default_profile()).status == RescoreStatus.DONE


# --- the prospect page ----------------------------------------------------------------------------


def test_the_prospect_page_explains_the_grade(marketer: User, english: None) -> None:
    default = default_profile()
    industry = default.criteria.get(position=1)
    industry.criteria = MANUFACTURING
    industry.save()
    prospect = _prospect(industry="製造業", job_title="部長")
    client = client_for(marketer)
    from scoring.grading import regrade

    regrade(prospect_ids=[prospect.pk])
    html = client.get(reverse("prospects:detail", args=[prospect.pk])).content.decode()
    assert "Why this grade" in html and 'data-testid="grade-panel"' in html
    assert "業種 / Industry" in html and "2/3 of a letter" in html
    assert "From the prospect's data" in html
    assert "No conditions yet: unknown for everyone." in html
    arithmetic = html.split('data-testid="grade-arithmetic"')[1].split("</p>")[0]
    assert "+2/3" in arithmetic and "C-" in arithmetic
    assert reverse("grading:prospect_mark", args=[prospect.pk, industry.pk]) in html


def test_marking_by_hand_and_resetting_from_the_prospect_page(
    marketer: User, english: None
) -> None:
    default = default_profile()
    industry = default.criteria.get(position=1)
    industry.criteria = MANUFACTURING
    industry.save()
    prospect = _prospect(industry="製造業")
    client = client_for(marketer)
    url = reverse("grading:prospect_mark", args=[prospect.pk, industry.pk])
    response = client.post(url, {"state": "not_matched"})
    assert response.status_code == 302
    assert _grade(prospect) == "F"
    mark = CriterionMark.objects.get(prospect=prospect)
    assert mark.state == CriterionState.NOT_MATCHED and mark.marked_by == marketer
    html = client.get(reverse("prospects:detail", args=[prospect.pk])).content.decode()
    assert f"Marked by hand by {marketer.display_name}" in html
    assert "the data says: Matches" in html
    assert client.post(url, {"state": "maybe"}).status_code == 302  # refused with a message
    assert CriterionMark.objects.get(prospect=prospect).state == CriterionState.NOT_MATCHED
    client.post(url, {"state": "reset"})
    assert not CriterionMark.objects.filter(prospect=prospect).exists()
    assert _grade(prospect) == "C-"
    assert client.get(url).status_code == 405


def test_changing_the_profile_from_the_prospect_page(marketer: User, english: None) -> None:
    special = GradingProfile.objects.create(name="製造業")
    GradingCriterion.objects.create(profile=special, name="業種", criteria=MANUFACTURING, weight=3)
    prospect = _prospect(industry="製造業")
    client = client_for(marketer)
    html = client.get(reverse("prospects:detail", args=[prospect.pk])).content.decode()
    assert reverse("grading:prospect_profile", args=[prospect.pk]) in html
    response = client.post(
        reverse("grading:prospect_profile", args=[prospect.pk]), {"profile": special.pk}
    )
    assert response.status_code == 302
    assert ProspectProfile.objects.get(prospect=prospect).profile == special
    assert _grade(prospect) == "C"
    client.post(reverse("grading:prospect_profile", args=[prospect.pk]), {"profile": "999999"})
    assert ProspectProfile.objects.get(prospect=prospect).profile == special


def test_sales_users_mark_only_their_own_prospects(sales_user: User, english: None) -> None:
    criterion = default_profile().criteria.get(position=0)
    own = _prospect(assigned_user=sales_user)
    others = _prospect()
    client = client_for(sales_user)
    assert (
        client.post(
            reverse("grading:prospect_mark", args=[others.pk, criterion.pk]), {"state": "matched"}
        ).status_code
        == 404
    )
    assert not CriterionMark.objects.filter(prospect=others).exists()
    assert (
        client.post(
            reverse("grading:prospect_mark", args=[own.pk, criterion.pk]), {"state": "matched"}
        ).status_code
        == 302
    )
    assert _grade(own) == "C-"
    html = client.get(reverse("prospects:detail", args=[own.pk])).content.decode()
    assert "Why this grade" in html


def test_view_only_prospect_roles_see_the_panel_without_controls(
    administrator: User, english: None
) -> None:
    from mapp.models import Role

    viewer_role = Role.objects.create(
        slug="viewer",
        name="閲覧者",
        permissions={"prospects": 1},
        prospect_scope="all",
    )
    viewer = User.objects.create(email="viewer@example.jp", role=viewer_role)
    prospect = _prospect()
    criterion = default_profile().criteria.get(position=0)
    client = client_for(viewer)
    html = client.get(reverse("prospects:detail", args=[prospect.pk])).content.decode()
    assert "Why this grade" in html
    assert reverse("grading:prospect_mark", args=[prospect.pk, criterion.pk]) not in html
    response = client.post(
        reverse("grading:prospect_mark", args=[prospect.pk, criterion.pk]), {"state": "matched"}
    )
    assert response.status_code == 403


# --- the Django admin ---------------------------------------------------------------------------


def test_admin_edits_regrade_and_the_default_profile_stays(
    administrator: User, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    default = default_profile()
    criterion = default.criteria.get(position=1)
    prospect = _prospect(industry="製造業")
    client = client_for(administrator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:scoring_gradingcriterion_change", args=[criterion.pk]),
            {
                "profile": default.pk,
                "name": criterion.name,
                "criteria": json.dumps(MANUFACTURING, ensure_ascii=False),
                "weight": 3,
                "position": criterion.position,
            },
        )
    assert response.status_code == 302
    assert Regrade.objects.get(profile=default).status == RescoreStatus.DONE
    assert _grade(prospect) == "C"
    assert (
        client.get(reverse("admin:scoring_gradingprofile_delete", args=[default.pk])).status_code
        == 403
    )
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("admin:scoring_criterionmark_add"),
            {
                "prospect": prospect.pk,
                "criterion": criterion.pk,
                "state": CriterionState.NOT_MATCHED,
            },
        )
    assert _grade(prospect) == "F"  # a mark made in the admin regrades at once
