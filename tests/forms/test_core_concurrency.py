"""Two identical posts at the same instant (a double click on a slow network) really in
parallel: one submission, one prospect, one activity, the same answer to both."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from forms import bot_protection
from forms.models import Submission, SubmissionStatus
from prospects.models import Prospect
from tests.forms.conftest import form_url, make_form, render_and_token
from tracking.models import Activity, ActivityType

pytestmark = pytest.mark.django_db(transaction=True)


def test_simultaneous_double_click(rendered_seconds_ago: Any, settings: Any) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    form = make_form()
    token = render_and_token(Client(), form, rendered_seconds_ago)
    data = {bot_protection.TOKEN_FIELD: token, "email": "race@example.jp", "last_name": "競合"}
    start = threading.Barrier(3)
    answers: list[tuple[int, bytes]] = []
    errors: list[Exception] = []

    def click() -> None:
        try:
            start.wait(timeout=10)
            response = Client().post(form_url(form), data)
            answers.append((response.status_code, response.content))
        except Exception as error:  # noqa: BLE001 - a thread's failure fails the test below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert [status for status, _content in answers] == [200, 200, 200]
    assert all(b'data-testid="thank-you"' in content for _status, content in answers)
    assert Submission.objects.count() == 1
    assert Submission.objects.get().status == SubmissionStatus.PROCESSED
    assert Prospect.objects.count() == 1
    assert Activity.objects.filter(type=ActivityType.FORM_SUCCESS).count() == 1


def test_simultaneous_different_posts_for_one_new_address_make_one_prospect(
    rendered_seconds_ago: Any, settings: Any
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    form = make_form()
    token = render_and_token(Client(), form, rendered_seconds_ago)
    start = threading.Barrier(2)
    statuses: list[int] = []

    def post(company: str) -> None:
        try:
            start.wait(timeout=10)
            response = Client().post(
                form_url(form),
                {
                    bot_protection.TOKEN_FIELD: token,
                    "email": "same@example.jp",
                    "company_name": company,
                },
            )
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(name,)) for name in ("甲社", "乙社")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert statuses == [200, 200]
    assert Submission.objects.count() == 2
    assert set(Submission.objects.values_list("status", flat=True)) == {SubmissionStatus.PROCESSED}
    assert Prospect.objects.filter(email="same@example.jp").count() == 1
