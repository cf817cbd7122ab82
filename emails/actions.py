"""Emails' contribution to the action catalogue.

"Send autoresponder email" is listed so marketers see it in the catalogue, greyed out with the
reason: there is no send pipeline yet. The list-email issue gives it its settings (the email
template) and its run; until then validation refuses it and a run of it is recorded as
skipped, never as sent.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from mapp.models import Module
from prospects.actions import Action, register_action


def register_actions() -> None:
    """Called from EmailsConfig.ready()."""
    register_action(
        Action(
            key="send_autoresponder",
            label=_("Send autoresponder email"),
            description=_("Send an email template to the prospect."),
            unavailable_reason=_("Sending emails becomes available with list emails."),
            module=Module.MARKETING,
            order=10,
        )
    )
