"""Forms of the prospect pages (validation only; writes go through prospects.services)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from mapp.models import User
from prospects.criteria import CriteriaError, validate_criteria
from prospects.models import AssignmentGroup, CustomField, CustomFieldType, ProspectList
from prospects.services import EDITABLE_FIELDS

FIELD_LABELS = {
    "email": _("Email address"),
    "last_name": _("Last name"),
    "first_name": _("First name"),
    "last_name_kana": _("Last name (kana)"),
    "first_name_kana": _("First name (kana)"),
    "company_name": _("Company"),
    "department": _("Department"),
    "job_title": _("Job title"),
    "industry": _("Industry"),
    "employee_count": _("Employees"),
    "phone": _("Phone"),
    "website": _("Website"),
    "postal_code": _("Postal code"),
    "prefecture": _("Prefecture / state"),
    "city": _("City"),
    "address_line": _("Address"),
    "country": _("Country"),
    "source": _("Source"),
    "notes": _("Notes"),
}


class ProspectForm(forms.Form):
    """Default fields, tags and every custom field, built from their definitions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in EDITABLE_FIELDS:
            if name == "email":
                self.fields[name] = forms.EmailField(label=FIELD_LABELS[name], max_length=254)
            elif name == "employee_count":
                self.fields[name] = forms.IntegerField(
                    label=FIELD_LABELS[name], required=False, min_value=0
                )
            elif name == "notes":
                self.fields[name] = forms.CharField(
                    label=FIELD_LABELS[name],
                    required=False,
                    widget=forms.Textarea(attrs={"rows": 3}),
                )
            else:
                self.fields[name] = forms.CharField(
                    label=FIELD_LABELS[name], required=False, max_length=255
                )
        self.fields["tags"] = forms.CharField(
            label=_("Tags"), required=False, help_text=_("Separate tags with commas.")
        )
        self.custom_fields = list(CustomField.objects.all())
        for custom_field in self.custom_fields:
            self.fields[f"custom_{custom_field.key}"] = self._custom_form_field(custom_field)

    @staticmethod
    def _custom_form_field(custom_field: CustomField) -> forms.Field:
        label = custom_field.label
        choices = [(str(choice), str(choice)) for choice in custom_field.choices]
        if custom_field.field_type == CustomFieldType.NUMBER:
            return forms.DecimalField(label=label, required=False, max_digits=20, decimal_places=6)
        if custom_field.field_type == CustomFieldType.DATE:
            return forms.DateField(
                label=label, required=False, widget=forms.DateInput(attrs={"type": "date"})
            )
        if custom_field.field_type == CustomFieldType.BOOLEAN:
            return forms.NullBooleanField(label=label, required=False)
        if custom_field.field_type == CustomFieldType.CHOICE:
            return forms.ChoiceField(label=label, required=False, choices=[("", "—"), *choices])
        if custom_field.field_type == CustomFieldType.MULTI_CHOICE:
            return forms.MultipleChoiceField(
                label=label, required=False, choices=choices, widget=forms.CheckboxSelectMultiple
            )
        return forms.CharField(label=label, required=False, max_length=1000)

    def prospect_data(self) -> dict[str, Any]:
        return {name: self.cleaned_data.get(name) for name in EDITABLE_FIELDS}

    def tag_names(self) -> list[str]:
        return [
            part.strip()
            for part in self.cleaned_data.get("tags", "").replace("、", ",").split(",")
            if part.strip()
        ]

    def custom_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for custom_field in self.custom_fields:
            value = self.cleaned_data.get(f"custom_{custom_field.key}")
            if isinstance(value, bool):
                values[custom_field.key] = "true" if value else "false"
            elif value is None:
                values[custom_field.key] = ""
            elif hasattr(value, "isoformat"):
                values[custom_field.key] = value.isoformat()
            else:
                values[custom_field.key] = value
        return values


def parse_criteria(raw: str) -> dict[str, Any]:
    """Criteria JSON from a form or query string; CriteriaError when it is not valid."""
    if not raw.strip():
        return {"match": "all", "conditions": []}
    if len(raw) > 200_000:
        raise CriteriaError("the criteria are too large")
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as error:
        raise CriteriaError("not valid JSON") from error
    return validate_criteria(document)


class CriteriaField(forms.CharField):
    widget = forms.Textarea

    def clean(self, value: Any) -> dict[str, Any]:
        text = super().clean(value) or ""
        try:
            return parse_criteria(text)
        except CriteriaError as error:
            raise forms.ValidationError(str(error)) from error


class ListForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    description = forms.CharField(
        label=_("Description"),
        max_length=500,
        required=False,
        help_text=_("Prospects see it in the preference centre when the list is shown there."),
    )
    is_dynamic = forms.BooleanField(
        label=_("Dynamic list"),
        required=False,
        help_text=_("Members are added and removed automatically from the criteria."),
    )
    is_public = forms.BooleanField(
        label=_("Show in the preference centre"),
        required=False,
        help_text=_("Prospects can subscribe to and leave this list from their emails."),
    )
    public_name = forms.CharField(
        label=_("Name shown to prospects"),
        max_length=200,
        required=False,
        help_text=_("Shown in the preference centre instead of the internal name."),
    )
    criteria = CriteriaField(label=_("Criteria"), required=False)

    def __init__(
        self, *args: Any, prospect_list: ProspectList | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        # Editing: whether the list is dynamic is fixed (the field is not on the page).
        self.prospect_list = prospect_list

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        is_dynamic = (
            self.prospect_list.is_dynamic
            if self.prospect_list is not None
            else bool(cleaned.get("is_dynamic"))
        )
        if is_dynamic and cleaned.get("is_public"):
            self.add_error(
                "is_public",
                _(
                    "Only static lists can be shown in the preference centre: nobody can leave "
                    "a dynamic list by hand."
                ),
            )
        return cleaned


class BulkActionForm(forms.Form):
    ACTIONS = [
        ("add_to_list", _("Add to list")),
        ("remove_from_list", _("Remove from list")),
        ("add_tag", _("Add tag")),
        ("remove_tag", _("Remove tag")),
        ("assign_user", _("Assign to user")),
        ("assign_group", _("Assign round-robin in group")),
        ("do_not_email", _("Mark do not email")),
        ("delete", _("Delete")),
    ]
    action = forms.ChoiceField(label=_("Action"), choices=ACTIONS)
    prospect_ids = forms.CharField(required=False, widget=forms.HiddenInput)
    select_all_matching = forms.BooleanField(required=False, widget=forms.HiddenInput)
    prospect_list = forms.ModelChoiceField(
        label=_("List"), queryset=ProspectList.objects.filter(is_dynamic=False), required=False
    )
    tag = forms.CharField(label=_("Tag"), max_length=100, required=False)
    user = forms.ModelChoiceField(
        label=_("User"), queryset=User.objects.filter(is_active=True), required=False
    )
    group = forms.ModelChoiceField(
        label=_("Group"), queryset=AssignmentGroup.objects.all(), required=False
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        action = cleaned.get("action")
        needs = {
            "add_to_list": "prospect_list",
            "remove_from_list": "prospect_list",
            "add_tag": "tag",
            "remove_tag": "tag",
            "assign_user": "user",
            "assign_group": "group",
        }
        if action in needs and not cleaned.get(needs[action]):
            self.add_error(needs[action], _("This action needs a value."))
        raw_ids = cleaned.get("prospect_ids") or ""
        try:
            cleaned["ids"] = [int(part) for part in raw_ids.split(",") if part.strip()]
        except ValueError:
            self.add_error(None, _("Invalid selection."))
            cleaned["ids"] = []
        if not cleaned["ids"] and not cleaned.get("select_all_matching"):
            self.add_error(None, _("Select at least one prospect."))
        return cleaned
