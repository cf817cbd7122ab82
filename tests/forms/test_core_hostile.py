"""Garbage and hostile input on the public form: 4xx or a re-rendered form, never a 500, never a
lost valid submission; redirects only to allowed hosts; embedding in other sites."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client

from forms import bot_protection
from forms.models import FieldType, Form, Submission, SubmissionStatus
from forms.redirects import is_allowed_redirect, redirect_url_error
from forms.selectors import embed_snippets
from prospects.models import Prospect
from tests.forms.conftest import add_field, form_url, make_form, render_and_token, submit
from tracking.models import TrackerDomain

pytestmark = pytest.mark.django_db

URLENCODED = "application/x-www-form-urlencoded"


@pytest.fixture
def client() -> Client:
    # A 500 must fail the test, not be turned into a page.
    return Client(raise_request_exception=True)


def test_a_one_megabyte_field_is_clipped_and_the_submission_is_kept(
    client: Client, rendered_seconds_ago: Any
) -> None:
    form = make_form()
    notes = add_field(form, label="ご要望", field_type=FieldType.TEXTAREA)

    response = submit(
        client,
        form,
        {"email": "big@example.jp", notes.input_name: "x" * 1_000_000},
        rendered_seconds_ago,
    )

    assert response.status_code == 200
    submission = Submission.objects.get()
    assert len(submission.raw_data[notes.input_name]) == 10_000
    assert submission.status == SubmissionStatus.PROCESSED
    assert Prospect.objects.filter(email="big@example.jp").exists()


def test_a_one_megabyte_mapped_field_re_renders_with_a_message(
    client: Client, form: Form, rendered_seconds_ago: Any, english: None
) -> None:
    response = submit(
        client,
        form,
        {"email": "big@example.jp", "company_name": "x" * 1_000_000},
        rendered_seconds_ago,
    )

    assert response.status_code == 400
    assert b"At most 255 characters." in response.content
    assert len(response.content) < 100_000  # the value shown again is the clipped one


def test_a_body_over_the_upload_limit_is_a_413(
    client: Client, form: Form, settings: Any, english: None
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000
    body = urlencode({"email": "x@example.jp", "notes": "x" * 200_000})

    response = client.post(form_url(form), body, content_type=URLENCODED)

    assert response.status_code == 413
    assert b"too large" in response.content
    assert not Submission.objects.exists()


def test_a_multipart_body_over_the_limit_is_a_413(
    client: Client, form: Form, settings: Any
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000

    response = client.post(form_url(form), {"email": "x@example.jp", "notes": "y" * 200_000})

    assert response.status_code == 413


@pytest.mark.parametrize("multipart", [False, True])
def test_thousands_of_fields_are_a_clear_400(
    client: Client, form: Form, english: None, multipart: bool
) -> None:
    fields = {f"f{index}": "x" for index in range(5000)}
    if multipart:
        response = client.post(form_url(form), fields)
    else:
        response = client.post(form_url(form), urlencode(fields), content_type=URLENCODED)

    assert response.status_code == 400
    assert b"Too many fields" in response.content
    assert not Submission.objects.exists()


def test_hundreds_of_fields_are_stored_up_to_the_limit(
    client: Client, form: Form, rendered_seconds_ago: Any
) -> None:
    token = render_and_token(client, form, rendered_seconds_ago)
    data = {bot_protection.TOKEN_FIELD: token, "email": "many@example.jp"}
    data.update({f"extra{index}": "x" for index in range(500)})

    response = client.post(form_url(form), data)

    assert response.status_code == 200
    assert len(Submission.objects.get().raw_data) == 200
    assert Prospect.objects.filter(email="many@example.jp").exists()


def test_invalid_utf8_is_a_400_on_the_form(client: Client, form: Form, english: None) -> None:
    response = client.post(form_url(form), b"email=%FF%FEx%40example.jp", content_type=URLENCODED)

    assert response.status_code == 400
    assert b"not valid UTF-8" in response.content


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/xml", ""])
def test_other_content_types_are_a_415(client: Client, form: Form, content_type: str) -> None:
    body = json.dumps({"email": "x@example.jp", "data": ["y" * 1000] * 1000})

    response = client.post(form_url(form), body, content_type=content_type)

    assert response.status_code == 415
    assert not Submission.objects.exists()


def test_nul_and_control_characters_do_not_break_the_store(
    client: Client, form: Form, rendered_seconds_ago: Any
) -> None:
    response = submit(
        client,
        form,
        {"email": "nul@example.jp", "last_name": "山\x00田", "odd\x00name": "v"},
        rendered_seconds_ago,
    )

    assert response.status_code in (200, 400)
    assert Submission.objects.get().raw_data["last_name"] == "山田"


def test_other_methods_are_a_405(client: Client, form: Form) -> None:
    assert client.put(form_url(form), "x").status_code == 405


@pytest.mark.parametrize(
    "url",
    [
        "//evil.example/thanks",
        "https://www.customer.example@evil.example/thanks",
        "https://user:pw@www.customer.example/thanks",
        "javascript:alert(1)",
        "https://evil.example/thanks",
        "https://www.customer.example.evil.example/",
        "/relative/path",
        "https://www.customer.example\\@evil.example/",
        "data:text/html,<script>alert(1)</script>",
    ],
)
def test_redirects_to_other_hosts_are_refused(url: str) -> None:
    assert redirect_url_error(url) is not None
    assert not is_allowed_redirect(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://www.customer.example/thanks?x=1",
        "https://a.shop.example/done",
        "https://shop.example/done",
        "http://127.0.0.1:8000/done",
        "https://go.customer.example/lp/thanks",
    ],
)
def test_redirects_to_allowed_hosts_pass(url: str) -> None:
    TrackerDomain.objects.create(domain="go.customer.example")

    assert redirect_url_error(url) is None


def test_a_refused_thank_you_url_falls_back_to_the_thank_you_content(
    client: Client, rendered_seconds_ago: Any
) -> None:
    form = make_form(
        thank_you_url="https://www.customer.example@evil.example/",
        thank_you_content="ありがとうございました。",
    )

    response = submit(client, form, {"email": "safe@example.jp"}, rendered_seconds_ago)

    assert response.status_code == 200
    assert "ありがとうございました。" in response.content.decode()


def test_an_allowed_thank_you_url_is_a_303(client: Client, rendered_seconds_ago: Any) -> None:
    form = make_form(thank_you_url="https://www.customer.example/thanks")

    response = submit(client, form, {"email": "go@example.jp"}, rendered_seconds_ago)

    assert response.status_code == 303
    assert response["Location"] == "https://www.customer.example/thanks"


def test_inside_an_iframe_the_redirect_is_handed_to_the_embedding_page(
    client: Client, rendered_seconds_ago: Any
) -> None:
    form = make_form(thank_you_url="https://www.customer.example/thanks")

    response = submit(
        client, form, {"email": "framed@example.jp"}, rendered_seconds_ago, query="?embed=1"
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert 'href="https://www.customer.example/thanks" target="_top"' in page
    assert "data-mapp-redirect" in page


def test_thank_you_html_is_sanitised(client: Client, rendered_seconds_ago: Any) -> None:
    form = make_form(
        thank_you_content='<p onclick="steal()">Thanks <script>alert(1)</script><b>!</b></p>'
    )

    response = submit(client, form, {"email": "html@example.jp"}, rendered_seconds_ago)

    page = response.content.decode()
    assert "<b>!</b>" in page
    assert "<script>" not in page
    assert "onclick" not in page


def test_the_form_page_may_be_framed_by_any_site(client: Client, form: Form) -> None:
    response = client.get(form_url(form, "?embed=1"))

    assert response.status_code == 200
    assert "X-Frame-Options" not in response
    assert "frame-ancestors *" in response["Content-Security-Policy"]
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert 'action="/forms/' in response.content.decode()
    assert "embed=1" in response.content.decode()


def test_the_embed_script_inserts_the_iframe_and_listens_for_its_height(
    client: Client, form: Form
) -> None:
    response = client.get(f"/forms/{form.uuid}/embed.js")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Cross-Origin-Resource-Policy"] == "cross-origin"
    script = response.content.decode()
    config = json.loads(re.search(r"var config = (\{.*?\});", script).group(1))  # type: ignore[union-attr]
    assert config["src"] == f"http://testserver/forms/{form.uuid}/?embed=1"
    assert config["origin"] == "http://testserver"
    assert "mapp:form:height" in script
    assert "event.origin !== config.origin" in script


def test_a_form_name_cannot_break_out_of_the_embed_script(client: Client) -> None:
    form = make_form(name='</script><script>alert(1)</script>"')

    script = client.get(f"/forms/{form.uuid}/embed.js").content.decode()

    assert "</script>" not in script


def test_embed_snippets_name_the_form_urls(form: Form) -> None:
    snippets = embed_snippets(form, "https://go.customer.example/")

    assert snippets["url"] == f"https://go.customer.example/forms/{form.uuid}/"
    assert f'src="https://go.customer.example/forms/{form.uuid}/?embed=1"' in snippets["iframe"]
    assert f"https://go.customer.example/forms/{form.uuid}/embed.js" in snippets["script"]
    assert f'data-mapp-form="{form.uuid}"' in snippets["script"]


def test_a_hostile_form_name_is_escaped_in_the_snippets(db: None) -> None:
    form = make_form(name='"><script>alert(1)</script>')

    snippets = embed_snippets(form, "https://go.customer.example")

    assert "<script>alert" not in snippets["iframe"]
