"""The form handler: a customer's existing HTML form posts here from any origin."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import signing
from django.test import Client
from django.test.client import encode_multipart

from forms.models import FormHandler, Submission, SubmissionKind, SubmissionStatus
from prospects.models import Prospect
from tests.factories import ProspectFactory
from tests.forms.conftest import make_handler
from tracking.models import Activity, ActivityType, Visitor
from tracking.visitor_cookie import COOKIE_NAME, COOKIE_SALT

pytestmark = pytest.mark.django_db

URLENCODED = "application/x-www-form-urlencoded"


def handler_url(handler: FormHandler) -> str:
    return f"/handler/{handler.uuid}"


def _query(response: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(response["Location"]).query)


def test_an_urlencoded_post_creates_the_prospect_and_redirects_to_success(
    handler: FormHandler,
) -> None:
    response = Client().post(
        handler_url(handler),
        "mail=Taro%40Example.jp&company=%E6%A0%AA%E5%BC%8F%E4%BC%9A%E7%A4%BE%E3%82%B5%E3%83%B3"
        "&name=%E5%B1%B1%E7%94%B0&unmapped=kept",
        content_type=URLENCODED,
        HTTP_ORIGIN="https://www.customer.example",
    )

    assert response.status_code == 303
    assert response["Location"] == "https://www.customer.example/thanks"
    prospect = Prospect.objects.get(email="taro@example.jp")
    assert (prospect.company_name, prospect.last_name) == ("株式会社サン", "山田")
    submission = Submission.objects.get()
    assert submission.kind == SubmissionKind.FORM_HANDLER
    assert submission.raw_data["unmapped"] == "kept"
    activity = Activity.objects.get(type=ActivityType.FORM_HANDLER_SUCCESS)
    assert (activity.object_type, activity.object_id) == ("form_handler", str(handler.pk))
    assert activity.payload["submission_id"] == submission.pk


def test_a_multipart_post_is_accepted_too(handler: FormHandler) -> None:
    boundary = "mappboundary"
    body = encode_multipart(boundary, {"mail": "multi@example.jp", "company": "マルチ株式会社"})

    response = Client().post(
        handler_url(handler), body, content_type=f"multipart/form-data; boundary={boundary}"
    )

    assert response.status_code == 303
    assert Prospect.objects.get(email="multi@example.jp").company_name == "マルチ株式会社"


def test_data_is_forwarded_to_the_success_location_when_asked(db: None) -> None:
    handler = make_handler(
        forward_data=True, success_url="https://www.customer.example/thanks?from=form"
    )

    response = Client().post(
        handler_url(handler), {"mail": "fwd@example.jp", "company": "転送&Co", "secret": "no"}
    )

    assert response.status_code == 303
    query = _query(response)
    assert query["from"] == ["form"]
    assert query["mail"] == ["fwd@example.jp"]
    assert query["company"] == ["転送&Co"]
    assert "secret" not in query  # only mapped fields travel


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"company": "No mail"}, "Email address is required."),
        ({"mail": "not-an-address"}, "Enter a valid email address."),
    ],
)
def test_a_missing_or_invalid_email_goes_to_the_error_location(
    handler: FormHandler, english: None, data: dict[str, str], message: str
) -> None:
    response = Client().post(handler_url(handler), data)

    assert response.status_code == 303
    assert response["Location"].startswith("https://www.customer.example/error?")
    query = _query(response)
    assert query["errors"] == ["true"]
    assert message in query["errorMessage"][0]
    assert not Prospect.objects.exists()
    assert Submission.objects.get().status == SubmissionStatus.INVALID
    assert Activity.objects.filter(type=ActivityType.FORM_HANDLER_ERROR).count() == 1


def test_without_an_error_location_errors_are_a_readable_400(english: None) -> None:
    handler = make_handler(error_url="")

    response = Client().post(handler_url(handler), {"company": "no mail"})

    assert response.status_code == 400
    assert b"Email address is required." in response.content


def test_an_existing_prospect_is_updated_by_the_handler(handler: FormHandler) -> None:
    existing = ProspectFactory.create(email="existing@example.jp", last_name="既存")

    Client().post(handler_url(handler), {"mail": "EXISTING@example.jp", "company": "新会社"})

    assert Prospect.objects.count() == 1
    existing.refresh_from_db()
    assert (existing.company_name, existing.last_name) == ("新会社", "既存")


def test_a_get_is_refused_with_405(handler: FormHandler) -> None:
    response = Client().get(handler_url(handler))

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert not Submission.objects.exists()


def test_an_unknown_handler_is_404(db: None) -> None:
    assert Client().post(f"/handler/{uuid.uuid4()}", {"mail": "x@example.jp"}).status_code == 404


def test_json_is_refused_with_415_or_the_error_location(handler: FormHandler) -> None:
    huge = '{"mail": "' + "x" * 100_000 + '"}'
    to_error_location = Client().post(handler_url(handler), huge, content_type="application/json")
    without_location = make_handler(name="no error url", error_url="")
    refused = Client().post(handler_url(without_location), huge, content_type="application/json")

    assert to_error_location.status_code == 303
    assert "errorMessage" in _query(to_error_location)
    assert refused.status_code == 415
    assert not Submission.objects.exists()


def test_an_inactive_handler_keeps_the_post_and_answers_an_error(english: None) -> None:
    handler = make_handler(is_active=False, error_url="")

    response = Client().post(handler_url(handler), {"mail": "late@example.jp"})

    assert response.status_code == 410
    assert b"not active" in response.content
    assert Submission.objects.get().raw_data["mail"] == "late@example.jp"
    assert not Prospect.objects.exists()


def test_a_shift_jis_post_from_an_older_site_is_read(handler: FormHandler) -> None:
    from urllib.parse import quote_from_bytes

    company = quote_from_bytes("株式会社シフト".encode("cp932"))
    body = f"mail=sjis%40example.jp&company={company}"

    response = Client().post(handler_url(handler), body, content_type=URLENCODED)

    assert response.status_code == 303
    assert Prospect.objects.get(email="sjis@example.jp").company_name == "株式会社シフト"


def test_bytes_that_are_no_text_are_a_400(english: None) -> None:
    handler = make_handler(error_url="")

    response = Client().post(handler_url(handler), "mail=%FF%FE%FD%80", content_type=URLENCODED)

    assert response.status_code == 400
    assert b"not valid UTF-8" in response.content
    assert not Submission.objects.exists()


def test_the_honeypot_of_a_handler_rejects_bots_quietly(db: None) -> None:
    handler = make_handler(honeypot_name="website2")

    response = Client().post(handler_url(handler), {"mail": "bot@example.jp", "website2": "x"})

    assert response.status_code == 303
    assert response["Location"] == "https://www.customer.example/thanks"
    assert Submission.objects.get().status == SubmissionStatus.REJECTED_BOT
    assert not Prospect.objects.exists()


def test_the_cookie_links_the_visitor_unless_kiosk(db: None) -> None:
    handler = make_handler()
    kiosk = make_handler(name="kiosk", kiosk_mode=True)
    visitor = Visitor.objects.create(uuid=uuid.uuid4())
    client = Client()
    client.cookies[COOKIE_NAME] = signing.dumps(str(visitor.uuid), salt=COOKIE_SALT)

    kiosk_response = client.post(handler_url(kiosk), {"mail": "booth@example.jp"})
    visitor.refresh_from_db()
    assert visitor.prospect_id is None
    assert COOKIE_NAME not in kiosk_response.cookies

    client.post(handler_url(handler), {"mail": "me@example.jp"})
    visitor.refresh_from_db()
    assert visitor.prospect == Prospect.objects.get(email="me@example.jp")


def test_without_a_success_location_a_thank_you_page_is_shown(db: None) -> None:
    handler = make_handler(success_url="")

    response = Client().post(handler_url(handler), {"mail": "plain@example.jp"})

    assert response.status_code == 200
    assert b'data-testid="thank-you"' in response.content


def test_a_location_that_is_no_longer_allowed_is_not_followed(settings: Any) -> None:
    handler = make_handler()
    settings.FORMS_ALLOWED_REDIRECT_HOSTS = []

    response = Client().post(handler_url(handler), {"mail": "safe@example.jp"})

    assert response.status_code == 200
    assert Prospect.objects.filter(email="safe@example.jp").exists()
