"""Unsubscribe (RFC 8058 one-click, confirmation page, forged tokens), the required-content
check before scheduling, and DKIM key storage."""

from __future__ import annotations

import stat
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from emails.models import EmailTemplate, ListEmailStatus, SendingDomain
from emails.services import (
    email_template_save,
    list_email_create,
    list_email_problems,
    list_email_schedule,
    sending_domain_create,
)
from emails.unsubscribe import unsubscribe_token, unsubscribe_url
from mapp.models import AccountSettings
from prospects.models import ActionRun, ListMembership, ProspectList
from tests.factories import ProspectFactory
from tracking.models import Activity, ActivityType

pytestmark = pytest.mark.django_db

GOOD_HTML = (
    "<p>{{ prospect.last_name }}様</p><p>{{ account.postal_address }}</p>"
    '<a href="{{ unsubscribe_url }}">配信停止</a>'
)


def test_get_shows_a_confirmation_and_changes_nothing(english: None) -> None:
    prospect = ProspectFactory.create()
    response = Client().get(unsubscribe_url(prospect_id=prospect.pk, list_email_id=7))
    assert response.status_code == 200
    assert b'method="post"' in response.content
    assert b"Do you want to stop receiving" in response.content
    prospect.refresh_from_db()
    assert not prospect.opted_out


def test_one_click_post_unsubscribes_once_without_login_or_csrf(english: None) -> None:
    prospect = ProspectFactory.create()
    url = unsubscribe_url(prospect_id=prospect.pk, list_email_id=7)
    client = Client(enforce_csrf_checks=True)
    first = client.post(url, {"List-Unsubscribe": "One-Click"})
    second = client.post(url, {"List-Unsubscribe": "One-Click"})
    assert (first.status_code, second.status_code) == (200, 200)
    assert b"You have been unsubscribed." in first.content
    prospect.refresh_from_db()
    assert prospect.opted_out and not prospect.is_mailable
    for activity_type in (ActivityType.EMAIL_UNSUBSCRIBED, ActivityType.OPT_OUT):
        [activity] = Activity.objects.filter(type=activity_type, prospect_id=prospect.pk)
        assert activity.payload["one_click"] is True
    [run] = ActionRun.objects.filter(prospect=prospect, action="opt_out")
    assert run.cause_type == "email_unsubscribe"


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        unsubscribe_token(prospect_id=1, list_email_id=1)[:-2] + "xx",
        "x" * 500,
    ],
)
def test_forged_tokens_are_refused(english: None, token: str) -> None:
    prospect = ProspectFactory.create()
    response = Client().post(f"/email/unsubscribe/{token}", {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 400
    assert b"This unsubscribe link is not valid." in response.content
    prospect.refresh_from_db()
    assert not prospect.opted_out


def test_a_click_token_is_not_an_unsubscribe_token() -> None:
    from tracking.links import click_token

    token = click_token(prospect_id=1, email_id="le1", url="https://example.co.jp/")
    response = Client().post(f"/email/unsubscribe/{token}")
    assert response.status_code == 400


def _draft(domain: SendingDomain | None, html: str = GOOD_HTML, **content: Any) -> Any:
    prospect_list = ProspectList.objects.create(name="L")
    ListMembership.objects.create(prospect_list=prospect_list, prospect=ProspectFactory.create())
    fields: dict[str, Any] = {
        "subject": "お知らせ",
        "html": html,
        "sender_name": "マップ",
        "sender_address": "news@mail.example.jp",
    }
    fields.update(content)
    return list_email_create(
        actor=None,
        name="Draft",
        recipient_lists=[prospect_list],
        sending_domain=domain,
        **fields,
    )


def test_a_complete_email_can_be_scheduled(
    verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    list_email = _draft(verified_domain)
    assert list_email_problems(list_email) == []
    list_email_schedule(list_email=list_email)
    assert list_email.status == ListEmailStatus.SCHEDULED


def test_missing_unsubscribe_link_and_postal_address_are_refused(
    english: None, verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    list_email = _draft(verified_domain, html="<p>Hello</p>")
    with pytest.raises(ValidationError) as refused:
        list_email_schedule(list_email=list_email)
    assert refused.value.messages == [
        "Insert the unsubscribe link ({{ unsubscribe_url }}) into the email's HTML.",
        "Insert the sender's postal address ({{ account.postal_address }}) into the HTML.",
    ]
    list_email.refresh_from_db()
    assert list_email.status == ListEmailStatus.DRAFT


def test_missing_sender_identity_in_account_settings_is_refused(
    english: None, verified_domain: SendingDomain
) -> None:
    # AccountSettings without name, postal address or contact (the fields the lead adds)
    problems = list_email_problems(_draft(verified_domain))
    assert problems == [
        "Enter the sender's name (company name) in the account settings.",
        "Enter the sender's postal address in the account settings.",
        "Enter a contact email address or phone number in the account settings.",
    ]


def test_unverified_domain_and_unaligned_sender_are_refused(
    english: None, account_identity: AccountSettings
) -> None:
    pending = sending_domain_create(domain="pending.example.jp")
    assert list_email_problems(_draft(pending))[-1].startswith(
        "The sending domain pending.example.jp is not verified"
    )


def test_sender_outside_the_sending_domain_is_refused(
    english: None, verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    problems = list_email_problems(_draft(verified_domain, sender_address="news@other.example"))
    assert problems == [
        "The sender address news@other.example is not on the sending domain mail.example.jp."
    ]


def test_template_errors_are_refused_at_save(english: None) -> None:
    with pytest.raises(ValidationError) as refused:
        email_template_save(
            actor=None,
            name="Bad",
            subject="{{ prospect.nope }}",
            html="{{ ''.__class__ }}",
            sender_name="マップ",
            sender_address="news@mail.example.jp",
        )
    messages = refused.value.messages
    assert any(message.startswith("Subject:") and "nope" in message for message in messages)
    assert any(message.startswith("HTML:") and "__class__" in message for message in messages)
    assert not EmailTemplate.objects.exists()


def test_list_email_copies_its_template(account_identity: AccountSettings) -> None:
    template = email_template_save(
        actor=None,
        name="Monthly",
        subject="{{ prospect.company }} 御中",
        html=GOOD_HTML,
        sender_name="マップ",
        sender_address="news@mail.example.jp",
    )
    list_email = list_email_create(actor=None, name="", template=template)
    EmailTemplate.objects.filter(pk=template.pk).update(subject="changed")
    list_email.refresh_from_db()
    assert (list_email.name, list_email.subject, list_email.html) == (
        "Monthly",
        "{{ prospect.company }} 御中",
        GOOD_HTML,
    )


def test_private_key_is_a_0600_file_outside_the_database(dkim_key_dir: Any) -> None:
    domain = sending_domain_create(domain="Mail.Example.JP.")
    assert domain.domain == "mail.example.jp"
    path = domain.private_key_path
    assert path.parent == dkim_key_dir
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in path.read_bytes()
    stored = SendingDomain.objects.filter(pk=domain.pk).values().get()
    assert not any("PRIVATE KEY" in str(value) for value in stored.values())
    with pytest.raises(ValidationError):
        sending_domain_create(domain="mail.example.jp")
    with pytest.raises(ValidationError):
        sending_domain_create(domain="not a domain")
