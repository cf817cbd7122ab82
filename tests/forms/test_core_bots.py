"""Bot protection: honeypot, minimum fill time token, throttling — bots are thanked, counted,
and never become prospects."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
from django.test import Client

from forms import bot_protection
from forms.models import Form, Submission, SubmissionStatus
from forms.selectors import submission_status_counts
from prospects.models import Prospect
from tests.forms.conftest import form_url, make_form, render_and_token, submit
from tracking.models import Activity, ActivityType

pytestmark = pytest.mark.django_db


def _assert_thanked_and_counted(response: Any, form: Form, reason: str) -> None:
    assert response.status_code == 200
    assert b'data-testid="thank-you"' in response.content
    submission = Submission.objects.get()
    assert submission.status == SubmissionStatus.REJECTED_BOT
    assert submission.error == reason
    assert submission.prospect is None
    assert not Prospect.objects.exists()
    assert not Activity.objects.filter(type=ActivityType.FORM_SUCCESS).exists()
    assert submission_status_counts(form=form)[SubmissionStatus.REJECTED_BOT] == 1


def test_a_filled_honeypot_is_a_bot(form: Form, rendered_seconds_ago: Any) -> None:
    response = submit(
        Client(),
        form,
        {"email": "bot@example.jp", bot_protection.HONEYPOT_FIELD: "https://spam.example"},
        rendered_seconds_ago,
    )

    _assert_thanked_and_counted(response, form, bot_protection.REASON_HONEYPOT)


def test_the_honeypot_is_a_text_input_hidden_by_css(form: Form) -> None:
    page = Client().get(form_url(form)).content.decode()

    assert f'type="text" id="mapp-{form.uuid}-trap" name="{bot_protection.HONEYPOT_FIELD}"' in page
    assert 'class="mapp-form__trap" aria-hidden="true"' in page


def test_a_post_faster_than_a_person_is_a_bot(form: Form, rendered_seconds_ago: Any) -> None:
    client = Client()
    token = render_and_token(client, form, lambda: rendered_seconds_ago(0))

    response = client.post(
        form_url(form), {bot_protection.TOKEN_FIELD: token, "email": "fast@example.jp"}
    )

    _assert_thanked_and_counted(response, form, bot_protection.REASON_TOO_FAST)


def test_a_token_older_than_a_day_is_refused(form: Form, rendered_seconds_ago: Any) -> None:
    day_and_more = int(datetime.timedelta(days=1, minutes=1).total_seconds())
    client = Client()
    token = render_and_token(client, form, lambda: rendered_seconds_ago(day_and_more))

    response = client.post(
        form_url(form), {bot_protection.TOKEN_FIELD: token, "email": "stale@example.jp"}
    )

    _assert_thanked_and_counted(response, form, bot_protection.REASON_EXPIRED)


def test_a_post_without_the_token_is_a_bot(form: Form) -> None:
    response = Client().post(form_url(form), {"email": "direct@example.jp"})

    _assert_thanked_and_counted(response, form, bot_protection.REASON_MISSING_TOKEN)


@pytest.mark.parametrize("forged", ["garbage", "a" * 5000])
def test_a_forged_token_is_a_bot(form: Form, forged: str) -> None:
    response = Client().post(
        form_url(form), {bot_protection.TOKEN_FIELD: forged, "email": "forged@example.jp"}
    )

    _assert_thanked_and_counted(response, form, bot_protection.REASON_BAD_TOKEN)


def test_a_token_of_another_form_is_a_bot(form: Form, rendered_seconds_ago: Any) -> None:
    other = make_form(name="別フォーム")
    token = render_and_token(Client(), other, rendered_seconds_ago)

    response = Client().post(
        form_url(form), {bot_protection.TOKEN_FIELD: token, "email": "swap@example.jp"}
    )

    _assert_thanked_and_counted(response, form, bot_protection.REASON_BAD_TOKEN)


def test_the_token_verdict_is_judged_at_receipt_not_at_a_later_retry() -> None:
    form_uuid = uuid.uuid4()
    token = bot_protection.render_token_issue(form_uuid=form_uuid, shown_field_ids=[1, 2])
    loaded = bot_protection.render_token_load(token)
    assert loaded is not None
    received_at = loaded.rendered_at + datetime.timedelta(seconds=30)

    later_retry_verdict = bot_protection.render_token_verdict(
        token=token, form_uuid=form_uuid, received_at=received_at
    )

    assert later_retry_verdict == (loaded, None)
    assert loaded.shown_field_ids == (1, 2)


def test_a_flood_from_one_address_is_throttled_before_anything_is_stored(
    form: Form, rendered_seconds_ago: Any, settings: Any
) -> None:
    settings.TRACKING_RATE_LIMIT_HITS = 2
    client = Client()
    token = render_and_token(client, form, rendered_seconds_ago)

    answers = [
        client.post(
            form_url(form), {bot_protection.TOKEN_FIELD: token, "email": f"flood{index}@example.jp"}
        ).status_code
        for index in range(4)
    ]

    assert answers[:2] == [200, 200]
    assert answers[2:] == [429, 429]
    assert Submission.objects.count() == 2
