"""The page action and score decay editors' forms."""

from __future__ import annotations

import re
from typing import Any, ClassVar
from urllib.parse import urlsplit

from django import forms
from django.utils.translation import gettext_lazy as _

from mapp.models import User
from prospects.actions.editor import ActionListField
from scoring.models import PageAction, ScoreDecayRule, UrlMatch
from scoring.page_actions import pattern_length
from scoring.services import SCORE_MAX

# Points per page view: a bound that keeps a busy page's total far from the integer limit.
PAGE_ACTION_POINTS_MAX = 1000
URL_MAX_LENGTH = 2000  # PageAction.url_pattern, and the length a viewed URL is stored at
WILDCARD_MIN_LITERAL = 3  # "*" or "*/*" would match nearly every page
DECAY_DAYS_MAX = 3650

_WHITESPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")


def url_pattern_errors(pattern: str, match_type: str) -> list[str]:
    """Why ``pattern`` cannot be a page action's URL for ``match_type`` (empty: it can)."""
    if _WHITESPACE_OR_CONTROL.search(pattern):
        return [str(_("A URL cannot contain spaces or line breaks."))]
    if len(pattern) > URL_MAX_LENGTH or pattern_length(pattern, match_type) > URL_MAX_LENGTH:
        return [
            str(
                _("The URL is too long: at most %(count)d characters once encoded.")
                % {"count": URL_MAX_LENGTH}
            )
        ]
    if match_type == UrlMatch.WILDCARD:
        if "*" not in pattern:
            return [str(_("Put a * where anything may follow, or choose “Exact URL”."))]
        if len(pattern.replace("*", "")) < WILDCARD_MIN_LITERAL:
            return [str(_("This pattern would match almost every page; make it more specific."))]
        return []
    if "*" in pattern:
        return [str(_("* is a wildcard: choose the wildcard match to use it."))]
    try:
        parts = urlsplit(pattern)
        hostname = parts.hostname
    except ValueError:
        hostname = None
        parts = None
    if parts is None or parts.scheme.lower() not in {"http", "https"} or not hostname:
        return [str(_("Enter a full URL starting with https:// (or http://)."))]
    return []


class PageActionForm(forms.ModelForm):
    points = forms.IntegerField(
        label=_("Score"),
        min_value=-PAGE_ACTION_POINTS_MAX,
        max_value=PAGE_ACTION_POINTS_MAX,
        initial=0,
        help_text=_("Added to the score on each view (0: none). Scoring rules still apply."),
    )
    actions = ActionListField(
        label=_("Actions"),
        help_text=_("Run once for each view of the page, in this order."),
    )

    class Meta:
        model = PageAction
        fields: ClassVar[list[str]] = [
            "name",
            "match_type",
            "url_pattern",
            "points",
            "is_priority",
            "actions",
            "is_active",
        ]
        help_texts: ClassVar[dict[str, Any]] = {
            "url_pattern": _(
                "Japanese URLs may be typed as they are or copied from the browser's address "
                "bar (percent-encoded). "
                "The scheme, the fragment (#…) and upper or lower case in the host do not "
                "matter. Exact: a trailing slash does not matter, nor the query string unless "
                "you give one."
            ),
        }

    def __init__(self, *args: Any, actor: User | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        actions = self.fields["actions"]
        if isinstance(actions, ActionListField):
            actions.actor = actor

    def clean_url_pattern(self) -> str:
        return str(self.cleaned_data.get("url_pattern") or "").strip()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        pattern = cleaned.get("url_pattern")
        match_type = cleaned.get("match_type")
        if pattern and match_type:
            for error in url_pattern_errors(pattern, match_type):
                self.add_error("url_pattern", error)
        return cleaned


class PageActionAdminForm(PageActionForm):
    """The Django admin's form: the same checks, actions as JSON validated for the system."""

    actions = ActionListField(label=_("Actions"), widget=forms.Textarea)

    class Meta(PageActionForm.Meta):
        fields: ClassVar[list[str]] = [*PageActionForm.Meta.fields, "created_by"]


class ScoreDecayRuleForm(forms.ModelForm):
    inactive_days = forms.IntegerField(
        label=_("Days without activity"), min_value=1, max_value=DECAY_DAYS_MAX, initial=30
    )
    points = forms.IntegerField(
        label=_("Points"),
        min_value=-SCORE_MAX,
        max_value=-1,
        initial=-10,
        help_text=_("Negative: the points taken from the score each time, e.g. -10."),
    )
    floor = forms.IntegerField(
        label=_("Lowest score"),
        min_value=-SCORE_MAX,
        max_value=SCORE_MAX,
        initial=0,
        help_text=_("Decay never takes a score below this."),
    )

    class Meta:
        model = ScoreDecayRule
        fields: ClassVar[list[str]] = ["name", "inactive_days", "points", "floor", "is_active"]
