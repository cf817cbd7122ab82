"""The submission pipeline: stored raw first, processed idempotently, retried, never lost."""

from __future__ import annotations

import datetime
import uuid
from typing import Any
from unittest import mock

import pytest
from django.core import signing
from django.test import Client
from django.utils import timezone

from forms import bot_protection
from forms.models import FieldType, Form, LandingPage, Submission, SubmissionKind, SubmissionStatus
from forms.submissions import DEDUP_WINDOW, submission_process, submissions_retry
from forms.tasks import retry_failed_submissions
from mapp.models import Notification, Role
from prospects.models import ListMembership, Prospect, ProspectList, Task
from tests.factories import ProspectFactory, make_user
from tests.forms.conftest import add_field, form_url, make_form, render_and_token, submit
from tracking.models import Activity, ActivityType, Visitor
from tracking.services import activity_record
from tracking.visitor_cookie import COOKIE_NAME, COOKIE_SALT

pytestmark = pytest.mark.django_db


def _success_activities(form: Form) -> Any:
    return Activity.objects.filter(
        type=ActivityType.FORM_SUCCESS, object_type="form", object_id=str(form.pk)
    )


def test_a_submission_creates_the_prospect_and_records_the_activity(
    form: Form, rendered_seconds_ago: Any
) -> None:
    client = Client()

    response = submit(
        client,
        form,
        {"email": "taro@example.jp", "last_name": "山田", "company_name": "株式会社サンプル"},
        rendered_seconds_ago,
    )

    assert response.status_code == 200
    assert b'data-testid="thank-you"' in response.content
    prospect = Prospect.objects.get(email="taro@example.jp")
    assert (prospect.last_name, prospect.company_name) == ("山田", "株式会社サンプル")
    assert prospect.source == form.name
    submission = Submission.objects.get()
    assert submission.status == SubmissionStatus.PROCESSED
    assert submission.prospect == prospect
    assert submission.raw_data["email"] == "taro@example.jp"
    activity = _success_activities(form).get()
    assert activity.prospect_id == prospect.pk
    assert activity.payload["submission_id"] == submission.pk


def test_the_raw_post_is_kept_when_processing_fails_and_the_retry_task_finishes_it(
    form: Form, rendered_seconds_ago: Any
) -> None:
    form.completion_actions = [{"action": "add_tag", "config": {"tag": "資料請求"}}]
    form.save()
    client = Client()

    with mock.patch(
        "forms.submissions.actions_run", side_effect=RuntimeError("completion action exploded")
    ):
        response = submit(
            client, form, {"email": "hanako@example.jp", "last_name": "佐藤"}, rendered_seconds_ago
        )

    # The visitor is thanked: the lead is stored and will be processed.
    assert response.status_code == 200
    assert b'data-testid="thank-you"' in response.content
    submission = Submission.objects.get()
    assert submission.status == SubmissionStatus.FAILED
    assert "completion action exploded" in submission.error
    assert submission.attempts == 1
    assert submission.raw_data["last_name"] == "佐藤"
    # The failed attempt left nothing half-done.
    assert not Prospect.objects.exists()
    assert not _success_activities(form).exists()

    # Not due yet: the back-off waits a minute after the first attempt.
    assert retry_failed_submissions() == {}
    Submission.objects.filter(pk=submission.pk).update(
        last_attempt_at=timezone.now() - datetime.timedelta(minutes=5)
    )
    assert retry_failed_submissions() == {SubmissionStatus.PROCESSED: 1}

    submission.refresh_from_db()
    assert submission.status == SubmissionStatus.PROCESSED
    assert submission.attempts == 2
    prospect = Prospect.objects.get(email="hanako@example.jp")
    assert submission.prospect == prospect
    assert list(prospect.tags.values_list("name", flat=True)) == ["資料請求"]
    assert _success_activities(form).count() == 1
    # Processing again changes nothing (a duplicated task).
    submission_process(submission_id=submission.pk)
    assert Prospect.objects.count() == 1
    assert _success_activities(form).count() == 1


def test_a_received_submission_whose_request_died_is_processed_by_the_retry_task(
    form: Form, rendered_seconds_ago: Any
) -> None:
    client = Client()
    with mock.patch("forms.views_public.submission_process", return_value=None):
        response = submit(client, form, {"email": "orphan@example.jp"}, rendered_seconds_ago)
    assert response.status_code == 200
    submission = Submission.objects.get()
    assert submission.status == SubmissionStatus.RECEIVED

    assert retry_failed_submissions() == {}  # too recent: its request may still be running
    later = timezone.now() + datetime.timedelta(minutes=10)
    assert submissions_retry(now=later) == {SubmissionStatus.PROCESSED: 1}
    assert Prospect.objects.filter(email="orphan@example.jp").exists()


def test_a_double_click_stores_one_submission_one_prospect_one_activity(
    form: Form, rendered_seconds_ago: Any
) -> None:
    client = Client()
    token = render_and_token(client, form, rendered_seconds_ago)
    data = {bot_protection.TOKEN_FIELD: token, "email": "Double@Example.jp", "last_name": "二重"}

    first = client.post(form_url(form), data)
    # The second click: same data, the address typed differently.
    second = client.post(form_url(form), {**data, "email": "double@example.jp "})

    assert first.status_code == second.status_code == 200
    assert b'data-testid="thank-you"' in second.content
    assert Submission.objects.count() == 1
    assert Prospect.objects.count() == 1
    assert _success_activities(form).count() == 1


def test_the_same_post_after_the_double_click_window_is_a_new_submission(
    form: Form, rendered_seconds_ago: Any
) -> None:
    client = Client()
    submit(client, form, {"email": "again@example.jp"}, rendered_seconds_ago)
    Submission.objects.update(received_at=timezone.now() - DEDUP_WINDOW - datetime.timedelta(1))

    submit(client, form, {"email": "again@example.jp"}, rendered_seconds_ago)

    assert Submission.objects.count() == 2
    assert Prospect.objects.count() == 1  # the second updates the same prospect
    assert _success_activities(form).count() == 2


@pytest.mark.parametrize("typed", ["TARO@EXAMPLE.JP", "ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ"])
def test_an_existing_prospect_is_updated_never_duplicated_nor_wiped(
    form: Form, rendered_seconds_ago: Any, typed: str
) -> None:
    existing = ProspectFactory.create(
        email="taro@example.jp", last_name="山田", company_name="旧社名", phone="03-1234-5678"
    )

    response = submit(
        Client(),
        form,
        {"email": typed, "last_name": "", "company_name": "新社名株式会社", "phone": "  "},
        rendered_seconds_ago,
    )

    assert response.status_code == 200
    assert Prospect.objects.count() == 1
    existing.refresh_from_db()
    assert existing.company_name == "新社名株式会社"
    # Empty answers never erase what is known.
    assert existing.last_name == "山田"
    assert existing.phone == "03-1234-5678"
    assert existing.email == "taro@example.jp"
    assert Submission.objects.get().prospect == existing


def test_errors_re_render_the_form_with_the_values_and_messages(
    form: Form, rendered_seconds_ago: Any, english: None
) -> None:
    phone = form.fields.get(prospect_field="phone")
    phone.required = True
    phone.error_message = "Please give us a number we can call."
    phone.save()

    response = submit(
        Client(),
        form,
        {"email": "not an address", "last_name": "<b>Yamada</b>", "company_name": "ACME"},
        rendered_seconds_ago,
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert "Enter a valid email address." in page
    assert "Please give us a number we can call." in page
    assert 'value="ACME"' in page
    assert 'value="&lt;b&gt;Yamada&lt;/b&gt;"' in page
    assert not Prospect.objects.exists()
    submission = Submission.objects.get()
    assert submission.status == SubmissionStatus.INVALID
    assert set(submission.field_errors) == {"email", "phone"}
    error = Activity.objects.get(type=ActivityType.FORM_ERROR)
    assert error.payload["submission_id"] == submission.pk
    # The re-rendered form carries a fresh token: fixing the errors submits normally.
    assert bot_protection.TOKEN_FIELD in page


def test_messages_are_japanese_by_default(form: Form, rendered_seconds_ago: Any) -> None:
    response = submit(Client(), form, {"email": ""}, rendered_seconds_ago)

    assert response.status_code == 400
    assert "この項目は必須です。" in response.content.decode()


def test_script_in_every_field_is_stored_as_text_and_shown_escaped(
    form: Form, rendered_seconds_ago: Any, administrator: Any
) -> None:
    script = '<script>alert("x")</script>'
    response = submit(
        Client(),
        form,
        {"email": "script@example.jp", "last_name": script, "company_name": script},
        rendered_seconds_ago,
    )

    assert response.status_code == 200
    prospect = Prospect.objects.get()
    assert prospect.last_name == script
    assert Submission.objects.get().raw_data["company_name"] == script
    admin_client = Client()
    admin_client.force_login(administrator)
    page = admin_client.get(f"/admin/forms/submission/{Submission.objects.get().pk}/change/")
    assert page.status_code == 200
    assert script.encode() not in page.content


def test_completion_actions_add_to_list_create_a_task_and_notify_the_assignee(
    rendered_seconds_ago: Any,
) -> None:
    sales = make_user(Role.SALES, email="sales-rep@example.jp")
    seminar_list = ProspectList.objects.create(name="資料請求者")
    form = make_form()
    form.completion_actions = [
        {"action": "add_to_list", "config": {"list": seminar_list.pk}},
        {"action": "assign_user", "config": {"user": sales.pk}},
        {
            "action": "create_task_for_assigned_user",
            "config": {"subject": "資料請求のフォロー", "due_in_days": 2},
        },
    ]
    form.save()

    submit(Client(), form, {"email": "lead@example.jp"}, rendered_seconds_ago)

    prospect = Prospect.objects.get(email="lead@example.jp")
    assert ListMembership.objects.filter(prospect=prospect, prospect_list=seminar_list).exists()
    task = Task.objects.get(prospect=prospect)
    assert task.assignee == sales
    assert task.subject == "資料請求のフォロー"
    assert Notification.objects.filter(user=sales).exists()
    runs = prospect.action_runs.order_by("id")
    assert [run.cause_type for run in runs] == ["form_submission"] * 3
    submission = Submission.objects.get()
    assert {run.idempotency_key for run in runs} == {
        f"submission:{submission.pk}:{index}" for index in range(3)
    }


def test_the_anonymous_visitors_history_moves_to_the_prospect(
    form: Form, rendered_seconds_ago: Any
) -> None:
    visitor = Visitor.objects.create(uuid=uuid.uuid4())
    for path in ("/pricing", "/whitepaper"):
        activity_record(
            type=ActivityType.PAGE_VIEW,
            visitor_id=visitor.pk,
            object_type="url",
            object_label=f"https://www.customer.example{path}",
        )
    client = Client()
    client.cookies[COOKIE_NAME] = signing.dumps(str(visitor.uuid), salt=COOKIE_SALT)

    submit(client, form, {"email": "known@example.jp"}, rendered_seconds_ago)

    prospect = Prospect.objects.get(email="known@example.jp")
    visitor.refresh_from_db()
    assert visitor.prospect_id == prospect.pk
    page_views = Activity.objects.filter(type=ActivityType.PAGE_VIEW, visitor_id=visitor.pk)
    assert set(page_views.values_list("prospect_id", flat=True)) == {prospect.pk}
    success = _success_activities(form).get()
    assert success.visitor_id == visitor.pk
    assert Activity.objects.filter(type=ActivityType.IDENTIFIED, prospect_id=prospect.pk).exists()


def test_a_visitor_without_a_cookie_gets_one_linked_to_the_new_prospect(
    form: Form, rendered_seconds_ago: Any
) -> None:
    client = Client()
    token = render_and_token(client, form, rendered_seconds_ago)
    client.cookies.pop(COOKIE_NAME, None)

    response = client.post(
        form_url(form), {bot_protection.TOKEN_FIELD: token, "email": "new@example.jp"}
    )

    cookie = response.cookies[COOKIE_NAME].value
    visitor_uuid = uuid.UUID(signing.loads(cookie, salt=COOKIE_SALT))
    assert Visitor.objects.get(uuid=visitor_uuid).prospect == Prospect.objects.get()


def test_the_form_page_sets_the_cookie_and_records_the_view(form: Form) -> None:
    response = Client().get(form_url(form))

    assert response.status_code == 200
    assert COOKIE_NAME in response.cookies
    view = Activity.objects.get(type=ActivityType.FORM_VIEW)
    assert (view.object_type, view.object_id) == ("form", str(form.pk))
    assert view.visitor_id is not None


def test_kiosk_mode_neither_reads_nor_sets_the_cookie(rendered_seconds_ago: Any) -> None:
    form = make_form(kiosk_mode=True)
    visitor = Visitor.objects.create(uuid=uuid.uuid4())
    client = Client()
    client.cookies[COOKIE_NAME] = signing.dumps(str(visitor.uuid), salt=COOKIE_SALT)

    page = client.get(form_url(form))
    token = render_and_token(client, form, rendered_seconds_ago)
    response = client.post(
        form_url(form), {bot_protection.TOKEN_FIELD: token, "email": "booth@example.jp"}
    )

    assert COOKIE_NAME not in page.cookies
    assert COOKIE_NAME not in response.cookies
    assert response.status_code == 200
    visitor.refresh_from_db()
    assert visitor.prospect_id is None
    submission = Submission.objects.get()
    assert submission.is_kiosk
    assert submission.visitor_uuid is None
    assert Prospect.objects.filter(email="booth@example.jp").exists()
    view = Activity.objects.filter(type=ActivityType.FORM_VIEW).first()
    assert view is not None and view.visitor_id is None


def test_progressive_profiling_asks_new_things_of_a_known_prospect(
    rendered_seconds_ago: Any,
) -> None:
    form = Form.objects.create(name="プログレッシブ")
    email = add_field(
        form, label="Email", field_type=FieldType.EMAIL, prospect_field="email", required=True
    )
    company = add_field(
        form, label="Company", prospect_field="company_name", required=True, skip_if_known=True
    )
    add_field(
        form,
        label="Job title",
        prospect_field="job_title",
        required=True,
        progressive_show_if_known=company,
    )
    add_field(
        form,
        label="Department",
        prospect_field="department",
        progressive_show_if_known_prospect_field="job_title",
    )
    anonymous = Client().get(form_url(form)).content.decode()
    assert 'name="company_name"' in anonymous
    assert 'name="job_title"' not in anonymous
    assert 'name="department"' not in anonymous

    prospect = ProspectFactory.create(email="known@example.jp", company_name="株式会社既知")
    visitor = Visitor.objects.create(uuid=uuid.uuid4(), prospect=prospect)
    client = Client()
    client.cookies[COOKIE_NAME] = signing.dumps(str(visitor.uuid), salt=COOKIE_SALT)
    known = client.get(form_url(form)).content.decode()
    assert 'name="email"' in known and email.required
    assert 'name="company_name"' not in known  # known: not asked again
    assert 'name="job_title"' in known  # asked now that the company is known
    assert 'name="department"' not in known

    # Validation checks what was shown: the skipped, required company is not missing.
    token = render_and_token(client, form, rendered_seconds_ago)
    response = client.post(
        form_url(form),
        {bot_protection.TOKEN_FIELD: token, "email": "known@example.jp", "job_title": "部長"},
    )
    assert response.status_code == 200
    prospect.refresh_from_db()
    assert (prospect.company_name, prospect.job_title) == ("株式会社既知", "部長")


def test_a_landing_page_submission_counts_and_records_a_landing_page_success(
    form: Form, rendered_seconds_ago: Any
) -> None:
    page = LandingPage.objects.create(
        name="資料DL", slug="whitepaper", title="資料ダウンロード", form=form, is_published=True
    )

    response = submit(
        Client(), form, {"email": "lp@example.jp"}, rendered_seconds_ago, query=f"?lp={page.pk}"
    )

    assert response.status_code == 200
    submission = Submission.objects.get()
    assert submission.kind == SubmissionKind.LANDING_PAGE
    assert submission.landing_page == page
    page.refresh_from_db()
    assert page.submission_count == 1
    activity = Activity.objects.get(type=ActivityType.LANDING_PAGE_SUCCESS)
    assert (activity.object_type, activity.object_id) == ("landing_page", str(page.pk))
    assert activity.payload["form_id"] == form.pk


def test_an_inactive_form_keeps_the_post_and_says_it_is_closed(
    form: Form, rendered_seconds_ago: Any
) -> None:
    client = Client()
    token = render_and_token(client, form, rendered_seconds_ago)
    Form.objects.filter(pk=form.pk).update(is_active=False)

    response = client.post(
        form_url(form), {bot_protection.TOKEN_FIELD: token, "email": "late@example.jp"}
    )

    assert response.status_code == 410
    submission = Submission.objects.get()
    assert submission.status == SubmissionStatus.INVALID
    assert submission.raw_data["email"] == "late@example.jp"
    assert Client().get(form_url(form)).status_code == 410


def test_unknown_forms_are_404(db: None) -> None:
    assert Client().get(f"/forms/{uuid.uuid4()}/").status_code == 404
    assert Client().post(f"/forms/{uuid.uuid4()}/", {"email": "x@example.jp"}).status_code == 404
