"""List email pages: list with progress, create from a template, required-content problems,
scheduling (now / at a Tokyo time), refusal without the postal address, pause / resume /
cancel, the live progress partial, and access."""

from __future__ import annotations

import datetime
import zoneinfo
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from emails.models import (
    EmailTemplate,
    ListEmail,
    ListEmailStatus,
    Recipient,
    RecipientStatus,
    SenderType,
    SendingDomain,
)
from emails.services import list_email_create
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
def marketing_client(marketer: User) -> Client:
    return client_for(marketer)


@pytest.fixture
def template(db: None) -> EmailTemplate:
    return EmailTemplate.objects.create(
        name="セミナー案内",
        subject="{{ prospect.last_name }}様 セミナーのご案内",
        html=HTML,
        sender_type=SenderType.CUSTOM,
        sender_name="マップ株式会社",
        sender_address="news@mail.example.jp",
    )


@pytest.fixture
def prospect_list(db: None) -> ProspectList:
    return ProspectList.objects.create(name="展示会 2025 来場者")


def _draft(
    template: EmailTemplate, prospect_list: ProspectList, domain: SendingDomain
) -> ListEmail:
    return list_email_create(
        actor=None,
        name="11月セミナー",
        template=template,
        recipient_lists=[prospect_list],
        sending_domain=domain,
    )


def test_create_from_template(
    marketing_client: Client,
    english: None,
    template: EmailTemplate,
    prospect_list: ProspectList,
    verified_domain: SendingDomain,
) -> None:
    suppressed = ProspectList.objects.create(name="競合他社")
    form_page = marketing_client.get(
        reverse("emails:list_email_create"), {"template": template.pk}
    ).content.decode()
    assert f'<option value="{template.pk}" selected>' in form_page
    response = marketing_client.post(
        reverse("emails:list_email_create"),
        {
            "name": "11月セミナー",
            "template": template.pk,
            "recipient_lists": [prospect_list.pk],
            "suppression_lists": [suppressed.pk],
            "sending_domain": verified_domain.pk,
        },
    )
    list_email = ListEmail.objects.get()
    assert response["Location"] == reverse("emails:list_email_detail", args=[list_email.pk])
    assert list_email.status == ListEmailStatus.DRAFT
    assert (list_email.subject, list_email.html) == (template.subject, template.html)
    assert list(list_email.recipient_lists.all()) == [prospect_list]
    assert list(list_email.suppression_lists.all()) == [suppressed]
    assert list_email.sending_domain == verified_domain


def test_create_requires_a_recipient_list(
    marketing_client: Client, english: None, template: EmailTemplate
) -> None:
    response = marketing_client.post(
        reverse("emails:list_email_create"), {"name": "x", "template": template.pk}
    )
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not ListEmail.objects.exists()


def test_schedule_refused_without_postal_address(
    marketing_client: Client,
    english: None,
    template: EmailTemplate,
    prospect_list: ProspectList,
    verified_domain: SendingDomain,
    account_identity: AccountSettings,
) -> None:
    # given an account without its postal address (特定電子メール法)
    account_identity.postal_address = ""
    account_identity.save()
    list_email = _draft(template, prospect_list, verified_domain)
    # the problem is listed on the page before anything is pressed
    detail = marketing_client.get(reverse("emails:list_email_detail", args=[list_email.pk]))
    assert "Enter the sender&#x27;s postal address in the account settings." in (
        detail.content.decode()
    )
    # when scheduling is asked for, it is refused with that message
    response = marketing_client.post(
        reverse("emails:list_email_schedule", args=[list_email.pk]), {"when": "now"}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert 'data-testid="schedule-refused"' in page
    assert "Enter the sender&#x27;s postal address in the account settings." in page
    list_email.refresh_from_db()
    assert list_email.status == ListEmailStatus.DRAFT


def test_schedule_at_tokyo_time(
    marketing_client: Client,
    english: None,
    template: EmailTemplate,
    prospect_list: ProspectList,
    verified_domain: SendingDomain,
    account_identity: AccountSettings,
) -> None:
    list_email = _draft(template, prospect_list, verified_domain)
    detail = marketing_client.get(reverse("emails:list_email_detail", args=[list_email.pk]))
    assert 'data-testid="ready"' in detail.content.decode()
    assert '<option value="Asia/Tokyo" selected>' in detail.content.decode()
    tomorrow = (timezone.now() + datetime.timedelta(days=1)).date()
    response = marketing_client.post(
        reverse("emails:list_email_schedule", args=[list_email.pk]),
        {"when": "later", "send_at": f"{tomorrow:%Y-%m-%d}T09:30", "time_zone": "Asia/Tokyo"},
    )
    assert response.status_code == 302
    list_email.refresh_from_db()
    assert list_email.status == ListEmailStatus.SCHEDULED
    assert list_email.scheduled_at == datetime.datetime(
        tomorrow.year, tomorrow.month, tomorrow.day, 9, 30, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo")
    )
    # a scheduled send polls for progress
    page = marketing_client.get(response["Location"]).content.decode()
    assert 'hx-trigger="every 2s"' in page


def test_schedule_in_the_past_is_refused(
    marketing_client: Client,
    english: None,
    template: EmailTemplate,
    prospect_list: ProspectList,
    verified_domain: SendingDomain,
    account_identity: AccountSettings,
) -> None:
    list_email = _draft(template, prospect_list, verified_domain)
    response = marketing_client.post(
        reverse("emails:list_email_schedule", args=[list_email.pk]),
        {"when": "later", "send_at": "2020-01-01T09:00", "time_zone": "Asia/Tokyo"},
    )
    assert response.status_code == 400
    assert "Choose a time in the future." in response.content.decode()
    list_email.refresh_from_db()
    assert list_email.status == ListEmailStatus.DRAFT


def test_pause_resume_cancel(
    marketing_client: Client,
    english: None,
    template: EmailTemplate,
    prospect_list: ProspectList,
    verified_domain: SendingDomain,
) -> None:
    list_email = _draft(template, prospect_list, verified_domain)
    ListEmail.objects.filter(pk=list_email.pk).update(status=ListEmailStatus.SENDING)
    detail_url = reverse("emails:list_email_detail", args=[list_email.pk])

    def status() -> str:
        list_email.refresh_from_db()
        return list_email.status

    # resume is refused while sending
    marketing_client.post(reverse("emails:list_email_resume", args=[list_email.pk]))
    assert status() == ListEmailStatus.SENDING
    response = marketing_client.post(reverse("emails:list_email_pause", args=[list_email.pk]))
    assert response["Location"] == detail_url
    assert status() == ListEmailStatus.PAUSED
    page = marketing_client.get(detail_url).content.decode()
    assert "Sending paused." in page
    assert 'data-testid="resume"' in page
    marketing_client.post(reverse("emails:list_email_resume", args=[list_email.pk]))
    assert status() == ListEmailStatus.SENDING
    marketing_client.post(reverse("emails:list_email_cancel", args=[list_email.pk]))
    assert status() == ListEmailStatus.CANCELLED
    # a cancelled email cannot be paused
    marketing_client.post(reverse("emails:list_email_pause", args=[list_email.pk]))
    assert status() == ListEmailStatus.CANCELLED
    assert (
        "Only an email being sent can be paused."
        in marketing_client.get(detail_url).content.decode()
    )


def test_progress_partial_and_list_counts(
    marketing_client: Client,
    english: None,
    template: EmailTemplate,
    prospect_list: ProspectList,
    verified_domain: SendingDomain,
    django_assert_max_num_queries: Any,
) -> None:
    list_email = _draft(template, prospect_list, verified_domain)
    statuses = [RecipientStatus.SENT] * 3 + [RecipientStatus.QUEUED] * 2 + [RecipientStatus.FAILED]
    for status in statuses:
        prospect = ProspectFactory.create()
        Recipient.objects.create(
            list_email=list_email, prospect=prospect, email=prospect.email, status=status
        )
    ListEmail.objects.filter(pk=list_email.pk).update(
        status=ListEmailStatus.SENDING, recipient_count=6, sent_count=3, failed_count=1
    )
    partial = marketing_client.get(reverse("emails:list_email_progress", args=[list_email.pk]))
    body = partial.content.decode()
    assert '<dd data-testid="progress-sent">3</dd>' in body
    assert '<dd data-testid="progress-queued">2</dd>' in body
    assert '<dd data-testid="progress-failed">1</dd>' in body
    assert 'hx-trigger="every 2s"' in body
    assert "<html" not in body
    for _ in range(5):
        list_email_create(actor=None, name="other", template=template)
    with django_assert_max_num_queries(12):
        listing = marketing_client.get(reverse("emails:list")).content.decode()
    assert "11月セミナー" in listing
    assert ">Sending</span>" in listing


def test_pages_render_in_japanese(
    marketing_client: Client,
    template: EmailTemplate,
    prospect_list: ProspectList,
    verified_domain: SendingDomain,
) -> None:
    list_email = _draft(template, prospect_list, verified_domain)
    for url in (
        reverse("emails:list"),
        reverse("emails:list_email_create"),
        reverse("emails:list_email_detail", args=[list_email.pk]),
    ):
        response = marketing_client.get(url, HTTP_ACCEPT_LANGUAGE="ja")
        assert response.status_code == 200
        assert '<html lang="ja">' in response.content.decode()


def test_sales_user_gets_403(
    sales_user: User,
    template: EmailTemplate,
    prospect_list: ProspectList,
    verified_domain: SendingDomain,
) -> None:
    list_email = _draft(template, prospect_list, verified_domain)
    ListEmail.objects.filter(pk=list_email.pk).update(status=ListEmailStatus.SENDING)
    client = client_for(sales_user)
    assert client.get(reverse("emails:list")).status_code == 403
    assert client.get(reverse("emails:list_email_detail", args=[list_email.pk])).status_code == 403
    assert (
        client.get(reverse("emails:list_email_progress", args=[list_email.pk])).status_code == 403
    )
    assert client.post(reverse("emails:list_email_pause", args=[list_email.pk])).status_code == 403
    list_email.refresh_from_db()
    assert list_email.status == ListEmailStatus.SENDING


def test_schedule_now(
    marketing_client: Client,
    english: None,
    template: EmailTemplate,
    prospect_list: ProspectList,
    verified_domain: SendingDomain,
    account_identity: AccountSettings,
) -> None:
    list_email = _draft(template, prospect_list, verified_domain)
    before = timezone.now()
    response = marketing_client.post(
        reverse("emails:list_email_schedule", args=[list_email.pk]),
        {"when": "now", "time_zone": "Asia/Tokyo"},
    )
    assert response.status_code == 302
    list_email.refresh_from_db()
    assert list_email.status == ListEmailStatus.SCHEDULED
    assert list_email.scheduled_at is not None and list_email.scheduled_at >= before
    page = marketing_client.get(response["Location"]).content.decode()
    assert "The email is scheduled." in page
    assert 'data-testid="schedule-form"' not in page
