"""Sections of the prospect page contributed by other apps (the activity timeline, later
scores, emails, campaigns): prospects cannot import them, so they register here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest
from django.template.loader import render_to_string

if TYPE_CHECKING:
    from django.utils.functional import Promise

    from mapp.models import User
    from prospects.models import Prospect


@dataclass(frozen=True)
class ProspectPanel:
    key: str
    title: str | Promise
    template: str
    context: Callable[[Prospect, User], dict[str, Any]]
    order: int = 100


_panels: dict[str, ProspectPanel] = {}


def register_prospect_panel(panel: ProspectPanel) -> None:
    _panels[panel.key] = panel


def panels_for(
    prospect: Prospect, user: User, request: HttpRequest | None = None
) -> list[dict[str, Any]]:
    """Each panel rendered by its own (autoescaping) template with its own context."""
    return [
        {
            "key": panel.key,
            "title": panel.title,
            "html": render_to_string(
                panel.template,
                {"prospect": prospect, **panel.context(prospect, user)},
                request=request,
            ),
        }
        for panel in sorted(_panels.values(), key=lambda panel: (panel.order, panel.key))
    ]
