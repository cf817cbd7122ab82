"""The criteria language: validated, nested, compiled to one SQL query."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mapp.models import Role
from prospects.criteria import (
    CriteriaError,
    criteria_catalogue,
    prospects_matching,
    validate_criteria,
)
from prospects.models import CustomField, CustomFieldType, JobLevel, Prospect
from prospects.services import (
    Classifier,
    list_add_prospects,
    list_create,
    prospect_create,
    prospect_set_custom_values,
    prospect_tags_add,
)
from tests.factories import make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def _prospect(email: str, **data: Any) -> Prospect:
    return prospect_create(actor=None, data={"email": email, **data}, refresh_lists=False)


def _emails(criteria: dict[str, Any]) -> set[str]:
    return set(prospects_matching(criteria).values_list("email", flat=True))


def field(name: str, operator: str, value: Any = None, subject: str = "field") -> dict[str, Any]:
    condition = {"subject": subject, "field": name, "operator": operator}
    if value is not None:
        condition["value"] = value
    return condition


THE_ISSUE_EXAMPLE = {
    "match": "all",
    "conditions": [
        {
            "match": "any",
            "conditions": [field("industry", "equals", "IT"), field("industry", "equals", "製造")],
        },
        field("job_level", "gte", int(JobLevel.MANAGER)),
        field("employee_count", "gte", 100),
    ],
}


def test_the_nested_example_from_the_issue_selects_exactly_the_right_prospects() -> None:
    _prospect("it-bucho@a.jp", industry="IT", job_title="情報システム部 部長", employee_count=500)
    _prospect("mfg-kacho@b.jp", industry="製造", job_title="課長", employee_count="１２０")
    _prospect("it-small@c.jp", industry="IT", job_title="部長", employee_count=20)
    _prospect("it-staff@d.jp", industry="IT", job_title="担当", employee_count=900)
    _prospect("finance@e.jp", industry="金融", job_title="部長", employee_count=900)

    assert _emails(THE_ISSUE_EXAMPLE) == {"it-bucho@a.jp", "mfg-kacho@b.jp"}


def test_criteria_compile_to_a_single_sql_query() -> None:
    _prospect("x@a.jp", industry="IT")
    criteria = {
        "match": "all",
        "conditions": [
            *THE_ISSUE_EXAMPLE["conditions"],
            {"subject": "tag", "operator": "has", "value": "展示会"},
            {"subject": "mailability", "operator": "is_mailable"},
        ],
    }
    queryset = prospects_matching(criteria)
    with CaptureQueriesContext(connection) as queries:
        queryset.count()
    assert len(queries) == 1


def test_text_operators_are_case_and_width_insensitive() -> None:
    _prospect("a@a.jp", company_name="株式会社サンプル商事", city="Tokyo")
    _prospect("b@b.jp", company_name="ミライ工業", city="")
    assert _emails({"conditions": [field("city", "equals", "ＴＯＫＹＯ")]}) == {"a@a.jp"}
    assert _emails({"conditions": [field("company_name", "contains", "サンプル")]}) == {"a@a.jp"}
    assert _emails({"conditions": [field("company_name", "starts_with", "ミライ")]}) == {"b@b.jp"}
    assert _emails({"conditions": [field("city", "is_empty")]}) == {"b@b.jp"}
    assert _emails({"conditions": [field("city", "not_equals", "tokyo")]}) == {"b@b.jp"}
    assert _emails({"conditions": [field("city", "in", ["osaka", "tokyo"])]}) == {"a@a.jp"}


def test_number_and_date_operators() -> None:
    old = _prospect("old@a.jp", employee_count=50)
    _prospect("new@b.jp", employee_count=5000)
    Prospect.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=40)
    )
    assert _emails({"conditions": [field("employee_count", "between", [10, 100])]}) == {"old@a.jp"}
    assert _emails({"conditions": [field("created_at", "within_last_days", 30)]}) == {"new@b.jp"}
    assert _emails({"conditions": [field("created_at", "more_than_days_ago", 30)]}) == {"old@a.jp"}
    today = timezone.localdate().isoformat()
    assert _emails({"conditions": [field("created_at", "on", today)]}) == {"new@b.jp"}
    assert _emails({"conditions": [field("last_activity_at", "is_empty")]}) == {
        "old@a.jp",
        "new@b.jp",
    }


def test_match_any_at_the_top_and_deeper_nesting() -> None:
    _prospect("a@a.jp", industry="IT", prefecture="東京都")
    _prospect("b@b.jp", industry="小売", prefecture="大阪府")
    _prospect("c@c.jp", industry="小売", prefecture="東京都")
    criteria = {
        "match": "any",
        "conditions": [
            field("industry", "equals", "IT"),
            {
                "match": "all",
                "conditions": [
                    field("prefecture", "equals", "大阪府"),
                    {"match": "any", "conditions": [field("industry", "equals", "小売")]},
                ],
            },
        ],
    }
    assert _emails(criteria) == {"a@a.jp", "b@b.jp"}


def test_custom_fields_are_queryable_by_type() -> None:
    CustomField.objects.create(label="予算", key="budget", field_type=CustomFieldType.NUMBER)
    CustomField.objects.create(
        label="関心",
        key="interests",
        field_type=CustomFieldType.MULTI_CHOICE,
        choices=["MA", "SFA", "CRM"],
    )
    rich = _prospect("rich@a.jp")
    poor = _prospect("poor@b.jp")
    _prospect("unknown@c.jp")
    prospect_set_custom_values(prospect=rich, values={"budget": "1,000,000", "interests": "MA;CRM"})
    prospect_set_custom_values(prospect=poor, values={"budget": 10, "interests": ["SFA"]})

    custom = "custom_field"
    assert _emails({"conditions": [field("budget", "gte", 500000, custom)]}) == {"rich@a.jp"}
    assert _emails({"conditions": [field("interests", "equals", "CRM", custom)]}) == {"rich@a.jp"}
    assert _emails({"conditions": [field("interests", "not_equals", "CRM", custom)]}) == {
        "poor@b.jp",
        "unknown@c.jp",
    }
    assert _emails({"conditions": [field("budget", "is_empty", None, custom)]}) == {"unknown@c.jp"}


def test_tags_lists_assignment_and_mailability() -> None:
    seller = make_user(Role.SALES, email="seller@example.jp")
    tagged = _prospect("tagged@a.jp")
    listed = _prospect("listed@b.jp")
    opted_out = _prospect("out@c.jp")
    Prospect.objects.filter(pk=opted_out.pk).update(opted_out=True, assigned_user=seller)
    prospect_tags_add(prospect_ids=[tagged.pk], names=["展示会2026"])
    static = list_create(actor=None, name="セミナー参加者")
    list_add_prospects(prospect_list=static, prospect_ids=[listed.pk])

    assert _emails(
        {"conditions": [{"subject": "tag", "operator": "has", "value": "展示会２０２６"}]}
    ) == {"tagged@a.jp"}
    assert _emails(
        {"conditions": [{"subject": "list", "operator": "member_of", "value": static.pk}]}
    ) == {"listed@b.jp"}
    assert _emails(
        {"conditions": [{"subject": "assigned_user", "operator": "is", "value": seller.pk}]}
    ) == {"out@c.jp"}
    assert _emails({"conditions": [{"subject": "assigned_user", "operator": "is_unassigned"}]}) == {
        "tagged@a.jp",
        "listed@b.jp",
    }
    assert _emails({"conditions": [{"subject": "mailability", "operator": "is_not_mailable"}]}) == {
        "out@c.jp"
    }


def test_an_empty_group_matches_everyone() -> None:
    _prospect("a@a.jp")
    assert _emails({"match": "all", "conditions": []}) == {"a@a.jp"}


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ("not an object", ""),
        ({"match": "some"}, "match"),
        ({"conditions": "x"}, "conditions"),
        ({"conditions": [{"subject": "nope"}]}, "conditions.0.subject"),
        ({"conditions": [field("shoe_size", "equals", 1)]}, "conditions.0.field"),
        ({"conditions": [field("employee_count", "contains", 1)]}, "conditions.0.operator"),
        ({"conditions": [field("employee_count", "gte", "many")]}, "conditions.0.value"),
        ({"conditions": [field("employee_count", "gte", float("nan"))]}, "conditions.0.value"),
        ({"conditions": [field("created_at", "on", "2026-13-45")]}, "conditions.0.value"),
        ({"conditions": [field("job_level", "gte", 9)]}, "conditions.0.value"),
        ({"conditions": [field("city", "equals", "x" * 5000)]}, "conditions.0.value"),
        ({"conditions": [field("city", "in", [])]}, "conditions.0.value"),
        (
            {"conditions": [{"subject": "list", "operator": "member_of", "value": 999999}]},
            "conditions.0.value",
        ),
        (
            {"conditions": [{"match": "any", "conditions": [field("city", "equals", None)]}]},
            "conditions.0.conditions.0.value",
        ),
    ],
)
def test_invalid_documents_are_refused_with_the_faulty_path(document: Any, path: str) -> None:
    with pytest.raises(CriteriaError) as raised:
        validate_criteria(document)
    assert raised.value.path == path


def test_hostile_documents_are_bounded() -> None:
    deep: dict[str, Any] = {"match": "all", "conditions": []}
    cursor = deep
    for _ in range(10):
        inner: dict[str, Any] = {"match": "all", "conditions": []}
        cursor["conditions"].append(inner)
        cursor = inner
    with pytest.raises(CriteriaError, match=r"(?i)nest"):
        validate_criteria(deep)
    with pytest.raises(CriteriaError, match=r"(?i)at most"):
        validate_criteria({"conditions": [field("city", "equals", "x")] * 500})


def test_the_catalogue_describes_every_subject_for_the_builder(db: None) -> None:
    catalogue = criteria_catalogue()
    keys = {subject["key"] for subject in catalogue["subjects"]}
    assert {
        "field",
        "company",
        "custom_field",
        "tag",
        "list",
        "assigned_user",
        "mailability",
    } <= keys
    fields = next(subject for subject in catalogue["subjects"] if subject["key"] == "field")[
        "fields"
    ]
    job_level = next(item for item in fields if item["key"] == "job_level")
    assert job_level["type"] == "ordinal"
    assert ["3", str(JobLevel.MANAGER.label)] in [list(choice) for choice in job_level["choices"]]


def test_normalised_columns_are_derived_on_create(db: None) -> None:
    prospect = _prospect(
        "Yamada@Example.JP",
        last_name="山田",
        first_name="太郎",
        company_name="㈱サンプル商事",
        department="情報システム部",
        job_title="課長",
    )
    assert prospect.email == "yamada@example.jp"
    assert prospect.company_name_normalized == "サンプル商事"
    assert prospect.department_category == "it"
    assert prospect.job_level == JobLevel.MANAGER
    assert prospect.company is not None and prospect.company.name_normalized == "サンプル商事"
    other = _prospect("other@example.jp", company_name="サンプル商事株式会社")
    assert other.company == prospect.company
    assert Classifier.load().job_level_of("部長") == JobLevel.DIRECTOR
