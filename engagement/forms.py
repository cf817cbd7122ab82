"""The automation rule form: name, criteria (the shared builder), actions (the shared editor),
repeat. The services validate again; this form only reads the input and says what is wrong."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.utils.translation import gettext_lazy as _

from engagement.rules import MAX_REPEAT_DAYS
from prospects.actions.editor import ActionListField
from prospects.forms import CriteriaField

if TYPE_CHECKING:
    from mapp.models import User


class AutomationRuleForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    description = forms.CharField(
        label=_("Description"),
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    criteria = CriteriaField(label=_("Criteria"), required=False)
    actions = ActionListField(
        label=_("Actions"),
        help_text=_(
            "Run once on each prospect the rule matches, in this order. Actions added later are "
            "not run on prospects matched before."
        ),
    )
    repeat = forms.BooleanField(
        label=_("Repeat rule"),
        required=False,
        help_text=_(
            "Match a prospect again (and run the actions again) when it still meets the "
            "criteria some days after its last match."
        ),
    )
    repeat_after_days = forms.IntegerField(
        label=_("Match again after (days)"),
        required=False,
        min_value=1,
        max_value=MAX_REPEAT_DAYS,
    )

    def __init__(self, *args: Any, actor: User | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        actions = self.fields["actions"]
        if isinstance(actions, ActionListField):
            actions.actor = actor

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        criteria = cleaned.get("criteria")
        if isinstance(criteria, dict) and not criteria.get("conditions"):
            self.add_error(
                "criteria",
                _("Add at least one condition: a rule without one would match every prospect."),
            )
        if "actions" in cleaned and not cleaned["actions"]:
            self.add_error("actions", _("Add at least one action."))
        if cleaned.get("repeat"):
            if cleaned.get("repeat_after_days") is None and "repeat_after_days" not in self.errors:
                self.add_error(
                    "repeat_after_days",
                    _("A repeating rule needs a number of days from 1 to %(max)d.")
                    % {"max": MAX_REPEAT_DAYS},
                )
        else:
            cleaned["repeat_after_days"] = None
        return cleaned
