from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from prospects.models import Prospect


class TrackingConfig(AppConfig):
    """Visitors, the tracking endpoints and the activity stream."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "tracking"
    verbose_name = _("Tracking")

    def ready(self) -> None:
        from mapp.hosts import register_host_provider
        from prospects.panels import ProspectPanel, register_prospect_panel
        from prospects.services import register_merge_handler
        from tracking import criteria
        from tracking.consumers import ActivityConsumer, register_activity_consumer
        from tracking.domains import tracker_domain_hosts
        from tracking.handlers import PROSPECT_ACTIVITY_TYPES, update_last_activity
        from tracking.services import activities_move_to_prospect
        from tracking.timeline import timeline_for

        register_host_provider(tracker_domain_hosts)
        criteria.register()
        register_prospect_panel(
            ProspectPanel(
                key="timeline",
                title=_("Activity"),
                template="tracking/_timeline.html",
                context=lambda prospect, user: {
                    "activities": timeline_for(prospect_id=prospect.pk)
                },
                order=10,
            )
        )
        register_activity_consumer(
            ActivityConsumer(
                key="tracking.last_activity",
                handle=update_last_activity,
                types=PROSPECT_ACTIVITY_TYPES,
            )
        )

        def move_history(survivor: Prospect, merged_ids: Sequence[int]) -> None:
            activities_move_to_prospect(from_prospect_ids=merged_ids, to_prospect_id=survivor.pk)

        register_merge_handler(move_history)
