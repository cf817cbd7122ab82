"""ESP webhooks: anymail's tracking signal mapped to emails.feedback, and real webhook POSTs
(Postmark with basic auth, Mailgun with its HMAC signature) through the public endpoints of
emails/urls_webhooks.py, including the hostile ones."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from anymail.signals import AnymailTrackingEvent, tracking
from django.test import Client
from django.urls import include, path

from emails.models import ListEmail, Recipient, SendingDomain
from emails.rendering import recipient_header_value
from emails.webhooks import bounce_kind_of, connect_receivers
from mapp.models import AccountSettings
from prospects.models import Prospect
from tests.emails.test_feedback import make_sent_send
from tests.factories import ProspectFactory
from tracking.models import Activity, ActivityType

# The webhook endpoints mounted the way mapp/urls.py mounts them.
urlpatterns = [path("email/webhooks/", include("emails.urls_webhooks"))]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

POSTMARK_AUTH = "postmark:correct-horse"
MAILGUN_KEY = "mailgun-signing-key"


@pytest.fixture(autouse=True)
def receivers(settings: Any) -> Iterator[None]:
    settings.ANYMAIL = {"WEBHOOK_SECRET": POSTMARK_AUTH, "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY}
    connect_receivers()
    connect_receivers()  # twice, as a re-imported app would: still one receiver
    yield


@pytest.fixture
def send(
    verified_domain: SendingDomain, account_identity: AccountSettings
) -> tuple[ListEmail, list[Prospect]]:
    prospects = ProspectFactory.create_batch(4)
    return make_sent_send(verified_domain, prospects), prospects


def row(list_email: ListEmail, prospect: Prospect) -> Recipient:
    return Recipient.objects.get(list_email=list_email, prospect=prospect)


def test_the_tracking_signal_applies_bounces_complaints_and_unsubscribes(
    send: tuple[ListEmail, list[Prospect]],
) -> None:
    list_email, (bounced, delayed, complainer, leaver) = send

    def signal(**event: Any) -> None:
        tracking.send(
            sender=object, event=AnymailTrackingEvent(esp_event={}, **event), esp_name="Mailgun"
        )

    # when the ESP reports a bounce by our Message-ID, twice (it retried the webhook)
    for _attempt in range(2):
        signal(
            event_type="bounced",
            message_id=row(list_email, bounced).message_id,
            recipient=bounced.email,
            mta_response="550 5.1.1 The email account does not exist",
        )
    # a deferral, a complaint and an unsubscribe by address, and events that are not feedback
    signal(event_type="deferred", recipient=delayed.email, mta_response="451 4.7.1 greylisted")
    signal(event_type="complained", recipient=complainer.email)
    signal(event_type="unsubscribed", recipient=leaver.email)
    signal(event_type="opened", recipient=bounced.email)
    signal(event_type="delivered", recipient=delayed.email)

    # then each is applied once
    assert row(list_email, bounced).bounce_kind == "hard"
    assert row(list_email, bounced).bounce_reason == "550 5.1.1 The email account does not exist"
    assert row(list_email, delayed).bounce_kind == "soft"
    assert row(list_email, complainer).complained_at is not None
    list_email.refresh_from_db()
    assert (list_email.hard_bounce_count, list_email.soft_bounce_count) == (1, 1)
    assert list_email.complaint_count == 1
    for prospect in (bounced, delayed, complainer, leaver):
        prospect.refresh_from_db()
    assert bounced.hard_bounced_at is not None
    assert delayed.soft_bounce_count == 1 and delayed.is_mailable
    assert complainer.opted_out and leaver.opted_out
    bounce = Activity.objects.get(prospect_id=bounced.pk, type=ActivityType.EMAIL_BOUNCED)
    assert (bounce.payload["source"], bounce.payload["status"]) == ("webhook:mailgun", "5.1.1")


def test_a_rejection_means_what_its_reason_says(send: tuple[ListEmail, list[Prospect]]) -> None:
    list_email, (invalid, blocked, spam, unsubscribed) = send
    for prospect, reason in (
        (invalid, "invalid"),
        (blocked, "blocked"),
        (spam, "spam"),
        (unsubscribed, "unsubscribed"),
    ):
        tracking.send(
            sender=object,
            event=AnymailTrackingEvent(
                event_type="rejected", recipient=prospect.email, reject_reason=reason
            ),
            esp_name="SendGrid",
        )
    assert row(list_email, invalid).bounce_kind == "hard"
    assert row(list_email, blocked).bounce_kind == "soft"  # the ESP's policy, not the address
    assert row(list_email, spam).complained_at is not None
    unsubscribed.refresh_from_db()
    assert unsubscribed.opted_out


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ({"event_type": "deferred"}, "soft"),
        ({"event_type": "bounced", "esp_event": {"Type": "SoftBounce"}}, "soft"),
        ({"event_type": "bounced", "description": "Transient: MailboxFull"}, "soft"),
        ({"event_type": "bounced", "mta_response": "452 4.2.2 Mailbox full"}, "soft"),
        ({"event_type": "bounced", "mta_response": "smtp; 550 5.1.1 unknown"}, "hard"),
        ({"event_type": "bounced", "description": "Permanent: General"}, "hard"),
        ({"event_type": "bounced"}, "hard"),
    ],
)
def test_bounce_kind(event: dict[str, Any], kind: str) -> None:
    assert bounce_kind_of(AnymailTrackingEvent(**event)) == kind


# --- real webhook posts -------------------------------------------------------------------------


def basic(auth: str) -> str:
    return "Basic " + base64.b64encode(auth.encode()).decode()


def postmark(client: Client, payload: Any, *, auth: str = POSTMARK_AUTH) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post(
        "/email/webhooks/postmark/tracking/",
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(auth),
    )


def test_postmark_webhooks_apply_feedback_once(send: tuple[ListEmail, list[Prospect]]) -> None:
    list_email, (bounced, softly, complainer, leaver) = send
    client = Client()
    hard_bounce = {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",  # Postmark's own id
        "Description": "The server was unable to deliver your message.",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": bounced.email,
        "BouncedAt": "2026-11-23T13:28:10.2735393+09:00",
        "Metadata": {},
    }
    # when Postmark posts a hard bounce, then retries the same post
    assert postmark(client, hard_bounce).status_code == 200
    assert postmark(client, hard_bounce).status_code == 200
    # and a soft bounce, a spam complaint naming our signed recipient, an unsubscribe
    assert (
        postmark(client, {**hard_bounce, "Type": "SoftBounce", "Email": softly.email}).status_code
        == 200
    )
    complaint = {
        "RecordType": "SpamComplaint",
        "Type": "SpamComplaint",
        "MessageID": "a8c2c3cc-2a0f-4d1a-9a5f-1f2e3d4c5b6a",
        "Email": "redacted@example.invalid",
        "BouncedAt": "2026-11-23T13:30:00+09:00",
        "Metadata": {"mapp_recipient": recipient_header_value(row(list_email, complainer).pk)},
    }
    assert postmark(client, complaint).status_code == 200
    unsubscribe = {
        "RecordType": "SubscriptionChange",
        "MessageID": "b1b2b3b4-0000-0000-0000-000000000000",
        "ChangedAt": "2026-11-23T13:31:00+09:00",
        "Recipient": leaver.email,
        "Origin": "Recipient",
        "SuppressSending": True,
        "SuppressionReason": "ManualSuppression",
        "Metadata": {},
    }
    assert postmark(client, unsubscribe).status_code == 200

    # then each counted once on the right row
    list_email.refresh_from_db()
    assert (list_email.hard_bounce_count, list_email.soft_bounce_count) == (1, 1)
    assert list_email.complaint_count == 1
    assert row(list_email, bounced).bounce_kind == "hard"
    assert row(list_email, softly).bounce_kind == "soft"
    assert row(list_email, complainer).complained_at is not None
    leaver.refresh_from_db()
    assert leaver.opted_out
    assert (
        Activity.objects.filter(prospect_id=bounced.pk, type=ActivityType.EMAIL_BOUNCED).count()
        == 1
    )


def test_hostile_posts_get_a_4xx_and_change_nothing(send: tuple[ListEmail, list[Prospect]]) -> None:
    list_email, (prospect, *_others) = send
    client = Client()
    bounce = {"RecordType": "Bounce", "Type": "HardBounce", "Email": prospect.email}

    wrong_password = postmark(client, bounce, auth="postmark:guess")
    no_auth = client.post(
        "/email/webhooks/postmark/tracking/",
        data=json.dumps(bounce),
        content_type="application/json",
    )
    garbage = [
        postmark(client, b"{not json"),
        postmark(client, b"\xff\xfe\x00garbage"),
        postmark(client, [1, 2, 3]),
        postmark(client, b"null"),
        postmark(client, {"RecordType": {"nested": True}, "Type": 5}),
    ]
    unsigned_mailgun = client.post(
        "/email/webhooks/mailgun/tracking/",
        data=json.dumps({"event-data": {"event": "failed"}}),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(POSTMARK_AUTH),  # the shared secret, but no signature
    )

    assert (wrong_password.status_code, no_auth.status_code) == (403, 403)
    assert [response.status_code for response in garbage] == [400] * 5
    assert b"Unreadable" in garbage[0].content
    assert unsigned_mailgun.status_code == 403
    assert client.get("/email/webhooks/postmark/tracking/").status_code == 405
    list_email.refresh_from_db()
    assert list_email.hard_bounce_count == 0
    prospect.refresh_from_db()
    assert prospect.is_mailable


def test_an_unconfigured_esp_answers_503(
    settings: Any, send: tuple[ListEmail, list[Prospect]]
) -> None:
    _list_email, (prospect, *_others) = send
    settings.ANYMAIL = {"WEBHOOK_SECRET": POSTMARK_AUTH}  # no Mailgun signing key
    response = Client().post(
        "/email/webhooks/mailgun/tracking/",
        data="{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(POSTMARK_AUTH),
    )
    assert response.status_code == 503
    # without a shared secret anymail would accept anyone's post: closed instead
    settings.ANYMAIL = {}
    bounce = {"RecordType": "Bounce", "Type": "HardBounce", "Email": prospect.email}
    assert postmark(Client(), bounce, auth="anyone:anything").status_code == 503
    prospect.refresh_from_db()
    assert prospect.is_mailable


def test_a_signed_mailgun_deferral_finds_the_row_by_our_message_id(
    send: tuple[ListEmail, list[Prospect]],
) -> None:
    list_email, (prospect, *_others) = send
    message_id = row(list_email, prospect).message_id
    timestamp, token = "1795400000", "9f1e2d3c4b5a69788796a5b4c3d2e1f0"
    payload = {
        "signature": {
            "timestamp": timestamp,
            "token": token,
            "signature": hmac.new(
                MAILGUN_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
            ).hexdigest(),
        },
        "event-data": {
            "event": "failed",
            "severity": "temporary",
            "recipient": "someone-else@example.jp",  # an alias; our Message-ID decides
            "timestamp": 1795400000.5,
            "message": {"headers": {"message-id": message_id.strip("<>")}},
            "delivery-status": {"code": 452, "message": "4.2.2 Mailbox full", "description": ""},
        },
    }
    response = Client().post(
        "/email/webhooks/mailgun/tracking/",
        data=json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(POSTMARK_AUTH),
    )
    assert response.status_code == 200
    assert row(list_email, prospect).bounce_kind == "soft"
    prospect.refresh_from_db()
    assert prospect.soft_bounce_count == 1
