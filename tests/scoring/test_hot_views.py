"""The HOT rule page (roles, saving, validation, counts, the rule's error) and the status on the
prospect pages (badge, HOT since, list column and filter)."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from mapp.models import AuditLogEntry, User
from prospects.models import HotStatus, Prospect
from scoring.hot import hot_rule_get
from scoring.models import HotRule
from tests.conftest import client_for
from tests.factories import ProspectFactory

pytestmark = pytest.mark.django_db

URL = reverse("hot:settings")


def _post(user: User, **overrides: Any) -> Any:
    data = {
        "threshold": "100",
        "criteria": json.dumps(
            {
                "match": "all",
                "conditions": [
                    {"subject": "field", "field": "job_level", "operator": "gte", "value": 3}
                ],
            }
        ),
        "actions": json.dumps([{"action": "notify_assigned_user", "config": {"note": "電話する"}}]),
        "digest_enabled": "on",
        "digest_hour": "9",
    }
    data.update(overrides)
    return client_for(user).post(URL, data)


def _with_status(status: str, **fields: Any) -> Prospect:
    prospect = ProspectFactory.create(**fields)
    since = timezone.now() - datetime.timedelta(hours=2) if status == HotStatus.HOT else None
    Prospect.objects.filter(pk=prospect.pk).update(hot_status=status, hot_since=since)
    prospect.refresh_from_db()
    return prospect


def test_the_page_shows_the_rule_the_editors_and_the_counts(marketer: User) -> None:
    _with_status(HotStatus.HOT)
    _with_status(HotStatus.HOT)
    _with_status(HotStatus.ENGAGED)

    response = client_for(marketer).get(URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="threshold" value="80"' in html
    assert "data-criteria-builder" in html and "data-action-editor" in html
    assert 'data-testid="count-hot">2<' in html
    assert 'data-testid="count-engaged">1<' in html
    assert 'data-testid="count-no_response">0<' in html
    assert f'href="{reverse("prospects:list")}?status=hot"' in html


def test_saving_changes_the_rule_and_is_audited(
    marketer: User, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = _post(marketer)

    assert response.status_code == 302
    rule = hot_rule_get()
    assert (rule.threshold, rule.digest_enabled, rule.digest_hour) == (100, True, 9)
    assert rule.criteria["conditions"][0]["field"] == "job_level"
    assert rule.actions == [{"action": "notify_assigned_user", "config": {"note": "電話する"}}]
    assert rule.updated_by == marketer
    assert AuditLogEntry.objects.filter(action="scoring.hot_rule_change").exists()
    assert len(callbacks) == 1  # the evaluation of everyone, queued after commit


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("threshold", "abc"),
        ("threshold", "0"),
        ("threshold", "99999999999"),
        ("digest_hour", "25"),
        ("criteria", "{not json"),
        ("criteria", json.dumps({"match": "all", "conditions": [{"subject": "nope"}]})),
        (
            "criteria",
            json.dumps(
                {
                    "match": "all",
                    "conditions": [
                        {
                            "subject": "field",
                            "field": "hot_status",
                            "operator": "equals",
                            "value": "hot",
                        }
                    ],
                }
            ),
        ),
        ("actions", "[not json"),
        ("actions", json.dumps([{"action": "no_such_action", "config": {}}])),
        ("actions", json.dumps([{"action": "add_to_list", "config": {"list": 999999}}])),
    ],
)
def test_bad_input_is_shown_back_never_a_500(marketer: User, field: str, value: str) -> None:
    response = _post(marketer, **{field: value})

    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="error"' in html or 'role="alert"' in html
    assert hot_rule_get().threshold == 80  # unchanged


def test_viewers_see_the_rule_without_a_form_and_may_not_post(
    sales_manager: User, english: None
) -> None:
    HotRule.objects.update(
        criteria={
            "match": "all",
            "conditions": [
                {"subject": "field", "field": "job_level", "operator": "gte", "value": 3}
            ],
        }
    )
    response = client_for(sales_manager).get(URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="hot-rule-summary"' in html
    assert "1 condition<" in html
    assert "Notify assigned user, Create task for assigned user" in html
    assert "Every day after 08:00" in html
    assert "hot-rule-form" not in html

    assert _post(sales_manager).status_code == 403
    assert hot_rule_get().threshold == 80


def test_sales_may_not_open_the_page(sales_user: User) -> None:
    assert client_for(sales_user).get(URL).status_code == 403
    assert _post(sales_user).status_code == 403


def test_the_rule_error_is_shown(marketer: User) -> None:
    rule = hot_rule_get()
    HotRule.objects.filter(pk=rule.pk).update(
        error="conditions.0.field: Unknown custom field 'budget'."
    )

    html = client_for(marketer).get(URL).content.decode()

    assert 'data-testid="hot-rule-error"' in html
    assert "Unknown custom field &#x27;budget&#x27;." in html


def test_the_prospect_page_shows_the_status_and_hot_since(marketer: User) -> None:
    prospect = _with_status(HotStatus.HOT)

    html = (
        client_for(marketer).get(reverse("prospects:detail", args=[prospect.pk])).content.decode()
    )

    assert f'data-hot-status="{HotStatus.HOT}"' in html
    since = timezone.localtime(prospect.hot_since).strftime("%Y-%m-%d %H:%M")
    assert since in html


def test_the_prospect_list_has_a_status_column_and_filter(marketer: User) -> None:
    hot = _with_status(HotStatus.HOT, email="hot@a.jp")
    engaged = _with_status(HotStatus.ENGAGED, email="engaged@a.jp")
    _with_status(HotStatus.NO_RESPONSE, email="cold@a.jp")
    client = client_for(marketer)

    everyone = client.get(reverse("prospects:list")).content.decode()
    assert everyone.count("data-hot-status=") == 3

    only_hot = client.get(reverse("prospects:list") + "?status=hot").content.decode()
    assert "hot@a.jp" in only_hot and "engaged@a.jp" not in only_hot and "cold@a.jp" not in only_hot
    assert '<option value="hot" selected>' in only_hot

    engaged_page = client.get(reverse("prospects:list") + "?status=engaged").content.decode()
    assert engaged.email in engaged_page and hot.email not in engaged_page

    ignored = client.get(reverse("prospects:list") + "?status=bogus").content.decode()
    assert ignored.count("data-hot-status=") == 3


def test_the_status_filter_keeps_the_sales_scope(sales_user: User) -> None:
    mine = _with_status(HotStatus.HOT, email="mine@a.jp", assigned_user=sales_user)
    _with_status(HotStatus.HOT, email="theirs@a.jp")

    html = client_for(sales_user).get(reverse("prospects:list") + "?status=hot").content.decode()

    assert mine.email in html and "theirs@a.jp" not in html


def test_the_admin_cannot_add_a_second_rule_and_a_change_evaluates_everyone(
    administrator: User, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    prospect = ProspectFactory.create()
    Prospect.objects.filter(pk=prospect.pk).update(score=60)
    rule = hot_rule_get()
    client = client_for(administrator)
    assert client.get(reverse("admin:scoring_hotrule_add")).status_code == 403

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:scoring_hotrule_change", args=[rule.pk]),
            {
                "threshold": "50",
                "criteria": "{}",
                "actions": "[]",
                "digest_enabled": "on",
                "digest_hour": "8",
            },
        )

    assert response.status_code == 302
    assert Prospect.objects.get(pk=prospect.pk).hot_status == HotStatus.HOT
    assert hot_rule_get().updated_by == administrator
