"""The form builder pages: creating and editing a form with its fields and completion actions,
the server's validation (messages next to the faulty field), reordering and removing fields,
the redirect allow-list, embed snippets, the list's numbers and who may do what."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client
from django.utils.html import escape

from forms.models import ConsentWording, FieldType, Form, FormField
from mapp.models import User
from prospects.models import CustomField, CustomFieldType, TaskPriority
from prospects.services import list_create
from tests.conftest import client_for
from tests.forms.conftest import make_form
from tracking.models import ActivityType, Visitor
from tracking.services import activity_record

pytestmark = pytest.mark.django_db


def _row(key: str, target: str, field_type: str, label: str, **extra: Any) -> dict[str, Any]:
    row = {
        "key": key,
        "target": target,
        "field_type": field_type,
        "label": label,
        "required": False,
        "help_text": "",
        "error_message": "",
        "default_value": "",
        "choices": [],
        "consent_wording": "",
        "show_if_known": "",
        "skip_if_known": False,
    }
    row.update(extra)
    return row


def _post_data(fields: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    data = {
        "name": "資料請求フォーム",
        "description": "ホワイトペーパー",
        "form_fields": json.dumps(fields, ensure_ascii=False),
        "submit_label": "ダウンロード",
        "thank_you_content": "ありがとうございました。",
        "thank_you_url": "",
        "campaign_name": "2025 展示会",
        "is_active": "on",
        "completion_actions": "[]",
    }
    data.update(overrides)
    return data


def _email_row(key: str = "new-1") -> dict[str, Any]:
    return _row(key, "email", FieldType.EMAIL, "メールアドレス", required=True)


@pytest.fixture
def marketing_client(marketer: User) -> Client:
    return client_for(marketer)


@pytest.fixture
def size_field(db: None) -> CustomField:
    return CustomField.objects.create(
        label="従業員規模",
        key="company_size",
        field_type=CustomFieldType.CHOICE,
        choices=["1-49", "50-299", "300+"],
    )


def test_marketer_builds_a_form_with_fields_progressive_rules_and_completion_actions(
    marketing_client: Client, marketer: User, sales_user: User, size_field: CustomField
) -> None:
    # given a static list and a sales user to hand the lead to
    seminar_list = list_create(actor=marketer, name="資料請求者")
    fields = [
        _email_row(),
        _row("new-2", "company_name", FieldType.TEXT, "会社名", required=True),
        _row(
            "new-3",
            "custom:company_size",
            FieldType.SELECT,
            "従業員規模",
            choices=["1-49", "50-299", "300+"],
            show_if_known="field:new-2",
        ),
        _row("new-4", "job_title", FieldType.TEXT, "役職", show_if_known="prospect:company_name"),
        _row("new-5", "", FieldType.TEXTAREA, "ご質問", help_text="自由にご記入ください"),
        _row(
            "new-6",
            "",
            FieldType.CONSENT,
            "メール配信の同意",
            required=True,
            consent_wording="製品情報のメールを受け取ることに同意します。",
        ),
    ]
    actions = [
        {"action": "add_to_list", "config": {"list": seminar_list.pk}},
        {
            "action": "create_task",
            "config": {
                "assignee": sales_user.pk,
                "subject": "資料請求のフォロー",
                "due_in_days": 2,
                "priority": TaskPriority.NORMAL,
                "notes": "",
            },
        },
    ]

    # when the marketer saves the builder
    response = marketing_client.post(
        "/marketing/forms/new/",
        _post_data(fields, completion_actions=json.dumps(actions)),
    )

    # then the form, its fields in order and its actions are stored
    assert response.status_code == 302, response.content.decode()[:2000]
    form = Form.objects.get(name="資料請求フォーム")
    assert response["Location"] == f"/marketing/forms/{form.pk}/"
    assert form.created_by == marketer
    assert form.submit_label == "ダウンロード"
    assert form.campaign_name == "2025 展示会"
    assert [action["action"] for action in form.completion_actions] == [
        "add_to_list",
        "create_task",
    ]
    saved = list(form.fields.filter(is_active=True).order_by("position"))
    assert [item.label for item in saved] == [
        "メールアドレス",
        "会社名",
        "従業員規模",
        "役職",
        "ご質問",
        "メール配信の同意",
    ]
    email, company, size, job_title, question, consent = saved
    assert email.prospect_field == "email" and email.required
    assert size.custom_field == size_field and size.choices == ["1-49", "50-299", "300+"]
    assert size.progressive_show_if_known == company
    assert job_title.progressive_show_if_known_prospect_field == "company_name"
    assert question.prospect_field == "" and question.custom_field is None
    assert consent.consent_version is not None
    assert consent.consent_version.text == "製品情報のメールを受け取ることに同意します。"


def test_edit_reorders_removes_and_readds_fields_keeping_their_rows(
    marketing_client: Client,
) -> None:
    # given a form with email, last name, company, phone
    form = make_form()
    email, last_name, company, phone = form.fields.order_by("position")
    rows = {
        item.pk: _row(str(item.pk), item.prospect_field, item.field_type, item.label)
        for item in (email, last_name, company, phone)
    }
    rows[email.pk]["required"] = True

    # when phone moves to the top, company is removed
    response = marketing_client.post(
        f"/marketing/forms/{form.pk}/",
        _post_data([rows[phone.pk], rows[email.pk], rows[last_name.pk]]),
    )

    # then the rows are the same, in the new order, and company is only deactivated
    assert response.status_code == 302
    active = list(form.fields.filter(is_active=True).order_by("position"))
    assert [item.pk for item in active] == [phone.pk, email.pk, last_name.pk]
    company.refresh_from_db()
    assert company.is_active is False

    # and adding the company field again brings its old row back (its submissions' column)
    response = marketing_client.post(
        f"/marketing/forms/{form.pk}/",
        _post_data(
            [
                rows[phone.pk],
                rows[email.pk],
                rows[last_name.pk],
                _row("new-9", "company_name", FieldType.TEXT, "御社名"),
            ]
        ),
    )
    assert response.status_code == 302
    company.refresh_from_db()
    assert company.is_active is True
    assert company.label == "御社名"
    assert company.position == 3
    assert form.fields.count() == 4


def test_a_prospect_field_can_move_between_rows_in_one_save(marketing_client: Client) -> None:
    # given a form whose second field is the company name
    form = make_form()
    email, _last_name, company, phone = form.fields.order_by("position")
    email_row = _row(str(email.pk), "email", FieldType.EMAIL, "メールアドレス", required=True)

    # when the company row becomes "department" and the phone row becomes "company_name"
    response = marketing_client.post(
        f"/marketing/forms/{form.pk}/",
        _post_data(
            [
                email_row,
                _row(str(company.pk), "department", FieldType.TEXT, "部署"),
                _row(str(phone.pk), "company_name", FieldType.TEXT, "会社名"),
            ]
        ),
    )

    # then both rows are saved without breaking the one-row-per-prospect-field rule
    assert response.status_code == 302
    company.refresh_from_db()
    phone.refresh_from_db()
    assert company.prospect_field == "department"
    assert phone.prospect_field == "company_name"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            [_row("new-1", "last_name", FieldType.TEXT, "姓")],
            "A form needs exactly one email field, mapped to the prospect's email address.",
        ),
        (
            [_email_row(), _row("new-2", "", FieldType.SELECT, "ご興味")],
            "Add at least one choice (one per line) for a drop-down or radio buttons.",
        ),
        (
            [_email_row(), _row("new-2", "", FieldType.RADIO, "ご興味", choices=["   "])],
            "Add at least one choice (one per line) for a drop-down or radio buttons.",
        ),
        (
            [_email_row(), _row("new-2", "", FieldType.CONSENT, "同意")],
            "Enter the consent wording shown next to the checkbox.",
        ),
        (
            [_email_row(), _row("new-2", "company_name", FieldType.EMAIL, "会社名")],
            "An Email field must be mapped to the prospect's email address.",
        ),
        (
            [_email_row(), _row("new-2", "", FieldType.TEXT, "")],
            "Give every field a label.",
        ),
        (
            [
                _email_row(),
                _row("new-2", "company_name", FieldType.TEXT, "会社名"),
                _row("new-3", "company_name", FieldType.TEXT, "御社名"),
            ],
            "“御社名” is mapped to the same field as field 2.",
        ),
        (
            [_email_row(), _row("new-2", "source", FieldType.TEXT, "流入元")],
            "“source” is not a prospect field a form may fill.",
        ),
        (
            [
                _email_row(),
                _row(
                    "new-2", "company_name", FieldType.TEXT, "会社名", show_if_known="field:new-3"
                ),
                _row("new-3", "job_title", FieldType.TEXT, "役職", show_if_known="field:new-2"),
            ],
            "These fields wait for each other and would never be asked: 会社名.",
        ),
        (
            [
                _email_row(),
                _row("new-2", "", FieldType.TEXT, "メモ"),
                _row("new-3", "job_title", FieldType.TEXT, "役職", show_if_known="field:new-2"),
            ],
            "“メモ” is not saved on the prospect, so it is never known: choose a mapped field.",
        ),
    ],
)
def test_builder_refuses_invalid_fields_with_clear_messages(
    marketing_client: Client, english: None, fields: list[dict[str, Any]], message: str
) -> None:
    response = marketing_client.post("/marketing/forms/new/", _post_data(fields))

    assert response.status_code == 400
    assert not Form.objects.exists()
    page = response.content.decode()
    # The message is in the page: above the builder for the list, in the row's errors for a
    # row (the builder's JSON, which the script shows next to the field).
    row_messages = [text for texts in _row_errors(page).values() for text in texts]
    assert escape(message) in page or message in row_messages


def _row_errors(page: str) -> dict[str, list[str]]:
    match = re.search(
        r'<script id="form-builder-form_fields-errors" type="application/json">(.*?)</script>',
        page,
    )
    assert match is not None
    errors: dict[str, list[str]] = json.loads(match.group(1))
    return errors


def test_builder_row_errors_are_keyed_by_row_for_the_script(
    marketing_client: Client, english: None
) -> None:
    fields = [_email_row(), _row("new-2", "", FieldType.SELECT, "ご興味")]

    response = marketing_client.post("/marketing/forms/new/", _post_data(fields))

    assert _row_errors(response.content.decode()) == {
        "1": ["Add at least one choice (one per line) for a drop-down or radio buttons."]
    }


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/thanks",
        "//evil.example/thanks",
        "https://www.customer.example@evil.example/",
        "javascript:alert(1)",
        "http://www.customer.example.evil.example/",
        "/relative/thanks",
    ],
)
def test_thank_you_url_outside_the_allow_list_is_refused(
    marketing_client: Client, english: None, url: str
) -> None:
    response = marketing_client.post(
        "/marketing/forms/new/", _post_data([_email_row()], thank_you_url=url)
    )

    assert response.status_code == 400
    assert not Form.objects.exists()
    page = response.content.decode()
    assert any(
        text in page
        for text in (
            "Redirects may only go to this application",
            "Enter an absolute http:// or https:// address.",
            "The address may not contain a user name or password.",
        )
    )


@pytest.mark.parametrize(
    "url",
    ["https://www.customer.example/thanks?from=form", "https://store.shop.example/thanks"],
)
def test_thank_you_url_on_the_allow_list_is_saved(marketing_client: Client, url: str) -> None:
    response = marketing_client.post(
        "/marketing/forms/new/", _post_data([_email_row()], thank_you_url=url)
    )

    assert response.status_code == 302
    assert Form.objects.get().thank_you_url == url


def test_invalid_completion_action_is_shown_and_nothing_is_saved(
    marketing_client: Client, english: None
) -> None:
    actions = [{"action": "add_to_list", "config": {"list": 999_999}}]

    response = marketing_client.post(
        "/marketing/forms/new/",
        _post_data([_email_row()], completion_actions=json.dumps(actions)),
    )

    assert response.status_code == 400
    assert not Form.objects.exists()
    assert "No such static list." in response.content.decode()


def test_edit_page_shows_the_builder_rows_and_the_embed_snippets(
    marketing_client: Client,
) -> None:
    form = make_form(name="<b>Seminar</b>")

    response = marketing_client.get(f"/marketing/forms/{form.pk}/")

    assert response.status_code == 200
    page = response.content.decode()
    assert f"/forms/{form.uuid}/embed.js" in page
    assert f"/forms/{form.uuid}/?embed=1" in page
    assert 'data-copy-from="embed-script"' in page
    # Escaped everywhere: in the heading and inside the snippet text.
    assert "<b>Seminar</b>" not in page
    assert "&lt;b&gt;Seminar&lt;/b&gt;" in page
    match = re.search(
        r'<script id="form-builder-form_fields-initial" type="application/json">(.*?)</script>',
        page,
    )
    assert match is not None
    rows = json.loads(json.loads(match.group(1)))
    assert [row["target"] for row in rows] == ["email", "last_name", "company_name", "phone"]
    assert rows[0]["key"] == str(form.fields.get(prospect_field="email").pk)


def test_form_list_shows_views_submissions_and_conversion_from_activities(
    marketing_client: Client, django_assert_max_num_queries: Any
) -> None:
    # given two forms, one with two visitors viewing and one submitting
    form = make_form(name="資料請求")
    make_form(name="お問い合わせ")
    first, second = Visitor.objects.create(), Visitor.objects.create()
    for visitor in (first, first, second):
        activity_record(
            type=ActivityType.FORM_VIEW,
            visitor_id=visitor.pk,
            object_type="form",
            object_id=form.pk,
        )
    activity_record(
        type=ActivityType.FORM_SUCCESS, visitor_id=first.pk, object_type="form", object_id=form.pk
    )
    activity_record(type=ActivityType.FORM_VIEW, object_type="form", object_id=form.pk, is_bot=True)

    # when the list is shown (a bounded number of queries, whatever the number of forms)
    with django_assert_max_num_queries(12):
        response = marketing_client.get("/marketing/forms/")

    # then the numbers come from the activities (bots left out)
    assert response.status_code == 200
    row = response.content.decode().split("資料請求", 1)[1].split("</tr>", 1)[0]
    assert '<td data-testid="views">3</td>' in row
    assert '<td data-testid="submissions">1</td>' in row
    assert '<td data-testid="conversion">50.0%</td>' in row


def test_sales_users_get_403_on_every_form_page(sales_user: User) -> None:
    form = make_form()
    client = client_for(sales_user)

    for url in (
        "/marketing/forms/",
        "/marketing/forms/new/",
        f"/marketing/forms/{form.pk}/",
        f"/marketing/forms/{form.pk}/report/",
        f"/marketing/forms/{form.pk}/submissions.csv",
    ):
        assert client.get(url).status_code == 403, url
    assert client.post("/marketing/forms/new/", _post_data([_email_row()])).status_code == 403
    assert not Form.objects.filter(name="資料請求フォーム", description="ホワイトペーパー").exists()


def test_marketing_viewers_see_but_cannot_change_a_form(sales_manager: User) -> None:
    # The sales manager role has Marketing VIEW.
    form = make_form()
    client = client_for(sales_manager)

    page = client.get(f"/marketing/forms/{form.pk}/")
    assert page.status_code == 200
    assert 'data-testid="form-fields"' in page.content.decode()
    assert client.get("/marketing/forms/new/").status_code == 403
    response = client.post(
        f"/marketing/forms/{form.pk}/", _post_data([_email_row()], name="Changed")
    )
    assert response.status_code == 403
    form.refresh_from_db()
    assert form.name != "Changed"


def test_builder_post_needs_the_csrf_token(marketer: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(marketer)

    response = client.post("/marketing/forms/new/", _post_data([_email_row()]))

    assert response.status_code == 403
    assert not Form.objects.exists()


def test_editing_consent_wording_makes_a_new_version(marketing_client: Client) -> None:
    form = make_form()
    email = form.fields.get(prospect_field="email")
    consent = FormField.objects.create(
        form=form, label="同意", field_type=FieldType.CONSENT, consent_wording="旧文言", position=9
    )
    rows = [
        _row(str(email.pk), "email", FieldType.EMAIL, "メールアドレス", required=True),
        _row(str(consent.pk), "", FieldType.CONSENT, "同意", consent_wording="新しい文言です"),
    ]

    response = marketing_client.post(f"/marketing/forms/{form.pk}/", _post_data(rows))

    assert response.status_code == 302
    consent.refresh_from_db()
    assert consent.consent_version is not None
    assert consent.consent_version.text == "新しい文言です"
    assert ConsentWording.objects.filter(text="新しい文言です").count() == 1


def test_create_page_starts_with_the_email_field(marketing_client: Client) -> None:
    response = marketing_client.get("/marketing/forms/new/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "js/form-builder.js" in page
    assert "js/action-editor.js" in page
    match = re.search(
        r'<script id="form-builder-form_fields-initial" type="application/json">(.*?)</script>',
        page,
    )
    assert match is not None
    rows = json.loads(json.loads(match.group(1)))
    assert rows == [
        {
            "key": "new-1",
            "target": "email",
            "field_type": "email",
            "label": "メールアドレス",
            "required": True,
        }
    ]


@pytest.mark.parametrize("garbage", ["not json", '{"email": true}', "[1, 2, 3]", "null"])
def test_hand_made_garbage_is_refused_without_a_500(
    marketing_client: Client, english: None, garbage: str
) -> None:
    response = marketing_client.post(
        "/marketing/forms/new/", {**_post_data([_email_row()]), "form_fields": garbage}
    )

    assert response.status_code == 400
    assert not Form.objects.exists()


def test_script_in_a_label_is_stored_as_text_and_shown_escaped(marketing_client: Client) -> None:
    hostile = "</script><script>alert(1)</script>"
    response = marketing_client.post(
        "/marketing/forms/new/",
        _post_data([_email_row(), _row("new-2", "", FieldType.TEXT, hostile)]),
    )
    assert response.status_code == 302
    form = Form.objects.get()
    assert form.fields.get(label=hostile)

    page = marketing_client.get(f"/marketing/forms/{form.pk}/").content.decode()

    assert hostile not in page
    assert "<script>alert(1)" not in page
