"""Automation rule pages: roles, 404s, CSRF, saving paused or running, bad input, the rule page."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from engagement.models import AutomationRule, AutomationRuleMatch, RuleStatus
from engagement.rules import automation_rule_evaluate_all
from mapp.models import AuditLogEntry, User
from prospects.models import CustomField
from prospects.services import list_create
from tests.conftest import client_for
from tests.engagement.conftest import (
    add_tag,
    criteria_of,
    field_condition,
    make_prospect,
    make_rule,
)

pytestmark = pytest.mark.django_db

IT = criteria_of(field_condition("industry", "equals", "IT"))
# Session user and role, then the rules. The rule page adds the rule, one COUNT for both preview
# numbers, the criteria catalogue (a query per subject with choices: lists, users, custom fields,
# grading profiles…; apps may add subjects), the action's list name and one page of history.
LIST_QUERIES = 4
DETAIL_QUERIES = 18


def _post_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "IT企業にタグ",
        "description": "",
        "criteria": json.dumps(IT, ensure_ascii=False),
        "actions": json.dumps([add_tag("IT企業")], ensure_ascii=False),
        "repeat_after_days": "",
    }
    data.update(overrides)
    return data


def test_sales_users_cannot_see_or_change_rules(sales_user: User) -> None:
    rule = make_rule(criteria=IT, actions=[add_tag("x")], running=False)
    client = client_for(sales_user)
    assert client.get(reverse("automation:list")).status_code == 403
    assert client.get(reverse("automation:detail", args=[rule.pk])).status_code == 403
    assert client.get(reverse("automation:create")).status_code == 403
    assert client.post(reverse("automation:create"), _post_data()).status_code == 403
    assert client.post(reverse("automation:resume", args=[rule.pk])).status_code == 403
    rule.refresh_from_db()
    assert rule.status == RuleStatus.PAUSED
    assert AutomationRule.objects.count() == 1


def test_sales_managers_see_rules_but_cannot_change_them(sales_manager: User) -> None:
    rule = make_rule(criteria=IT, actions=[add_tag("x")])
    client = client_for(sales_manager)
    listing = client.get(reverse("automation:list"))
    assert listing.status_code == 200 and rule.name in listing.content.decode()
    page = client.get(reverse("automation:detail", args=[rule.pk]))
    assert page.status_code == 200
    assert reverse("automation:pause", args=[rule.pk]) not in page.content.decode()
    assert client.get(reverse("automation:edit", args=[rule.pk])).status_code == 403
    assert client.post(reverse("automation:pause", args=[rule.pk])).status_code == 403
    assert client.post(reverse("automation:delete", args=[rule.pk])).status_code == 403
    rule.refresh_from_db()
    assert rule.status == RuleStatus.RUNNING


def test_unknown_rules_are_404(marketer: User) -> None:
    client = client_for(marketer)
    for name in ("detail", "edit"):
        assert client.get(reverse(f"automation:{name}", args=[999999])).status_code == 404
    for name in ("resume", "pause", "delete"):
        assert client.post(reverse(f"automation:{name}", args=[999999])).status_code == 404


def test_state_changes_need_a_post_with_a_csrf_token(marketer: User) -> None:
    rule = make_rule(criteria=IT, actions=[add_tag("x")], running=False)
    client = client_for(marketer)
    assert client.get(reverse("automation:resume", args=[rule.pk])).status_code == 405
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(marketer)
    assert guarded.post(reverse("automation:resume", args=[rule.pk])).status_code == 403
    assert guarded.post(reverse("automation:delete", args=[rule.pk])).status_code == 403
    assert guarded.post(reverse("automation:create"), _post_data()).status_code == 403
    rule.refresh_from_db()
    assert rule.status == RuleStatus.PAUSED
    assert AutomationRule.objects.count() == 1


def test_a_marketer_saves_a_rule_paused_then_resumes_it(
    marketer: User,
    english: None,
    django_capture_on_commit_callbacks: Any,
    eager_celery: None,
) -> None:
    prospect = make_prospect("a@it.jp", industry="IT", last_name="佐藤", first_name="花子")
    client = client_for(marketer)
    form = client.get(reverse("automation:create"))
    assert form.status_code == 200
    assert "data-criteria-builder" in form.content.decode()
    assert "data-action-editor" in form.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("automation:create"), _post_data())
    rule = AutomationRule.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("automation:detail", args=[rule.pk])
    assert rule.status == RuleStatus.PAUSED and rule.created_by == marketer
    assert not AutomationRuleMatch.objects.exists()
    page = client.get(reverse("automation:detail", args=[rule.pk])).content.decode()
    assert "1 prospect meets the criteria now." in page
    assert "Resuming runs the actions on 1 of them" in page
    assert "Prospect field: Industry is IT" in page
    assert "Add tag — Tag: IT企業" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("automation:resume", args=[rule.pk]))
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.status == RuleStatus.RUNNING and rule.matched_count == 1
    page = client.get(reverse("automation:detail", args=[rule.pk])).content.decode()
    assert reverse("prospects:detail", args=[prospect.pk]) in page
    assert "佐藤 花子" in page
    assert AuditLogEntry.objects.filter(action="automation.rule_resume").exists()

    response = client.post(reverse("automation:pause", args=[rule.pk]))
    rule.refresh_from_db()
    assert response.status_code == 302 and rule.status == RuleStatus.PAUSED


def test_save_and_run_starts_the_rule_on_existing_prospects(
    marketer: User, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    prospect = make_prospect("a@it.jp", industry="IT")
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(marketer).post(
            reverse("automation:create"), {**_post_data(), "run": "1"}
        )
    assert response.status_code == 302
    rule = AutomationRule.objects.get()
    assert rule.status == RuleStatus.RUNNING
    assert list(rule.matches.values_list("prospect_id", flat=True)) == [prospect.pk]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": ""}, "This field is required."),
        ({"criteria": ""}, "Add at least one condition"),
        ({"criteria": "{not json"}, "not valid JSON"),
        (
            {"criteria": json.dumps(criteria_of(field_condition("nope", "equals", "x")))},
            "Unknown field",
        ),
        ({"actions": "[]"}, "Add at least one action."),
        ({"actions": "{oops"}, "The actions could not be read"),
        ({"actions": json.dumps([{"action": "launch_rocket"}])}, "Unknown action"),
        (
            {"actions": json.dumps([{"action": "add_to_list", "config": {"list": 999999}}])},
            "No such static list.",
        ),
        ({"repeat": "on"}, "A repeating rule needs a number of days"),
        ({"repeat": "on", "repeat_after_days": "0"}, "greater than or equal to 1"),
        ({"repeat": "on", "repeat_after_days": "abc"}, "Enter a whole number."),
    ],
)
def test_bad_input_is_refused_with_a_message(
    marketer: User, english: None, overrides: dict[str, Any], message: str
) -> None:
    response = client_for(marketer).post(reverse("automation:create"), _post_data(**overrides))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not AutomationRule.objects.exists()


def test_editing_a_running_rule_evaluates_every_prospect_again(
    marketer: User, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    make_prospect("a@it.jp", industry="IT")
    food = make_prospect("b@food.jp", industry="食品")
    rule = make_rule(criteria=IT, actions=[add_tag("x")])
    automation_rule_evaluate_all(rule_id=rule.pk)
    client = client_for(marketer)
    assert client.get(reverse("automation:edit", args=[rule.pk])).status_code == 200

    food_criteria = criteria_of(field_condition("industry", "equals", "食品"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("automation:edit", args=[rule.pk]),
            _post_data(criteria=json.dumps(food_criteria, ensure_ascii=False)),
        )

    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.status == RuleStatus.RUNNING and rule.criteria == food_criteria
    assert food.pk in set(rule.matches.values_list("prospect_id", flat=True))
    assert rule.matched_count == 2


def test_a_paused_rule_with_an_error_shows_it_and_cannot_resume_until_fixed(
    marketer: User, english: None, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    custom_field = CustomField.objects.create(label="予算", key="budget", field_type="text")
    rule = make_rule(
        criteria=criteria_of(
            {"subject": "custom_field", "field": "budget", "operator": "is_not_empty"}
        ),
        actions=[add_tag("x")],
    )
    custom_field.delete()
    automation_rule_evaluate_all(rule_id=rule.pk)
    client = client_for(marketer)

    listing = client.get(reverse("automation:list")).content.decode()
    assert 'data-testid="rule-error"' in listing
    page = client.get(reverse("automation:detail", args=[rule.pk]))
    assert page.status_code == 200
    assert "paused because it could not be evaluated" in page.content.decode()
    assert "The criteria are not valid" in page.content.decode()

    response = client.post(reverse("automation:resume", args=[rule.pk]), follow=True)
    assert "The rule cannot run" in response.content.decode()
    rule.refresh_from_db()
    assert rule.status == RuleStatus.PAUSED

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("automation:edit", args=[rule.pk]), {**_post_data(), "run": "1"})
    rule.refresh_from_db()
    assert rule.status == RuleStatus.RUNNING and rule.error == ""


def test_deleting_a_rule_keeps_what_its_actions_did(marketer: User) -> None:
    prospect = make_prospect("a@it.jp", industry="IT")
    rule = make_rule(criteria=IT, actions=[add_tag("残る")])
    automation_rule_evaluate_all(rule_id=rule.pk)

    response = client_for(marketer).post(reverse("automation:delete", args=[rule.pk]))

    assert response.status_code == 302 and response["Location"] == reverse("automation:list")
    assert not AutomationRule.objects.exists() and not AutomationRuleMatch.objects.exists()
    assert set(prospect.tags.values_list("name", flat=True)) == {"残る"}


def test_the_rule_list_and_page_take_a_fixed_number_of_queries(
    marketer: User, django_assert_max_num_queries: Any
) -> None:
    cold = list_create(actor=None, name="休眠")
    for number in range(5):
        rule = make_rule(
            name=f"ルール{number}",
            criteria=IT,
            actions=[{"action": "add_to_list", "config": {"list": cold.pk}}],
        )
    prospects = [make_prospect(f"p{number}@it.jp", industry="IT") for number in range(20)]
    automation_rule_evaluate_all(rule_id=rule.pk)
    client = client_for(marketer)

    with django_assert_max_num_queries(LIST_QUERIES):
        assert client.get(reverse("automation:list")).status_code == 200
    with django_assert_max_num_queries(DETAIL_QUERIES):
        page = client.get(reverse("automation:detail", args=[rule.pk]))
    assert page.status_code == 200
    content = page.content.decode()
    assert all(reverse("prospects:detail", args=[item.pk]) in content for item in prospects)
