"""API tokens: made on the settings page, shown once, scoped like the user, revocable."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from knox.models import AuthToken

from mapp.models import User
from prospects.models import Prospect
from prospects.services import prospect_create
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def _token_for(user: User) -> str:
    page = client_for(user).post(reverse("api_tokens"))
    assert page.status_code == 200
    token = page.context["new_token"]
    assert token and token in page.content.decode()
    return str(token)


def test_a_token_reads_the_api_as_its_user_and_only_their_prospects(sales_user: User) -> None:
    own = prospect_create(actor=None, data={"email": "own@a.jp"}, refresh_lists=False)
    Prospect.objects.filter(pk=own.pk).update(assigned_user=sales_user)
    prospect_create(actor=None, data={"email": "other@a.jp"}, refresh_lists=False)
    token = _token_for(sales_user)

    response = Client().get("/api/v1/prospects/", HTTP_AUTHORIZATION=f"Token {token}")

    assert response.status_code == 200
    assert [row["email"] for row in response.json()["results"]] == ["own@a.jp"]
    # The page never shows the token again; only its first characters.
    again = client_for(sales_user).get(reverse("api_tokens")).content.decode()
    assert token not in again


def test_anonymous_and_wrong_tokens_get_401(db: None) -> None:
    assert Client().get("/api/v1/prospects/").status_code == 401
    assert (
        Client().get("/api/v1/prospects/", HTTP_AUTHORIZATION="Token nonsense").status_code == 401
    )


def test_a_revoked_token_stops_working(marketer: User) -> None:
    token = _token_for(marketer)
    key = AuthToken.objects.get(user=marketer).token_key
    client_for(marketer).post(reverse("api_token_revoke", args=[key]))
    assert (
        Client().get("/api/v1/prospects/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 401
    )


def test_a_token_of_a_deactivated_user_stops_working(marketer: User) -> None:
    token = _token_for(marketer)
    marketer.is_active = False
    marketer.save(update_fields=["is_active"])
    assert (
        Client().get("/api/v1/prospects/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 401
    )


def test_the_api_docs_are_served_without_a_cdn(marketer: User) -> None:
    page = client_for(marketer).get("/api/v1/docs/")
    assert page.status_code == 200
    assert "cdn" not in page.content.decode().lower()
