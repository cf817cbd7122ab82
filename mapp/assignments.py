"""Things assigned to users, contributed by the apps that own them.

The core cannot import prospects (imports flow upward only, ARCHITECTURE.md), yet deactivating
a user must hand their prospects (and later tasks) to someone else. Owners register here from
their AppConfig.ready(); user services ask the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.utils.functional import Promise

    from mapp.models import User


@dataclass(frozen=True)
class AssignedObjectKind:
    key: str
    label: str | Promise
    count_assigned: Callable[[User], int]
    reassign: Callable[[User, User | None], int]  # returns how many rows moved


_kinds: dict[str, AssignedObjectKind] = {}


def register_assigned_object_kind(kind: AssignedObjectKind) -> None:
    _kinds[kind.key] = kind


def assigned_object_kinds() -> list[AssignedObjectKind]:
    return list(_kinds.values())


def assigned_counts(user: User) -> dict[str, int]:
    return {kind.key: kind.count_assigned(user) for kind in _kinds.values()}
