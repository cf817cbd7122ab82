"""Cards on the home dashboard, contributed by the apps that own the numbers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.urls import reverse

from mapp.access import has_access
from mapp.models import Level, Module

if TYPE_CHECKING:
    from django.utils.functional import Promise


@dataclass(frozen=True)
class DashboardCard:
    key: str
    label: str | Promise
    module: Module | None  # None: every signed-in user
    value: Callable[[Any], int]
    url_name: str | None = None
    order: int = 100
    visible: Callable[[Any], bool] | None = None  # a further condition after the module


_cards: dict[str, DashboardCard] = {}


def register_dashboard_card(card: DashboardCard) -> None:
    _cards[card.key] = card


def dashboard_cards_for(user: Any) -> list[dict[str, Any]]:
    cards = []
    for card in sorted(_cards.values(), key=lambda card: (card.order, card.key)):
        if card.module is not None and not has_access(user, card.module, Level.VIEW):
            continue
        if card.visible is not None and not card.visible(user):
            continue
        cards.append(
            {
                "key": card.key,
                "label": card.label,
                "value": card.value(user),
                "url": reverse(card.url_name) if card.url_name else None,
            }
        )
    return cards
