"""Django admin of forms: every model listed and searchable; submissions are read-only and
hostile values are shown escaped."""

from __future__ import annotations

import pytest
from django.contrib import admin

from forms.models import (
    ConsentRecord,
    ConsentSource,
    ConsentWording,
    Form,
    FormField,
    FormHandler,
    FormHandlerField,
    LandingPage,
    Submission,
    SubmissionKind,
)
from mapp.admin_site import GuardedModelAdmin
from mapp.models import User
from tests.conftest import client_for
from tests.factories import ProspectFactory

pytestmark = pytest.mark.django_db

MODELS = (
    Form,
    FormField,
    FormHandler,
    FormHandlerField,
    LandingPage,
    Submission,
    ConsentWording,
    ConsentRecord,
)
SCRIPT = '<script>alert("admin")</script>'


def test_every_model_is_registered_with_search_and_filters() -> None:
    for model in MODELS:
        model_admin = admin.site._registry[model]
        assert isinstance(model_admin, GuardedModelAdmin), model
        assert model_admin.search_fields, model
        assert model_admin.list_filter, model


def test_every_changelist_opens_and_escapes_hostile_values(administrator: User) -> None:
    prospect = ProspectFactory.create(email="admin-view@example.jp", last_name=SCRIPT)
    form = Form.objects.create(name=SCRIPT)
    FormField.objects.create(form=form, label=SCRIPT)
    handler = FormHandler.objects.create(name=SCRIPT)
    FormHandlerField.objects.create(handler=handler, external_name=SCRIPT, is_email=True)
    LandingPage.objects.create(name=SCRIPT, slug="admin", title=SCRIPT)
    submission = Submission.objects.create(
        kind=SubmissionKind.FORM, form=form, raw_data={"x": SCRIPT}, prospect=prospect
    )
    wording = ConsentWording.objects.create(text=SCRIPT)
    ConsentRecord.objects.create(
        prospect=prospect, wording=wording, granted=True, source=ConsentSource.FORM
    )
    client = client_for(administrator)

    for model in MODELS:
        url = f"/admin/forms/{model._meta.model_name}/"
        response = client.get(url, {"q": "alert"})
        assert response.status_code == 200, url
        assert SCRIPT.encode() not in response.content, url

    change = client.get(f"/admin/forms/submission/{submission.pk}/change/")
    assert change.status_code == 200
    assert SCRIPT.encode() not in change.content


def test_submissions_cannot_be_added_or_changed_in_admin(administrator: User) -> None:
    submission = Submission.objects.create(kind=SubmissionKind.FORM, raw_data={"email": "x"})
    client = client_for(administrator)

    assert client.get("/admin/forms/submission/add/").status_code == 403
    response = client.post(
        f"/admin/forms/submission/{submission.pk}/change/", {"status": "processed"}
    )
    assert response.status_code == 403
    submission.refresh_from_db()
    assert submission.status == "received"


def test_a_sales_user_without_admin_access_is_refused(sales_user: User) -> None:
    assert client_for(sales_user).get("/admin/forms/submission/").status_code in (302, 403)
