"""The consumers tracking itself ships."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import F, Q
from django.db.models.functions import Greatest

from prospects.models import Prospect
from tracking.models import Activity, ActivityType

# What the prospect did. Mail we sent or delivered, bounces, status changes and opportunities
# are things that happened to the prospect: they do not make an inactive prospect active (or
# a prospect who only receives list emails would never count as inactive, nor decay).
PROSPECT_ACTIVITY_TYPES = frozenset(
    {
        ActivityType.PAGE_VIEW,
        ActivityType.VISIT,
        ActivityType.IDENTIFIED,
        ActivityType.EMAIL_OPENED,
        ActivityType.EMAIL_CLICKED,
        ActivityType.EMAIL_UNSUBSCRIBED,
        ActivityType.EMAIL_COMPLAINT,
        ActivityType.FORM_VIEW,
        ActivityType.FORM_SUCCESS,
        ActivityType.FORM_ERROR,
        ActivityType.LANDING_PAGE_VIEW,
        ActivityType.LANDING_PAGE_SUCCESS,
        ActivityType.LANDING_PAGE_ERROR,
        ActivityType.FORM_HANDLER_SUCCESS,
        ActivityType.FORM_HANDLER_ERROR,
        ActivityType.CUSTOM_REDIRECT_CLICK,
        ActivityType.FILE_DOWNLOAD,
        ActivityType.OPT_IN,
        ActivityType.OPT_OUT,
    }
)


def update_last_activity(activities: list[Activity]) -> None:
    """A prospect's last-activity time is the newest human activity recorded for them."""
    newest: dict[int, object] = defaultdict(lambda: None)
    for activity in activities:
        if activity.prospect_id is None:
            continue
        current = newest[activity.prospect_id]
        if current is None or activity.occurred_at > current:  # type: ignore[operator]
            newest[activity.prospect_id] = activity.occurred_at
    for prospect_id, occurred_at in sorted(newest.items()):  # the prospects' lock order
        Prospect.objects.filter(pk=prospect_id).filter(
            Q(last_activity_at__isnull=True) | Q(last_activity_at__lt=occurred_at)
        ).update(last_activity_at=Greatest(F("last_activity_at"), occurred_at))
