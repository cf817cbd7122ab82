"""The HOT threshold advisor's form (a GET form: the report's address can be bookmarked)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from prospects.forms import CriteriaField
from scoring.advisor import DEFAULT_BAND_WIDTH, MAX_BAND_WIDTH, MIN_BAND_WIDTH


class AdvisorCriteriaField(CriteriaField):
    """The criteria builder's JSON; a broken document (hand-edited address) gets a plain message."""

    def clean(self, value: Any) -> dict[str, Any]:
        try:
            return super().clean(value)
        except forms.ValidationError as error:
            raise forms.ValidationError(
                _("These criteria are not valid (%(error)s). Build them again below."),
                params={"error": "; ".join(error.messages)},
            ) from error


class AdvisorForm(forms.Form):
    target = AdvisorCriteriaField(
        label=_("Counts as converted"),
        required=False,  # an empty document is refused in clean_target with a clearer message
        help_text=_(
            "Which prospects count as converted: for example members of a list of won deals, "
            "or a field your sales team sets. Once opportunities exist, choose “opportunity "
            "won” here."
        ),
    )
    population = AdvisorCriteriaField(
        label=_("Prospects to analyse"),
        required=False,
        help_text=_("Optional: only these prospects (empty: every prospect you may see)."),
    )
    band_width = forms.IntegerField(
        label=_("Score band width"),
        required=False,
        min_value=MIN_BAND_WIDTH,
        max_value=MAX_BAND_WIDTH,
        initial=DEFAULT_BAND_WIDTH,
        help_text=_("Points per band, e.g. 10: 0–9, 10–19, 20–29 …"),
    )

    def clean_target(self) -> dict[str, Any]:
        target: dict[str, Any] = self.cleaned_data["target"]
        if not target.get("conditions"):
            raise forms.ValidationError(
                _("Add at least one condition that says which prospects converted.")
            )
        return target

    def clean_band_width(self) -> int:
        value = self.cleaned_data.get("band_width")
        return DEFAULT_BAND_WIDTH if value is None else int(value)
