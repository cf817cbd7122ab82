from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class FormsConfig(AppConfig):
    """Forms, landing pages, form handlers and submissions."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "forms"
    verbose_name = _("Forms")
