"""Autoresponders (the "send autoresponder email" action) and test sends, through the real
message builder, DKIM signer and an SMTP sink."""

from __future__ import annotations

import email
from email.policy import default as default_policy
from typing import Any

import dkim
import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from emails import one_off, tasks
from emails.feedback import bounce_record
from emails.models import (
    EmailTemplate,
    Recipient,
    RecipientStatus,
    SendingDomain,
    TriggeredEmail,
    TriggeredEmailStatus,
)
from emails.services import (
    email_template_save,
    list_email_ab_test_set,
    list_email_create,
    sending_domain_dkim_record,
)
from emails.smtp_sink import SmtpSink
from mapp.models import AccountSettings
from prospects.actions import ActionContext, action_run, actions_validate
from prospects.models import ActionRunStatus, Prospect
from tests.factories import ProspectFactory
from tracking.models import Activity, ActivityType

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

HTML = """<html><body><p>{{ prospect.last_name }} 様、資料請求ありがとうございます。</p>
<a href="https://example.co.jp/whitepaper.pdf">資料をダウンロード</a>
<p>{{ account.postal_address }}</p><a href="{{ unsubscribe_url }}">配信停止</a></body></html>"""


@pytest.fixture
def template(verified_domain: SendingDomain, account_identity: AccountSettings) -> EmailTemplate:
    return email_template_save(
        actor=None,
        name="資料請求お礼",
        subject="{{ prospect.last_name }}様 資料をお送りします",
        html=HTML,
        sender_type="custom",
        sender_name="マップ",
        sender_address="info@mail.example.jp",
    )


def _verifies(data: bytes, domain: SendingDomain) -> bool:
    _name, value = sending_domain_dkim_record(domain)
    return bool(dkim.verify(data, dnsfunc=lambda query, timeout=5: value.encode()))


def _run_autoresponder(
    prospect: Prospect, template: EmailTemplate, key: str, capture: Any
) -> tuple[Any, list[Any]]:
    with capture(execute=False) as callbacks:
        run = action_run(
            key="send_autoresponder",
            prospect=prospect,
            config={"template": template.pk},
            context=ActionContext(cause_type="form", cause_id=7, idempotency_key=key),
        )
    return run, callbacks


def test_autoresponder_sends_once_per_cause_signed_and_tracked(
    smtp_sink: SmtpSink,
    template: EmailTemplate,
    verified_domain: SendingDomain,
    django_capture_on_commit_callbacks: Any,
) -> None:
    prospect = ProspectFactory.create(last_name="山田", email="Taro.Yamada@Example.co.jp")
    run, callbacks = _run_autoresponder(
        prospect, template, "form:7:submission:1", django_capture_on_commit_callbacks
    )
    assert run.status == ActionRunStatus.OK
    assert len(callbacks) == 1  # the send task is queued after commit
    triggered = TriggeredEmail.objects.get()
    # the worker sends it; a retried task finds it sent
    assert tasks.send_triggered_email.run(triggered.pk) == TriggeredEmailStatus.SENT
    assert tasks.send_triggered_email.run(triggered.pk) == TriggeredEmailStatus.SENT
    # the same cause again (a retried job) queues nothing new
    again, callbacks = _run_autoresponder(
        prospect, template, "form:7:submission:1", django_capture_on_commit_callbacks
    )
    assert again.pk == run.pk
    assert callbacks == []
    assert len(smtp_sink.messages) == 1
    received = smtp_sink.messages[0]
    assert received.recipients == ("taro.yamada@example.co.jp",)
    assert _verifies(received.data, verified_domain)
    message = email.message_from_bytes(received.data, policy=default_policy)
    assert str(message["Subject"]) == "山田様 資料をお送りします"
    assert "List-Unsubscribe" in message
    html = str(message.get_body(preferencelist=("html",)).get_content())  # type: ignore[union-attr]
    assert "/t/c/" in html or "/c/" in html  # the link is tracked
    assert f"at{template.pk}" not in html  # ids travel signed inside tokens, not in clear
    sent = Activity.objects.get(type=ActivityType.EMAIL_SENT, prospect=prospect)
    assert sent.object_type == "email_template"
    assert sent.payload["email_id"] == f"at{template.pk}"


def test_autoresponder_not_sent_to_an_unmailable_prospect(
    smtp_sink: SmtpSink, template: EmailTemplate, django_capture_on_commit_callbacks: Any
) -> None:
    prospect = ProspectFactory.create(opted_out=True)
    run, _callbacks = _run_autoresponder(
        prospect, template, "k1", django_capture_on_commit_callbacks
    )
    assert run.status == ActionRunStatus.SKIPPED
    assert not TriggeredEmail.objects.exists()
    # opted out after it was queued: skipped right before SMTP
    other = ProspectFactory.create()
    _run_autoresponder(other, template, "k2", django_capture_on_commit_callbacks)
    Prospect.objects.filter(pk=other.pk).update(opted_out=True)
    triggered = TriggeredEmail.objects.get()
    assert one_off.triggered_email_send(triggered_email_id=triggered.pk) == "skipped"
    assert smtp_sink.messages == []


def test_autoresponder_5xx_is_a_hard_bounce_and_4xx_retries(
    smtp_sink: SmtpSink,
    template: EmailTemplate,
    verified_domain: SendingDomain,
    django_capture_on_commit_callbacks: Any,
) -> None:
    bouncer = ProspectFactory.create(email="nobody@example.co.jp")
    # the same address got a list email earlier: the autoresponder's bounce is not that send's
    newsletter = list_email_create(
        actor=None, name="Newsletter", subject="s", html=HTML, sending_domain=verified_domain
    )
    row = Recipient.objects.create(
        list_email=newsletter,
        prospect=bouncer,
        email="nobody@example.co.jp",
        status=RecipientStatus.SENT,
        sent_at=timezone.now(),
    )
    smtp_sink.handler.rcpt_responses["nobody@example.co.jp"] = "550 5.1.1 No such user"
    _run_autoresponder(bouncer, template, "b1", django_capture_on_commit_callbacks)
    triggered = TriggeredEmail.objects.get()
    assert one_off.triggered_email_send(triggered_email_id=triggered.pk) == "failed"
    bouncer.refresh_from_db()
    assert bouncer.hard_bounced_at is not None
    row.refresh_from_db()
    newsletter.refresh_from_db()
    assert (row.bounced_at, newsletter.hard_bounce_count) == (None, 0)
    bounce = Activity.objects.get(type=ActivityType.EMAIL_BOUNCED, prospect=bouncer)
    assert (bounce.payload["hard"], bounce.payload["status"]) == (True, "550")
    # the receiver's DSN for the same message later: recognised by its Message-ID, counted once
    assert not bounce_record(
        kind="hard",
        source="dsn",
        message_id=f"<mapp.t{triggered.pk}@mail.example.jp>",
        address="nobody@example.co.jp",
    ).counted
    row.refresh_from_db()
    assert row.bounced_at is None
    busy = ProspectFactory.create(email="busy@example.co.jp")
    smtp_sink.handler.rcpt_responses["busy@example.co.jp"] = "451 4.7.1 Greylisted"
    _run_autoresponder(busy, template, "b2", django_capture_on_commit_callbacks)
    deferred = TriggeredEmail.objects.get(prospect=busy)
    assert one_off.triggered_email_send(triggered_email_id=deferred.pk) == "queued"
    deferred.refresh_from_db()
    assert deferred.next_attempt_at is not None
    assert deferred.attempts == 1
    assert "451" in deferred.error


def test_autoresponder_needs_a_template_and_a_verified_domain(
    template: EmailTemplate, django_capture_on_commit_callbacks: Any
) -> None:
    with pytest.raises(ValidationError):
        actions_validate([{"action": "send_autoresponder", "config": {}}])
    assert actions_validate([{"action": "send_autoresponder", "config": {"template": template.pk}}])
    SendingDomain.objects.update(status="failed")
    run, _callbacks = _run_autoresponder(
        ProspectFactory.create(), template, "k3", django_capture_on_commit_callbacks
    )
    assert run.status == ActionRunStatus.FAILED
    assert "verified sending domain" in run.message


def test_test_send_of_a_variant_personalised_untracked(
    smtp_sink: SmtpSink, verified_domain: SendingDomain, account_identity: AccountSettings
) -> None:
    list_email = list_email_create(
        actor=None,
        name="Newsletter",
        sending_domain=verified_domain,
        subject="{{ prospect.last_name }}様 11月号",
        html=HTML,
        sender_type="custom",
        sender_name="マップ",
        sender_address="news@mail.example.jp",
    )
    _variant_a, variant_b = list_email_ab_test_set(
        list_email=list_email,
        variants=[{}, {"subject": "【B】{{ prospect.last_name }}様"}],
        percent=20,
        hours=4,
        metric="open_rate",
    )
    prospect = ProspectFactory.create(last_name="佐藤")
    addresses = one_off.test_addresses_clean("a@example.jp, B@example.jp\nb@example.jp")
    assert addresses == ["a@example.jp", "b@example.jp"]
    sent = one_off.test_send(
        source=list_email, addresses=addresses, prospect=prospect, variant_id=variant_b.pk
    )
    assert sent == 2
    assert sorted(r for m in smtp_sink.messages for r in m.recipients) == addresses
    message = email.message_from_bytes(smtp_sink.messages[0].data, policy=default_policy)
    assert str(message["Subject"]) == "[TEST] 【B】佐藤様"
    html = str(message.get_body(preferencelist=("html",)).get_content())  # type: ignore[union-attr]
    assert 'href="https://example.co.jp/whitepaper.pdf"' in html  # not rewritten
    assert "/email/unsubscribe/test-send" in html  # inert: opts nobody out
    assert _verifies(smtp_sink.messages[0].data, verified_domain)
    # nothing is recorded about the prospect
    assert not Activity.objects.filter(prospect=prospect).exists()
    # without a prospect: each field's example
    one_off.test_send(source=list_email, addresses=["c@example.jp"], prospect=None)
    assert len(smtp_sink.messages) == 3


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "at least one address"),
        ("not-an-address", "is not an email address"),
        ("a@x.jp\r\nBcc: evil@x.jp", "is not an email address"),
        (" ".join(f"u{i}@example.jp" for i in range(11)), "at most 10"),
    ],
)
def test_test_addresses_are_checked(raw: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        one_off.test_addresses_clean(raw)
