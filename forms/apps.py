from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from prospects.models import Prospect


class FormsConfig(AppConfig):
    """Forms, landing pages, form handlers and submissions."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "forms"
    verbose_name = _("Forms")

    def ready(self) -> None:
        from prospects.services import register_merge_handler

        def move_submissions_and_consent(survivor: Prospect, merged_ids: Sequence[int]) -> None:
            # Consent evidence must survive a merge (it would be deleted with the merged row).
            from forms.services import prospect_forms_history_move

            prospect_forms_history_move(from_prospect_ids=merged_ids, to_prospect_id=survivor.pk)

        register_merge_handler(move_submissions_and_consent)

        from prospects.panels import ProspectPanel, register_prospect_panel

        def consent_panel_context(prospect: Prospect, user: object) -> dict[str, object]:
            from forms.models import ConsentRecord

            records = (
                ConsentRecord.objects.filter(prospect=prospect)
                .select_related("wording")
                .order_by("-recorded_at", "-id")[:20]
            )
            return {"consent_records": list(records)}

        register_prospect_panel(
            ProspectPanel(
                key="consent",
                title=_("Consent (opt-in / opt-out)"),
                template="forms/_consent_panel.html",
                context=consent_panel_context,
                order=40,
            )
        )
