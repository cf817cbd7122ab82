"""Forms of the grading pages: a profile, its criteria (a formset), and the prospect panel."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from django import forms
from django.forms import BaseInlineFormSet, inlineformset_factory
from django.utils.translation import gettext_lazy as _

from prospects.criteria import CriteriaError
from prospects.forms import CriteriaField
from scoring.grading_compile import grading_criteria_check
from scoring.models import CriterionState, GradingCriterion, GradingProfile

# Every criterion is one CASE in the regrade statement; fifty keeps it well within reason.
MAX_CRITERIA = 50


class GradingProfileForm(forms.ModelForm):
    class Meta:
        model = GradingProfile
        fields: ClassVar[list[str]] = ["name", "description"]
        widgets: ClassVar[dict[str, Any]] = {"description": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.is_default:
            self.fields["name"].widget.attrs["readonly"] = True
            self.fields["name"].help_text = _("The Default profile cannot be renamed.")

    def clean_name(self) -> str:
        name = str(self.cleaned_data.get("name", "")).strip()
        if self.instance.is_default and name != self.instance.name:
            raise forms.ValidationError(_("The Default profile cannot be renamed."))
        return name


class GradingCriteriaField(CriteriaField):
    """A criteria document that may not test the grade itself (it would never settle)."""

    def clean(self, value: Any) -> dict[str, Any]:
        document = super().clean(value)
        try:
            grading_criteria_check(document)
        except CriteriaError as error:
            raise forms.ValidationError(str(error)) from error
        return document


class GradingCriterionForm(forms.ModelForm):
    criteria = GradingCriteriaField(label=_("Criteria"), required=False)

    class Meta:
        model = GradingCriterion
        fields: ClassVar[list[str]] = ["name", "weight", "criteria"]

    def has_changed(self) -> bool:
        """The blank row for a new criterion counts only once it has a name or a condition
        (the criteria builder always posts an empty group)."""
        if self.instance.pk:
            return super().has_changed()
        name = str(self.data.get(self.add_prefix("name"), "")).strip()
        raw = str(self.data.get(self.add_prefix("criteria"), "")).strip()
        try:
            document = json.loads(raw) if raw else {}
        except ValueError:
            return True
        return bool(name) or bool(isinstance(document, dict) and document.get("conditions"))


class BaseCriterionFormSet(BaseInlineFormSet):
    ordering_widget = forms.NumberInput

    def add_fields(self, form: forms.Form, index: int | None) -> None:
        super().add_fields(form, index)
        if "ORDER" in form.fields:
            form.fields["ORDER"].label = _("Position")
        if "DELETE" in form.fields:
            form.fields["DELETE"].label = _("Delete this criterion")


CriterionFormSet = inlineformset_factory(
    GradingProfile,
    GradingCriterion,
    form=GradingCriterionForm,
    formset=BaseCriterionFormSet,
    extra=1,
    can_delete=True,
    can_order=True,
    max_num=MAX_CRITERIA,
    validate_max=True,
)


MARK_RESET = "reset"


class CriterionMarkForm(forms.Form):
    state = forms.ChoiceField(
        choices=[
            (CriterionState.MATCHED.value, _("Matches")),
            (CriterionState.NOT_MATCHED.value, _("Does not match")),
            (CriterionState.UNKNOWN.value, _("Unknown")),
            (MARK_RESET, _("Back to the data")),
        ]
    )


class ProspectProfileForm(forms.Form):
    profile = forms.ModelChoiceField(
        queryset=GradingProfile.objects.order_by("-is_default", "name"),
        error_messages={"invalid_choice": _("No such grading profile.")},
    )
