"""Unsubscribe links: signed tokens per recipient, and the opt-out they lead to.

A token names (prospect id, list email id; 0 for an autoresponder) and is signed with
``django.core.signing`` under its own salt, so an open or click token can never serve as one.
It does not expire: people unsubscribe from mail that is years old. The opt-out goes through
the action catalogue's "opt out" action (owned by prospects, recorded as an ActionRun) and is
recorded in the activity stream as EMAIL_UNSUBSCRIBED and OPT_OUT, once: a second click, a mail
client's one-click POST after the person's own, or a retried request change nothing. The link
leads to the preference centre (:mod:`emails.preferences`).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse

from emails.models import ListEmail
from prospects.actions import ActionContext, action_run
from prospects.models import Prospect
from tracking.models import ActivityType
from tracking.services import activity_record

UNSUBSCRIBE_SALT = "mapp.email.unsubscribe"
# A token is ≈ 40 characters; anything much longer is not ours and is not even unsigned.
MAX_TOKEN_LENGTH = 200


@dataclass(frozen=True)
class UnsubscribeToken:
    """``list_email_id`` is 0 for an email that is not a list email (an autoresponder)."""

    prospect_id: int
    list_email_id: int

    @property
    def email_reference(self) -> tuple[str, int | str, str]:
        """(object type, object id, ``email_id``) for the activities this link leads to."""
        if not self.list_email_id:
            return "", "", ""
        return "list_email", self.list_email_id, f"le{self.list_email_id}"


def unsubscribe_token(*, prospect_id: int, list_email_id: int) -> str:
    return signing.dumps([prospect_id, list_email_id], salt=UNSUBSCRIBE_SALT)


def unsubscribe_token_load(token: str) -> UnsubscribeToken | None:
    """What the token vouches for, or None for anything forged, truncated or foreign."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except (signing.BadSignature, ValueError):
        return None
    if not isinstance(data, list) or len(data) != 2:
        return None
    prospect_id, list_email_id = data
    if not all(
        isinstance(value, int) and not isinstance(value, bool) and value >= minimum
        for value, minimum in ((prospect_id, 1), (list_email_id, 0))
    ):
        return None
    return UnsubscribeToken(prospect_id=prospect_id, list_email_id=list_email_id)


def unsubscribe_url(*, prospect_id: int, list_email_id: int) -> str:
    """The https one-click URL (RFC 8058) and the link in the email's footer."""
    token = unsubscribe_token(prospect_id=prospect_id, list_email_id=list_email_id)
    return settings.SITE_URL + reverse("emails_public:unsubscribe", kwargs={"token": token})


def prospect_unsubscribe(*, token: UnsubscribeToken, one_click: bool) -> bool:
    """Opt the token's prospect out; True if this call did it, False if nothing changed.

    The prospect row is locked first, so two simultaneous POSTs (a mail client and the person)
    record one opt-out.
    """
    with transaction.atomic():
        prospect = Prospect.objects.select_for_update().filter(pk=token.prospect_id).first()
        if prospect is None or prospect.opted_out:
            return False
        object_type, object_id, email_id = token.email_reference
        label = list_email_label(token)
        action_run(
            key="opt_out",
            prospect=prospect,
            config={},
            context=ActionContext(
                cause_type="email_unsubscribe",
                cause_id=object_id,
                cause_label=label or email_id,
            ),
        )
        payload = {"email_id": email_id, "one_click": one_click}
        for activity_type in (ActivityType.EMAIL_UNSUBSCRIBED, ActivityType.OPT_OUT):
            activity_record(
                type=activity_type,
                prospect_id=prospect.pk,
                object_type=object_type,
                object_id=object_id,
                object_label=label,
                payload=payload,
            )
    return True


def list_email_label(token: UnsubscribeToken) -> str:
    """The list email's name for the history ("" for an autoresponder or a deleted send): no
    lock, and a deleted send still unsubscribes."""
    if not token.list_email_id:
        return ""
    name = ListEmail.objects.filter(pk=token.list_email_id).values_list("name", flat=True).first()
    return name or ""
