"""Django forms of the marketer pages of emails. They check input shape; the rules (template
sandbox, sender, required content) are the services' and come back as their ValidationErrors."""

from __future__ import annotations

import datetime
import zoneinfo
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from emails.models import (
    AbWinnerMetric,
    EmailTemplate,
    ListEmail,
    SenderType,
    SendingDomain,
)
from mapp.models import User
from mapp.templating import template_validate
from prospects.models import ProspectList

DEFAULT_TIME_ZONE = "Asia/Tokyo"
#: Zones offered first in the schedule form; any IANA name is accepted.
COMMON_TIME_ZONES = (
    "Asia/Tokyo",
    "UTC",
    "Asia/Seoul",
    "Asia/Shanghai",
    "Asia/Singapore",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
)


class SendingDomainForm(forms.Form):
    domain = forms.CharField(
        label=_("Domain"),
        max_length=253,
        help_text=_("The domain in your sender addresses, e.g. mail.example.co.jp."),
    )
    selector = forms.CharField(
        label=_("DKIM selector"),
        max_length=63,
        initial="mapp",
        help_text=_("The name of the key in DNS; change it only to rotate keys."),
    )
    add_ed25519 = forms.BooleanField(
        label=_("Also sign with Ed25519"),
        required=False,
        help_text=_(
            "Adds a second DKIM signature (RFC 8463) beside the RSA-2048 one, with its own DNS "
            "record. Receivers that cannot verify Ed25519 use the RSA signature."
        ),
    )


def _template_field_errors(source: str) -> str:
    problems = template_validate(source)
    if problems:
        raise forms.ValidationError(problems)
    return source


class EmailTemplateForm(forms.Form):
    """The template editor; each marketer-written part is checked by the sandbox here, so its
    errors sit under the right box (the service checks them again when saving)."""

    name = forms.CharField(label=_("Name"), max_length=200)
    subject = forms.CharField(label=_("Subject"), max_length=255)
    preheader = forms.CharField(
        label=_("Preheader"),
        max_length=255,
        required=False,
        help_text=_("The short line inboxes show after the subject."),
    )
    html = forms.CharField(
        label=_("HTML"),
        widget=forms.Textarea(attrs={"rows": 18, "class": "code", "spellcheck": "false"}),
        help_text=_(
            "A list email needs the unsubscribe link ({{ unsubscribe_url }}) and the sender's "
            "postal address ({{ account.postal_address }})."
        ),
    )
    text = forms.CharField(
        label=_("Plain text"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "class": "code"}),
        help_text=_("Generated from the HTML when left empty."),
    )
    sender_type = forms.ChoiceField(
        label=_("Sender"), choices=SenderType.choices, initial=SenderType.CUSTOM
    )
    sender_user = forms.ModelChoiceField(
        label=_("Sender user"),
        queryset=User.objects.filter(is_active=True).order_by("email"),
        required=False,
        help_text=_("With “the prospect's assigned user”: used for prospects without one."),
    )
    sender_name = forms.CharField(label=_("Sender name"), max_length=100, required=False)
    sender_address = forms.EmailField(label=_("Sender address"), required=False)
    reply_to = forms.EmailField(label=_("Reply-to address"), required=False)

    def clean_subject(self) -> str:
        return _template_field_errors(self.cleaned_data["subject"])

    def clean_preheader(self) -> str:
        return _template_field_errors(self.cleaned_data["preheader"])

    def clean_html(self) -> str:
        return _template_field_errors(self.cleaned_data["html"])

    def clean_text(self) -> str:
        return _template_field_errors(self.cleaned_data["text"])

    @staticmethod
    def initial_for(template: EmailTemplate) -> dict[str, Any]:
        return {
            "name": template.name,
            "subject": template.subject,
            "preheader": template.preheader,
            "html": template.html,
            "text": template.text,
            "sender_type": template.sender_type,
            "sender_user": template.sender_user_id,
            "sender_name": template.sender_name,
            "sender_address": template.sender_address,
            "reply_to": template.reply_to,
        }


class PreviewProspectForm(forms.Form):
    """Who to preview as: an email address (or part of one) or a prospect id."""

    prospect = forms.CharField(
        label=_("Preview as prospect"),
        max_length=254,
        required=False,
        help_text=_("An email address or a prospect id; empty shows example values."),
    )


class ListEmailForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    template = forms.ModelChoiceField(
        label=_("Template"), queryset=EmailTemplate.objects.order_by("name", "id")
    )
    recipient_lists = forms.ModelMultipleChoiceField(
        label=_("Recipient lists"),
        queryset=ProspectList.objects.order_by("name", "id"),
        widget=forms.CheckboxSelectMultiple,
    )
    suppression_lists = forms.ModelMultipleChoiceField(
        label=_("Suppression lists"),
        queryset=ProspectList.objects.order_by("name", "id"),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("Prospects on these lists are not sent to, even when on a recipient list."),
    )
    sending_domain = forms.ModelChoiceField(
        label=_("Sending domain"),
        queryset=SendingDomain.objects.order_by("domain"),
        required=False,
    )


class ScheduleForm(forms.Form):
    """Now, or a local date and time in a chosen zone (Asia/Tokyo unless changed)."""

    WHEN_NOW = "now"
    WHEN_LATER = "later"

    when = forms.ChoiceField(
        label=_("When"),
        choices=[(WHEN_NOW, _("Send now")), (WHEN_LATER, _("Send at a time"))],
        initial=WHEN_NOW,
        widget=forms.RadioSelect,
    )
    send_at = forms.DateTimeField(
        label=_("Date and time"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
    )
    time_zone = forms.ChoiceField(
        label=_("Time zone"),
        choices=[(name, name) for name in COMMON_TIME_ZONES],
        initial=DEFAULT_TIME_ZONE,
        required=False,
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or self.cleaned_data
        if data.get("when") != self.WHEN_LATER:
            data["send_at"] = None
            return data
        send_at: datetime.datetime | None = data.get("send_at")
        zone_name = data.get("time_zone") or DEFAULT_TIME_ZONE
        if send_at is None:
            self.add_error("send_at", _("Enter the date and time to send at."))
            return data
        # The browser gives a wall-clock time; it means that time in the chosen zone, whatever
        # the server's zone is.
        aware = send_at.replace(tzinfo=None).replace(tzinfo=zoneinfo.ZoneInfo(zone_name))
        if aware <= timezone.now():
            self.add_error("send_at", _("Choose a time in the future."))
        data["send_at"] = aware
        return data


class AbTestForm(forms.Form):
    """An A/B test: its settings and variants B–E; variant A is the email as written.

    A variant whose fields are all empty is not part of the test. Empty fields of a variant
    inherit the email's.
    """

    LETTERS = ("B", "C", "D", "E")

    percent = forms.IntegerField(
        label=_("Test share (%)"),
        min_value=1,
        max_value=100,
        initial=20,
        help_text=_(
            # xgettext:no-python-format
            "This share of the recipients is split evenly over the variants; the rest receive "
            "the winner. 100% sends every variant to an equal share and has no winner phase."
        ),
    )
    hours = forms.IntegerField(
        label=_("Test duration (hours)"),
        min_value=1,
        max_value=168,
        initial=4,
        help_text=_("When this time has passed since the send started, the winner is chosen."),
    )
    metric = forms.ChoiceField(
        label=_("Winner chosen by"),
        choices=AbWinnerMetric.choices,
        initial=AbWinnerMetric.OPEN_RATE,
        help_text=_("Unique human opens or clicks per delivered email; machine opens never count."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for letter in self.LETTERS:
            self.fields[f"{letter}_subject"] = forms.CharField(
                label=_("Variant %(letter)s: subject") % {"letter": letter},
                max_length=255,
                required=False,
            )
            self.fields[f"{letter}_preheader"] = forms.CharField(
                label=_("Variant %(letter)s: preheader") % {"letter": letter},
                max_length=255,
                required=False,
            )
            self.fields[f"{letter}_html"] = forms.CharField(
                label=_("Variant %(letter)s: HTML") % {"letter": letter},
                required=False,
                widget=forms.Textarea(attrs={"rows": 6, "class": "code"}),
                help_text=_("Empty: the email's HTML."),
            )

    def variant_groups(self) -> list[tuple[str, list[Any]]]:
        return [
            (letter, [self[f"{letter}_{name}"] for name in ("subject", "preheader", "html")])
            for letter in self.LETTERS
        ]

    def variants(self) -> list[dict[str, str]]:
        """Variant A (the email) then each variant with anything written."""
        found: list[dict[str, str]] = [{}]
        for letter in self.LETTERS:
            parts = {
                name: self.cleaned_data.get(f"{letter}_{name}", "").strip()
                for name in ("subject", "preheader", "html")
            }
            if any(parts.values()):
                found.append(parts)
        return found

    @classmethod
    def initial_for(cls, list_email: ListEmail) -> dict[str, Any]:
        initial: dict[str, Any] = {
            "percent": list_email.ab_test_percent or 20,
            "hours": list_email.ab_test_hours,
            "metric": list_email.ab_winner_metric,
        }
        for variant in list_email.variants.exclude(letter="A").order_by("letter"):
            for name in ("subject", "preheader", "html"):
                initial[f"{variant.letter}_{name}"] = getattr(variant, name)
        return initial


class TestSendForm(forms.Form):
    addresses = forms.CharField(
        label=_("Send a test to"),
        max_length=2000,
        widget=forms.TextInput(attrs={"placeholder": "you@example.co.jp, colleague@example.co.jp"}),
        help_text=_("Up to 10 addresses, separated by commas. Links are not tracked in tests."),
    )
    prospect = forms.CharField(
        label=_("Personalise as prospect"),
        max_length=254,
        required=False,
        help_text=_("An email address or a prospect id; empty uses example values."),
    )
    variant = forms.TypedChoiceField(
        label=_("Variant"), coerce=int, required=False, empty_value=None, choices=[]
    )

    def __init__(self, *args: Any, list_email: ListEmail | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        variants = list(list_email.variants.order_by("letter")) if list_email else []
        if variants:
            self.fields["variant"].choices = [  # type: ignore[attr-defined]
                (variant.pk, variant.letter) for variant in variants
            ]
            self.fields["variant"].required = True
        else:
            del self.fields["variant"]
