"""Consent (特定電子メール法 / GDPR): versioned wording, records with evidence, double opt-in,
one-step opt-out, formula-safe export."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from forms import bot_protection
from forms.consent import (
    confirm_token_for,
    consent_records_csv,
    form_field_consent_wording_save,
    prospect_opt_out,
)
from forms.models import (
    ConsentRecord,
    ConsentSource,
    ConsentWording,
    FieldType,
    Form,
    FormField,
    Submission,
)
from mapp.models import Role, User
from prospects.models import Prospect
from prospects.services import prospects_merge
from tests.conftest import client_for
from tests.factories import ProspectFactory, make_user
from tests.forms.conftest import add_field, form_url, make_form, render_and_token, submit
from tracking.models import Activity, ActivityType

pytestmark = pytest.mark.django_db

WORDING_V1 = "メールマガジン・セミナー案内を受け取ることに同意します。"
WORDING_V2 = "製品情報・セミナー案内のメールを受け取ることに同意します（いつでも解除できます）。"


def _consent_form(*, required: bool = False, **kwargs: Any) -> tuple[Form, FormField]:
    form = make_form(**kwargs)
    consent = add_field(
        form,
        label="同意",
        field_type=FieldType.CONSENT,
        consent_wording=WORDING_V1,
        required=required,
    )
    return form, consent


def test_a_ticked_consent_box_records_the_wording_time_ip_and_source(
    rendered_seconds_ago: Any,
) -> None:
    form, consent = _consent_form()

    submit(
        Client(REMOTE_ADDR="203.0.113.7"),
        form,
        {"email": "optin@example.jp", consent.input_name: "1"},
        rendered_seconds_ago,
    )

    prospect = Prospect.objects.get(email="optin@example.jp")
    record = ConsentRecord.objects.get(prospect=prospect)
    assert record.granted
    assert record.wording is not None
    assert (record.wording.text, record.wording.version) == (WORDING_V1, 1)
    assert record.ip_address == "203.0.113.7"
    assert record.source == ConsentSource.FORM
    assert record.form == form
    assert record.submission == Submission.objects.get()
    assert not record.confirmed_by_email
    opt_in = Activity.objects.get(type=ActivityType.OPT_IN)
    assert opt_in.prospect_id == prospect.pk
    assert opt_in.payload["submission_id"] == record.submission_id


def test_the_page_shows_the_wording_unticked(db: None) -> None:
    form, consent = _consent_form()
    consent.default_value = "1"
    consent.save()

    page = Client().get(form_url(form)).content.decode()

    assert WORDING_V1 in page
    checkbox = re.search(rf'<input type="checkbox"[^>]*name="{consent.input_name}"[^>]*>', page)
    assert checkbox is not None
    assert "checked" not in checkbox.group(0)


def test_an_unticked_box_records_nothing(rendered_seconds_ago: Any) -> None:
    form, _consent = _consent_form()

    submit(Client(), form, {"email": "quiet@example.jp"}, rendered_seconds_ago)

    assert Prospect.objects.filter(email="quiet@example.jp").exists()
    assert not ConsentRecord.objects.exists()


def test_an_unticked_required_consent_is_a_validation_error(
    rendered_seconds_ago: Any, english: None
) -> None:
    form, consent = _consent_form(required=True)

    response = submit(Client(), form, {"email": "must@example.jp"}, rendered_seconds_ago)

    assert response.status_code == 400
    assert b"Please agree to continue." in response.content
    assert not Prospect.objects.exists()
    assert Submission.objects.get().field_errors == {
        consent.input_name: ["Please agree to continue."]
    }


def test_changing_the_wording_makes_a_new_version_and_records_keep_the_one_shown(
    rendered_seconds_ago: Any,
) -> None:
    form, consent = _consent_form()
    client = Client()
    token_v1 = render_and_token(client, form, rendered_seconds_ago)

    version_2 = form_field_consent_wording_save(form_field=consent, text=WORDING_V2)
    unchanged = form_field_consent_wording_save(form_field=consent, text=WORDING_V2)

    assert version_2 is not None and unchanged == version_2
    assert version_2.version == 2
    assert ConsentWording.objects.filter(lineage=version_2.lineage).count() == 2
    # The person saw version 1 (rendered before the change): that is what is recorded.
    client.post(
        form_url(form),
        {bot_protection.TOKEN_FIELD: token_v1, "email": "v1@example.jp", consent.input_name: "1"},
    )
    assert ConsentRecord.objects.get().wording.text == WORDING_V1  # type: ignore[union-attr]
    # Someone rendering now sees and records version 2.
    submit(
        Client(),
        form,
        {"email": "v2@example.jp", consent.input_name: "on"},
        rendered_seconds_ago,
    )
    latest = ConsentRecord.objects.get(prospect__email="v2@example.jp")
    assert (latest.wording.text, latest.wording.version) == (WORDING_V2, 2)  # type: ignore[union-attr]


def test_consent_after_an_opt_out_is_the_persons_own_opt_in(rendered_seconds_ago: Any) -> None:
    form, consent = _consent_form()
    prospect = ProspectFactory.create(email="back@example.jp", opted_out=True)

    submit(
        Client(),
        form,
        {"email": "back@example.jp", consent.input_name: "1"},
        rendered_seconds_ago,
    )

    prospect.refresh_from_db()
    assert not prospect.opted_out


def test_double_opt_in_records_only_after_the_email_link_is_confirmed(
    rendered_seconds_ago: Any, django_capture_on_commit_callbacks: Any, english: None
) -> None:
    form, consent = _consent_form(double_opt_in=True)

    with django_capture_on_commit_callbacks(execute=True):
        submit(
            Client(),
            form,
            {"email": "doi@example.jp", consent.input_name: "1"},
            rendered_seconds_ago,
        )

    prospect = Prospect.objects.get(email="doi@example.jp")
    assert not ConsentRecord.objects.exists()
    assert not Activity.objects.filter(type=ActivityType.OPT_IN).exists()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["doi@example.jp"]
    assert message.subject == "Please confirm your email address"
    link = re.search(r"http://\S+/forms/confirm/(\S+)", str(message.body))
    assert link is not None
    path = f"/forms/confirm/{link.group(1)}"

    # Opening the link (a person, or a mail scanner) only shows the confirm button.
    page = Client().get(path)
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
    assert not ConsentRecord.objects.exists()

    confirmed = Client(REMOTE_ADDR="198.51.100.9").post(path)
    again = Client().post(path)

    assert confirmed.status_code == again.status_code == 200
    assert b'data-testid="opt-in-confirmed"' in confirmed.content
    record = ConsentRecord.objects.get(prospect=prospect)
    assert record.confirmed_by_email
    assert record.wording is not None and record.wording.text == WORDING_V1
    assert Activity.objects.filter(type=ActivityType.OPT_IN, prospect_id=prospect.pk).count() == 1
    assert Submission.objects.get().opt_in_confirmed_at is not None


def test_double_opt_in_without_a_consent_box_confirms_the_sign_up(
    rendered_seconds_ago: Any, django_capture_on_commit_callbacks: Any
) -> None:
    form = make_form(double_opt_in=True)
    with django_capture_on_commit_callbacks(execute=True):
        submit(Client(), form, {"email": "plain-doi@example.jp"}, rendered_seconds_ago)
    submission = Submission.objects.get()

    Client().post(f"/forms/confirm/{confirm_token_for(submission)}")

    record = ConsentRecord.objects.get()
    assert record.wording is None
    assert record.confirmed_by_email


@pytest.mark.parametrize("token", ["forged", "1:abc:def", "x" * 500])
def test_a_bad_confirmation_token_is_a_400(db: None, token: str) -> None:
    assert Client().post(f"/forms/confirm/{token}").status_code == 400
    assert Client().get(f"/forms/confirm/{token}").status_code == 400


def test_opt_out_is_one_step_and_recorded(db: None) -> None:
    prospect = ProspectFactory.create(email="leave@example.jp")

    assert prospect_opt_out(
        prospect=prospect, source=ConsentSource.UNSUBSCRIBE, ip_address="192.0.2.1"
    )
    assert not prospect_opt_out(prospect=prospect, source=ConsentSource.UNSUBSCRIBE)

    prospect.refresh_from_db()
    assert prospect.opted_out
    record = ConsentRecord.objects.get()
    assert (record.granted, record.source, record.ip_address) == (
        False,
        ConsentSource.UNSUBSCRIBE,
        "192.0.2.1",
    )
    assert Activity.objects.filter(type=ActivityType.OPT_OUT, prospect_id=prospect.pk).count() == 1


def test_the_consent_csv_cannot_run_formulas(db: None, english: None) -> None:
    prospect = ProspectFactory.create(email="csv@example.jp")
    form = Form.objects.create(name='=HYPERLINK("http://evil","x")')
    for index, text in enumerate(["=1+1", "+cmd", "-2", "@SUM(A1)", "\tTab", "\rCR", "普通の文言"]):
        wording = ConsentWording.objects.create(text=text)
        ConsentRecord.objects.create(
            prospect=prospect,
            wording=wording,
            granted=index % 2 == 0,
            source=ConsentSource.FORM,
            form=form,
        )

    rows = list(csv.reader(io.StringIO(consent_records_csv(prospect))))

    assert rows[0][0] == "Recorded at"
    wordings = [row[5] for row in rows[1:]]
    assert wordings == ["'=1+1", "'+cmd", "'-2", "'@SUM(A1)", "'\tTab", "'\rCR", "普通の文言"]
    assert all(row[3].startswith("'=HYPERLINK") for row in rows[1:])
    assert {row[1] for row in rows[1:]} == {"Granted", "Withdrawn"}


def test_staff_download_the_consent_log_within_their_prospect_scope(
    marketer: User, db: None
) -> None:
    sales = make_user(Role.SALES, email="sales-consent@example.jp")
    mine = ProspectFactory.create(email="mine@example.jp", assigned_user=sales)
    theirs = ProspectFactory.create(email="theirs@example.jp")
    prospect_opt_out(prospect=mine, source=ConsentSource.STAFF)

    response = client_for(sales).get(f"/forms/consent/{mine.pk}.csv")
    hidden = client_for(sales).get(f"/forms/consent/{theirs.pk}.csv")
    marketing = client_for(marketer).get(f"/forms/consent/{theirs.pk}.csv")
    anonymous = Client().get(f"/forms/consent/{mine.pk}.csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    body = response.content.decode("utf-8-sig")
    assert len(list(csv.reader(io.StringIO(body)))) == 2
    assert hidden.status_code == 404
    assert marketing.status_code == 200
    assert anonymous.status_code == 302


def test_consent_records_survive_a_merge(db: None) -> None:
    survivor = ProspectFactory.create(email="survivor@example.jp")
    merged = ProspectFactory.create(email="merged@example.jp")
    prospect_opt_out(prospect=merged, source=ConsentSource.UNSUBSCRIBE)

    prospects_merge(actor=None, survivor=survivor, others=[merged])

    assert ConsentRecord.objects.get().prospect == survivor
