"""Activity timelines as the pages show them (a prospect's, a visitor's).

Every value in an activity came from a browser or a mail client: ``tracking/_timeline.html``
renders it escaped, and a URL becomes a link only when it is http(s) (``TimelineEntry.link``),
never ``javascript:`` or ``data:``. An entry reads like an ``Activity`` in templates
(``type``, ``occurred_at``, ``get_type_display``, ``is_bot``, ``object_label``, ``payload``), so
the template also accepts plain activities, shown without links.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tracking.beacon import clean_http_url
from tracking.models import Activity, ActivityType
from tracking.selectors import activities_for_prospect, activities_for_visitor

PROSPECT_TIMELINE_LIMIT = 100
VISITOR_TIMELINE_LIMIT = 200


@dataclass(frozen=True)
class TimelineEntry:
    occurred_at: datetime.datetime
    type: str
    type_label: str
    object_label: str
    link: str | None  # the object as a link target, only if it is an http(s) URL
    is_bot: bool
    visitor_id: int | None
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def get_type_display(self) -> str:
        return self.type_label

    @property
    def title(self) -> str:
        return str(self.payload.get("title") or "")


def timeline_entries(activities: Iterable[Activity]) -> list[TimelineEntry]:
    labels = {str(value): str(label) for value, label in ActivityType.choices}
    return [
        TimelineEntry(
            occurred_at=activity.occurred_at,
            type=activity.type,
            type_label=labels.get(activity.type, activity.type),
            object_label=activity.object_label,
            link=clean_http_url(activity.object_label),
            is_bot=activity.is_bot,
            visitor_id=activity.visitor_id,
            payload=activity.payload if isinstance(activity.payload, dict) else {},
        )
        for activity in activities
    ]


def timeline_for(*, prospect_id: int, limit: int = PROSPECT_TIMELINE_LIMIT) -> list[TimelineEntry]:
    """The prospect's activities, newest first, for ``tracking/_timeline.html``.

    The caller has already checked that the user may see this prospect.
    """
    return timeline_entries(activities_for_prospect(prospect_id=prospect_id, limit=limit))


def visitor_timeline(
    *, visitor_id: int, limit: int = VISITOR_TIMELINE_LIMIT
) -> list[TimelineEntry]:
    return timeline_entries(activities_for_visitor(visitor_id=visitor_id, limit=limit))
