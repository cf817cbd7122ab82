"""Writes of prospects."""

from __future__ import annotations

from django.utils import timezone

from mapp.models import User
from prospects.models import Prospect


def prospects_reassign(from_user: User, to_user: User | None) -> int:
    """Move every prospect assigned to ``from_user`` to ``to_user`` (None: unassigned)."""
    return Prospect.objects.filter(assigned_user=from_user).update(
        assigned_user=to_user, updated_at=timezone.now()
    )
