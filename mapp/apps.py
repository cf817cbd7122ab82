from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig
from django.utils.translation import gettext_lazy as _


class MappConfig(AppConfig):
    """Core: users and roles, audit log, Celery, health, dashboards."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "mapp"
    verbose_name = _("mapp core")

    def ready(self) -> None:
        from mapp import signals

        signals.connect()


class MappAdminConfig(AdminConfig):
    """Django admin with mapp's role-guarded site as the default site."""

    default_site = "mapp.admin_site.MappAdminSite"
