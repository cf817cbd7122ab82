"""Forms of Settings → Tracking: the account's tracking options and its tracker domains."""

from __future__ import annotations

import re
import unicodedata
from typing import Any, ClassVar

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tracking.models import TrackerDomain, TrackingSettings

MAX_SESSION_GAP_MINUTES = 24 * 60
HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
NOT_A_HOST_NAME = re.compile(r"[/\\?#@:\s]")


def normalize_tracker_domain(value: str) -> str:
    """A host name as DNS spells it (lower-case, IDNA A-labels, no trailing dot).

    Japanese input is welcome: full-width letters and dots are folded (NFKC) and Unicode labels
    become ``xn--`` labels. Schemes, paths, ports, user names and IP addresses are refused.
    """
    text = unicodedata.normalize("NFKC", value).strip()
    if "://" in text or NOT_A_HOST_NAME.search(text):
        raise ValidationError(
            _("Enter a host name only (like go.example.co.jp), without http://, a path or a port.")
        )
    text = text.rstrip(".")
    if not text:
        raise ValidationError(_("Enter a host name."))
    try:
        # Python's IDNA codec (IDNA 2003 with nameprep) also lower-cases and maps 。 to a dot.
        ascii_name = text.encode("idna").decode("ascii").lower()
    except UnicodeError as error:
        raise ValidationError(_("This is not a valid host name.")) from error
    labels = ascii_name.split(".")
    if (
        len(ascii_name) > 253
        or len(labels) < 2
        or not all(HOST_LABEL.fullmatch(label) for label in labels)
    ):
        raise ValidationError(_("This is not a valid host name."))
    if labels[-1].isdigit():
        raise ValidationError(_("Enter a host name, not an IP address."))
    return ascii_name


class TrackingSettingsForm(forms.ModelForm):
    session_gap_minutes = forms.IntegerField(
        label=gettext_lazy("New visit after minutes of inactivity"),
        min_value=1,
        max_value=MAX_SESSION_GAP_MINUTES,
    )

    class Meta:
        model = TrackingSettings
        fields: ClassVar[list[str]] = [
            "session_gap_minutes",
            "require_consent",
            "honour_do_not_track",
        ]
        help_texts: ClassVar[dict[str, Any]] = {
            "honour_do_not_track": gettext_lazy(
                "Browsers that send Do Not Track are not recorded at all."
            ),
        }


class TrackerDomainForm(forms.Form):
    domain = forms.CharField(
        label=gettext_lazy("Tracker domain"),
        max_length=300,
        help_text=gettext_lazy(
            "A sub-domain of your website, e.g. go.example.co.jp, pointed at mapp with a CNAME "
            "record."
        ),
    )

    def clean_domain(self) -> str:
        domain = normalize_tracker_domain(self.cleaned_data["domain"])
        if TrackerDomain.objects.filter(domain=domain).exists():
            raise ValidationError(_("This tracker domain is already listed."))
        return domain
