"""Grading's contributions to the action catalogue (Account Engagement's automation actions).

"Change prospect profile" assigns a grading profile; "Change profile criteria" marks one
criterion of a profile as matches / does not match / not known (neutral) for the prospect.
Both regrade the prospect at once, inside the action run's transaction.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from mapp.models import Module
from prospects.actions import (
    Action,
    ActionConfigForm,
    ActionContext,
    ActionOutcome,
    register_action,
)
from prospects.models import Prospect
from scoring.grading import criterion_mark_set, prospect_profile_set
from scoring.models import CriterionState, GradingCriterion, GradingProfile


class CriterionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: GradingCriterion) -> str:
        return f"{obj.profile.name} – {obj.name}"


class ChangeGradingProfileForm(ActionConfigForm):
    profile = forms.ModelChoiceField(
        label=gettext_lazy("Grading profile"),
        queryset=GradingProfile.objects.order_by("-is_default", "name"),
        error_messages={"invalid_choice": gettext_lazy("No such grading profile.")},
    )


STATE_CHOICES = [
    (CriterionState.MATCHED.value, gettext_lazy("matches")),
    (CriterionState.NOT_MATCHED.value, gettext_lazy("does not match")),
    (CriterionState.UNKNOWN.value, gettext_lazy("not known (neutral)")),
]


class ChangeProfileCriterionForm(ActionConfigForm):
    criterion = CriterionChoiceField(
        label=gettext_lazy("Profile criterion"),
        queryset=GradingCriterion.objects.select_related("profile").order_by(
            "-profile__is_default", "profile__name", "position", "id"
        ),
        error_messages={"invalid_choice": gettext_lazy("No such profile criterion.")},
    )
    state = forms.ChoiceField(
        label=gettext_lazy("Set to"), choices=STATE_CHOICES, initial=CriterionState.MATCHED.value
    )


def _change_profile(
    *, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionOutcome:
    profile = GradingProfile.objects.get(pk=config["profile"])
    changed = prospect_profile_set(prospect=prospect, profile=profile)
    if not changed:
        return ActionOutcome.ok(
            _("Already on the profile “%(profile)s”; grade %(grade)s.")
            % {"profile": profile.name, "grade": prospect.grade}
        )
    return ActionOutcome.ok(
        _("Profile set to “%(profile)s”; grade now %(grade)s.")
        % {"profile": profile.name, "grade": prospect.grade}
    )


def _change_criterion(
    *, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionOutcome:
    criterion = GradingCriterion.objects.select_related("profile").get(pk=config["criterion"])
    grade = criterion_mark_set(
        prospect=prospect, criterion=criterion, state=config["state"], actor=context.actor
    )
    return ActionOutcome.ok(
        _("“%(profile)s – %(criterion)s” set to %(state)s; grade now %(grade)s.")
        % {
            "profile": criterion.profile.name,
            "criterion": criterion.name,
            "state": dict(STATE_CHOICES)[config["state"]],
            "grade": grade,
        }
    )


def register_grading_actions() -> None:
    register_action(
        Action(
            key="change_grading_profile",
            label=gettext_lazy("Change prospect profile"),
            description=gettext_lazy("Grade the prospect against another grading profile."),
            config_form=ChangeGradingProfileForm,
            run=_change_profile,
            module=Module.AUTOMATION,
            order=42,
        )
    )
    register_action(
        Action(
            key="change_profile_criterion",
            label=gettext_lazy("Change profile criteria"),
            description=gettext_lazy(
                "Mark a profile criterion as matching, not matching or not known for the "
                "prospect; the grade follows at once."
            ),
            config_form=ChangeProfileCriterionForm,
            run=_change_criterion,
            module=Module.AUTOMATION,
            order=43,
        )
    )
