"""The scoring rule editor's form."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.utils.translation import gettext_lazy as _

from scoring.models import ScoringRule
from scoring.services import SCORE_MAX
from tracking.models import ActivityType


class ScoringRuleForm(forms.ModelForm):
    points = forms.IntegerField(label=_("Points"), min_value=-SCORE_MAX, max_value=SCORE_MAX)

    class Meta:
        model = ScoringRule
        fields: ClassVar[list[str]] = [
            "name",
            "activity_type",
            "points",
            "object_type",
            "object_id",
            "url_pattern",
            "first_time_only",
            "is_active",
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("url_pattern") and cleaned.get("activity_type") != ActivityType.PAGE_VIEW:
            self.add_error("url_pattern", _("A URL pattern applies to page views only."))
        if cleaned.get("object_type") and not cleaned.get("object_id"):
            self.add_error("object_id", _("Give the id of the object as well."))
        return cleaned
