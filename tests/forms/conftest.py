"""Fixtures of the forms tests: forms built the way the builder saves them, and posting
helpers that behave like a person (the render token comes from a page rendered a few seconds
ago)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from django.core import signing
from django.test import Client

from forms import bot_protection
from forms.models import FieldType, Form, FormField, FormHandler, FormHandlerField
from forms.services import form_field_save

# Seconds between rendering a form and posting it, for a "person".
PERSON_FILL_SECONDS = 6
TOKEN_PATTERN = re.compile(rf'name="{bot_protection.TOKEN_FIELD}" value="([^"]+)"')


def _open_database_first(request: pytest.FixtureRequest) -> None:
    # Changing settings makes mapp re-read the allowed hosts (tracker domains) from the
    # database: a database test gets its database before the settings change.
    marker = request.node.get_closest_marker("django_db")
    if "transactional_db" in request.fixturenames or (
        marker is not None and marker.kwargs.get("transaction")
    ):
        request.getfixturevalue("transactional_db")
    elif marker is not None or "db" in request.fixturenames:
        request.getfixturevalue("db")


@pytest.fixture(autouse=True)
def forms_settings(request: pytest.FixtureRequest) -> None:
    """The customer's websites as allowed redirect hosts."""
    _open_database_first(request)
    settings = request.getfixturevalue("settings")
    settings.FORMS_ALLOWED_REDIRECT_HOSTS = ["www.customer.example", ".shop.example"]


@pytest.fixture
def rendered_seconds_ago() -> Iterator[Any]:
    """A context-manager factory: tokens issued inside it look ``seconds`` old."""

    def backdate(seconds: int = PERSON_FILL_SECONDS) -> Any:
        return mock.patch.object(
            signing.TimestampSigner,
            "timestamp",
            lambda self: signing.b62_encode(int(time.time()) - seconds),
        )

    yield backdate


def add_field(form: Form, **kwargs: Any) -> FormField:
    """A field saved through the service the builder uses (consent wording versioned)."""
    position = kwargs.pop("position", form.fields.count())
    form_field = FormField(form=form, position=position, **kwargs)
    return form_field_save(form_field=form_field)


def make_form(**kwargs: Any) -> Form:
    """A 資料請求 form: email (required), last name, company, phone."""
    form = Form.objects.create(name=kwargs.pop("name", "資料請求フォーム"), **kwargs)
    add_field(
        form,
        label="メールアドレス",
        field_type=FieldType.EMAIL,
        prospect_field="email",
        required=True,
    )
    add_field(form, label="姓", prospect_field="last_name")
    add_field(form, label="会社名", prospect_field="company_name")
    add_field(form, label="電話番号", prospect_field="phone")
    return form


@pytest.fixture
def form(db: None) -> Form:
    return make_form()


def make_handler(**kwargs: Any) -> FormHandler:
    handler = FormHandler.objects.create(
        name=kwargs.pop("name", "Existing contact form"),
        success_url=kwargs.pop("success_url", "https://www.customer.example/thanks"),
        error_url=kwargs.pop("error_url", "https://www.customer.example/error"),
        **kwargs,
    )
    FormHandlerField.objects.create(
        handler=handler, external_name="mail", prospect_field="email", is_email=True, position=0
    )
    FormHandlerField.objects.create(
        handler=handler, external_name="company", prospect_field="company_name", position=1
    )
    FormHandlerField.objects.create(
        handler=handler, external_name="name", prospect_field="last_name", position=2
    )
    return handler


@pytest.fixture
def handler(db: None) -> FormHandler:
    return make_handler()


def form_url(form: Form, query: str = "") -> str:
    return f"/forms/{form.uuid}/{query}"


def token_from(response: Any) -> str:
    match = TOKEN_PATTERN.search(response.content.decode())
    assert match is not None, "the page has no render token"
    return match.group(1)


def render_and_token(client: Client, form: Form, backdate: Any, query: str = "") -> str:
    """GET the form page as a person would (a few seconds before posting); its token."""
    with backdate():
        response = client.get(form_url(form, query))
    assert response.status_code == 200
    return token_from(response)


def submit(
    client: Client,
    form: Form,
    data: dict[str, Any],
    backdate: Any,
    *,
    query: str = "",
    token: str | None = None,
) -> Any:
    """Render the form, then post ``data`` with its token (like a person filling it in)."""
    token = token or render_and_token(client, form, backdate, query)
    return client.post(form_url(form, query), {bot_protection.TOKEN_FIELD: token, **data})
