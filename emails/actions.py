"""Emails' contribution to the action catalogue: "Send autoresponder email".

The action queues the chosen email template for the prospect (emails.one_off): once per cause,
since the run's idempotency key becomes the message's dedup key, so a retried job or a
re-submitted form processed twice sends one email. The message goes out after the action's
transaction commits, and only if the prospect is still mailable then.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from emails.models import EmailTemplate
from mapp.models import Module
from prospects.actions import (
    Action,
    ActionConfigForm,
    ActionContext,
    ActionOutcome,
    register_action,
)
from prospects.models import MAILABLE_Q, Prospect


class AutoresponderForm(ActionConfigForm):
    template = forms.ModelChoiceField(
        label=gettext_lazy("Email template"),
        queryset=EmailTemplate.objects.order_by("name"),
        error_messages={"invalid_choice": gettext_lazy("No such email template.")},
    )


def _send_autoresponder(
    *, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionOutcome:
    from emails.one_off import triggered_email_queue

    template = EmailTemplate.objects.filter(pk=config.get("template") or 0).first()
    if template is None:
        return ActionOutcome.failed(_("The email template was deleted."))
    if not Prospect.objects.filter(MAILABLE_Q, pk=prospect.pk).exists():
        return ActionOutcome.skipped(
            _("Not sent: the prospect cannot be emailed (opted out, bounced or do not email).")
        )
    # The cause names the message: the run's key when deduplicated, else a fresh one.
    dedup_key = context.idempotency_key or (
        f"{context.cause_type}:{context.cause_id}:{template.pk}:{prospect.pk}:"
        f"{timezone.now().timestamp():.6f}"
    )
    triggered = triggered_email_queue(template=template, prospect=prospect, dedup_key=dedup_key)
    return ActionOutcome.ok(
        _("Email “%(template)s” queued for %(address)s.")
        % {"template": template.name, "address": triggered.email}
    )


def register_actions() -> None:
    """Called from EmailsConfig.ready()."""
    register_action(
        Action(
            key="send_autoresponder",
            label=gettext_lazy("Send autoresponder email"),
            description=gettext_lazy("Send an email template to the prospect."),
            config_form=AutoresponderForm,
            run=_send_autoresponder,
            module=Module.MARKETING,
            order=10,
        )
    )
