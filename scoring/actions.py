"""Scoring's contribution to the action catalogue: "Adjust score" (add, subtract or set).

It lives here, not in prospects, because the score belongs to scoring: each adjustment is a row
of the score ledger (cause "action"), written in the same transaction as the action run.
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
from scoring.models import ScoreCause
from scoring.services import SCORE_MAX, score_change

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


def _adjust_score(
    *, prospect: Prospect, config: dict[str, Any], context: ActionContext
) -> ActionOutcome:
    mode, points = config["mode"], config["points"]
    label = context.cause_label or str(context.cause_type)
    if mode == MODE_SET:
        # One ledger row with the difference, written in the action run's transaction.
        score_change(
            prospect=prospect,
            set_to=points,
            cause=ScoreCause.ACTION,
            label=label,
            actor=context.actor,
            action_run_id=context.action_run_id,
        )
        return ActionOutcome.ok(_("Score set to %(score)d.") % {"score": prospect.score})
    delta = points if mode == MODE_ADD else -points
    score_change(
        prospect=prospect,
        points=delta,
        cause=ScoreCause.ACTION,
        label=label,
        actor=context.actor,
        action_run_id=context.action_run_id,
    )
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
