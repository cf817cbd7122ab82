"""Reads of the activity stream."""

from __future__ import annotations

from django.db.models import QuerySet

from tracking.models import Activity


def activities_for_prospect(*, prospect_id: int, limit: int = 100) -> QuerySet[Activity]:
    """The prospect's timeline, newest first (uses the (prospect_id, occurred_at) index)."""
    return Activity.objects.filter(prospect_id=prospect_id).order_by("-occurred_at", "-id")[:limit]


def activities_for_visitor(*, visitor_id: int, limit: int = 200) -> QuerySet[Activity]:
    return Activity.objects.filter(visitor_id=visitor_id).order_by("-occurred_at", "-id")[:limit]
