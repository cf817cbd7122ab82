"""The list-side settings of the preference centre: a marketer makes a static list public under
a name prospects see, and neither the form nor the service lets a dynamic list be public.

Needs the change to prospects/services.py (list_create / list_update take is_public and
public_name) and prospects/views_lists.py (pass them; the edit form knows its list)."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from emails.unsubscribe import unsubscribe_url
from mapp.models import User
from prospects.models import ListMembership, ProspectList
from prospects.services import list_create, list_update
from tests.conftest import client_for
from tests.factories import ProspectFactory

pytestmark = pytest.mark.django_db

EMPTY_CRITERIA = json.dumps({"match": "all", "conditions": []})


def test_a_marketer_makes_a_static_list_public_and_prospects_see_its_public_name(
    english: None, marketer: User
) -> None:
    client = client_for(marketer)
    form_page = client.get(reverse("lists:create")).content.decode()
    assert "Show in the preference centre" in form_page
    assert "Name shown to prospects" in form_page
    client.post(
        reverse("lists:create"),
        {"name": "2026 newsletter (internal)", "description": "毎月のお知らせ", "criteria": ""},
    )
    prospect_list = ProspectList.objects.get(name="2026 newsletter (internal)")
    assert not prospect_list.is_public
    response = client.post(
        reverse("lists:edit", args=[prospect_list.pk]),
        {
            "name": "2026 newsletter (internal)",
            "description": "毎月のお知らせ",
            "is_public": "on",
            "public_name": "月刊ニュース",
        },
    )
    assert response.status_code == 302
    prospect_list.refresh_from_db()
    assert (prospect_list.is_public, prospect_list.public_name) == (True, "月刊ニュース")
    edit_page = client.get(reverse("lists:edit", args=[prospect_list.pk])).content.decode()
    assert 'value="月刊ニュース"' in edit_page

    prospect = ProspectFactory.create()
    ListMembership.objects.create(prospect_list=prospect_list, prospect=prospect)
    page = Client().get(unsubscribe_url(prospect_id=prospect.pk, list_email_id=1))
    assert "月刊ニュース" in page.content.decode()
    assert "2026 newsletter (internal)" not in page.content.decode()


def test_a_new_public_list_can_be_created_in_one_go(english: None, marketer: User) -> None:
    client_for(marketer).post(
        reverse("lists:create"),
        {"name": "Seminars", "is_public": "on", "public_name": "セミナー案内", "criteria": ""},
    )
    prospect_list = ProspectList.objects.get(name="Seminars")
    assert (prospect_list.is_public, prospect_list.public_name) == (True, "セミナー案内")


def test_a_dynamic_list_cannot_be_made_public(english: None, marketer: User) -> None:
    client = client_for(marketer)
    refused = client.post(
        reverse("lists:create"),
        {"name": "Hot", "is_dynamic": "on", "is_public": "on", "criteria": EMPTY_CRITERIA},
    )
    assert refused.status_code == 200
    assert "Only static lists can be shown in the preference centre" in refused.content.decode()
    assert not ProspectList.objects.filter(name="Hot").exists()

    dynamic = list_create(actor=None, name="Hot", is_dynamic=True, criteria={})
    edit_page = client.get(reverse("lists:edit", args=[dynamic.pk])).content.decode()
    assert 'name="is_public"' not in edit_page
    # a hand-made POST is refused by the form, and the service refuses it too
    response = client.post(
        reverse("lists:edit", args=[dynamic.pk]),
        {"name": "Hot", "is_public": "on", "criteria": EMPTY_CRITERIA},
    )
    assert response.status_code == 200
    dynamic.refresh_from_db()
    assert not dynamic.is_public
    with pytest.raises(ValidationError):
        list_update(actor=None, prospect_list=dynamic, is_public=True)
    with pytest.raises(ValidationError):
        list_create(actor=None, name="Hot 2", is_dynamic=True, criteria={}, is_public=True)
