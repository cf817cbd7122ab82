"""Scoring's contribution to the action catalogue: "Adjust score" (add, subtract or set).

It lives here, not in prospects, because the score belongs to scoring: when the score ledger
arrives (its own issue) this is where each adjustment will be written to it.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import F, Value
from django.db.models.functions import Greatest, Least
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
from prospects.services import schedule_dynamic_list_refresh

# Scores stay within these bounds whatever the rules add up to: far beyond any real scoring
# model, far inside the PostgreSQL integer column, so adding can never overflow it.
SCORE_MIN = -1_000_000
SCORE_MAX = 1_000_000

MODE_ADD = "add"
MODE_SUBTRACT = "subtract"
MODE_SET = "set"


class AdjustScoreForm(ActionConfigForm):
    mode = forms.ChoiceField(
        label=gettext_lazy("Change"),
        choices=[
            (MODE_ADD, gettext_lazy("Add points")),
            (MODE_SUBTRACT, gettext_lazy("Subtract points")),
            (MODE_SET, gettext_lazy("Set the score to")),
        ],
        initial=MODE_ADD,
    )
    points = forms.IntegerField(
        label=gettext_lazy("Points"), min_value=0, max_value=SCORE_MAX, initial=10
    )


def _clamped(expression: Any) -> Least:
    return Least(Greatest(expression, Value(SCORE_MIN)), Value(SCORE_MAX))


def _adjust_score(
    *, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionOutcome:
    mode, points = config["mode"], config["points"]
    rows = Prospect.objects.filter(pk=prospect.pk)
    if mode == MODE_SET:
        rows.update(score=_clamped(Value(points)))
    else:
        # F(): one UPDATE computed by PostgreSQL, so concurrent adjustments all count.
        delta = points if mode == MODE_ADD else -points
        rows.update(score=_clamped(F("score") + delta))
    prospect.score = rows.values_list("score", flat=True)[0]
    schedule_dynamic_list_refresh([prospect.pk])  # lists with score criteria
    if mode == MODE_SET:
        return ActionOutcome.ok(_("Score set to %(score)d.") % {"score": prospect.score})
    change = f"+{points}" if mode == MODE_ADD else f"−{points}"
    return ActionOutcome.ok(
        _("Score %(change)s, now %(score)d.") % {"change": change, "score": prospect.score}
    )


def register_actions() -> None:
    """Called from ScoringConfig.ready()."""
    register_action(
        Action(
            key="adjust_score",
            label=gettext_lazy("Adjust score"),
            description=gettext_lazy("Add or subtract points, or set the score to a value."),
            config_form=AdjustScoreForm,
            run=_adjust_score,
            module=Module.AUTOMATION,
            order=40,
        )
    )
