"""The scoring rules page: role checks, editing queues a rescore, bad input is refused."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import include, path, reverse

from mapp.models import AuditLogEntry, User
from mapp.urls import urlpatterns as mapp_urlpatterns
from scoring.models import Rescore, ScoringRule
from tests.conftest import client_for
from tracking.models import ActivityType

# Mounted the way mapp/urls.py is to mount it.
urlpatterns = [*mapp_urlpatterns, path("scoring/", include("scoring.urls"))]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


def test_sales_users_cannot_see_or_edit_rules(sales_user: User) -> None:
    client = client_for(sales_user)
    assert client.get(reverse("scoring:rules")).status_code == 403
    response = client.post(
        reverse("scoring:rule_create"), {"activity_type": "page_view", "points": 99}
    )
    assert response.status_code == 403
    assert not ScoringRule.objects.filter(points=99).exists()


def test_a_marketer_adds_an_override_and_everyone_is_rescored(
    marketer: User,
    english: None,
    django_capture_on_commit_callbacks: Any,
    eager_celery: None,
) -> None:
    client = client_for(marketer)
    page = client.get(reverse("scoring:rules"))
    assert page.status_code == 200 and "Page view" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("scoring:rule_create"),
            {
                "name": "<b>価格ページ</b>",
                "activity_type": ActivityType.PAGE_VIEW,
                "points": 30,
                "url_pattern": "https://a.jp/pricing*",
                "is_active": "on",
            },
        )
    assert response.status_code == 302
    rule = ScoringRule.objects.get(points=30)
    assert rule.url_pattern == "https://a.jp/pricing*"
    assert Rescore.objects.get().status == "done"
    assert AuditLogEntry.objects.filter(action="scoring.rule_create").exists()
    listing = client.get(reverse("scoring:rules")).content.decode()
    assert "&lt;b&gt;価格ページ&lt;/b&gt;" in listing and "Scores last recalculated" in listing


def test_invalid_rules_are_refused_with_a_message(marketer: User, english: None) -> None:
    client = client_for(marketer)
    response = client.post(
        reverse("scoring:rule_create"),
        {"activity_type": "form_success", "points": "10**9", "url_pattern": "/x"},
    )
    assert response.status_code == 200
    assert "A URL pattern applies to page views only." in response.content.decode()
    assert (
        client.post(
            reverse("scoring:rule_create"), {"activity_type": "nonsense", "points": 1}
        ).status_code
        == 200
    )
    default = ScoringRule.objects.filter(is_default=True).first()
    assert default is not None
    client.post(reverse("scoring:rule_delete", args=[default.pk]))
    assert ScoringRule.objects.filter(pk=default.pk).exists()
    assert ScoringRule.objects.count() == ScoringRule.objects.filter(is_default=True).count()
