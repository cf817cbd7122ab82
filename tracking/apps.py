from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TrackingConfig(AppConfig):
    """Visitors, the tracking endpoints and the activity stream."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "tracking"
    verbose_name = _("Tracking")
