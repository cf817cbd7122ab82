"""Reads of action runs: the prospect page's "Automation history"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext_lazy as _

from prospects.actions.registry import action_label
from prospects.models import ActionRun

if TYPE_CHECKING:
    from mapp.models import User
    from prospects.models import Prospect

# The panel shows the latest runs only; the admin (and later reports) has the rest.
HISTORY_LENGTH = 20


@dataclass(frozen=True)
class ActionHistoryRow:
    run: ActionRun
    label: str


def action_runs_for(*, prospect_id: int, limit: int = HISTORY_LENGTH) -> list[ActionHistoryRow]:
    """The prospect's latest action runs, newest first, with each action's label (one query)."""
    runs = ActionRun.objects.filter(prospect_id=prospect_id).order_by("-created_at", "-id")[:limit]
    return [ActionHistoryRow(run=run, label=action_label(run.action)) for run in runs]


def _panel_context(prospect: Prospect, user: User) -> dict[str, Any]:
    return {"action_history": action_runs_for(prospect_id=prospect.pk)}


def register_action_history_panel() -> None:
    from prospects.panels import ProspectPanel, register_prospect_panel

    register_prospect_panel(
        ProspectPanel(
            key="action_history",
            title=_("Automation history"),
            template="prospects/_action_history.html",
            context=_panel_context,
            order=50,
        )
    )
