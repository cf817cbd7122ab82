"""Marketer pages for A/B tests and test sends: setting up, refusing bad input, access, and a
test that really reaches the SMTP sink."""

from __future__ import annotations

import email
from email.policy import default as default_policy

import pytest
from django.urls import reverse

from emails.models import (
    EmailTemplate,
    ListEmail,
    ListEmailStatus,
    SenderType,
    SendingDomain,
)
from emails.services import list_email_create
from emails.smtp_sink import SmtpSink
from mapp.models import AccountSettings, User
from prospects.models import ProspectList
from tests.conftest import client_for
from tests.factories import ProspectFactory

pytestmark = pytest.mark.django_db

HTML = (
    "<p>{{ prospect.last_name }} 様</p>"
    '<p><a href="{{ unsubscribe_url }}">配信停止</a></p><p>{{ account.postal_address }}</p>'
)


@pytest.fixture
def draft(verified_domain: SendingDomain, account_identity: AccountSettings) -> ListEmail:
    return list_email_create(
        actor=None,
        name="11月セミナー",
        recipient_lists=[ProspectList.objects.create(name="来場者")],
        sending_domain=verified_domain,
        subject="{{ prospect.last_name }}様 セミナーのご案内",
        html=HTML,
        sender_type=SenderType.CUSTOM,
        sender_name="マップ株式会社",
        sender_address="news@mail.example.jp",
    )


def test_marketer_sets_up_and_removes_an_ab_test(
    marketer: User, english: None, draft: ListEmail
) -> None:
    client = client_for(marketer)
    url = reverse("emails:list_email_ab_test", args=[draft.pk])
    assert client.get(url).status_code == 200
    response = client.post(
        url,
        {
            "percent": "30",
            "hours": "6",
            "metric": "click_rate",
            "B_subject": "【残席わずか】{{ prospect.last_name }}様",
            "C_subject": "<script>alert(1)</script>",
        },
    )
    assert response.status_code == 302
    draft.refresh_from_db()
    assert (draft.ab_test_percent, draft.ab_test_hours, draft.ab_winner_metric) == (
        30,
        6,
        "click_rate",
    )
    assert list(draft.variants.values_list("letter", "subject")) == [
        ("A", ""),
        ("B", "【残席わずか】{{ prospect.last_name }}様"),
        ("C", "<script>alert(1)</script>"),
    ]
    page = client.get(reverse("emails:list_email_detail", args=[draft.pk])).content.decode()
    assert 'data-testid="ab-variants"' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)</script>" not in page
    assert "30% of the recipients" in page
    # removed again
    assert client.post(url, {"remove": "1"}).status_code == 302
    draft.refresh_from_db()
    assert draft.ab_test_percent is None
    assert not draft.variants.exists()


def test_bad_ab_test_input_is_refused_with_messages(
    marketer: User, english: None, draft: ListEmail
) -> None:
    client = client_for(marketer)
    url = reverse("emails:list_email_ab_test", args=[draft.pk])
    only_a = client.post(url, {"percent": "20", "hours": "4", "metric": "open_rate"})
    assert only_a.status_code == 400
    assert "between 2 and 5 variants" in only_a.content.decode()
    broken = client.post(
        url,
        {"percent": "500", "hours": "x", "metric": "open_rate", "B_subject": "{% if %}"},
    )
    assert broken.status_code == 400
    assert not draft.variants.exists()
    escape = client.post(
        url,
        {"percent": "20", "hours": "4", "metric": "open_rate", "B_html": "{{ ''.__class__ }}"},
    )
    assert escape.status_code == 400
    assert "Variant B" in escape.content.decode()
    # a started send's test cannot change
    ListEmail.objects.filter(pk=draft.pk).update(status=ListEmailStatus.SENDING)
    frozen = client.post(
        url, {"percent": "20", "hours": "4", "metric": "open_rate", "B_subject": "x"}
    )
    assert "cannot be changed" in frozen.content.decode()
    assert not draft.variants.exists()


def test_sales_users_cannot_set_up_tests_or_send_tests(
    sales_user: User, draft: ListEmail, smtp_sink: SmtpSink
) -> None:
    client = client_for(sales_user)
    assert client.get(reverse("emails:list_email_ab_test", args=[draft.pk])).status_code == 403
    response = client.post(
        reverse("emails:list_email_test_send", args=[draft.pk]), {"addresses": "a@example.jp"}
    )
    assert response.status_code == 403
    assert smtp_sink.messages == []


def test_test_send_from_the_list_email_page(
    marketer: User, english: None, draft: ListEmail, smtp_sink: SmtpSink
) -> None:
    client = client_for(marketer)
    prospect = ProspectFactory(last_name="高橋", email="takahashi@example.co.jp")
    response = client.post(
        reverse("emails:list_email_test_send", args=[draft.pk]),
        {"addresses": "review@example.jp, boss@example.jp", "prospect": prospect.email},
        follow=True,
    )
    assert "A test was sent to review@example.jp, boss@example.jp." in response.content.decode()
    assert len(smtp_sink.messages) == 2
    message = email.message_from_bytes(smtp_sink.messages[0].data, policy=default_policy)
    assert str(message["Subject"]) == "[TEST] 高橋様 セミナーのご案内"
    # garbage addresses: a message, nothing sent
    response = client.post(
        reverse("emails:list_email_test_send", args=[draft.pk]),
        {"addresses": "review@example.jp\r\nBcc: x@evil.example"},
        follow=True,
    )
    assert "is not an email address" in response.content.decode()
    assert len(smtp_sink.messages) == 2


def test_test_send_of_a_template(
    marketer: User, english: None, smtp_sink: SmtpSink, draft: ListEmail
) -> None:
    template = EmailTemplate.objects.create(
        name="お礼",
        subject="ありがとうございました",
        html=HTML,
        sender_type=SenderType.CUSTOM,
        sender_name="マップ株式会社",
        sender_address="thanks@mail.example.jp",
    )
    client = client_for(marketer)
    page = client.get(reverse("emails:template_edit", args=[template.pk])).content.decode()
    assert 'data-testid="test-send-form"' in page
    response = client.post(
        reverse("emails:template_test_send", args=[template.pk]),
        {"addresses": "me@example.jp"},
        follow=True,
    )
    assert "A test was sent to me@example.jp." in response.content.decode()
    assert [m.recipients for m in smtp_sink.messages] == [("me@example.jp",)]
    # a template whose sender is on no verified domain cannot be tested, with a reason
    template.sender_address = "thanks@unverified.example"
    template.save()
    response = client.post(
        reverse("emails:template_test_send", args=[template.pk]),
        {"addresses": "me@example.jp"},
        follow=True,
    )
    assert "verified sending domain" in response.content.decode()
    assert len(smtp_sink.messages) == 1
