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

from django.utils.translation import gettext as _

from prospects.actions.selectors import action_runs_for
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


ACTION_RUN = "action_run"


def action_run_entries(*, prospect_id: int, limit: int) -> list[TimelineEntry]:
    """The prospect's action runs (completion actions, later automation rules…) as entries:
    "Action: Add to list" with what caused it and how it went."""
    entries = []
    for row in action_runs_for(prospect_id=prospect_id, limit=limit):
        run = row.run
        detail = " · ".join(
            part for part in (run.cause_label, run.get_status_display(), run.message) if part
        )
        entries.append(
            TimelineEntry(
                occurred_at=run.created_at,
                type=ACTION_RUN,
                type_label=_("Action: %(action)s") % {"action": row.label},
                object_label=detail,
                link=None,
                is_bot=False,
                visitor_id=None,
            )
        )
    return entries


def timeline_for(*, prospect_id: int, limit: int = PROSPECT_TIMELINE_LIMIT) -> list[TimelineEntry]:
    """The prospect's activities and action runs, newest first, for ``tracking/_timeline.html``.

    The caller has already checked that the user may see this prospect.
    """
    entries = timeline_entries(activities_for_prospect(prospect_id=prospect_id, limit=limit))
    entries += action_run_entries(prospect_id=prospect_id, limit=limit)
    entries.sort(key=lambda entry: entry.occurred_at, reverse=True)
    return entries[:limit]


def visitor_timeline(
    *, visitor_id: int, limit: int = VISITOR_TIMELINE_LIMIT
) -> list[TimelineEntry]:
    return timeline_entries(activities_for_visitor(visitor_id=visitor_id, limit=limit))
