"""The consumers tracking itself ships."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import F, Q
from django.db.models.functions import Greatest

from prospects.models import Prospect
from tracking.models import Activity


def update_last_activity(activities: list[Activity]) -> None:
    """A prospect's last-activity time is the newest human activity recorded for them."""
    newest: dict[int, object] = defaultdict(lambda: None)
    for activity in activities:
        if activity.prospect_id is None:
            continue
        current = newest[activity.prospect_id]
        if current is None or activity.occurred_at > current:  # type: ignore[operator]
            newest[activity.prospect_id] = activity.occurred_at
    for prospect_id, occurred_at in newest.items():
        Prospect.objects.filter(pk=prospect_id).filter(
            Q(last_activity_at__isnull=True) | Q(last_activity_at__lt=occurred_at)
        ).update(last_activity_at=Greatest(F("last_activity_at"), occurred_at))
