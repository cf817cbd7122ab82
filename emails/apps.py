from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EmailsConfig(AppConfig):
    """Templates, list emails, the send pipeline, sending domains."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "emails"
    verbose_name = _("Emails")

    def ready(self) -> None:
        from emails.actions import register_actions
        from emails.rendering import register_merge_fields

        register_actions()
        register_merge_fields()
