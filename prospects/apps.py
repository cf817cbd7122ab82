from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ProspectsConfig(AppConfig):
    """Prospects, companies, lists, the criteria engine and the action catalogue."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "prospects"
    verbose_name = _("Prospects")

    def ready(self) -> None:
        from prospects.criteria.subjects import register_default_subjects

        register_default_subjects()
        from prospects.actions.defaults import register_default_actions

        register_default_actions()
        from mapp.assignments import AssignedObjectKind, register_assigned_object_kind
        from mapp.dashboard import DashboardCard, register_dashboard_card
        from mapp.models import Module
        from prospects.selectors import prospect_count_assigned, prospects_visible_to
        from prospects.services import prospects_reassign
        from prospects.task_selectors import register_task_dashboard_cards, task_count_assigned
        from prospects.task_services import tasks_reassign

        register_assigned_object_kind(
            AssignedObjectKind(
                key="prospects",
                label=_("Prospects"),
                count_assigned=prospect_count_assigned,
                reassign=prospects_reassign,
            )
        )
        register_dashboard_card(
            DashboardCard(
                key="prospects_visible",
                label=_("Prospects"),
                module=Module.PROSPECTS,
                value=lambda user: prospects_visible_to(user).count(),
                url_name="prospects:list",
                order=10,
            )
        )
        register_dashboard_card(
            DashboardCard(
                key="prospects_assigned_to_me",
                label=_("Assigned to me"),
                module=Module.PROSPECTS,
                value=prospect_count_assigned,
                order=20,
            )
        )
        register_task_dashboard_cards()
        register_assigned_object_kind(
            AssignedObjectKind(
                key="tasks",
                label=_("Open tasks"),
                count_assigned=task_count_assigned,
                reassign=tasks_reassign,
            )
        )
