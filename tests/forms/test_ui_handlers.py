"""Form handler pages: creating and editing a handler with its field mapping, the endpoint and
an example form to copy, the redirect allow-list and who may do what."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from forms.models import FormHandler
from mapp.models import User
from prospects.models import CustomField, CustomFieldType
from prospects.services import list_create
from tests.conftest import client_for
from tests.forms.conftest import make_handler

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketing_client(marketer: User) -> Client:
    return client_for(marketer)


def _mapping(rows: list[dict[str, Any]], extra: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = {
        "mapping-TOTAL_FORMS": str(len(rows) + extra),
        "mapping-INITIAL_FORMS": "0",
        "mapping-MIN_NUM_FORMS": "0",
        "mapping-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(rows):
        for name, value in row.items():
            if value is True:
                data[f"mapping-{index}-{name}"] = "on"
            elif value not in (False, None):
                data[f"mapping-{index}-{name}"] = value
    for index in range(len(rows), len(rows) + extra):
        data[f"mapping-{index}-external_name"] = ""
        data[f"mapping-{index}-target"] = ""
    return data


def _handler_data(rows: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    data = {
        "name": "コーポレートサイトの問い合わせ",
        "success_url": "https://www.customer.example/thanks",
        "error_url": "https://www.customer.example/error",
        "forward_data": "on",
        "honeypot_name": "website_url",
        "campaign_name": "",
        "is_active": "on",
        "completion_actions": "[]",
        **_mapping(rows, extra=2),
    }
    data.update(overrides)
    return data


ROWS: list[dict[str, Any]] = [
    {"external_name": "mail", "target": "", "is_email": True},
    {"external_name": "company", "target": "company_name", "required": True},
    {"external_name": "size", "target": "custom:company_size"},
]


def test_marketer_creates_a_handler_with_its_mapping_and_actions(
    marketing_client: Client, marketer: User
) -> None:
    size = CustomField.objects.create(
        label="規模", key="company_size", field_type=CustomFieldType.TEXT
    )
    inquiries = list_create(actor=marketer, name="問い合わせ")
    actions = [{"action": "add_to_list", "config": {"list": inquiries.pk}}]

    response = marketing_client.post(
        "/marketing/form-handlers/new/",
        _handler_data(ROWS, completion_actions=json.dumps(actions)),
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    handler = FormHandler.objects.get()
    assert response["Location"] == f"/marketing/form-handlers/{handler.pk}/"
    assert handler.forward_data is True
    assert handler.honeypot_name == "website_url"
    assert handler.completion_actions[0]["action"] == "add_to_list"
    mapping = list(handler.fields.order_by("position"))
    assert [(row.external_name, row.prospect_field, row.is_email) for row in mapping] == [
        ("mail", "email", True),
        ("company", "company_name", False),
        ("size", "", False),
    ]
    assert mapping[0].required is True
    assert mapping[1].required is True
    assert mapping[2].custom_field == size


def test_handler_page_shows_the_endpoint_and_an_escaped_example_form(
    marketing_client: Client,
) -> None:
    handler = make_handler(name="<i>Contact</i>")

    response = marketing_client.get(f"/marketing/form-handlers/{handler.pk}/")

    assert response.status_code == 200
    page = response.content.decode()
    assert f"/handler/{handler.uuid}" in page
    assert "&lt;form action=&quot;" in page
    assert "name=&quot;mail&quot;" in page
    assert "<i>Contact</i>" not in page
    assert 'data-copy-from="handler-endpoint"' in page


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [{"external_name": "company", "target": "company_name"}],
            "Mark exactly one field as the email field: prospects are found by email.",
        ),
        (
            [
                {"external_name": "mail", "is_email": True},
                {"external_name": "mail2", "is_email": True},
            ],
            "Mark exactly one field as the email field: prospects are found by email.",
        ),
        (
            [{"external_name": "mail", "is_email": True}, {"external_name": "mail"}],
            "“mail” is listed twice.",
        ),
        (
            [{"external_name": "your mail", "is_email": True}],
            "A field name has no spaces (it is the input&#x27;s name=).",
        ),
        (
            [
                {"external_name": "mail", "is_email": True},
                {"external_name": "a", "target": "company_name"},
                {"external_name": "b", "target": "company_name"},
            ],
            "Two fields fill the same prospect field.",
        ),
    ],
)
def test_mapping_mistakes_are_refused_with_clear_messages(
    marketing_client: Client, english: None, rows: list[dict[str, Any]], message: str
) -> None:
    response = marketing_client.post("/marketing/form-handlers/new/", _handler_data(rows))

    assert response.status_code == 400
    assert not FormHandler.objects.exists()
    assert message in response.content.decode()


@pytest.mark.parametrize(
    "url",
    ["https://evil.example/", "//evil.example/x", "https://www.customer.example@evil.example/"],
)
def test_locations_outside_the_allow_list_are_refused(
    marketing_client: Client, english: None, url: str
) -> None:
    response = marketing_client.post(
        "/marketing/form-handlers/new/", _handler_data(ROWS[:1], success_url=url)
    )

    assert response.status_code == 400
    assert not FormHandler.objects.exists()


def test_editing_replaces_the_mapping(marketing_client: Client) -> None:
    handler = make_handler()
    rows: list[dict[str, Any]] = [
        {"external_name": "email_address", "is_email": True},
        {"external_name": "tel", "target": "phone"},
    ]

    response = marketing_client.post(
        f"/marketing/form-handlers/{handler.pk}/",
        _handler_data(rows, name="Renamed", kiosk_mode="on"),
    )

    assert response.status_code == 302
    handler.refresh_from_db()
    assert handler.name == "Renamed"
    assert handler.kiosk_mode is True
    assert list(handler.fields.order_by("position").values_list("external_name", flat=True)) == [
        "email_address",
        "tel",
    ]


def test_edit_form_is_prefilled_with_the_mapping(marketing_client: Client) -> None:
    handler = make_handler()

    response = marketing_client.get(f"/marketing/form-handlers/{handler.pk}/")

    page = response.content.decode()
    assert 'name="mapping-0-external_name" value="mail"' in page
    assert 'name="mapping-1-external_name" value="company"' in page
    assert 'name="mapping-TOTAL_FORMS" value="6"' in page


def test_deleted_rows_are_dropped(marketing_client: Client) -> None:
    handler = make_handler()
    rows: list[dict[str, Any]] = [
        {"external_name": "mail", "is_email": True},
        {"external_name": "company", "target": "company_name", "DELETE": True},
    ]

    response = marketing_client.post(f"/marketing/form-handlers/{handler.pk}/", _handler_data(rows))

    assert response.status_code == 302
    assert list(handler.fields.values_list("external_name", flat=True)) == ["mail"]


def test_handler_list_and_roles(
    marketing_client: Client, sales_user: User, sales_manager: User
) -> None:
    handler = make_handler(name="資料請求（既存フォーム）")

    response = marketing_client.get("/marketing/form-handlers/")
    assert response.status_code == 200
    assert "資料請求（既存フォーム）" in response.content.decode()
    assert f"/handler/{handler.uuid}" in response.content.decode()

    sales = client_for(sales_user)
    assert sales.get("/marketing/form-handlers/").status_code == 403
    assert sales.get(f"/marketing/form-handlers/{handler.pk}/").status_code == 403

    viewer = client_for(sales_manager)
    assert viewer.get(f"/marketing/form-handlers/{handler.pk}/").status_code == 200
    assert viewer.get("/marketing/form-handlers/new/").status_code == 403
    response = viewer.post(
        f"/marketing/form-handlers/{handler.pk}/", _handler_data(ROWS[:1], name="Changed")
    )
    assert response.status_code == 403
    handler.refresh_from_db()
    assert handler.name == "資料請求（既存フォーム）"


def test_handler_list_queries_do_not_grow_with_the_handlers(
    marketing_client: Client, django_assert_max_num_queries: Any
) -> None:
    for index in range(15):
        make_handler(name=f"handler {index}")

    with django_assert_max_num_queries(12):
        response = marketing_client.get("/marketing/form-handlers/")

    assert response.content.decode().count('data-testid="handler-row"') == 15


def test_edit_page_queries_do_not_grow_with_the_mapping_rows(
    marketing_client: Client, django_assert_max_num_queries: Any
) -> None:
    handler = make_handler()

    with django_assert_max_num_queries(25):
        response = marketing_client.get(f"/marketing/form-handlers/{handler.pk}/")

    assert response.status_code == 200
