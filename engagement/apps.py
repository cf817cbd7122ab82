from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EngagementConfig(AppConfig):
    """Engagement programs and automation rules."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "engagement"
    verbose_name = _("Engagement")

    def ready(self) -> None:
        from engagement import rules

        rules.register()
