"""Admin registrations for the core, and role guards on the third-party models' admins."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from mapp.admin_site import GuardedModelAdmin, ReadOnlyGuardedModelAdmin
from mapp.models import AccountSettings, AuditLogEntry, Module, Notification, Role, User


@admin.register(User)
class UserAdmin(GuardedModelAdmin, DjangoUserAdmin):
    access_module = Module.USERS
    ordering = ("email",)
    list_display = ("email", "last_name", "first_name", "role", "is_active", "last_login")
    list_filter = ("role", "is_active", "language")
    search_fields = ("email", "first_name", "last_name", "job_title")
    readonly_fields = ("last_login", "date_joined", "deactivated_at")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (_("Personal info"), {"fields": ("last_name", "first_name", "job_title", "language")}),
        (_("Access"), {"fields": ("role", "is_active")}),
        (_("Dates"), {"fields": ("last_login", "date_joined", "deactivated_at")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "role", "password1", "password2")}),
    )


@admin.register(Role)
class RoleAdmin(GuardedModelAdmin):
    access_module = Module.USERS
    list_display = ("name", "slug", "is_default", "prospect_scope")
    list_filter = ("is_default", "prospect_scope")
    search_fields = ("name", "slug", "description")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_default:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and (obj.is_default or obj.users.exists()):
            return False
        return super().has_delete_permission(request, obj)


@admin.register(Notification)
class NotificationAdmin(GuardedModelAdmin):
    access_module = Module.USERS
    list_display = ("user", "title", "created_at", "read_at")
    list_filter = ("read_at", "created_at")
    search_fields = ("user__email", "title", "body")


@admin.register(AccountSettings)
class AccountSettingsAdmin(GuardedModelAdmin):
    access_module = Module.SETTINGS
    list_display = ("__str__", "mailable_prospect_limit", "updated_at")
    list_filter = ("updated_at",)
    search_fields = ("mailable_prospect_limit",)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # one row, created on first use


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(ReadOnlyGuardedModelAdmin):
    access_module = Module.USERS
    list_display = (
        "created_at",
        "actor_email",
        "action",
        "object_type",
        "object_repr",
        "ip_address",
    )
    list_filter = ("action", "object_type", "created_at")
    search_fields = ("actor_email", "action", "object_repr", "object_id", "ip_address")
    date_hierarchy = "created_at"


# Third-party apps register their own admins; give each the role guard of the module it serves.
THIRD_PARTY_ADMIN_MODULES = {
    "django_celery_beat": Module.SETTINGS,  # periodic tasks: editable schedules
    "axes": Module.USERS,  # login attempts and lockouts
    "knox": Module.USERS,  # API tokens (hashed)
}

# Where a third-party admin has no search or filters, these make its list usable.
THIRD_PARTY_ADMIN_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "knox.authtoken": {"list_filter": ("created", "expiry")},
    "django_celery_beat.intervalschedule": {
        "search_fields": ("every",),
        "list_filter": ("period",),
    },
    "django_celery_beat.crontabschedule": {
        "search_fields": ("minute", "hour", "day_of_week"),
        "list_filter": ("timezone",),
    },
    "django_celery_beat.solarschedule": {"search_fields": ("event",), "list_filter": ("event",)},
    "django_celery_beat.clockedschedule": {
        "search_fields": ("clocked_time",),
        "list_filter": ("clocked_time",),
    },
}

admin.site.unregister(Group)  # mapp's roles replace Django's groups
for _model, _model_admin in list(admin.site._registry.items()):
    _module = THIRD_PARTY_ADMIN_MODULES.get(_model._meta.app_label)
    if _module is None or isinstance(_model_admin, GuardedModelAdmin):
        continue
    _guarded = type(
        f"Guarded{type(_model_admin).__name__}",
        (GuardedModelAdmin, type(_model_admin)),
        {"access_module": _module, **THIRD_PARTY_ADMIN_OPTIONS.get(_model._meta.label_lower, {})},
    )
    admin.site.unregister(_model)
    admin.site.register(_model, _guarded)
