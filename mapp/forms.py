"""Forms for user and role management (validation only; the writes are in services)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from mapp.models import LANGUAGE_CHOICES, Level, Module, ProspectScope, Role, User


class UserCreateForm(forms.Form):
    email = forms.EmailField(label=_("Email address"))
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    job_title = forms.CharField(label=_("Job title"), max_length=150, required=False)
    role = forms.ModelChoiceField(label=_("Role"), queryset=Role.objects.all())
    language = forms.ChoiceField(label=_("Language"), choices=LANGUAGE_CHOICES, required=False)


class UserEditForm(forms.Form):
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    job_title = forms.CharField(label=_("Job title"), max_length=150, required=False)
    role = forms.ModelChoiceField(label=_("Role"), queryset=Role.objects.all())
    language = forms.ChoiceField(label=_("Language"), choices=LANGUAGE_CHOICES, required=False)


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.display_name} <{obj.email}>" if obj.display_name != obj.email else obj.email


class UserDeactivateForm(forms.Form):
    reassign_to = UserChoiceField(
        label=_("Reassign their prospects to"),
        queryset=User.objects.none(),
        required=False,
        empty_label=_("Nobody (leave unassigned)"),
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["reassign_to"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = User.objects.filter(is_active=True).exclude(pk=user.pk)


class RoleCopyForm(forms.Form):
    source = forms.ModelChoiceField(label=_("Copy from"), queryset=Role.objects.all())
    name = forms.CharField(label=_("Name of the new role"), max_length=100)


class RoleEditForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    prospect_scope = forms.ChoiceField(label=_("Prospects visible"), choices=ProspectScope.choices)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for module in Module:
            self.fields[f"module_{module.value}"] = forms.TypedChoiceField(
                label=module.label, choices=Level.choices, coerce=int
            )

    @classmethod
    def initial_for(cls, role: Role) -> dict[str, Any]:
        initial: dict[str, Any] = {"name": role.name, "prospect_scope": role.prospect_scope}
        for module in Module:
            initial[f"module_{module.value}"] = int(role.level_for(module))
        return initial

    def permissions(self) -> dict[str, int]:
        return {module.value: self.cleaned_data[f"module_{module.value}"] for module in Module}

    def module_fields(self) -> list[forms.BoundField]:
        return [self[f"module_{module.value}"] for module in Module]
