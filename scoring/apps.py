from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from prospects.models import Prospect
    from tracking.models import Activity


class ScoringConfig(AppConfig):
    """Scoring, grading, hot status and digests."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "scoring"
    verbose_name = _("Scoring")

    def ready(self) -> None:
        from prospects.panels import ProspectPanel, register_prospect_panel
        from prospects.services import register_merge_handler
        from scoring.actions import register_actions
        from scoring.sales import register_sales_dashboard_cards
        from scoring.selectors import prospect_score_explanation
        from scoring.services import score_activities, score_history_move
        from tracking.consumers import ActivityConsumer, register_activity_consumer

        def score_batch(batch: list[Activity]) -> None:
            score_activities(batch)

        from scoring import decay, grading, hot, page_actions

        register_actions()
        grading.register()
        hot.register()
        page_actions.register()
        decay.register()
        register_sales_dashboard_cards()
        # Bots and machine opens never score: the consumer default (include_bots=False).
        register_activity_consumer(ActivityConsumer(key="scoring.rules", handle=score_batch))

        def move_scores(survivor: Prospect, merged_ids: Sequence[int]) -> None:
            score = score_history_move(from_prospect_ids=merged_ids, to_prospect_id=survivor.pk)
            if score is not None:
                survivor.score = score  # prospects_merge saves the survivor afterwards

        register_merge_handler(move_scores)
        register_prospect_panel(
            ProspectPanel(
                key="score",
                title=_("Why this score"),
                template="scoring/_score_panel.html",
                context=lambda prospect, user: {
                    "score_explanation": prospect_score_explanation(prospect)
                },
                order=20,
            )
        )
