"""Email template pages: list, create / edit round trips, sandbox errors shown and refused at
save, the merge-field menu, and the preview as a chosen prospect (escaped, sandboxed frame)."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from emails.models import EmailTemplate, SenderType
from mapp.models import User
from tests.conftest import client_for
from tests.factories import ProspectFactory

pytestmark = pytest.mark.django_db

HTML = (
    "<p>{{ prospect.last_name|default('ご担当者') }} 様</p>"
    '<p><a href="{{ unsubscribe_url }}">配信停止</a></p><p>{{ account.postal_address }}</p>'
)


@pytest.fixture
def marketing_client(marketer: User) -> Client:
    return client_for(marketer)


def _data(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "月次ニュースレター",
        "subject": "{{ prospect.last_name }}様へ 今月のお知らせ",
        "preheader": "DX 事例を紹介します",
        "html": HTML,
        "text": "",
        "sender_type": SenderType.CUSTOM,
        "sender_user": "",
        "sender_name": "マップ株式会社",
        "sender_address": "news@mail.example.jp",
        "reply_to": "support@example.jp",
    }
    data.update(overrides)
    return data


def _template(**overrides: Any) -> EmailTemplate:
    values = _data(**overrides)
    values.pop("sender_user")
    return EmailTemplate.objects.create(**values)


def test_create_and_edit_round_trip(marketing_client: Client, english: None) -> None:
    # when a marketer creates a template
    response = marketing_client.post(reverse("emails:template_create"), _data())
    template = EmailTemplate.objects.get()
    assert response["Location"] == reverse("emails:template_edit", args=[template.pk])
    assert (template.subject, template.reply_to) == (_data()["subject"], "support@example.jp")
    assert template.html == HTML
    # then the edit page shows what was saved, with the merge-field menu
    page = marketing_client.get(response["Location"]).content.decode()
    assert html.escape(HTML) in page
    assert 'data-testid="merge-insert"' in page
    assert "{{ unsubscribe_url }}" in page
    assert "{{ account.postal_address }}" in page
    # and an edit is saved
    marketing_client.post(response["Location"], _data(name="Newsletter (EN)", preheader=""))
    template.refresh_from_db()
    assert (template.name, template.preheader) == ("Newsletter (EN)", "")
    listing = marketing_client.get(reverse("emails:templates")).content.decode()
    assert "Newsletter (EN)" in listing


def test_syntax_error_shown_and_not_saved(marketing_client: Client, english: None) -> None:
    response = marketing_client.post(
        reverse("emails:template_create"), _data(html="<p>{{ prospect.first_name </p>")
    )
    assert response.status_code == 400
    assert 'data-testid="html-errors"' in response.content.decode()
    assert not EmailTemplate.objects.exists()


def test_sandbox_escape_refused_at_save(marketing_client: Client, english: None) -> None:
    template = _template()
    response = marketing_client.post(
        reverse("emails:template_edit", args=[template.pk]),
        _data(html="{{ ''.__class__.__mro__[1].__subclasses__() }}"),
    )
    assert response.status_code == 400
    errors = re.search(r'data-testid="html-errors">(.*?)</div>', response.content.decode(), re.S)
    assert errors is not None and errors.group(1).strip()
    template.refresh_from_db()
    assert template.html == HTML


def test_sender_problem_shown(marketing_client: Client, english: None) -> None:
    response = marketing_client.post(
        reverse("emails:template_create"), _data(sender_name="", sender_address="")
    )
    assert response.status_code == 400
    assert "Enter the sender&#x27;s name and email address." in response.content.decode()
    assert not EmailTemplate.objects.exists()


def test_preview_as_prospect_escapes_and_sandboxes(marketing_client: Client, english: None) -> None:
    # given a prospect whose name carries a script
    prospect = ProspectFactory.create(
        email="evil@example.jp", last_name="<script>alert(1)</script>", first_name="太郎"
    )
    template = _template()
    # when the template is previewed as that prospect (chosen by email search, then by id)
    for query in ("evil@", str(prospect.pk)):
        response = marketing_client.get(
            reverse("emails:template_edit", args=[template.pk]), {"prospect": query}
        )
        page = response.content.decode()
        # then the frame is sandboxed, and the script is text inside it, never markup
        frame = re.search(r'<iframe[^>]*sandbox=""[^>]*srcdoc="([^"]*)"', page)
        assert frame is not None
        assert "<script" not in frame.group(1)
        inner = html.unescape(frame.group(1))
        assert "<script" not in inner
        assert "&lt;script&gt;alert(1)&lt;/script&gt; 様" in inner
        assert "evil@example.jp" in page
        assert "<script>alert(1)" not in page
        # the subject is escaped too
        assert "&lt;script&gt;alert(1)&lt;/script&gt;様へ" in page


def test_preview_unknown_prospect_says_so(marketing_client: Client, english: None) -> None:
    template = _template()
    page = marketing_client.get(
        reverse("emails:template_edit", args=[template.pk]), {"prospect": "nobody@"}
    ).content.decode()
    assert "No prospect matches" in page
    assert 'data-testid="preview-frame"' in page  # example values instead


def test_pages_render_in_japanese(marketing_client: Client) -> None:
    template = _template()
    for url in (
        reverse("emails:templates"),
        reverse("emails:template_create"),
        reverse("emails:template_edit", args=[template.pk]),
    ):
        response = marketing_client.get(url, HTTP_ACCEPT_LANGUAGE="ja")
        assert response.status_code == 200
        assert '<html lang="ja">' in response.content.decode()


def test_sales_user_gets_403(sales_user: User) -> None:
    template = _template()
    client = client_for(sales_user)
    assert client.get(reverse("emails:templates")).status_code == 403
    assert client.get(reverse("emails:template_edit", args=[template.pk])).status_code == 403
    response = client.post(reverse("emails:template_create"), _data())
    assert response.status_code == 403
    assert EmailTemplate.objects.count() == 1
