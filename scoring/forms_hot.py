"""The HOT rule page's form: threshold, further criteria, actions and the daily digest."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.utils.translation import gettext_lazy as _

from prospects.actions.editor import ActionListField
from prospects.criteria import CriteriaError
from prospects.forms import CriteriaField
from scoring.hot import hot_criteria_validate
from scoring.services import SCORE_MAX

if TYPE_CHECKING:
    from mapp.models import User

HOUR_CHOICES = [(hour, f"{hour:02d}:00") for hour in range(24)]


class HotRuleForm(forms.Form):
    threshold = forms.IntegerField(
        label=_("HOT threshold (score)"),
        min_value=1,
        max_value=SCORE_MAX,
        help_text=_("A prospect is HOT when its score is at least this and it meets the criteria."),
    )
    criteria = CriteriaField(label=_("Further criteria"), required=False)
    actions = ActionListField(
        label=_("When a prospect becomes HOT"),
        help_text=_("Run once each time a prospect becomes HOT, in this order."),
    )
    digest_enabled = forms.BooleanField(
        label=_("Send the daily HOT-lead digest"),
        required=False,
        help_text=_("Each user gets one mail a day listing their new HOT leads, if there are any."),
    )
    digest_hour = forms.TypedChoiceField(
        label=_("Digest time (local time)"), choices=HOUR_CHOICES, coerce=int
    )

    def __init__(self, *args: Any, actor: User | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        actions = self.fields["actions"]
        if isinstance(actions, ActionListField):
            actions.actor = actor

    def clean_criteria(self) -> dict[str, Any]:
        criteria = self.cleaned_data.get("criteria") or {}
        try:
            return hot_criteria_validate(criteria)
        except CriteriaError as error:
            raise forms.ValidationError(str(error)) from error
