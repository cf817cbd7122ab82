"""Django admin, guarded by the same roles as the rest of mapp (mapp/access.py)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from mapp.access import has_access, request_user
from mapp.models import Level, Module


class MappAdminSite(admin.AdminSite):
    site_header = _("mapp administration")
    site_title = _("mapp administration")
    index_title = _("Data administration")

    def has_permission(self, request: HttpRequest) -> bool:
        return has_access(request.user, Module.ADMIN_SITE, Level.VIEW)


class GuardedModelAdmin(admin.ModelAdmin):
    """Every ModelAdmin in mapp derives from this: the role decides, per model's module.

    ``access_module`` names the module a model belongs to. Changes made here are written to the
    audit log like changes made anywhere else.
    """

    access_module: Module = Module.SETTINGS

    def _allowed(self, request: HttpRequest, level: Level) -> bool:
        return has_access(request.user, Module.ADMIN_SITE, Level.VIEW) and has_access(
            request.user, self.access_module, level
        )

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, Level.VIEW)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, Level.VIEW)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._allowed(request, Level.EDIT)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, Level.EDIT)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, Level.EDIT)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return self.scope_queryset(request, super().get_queryset(request))

    def scope_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Narrow rows to what the user's role may see (e.g. Sales: their own prospects)."""
        return queryset

    def _audit(self, request: HttpRequest, action: str, obj: Any, message: Any = "") -> None:
        from mapp.services import audit_log_record

        audit_log_record(
            actor=request_user(request),
            action=f"admin.{action}",
            target=obj,
            changes={"message": str(message)} if message else None,
            request=request,
        )

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        self._audit(request, "add", obj, message)
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        self._audit(request, "change", obj, message)
        return super().log_change(request, obj, message)

    def log_deletions(self, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        for obj in queryset:
            self._audit(request, "delete", obj)
        return super().log_deletions(request, queryset)


class ReadOnlyGuardedModelAdmin(GuardedModelAdmin):
    """For records nobody edits by hand (audit log, activity rows)."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
