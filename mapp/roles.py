"""The default roles (Account Engagement's four, seed 001) and their per-module levels."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_noop

from mapp.models import Level, Module, ProspectScope, Role

ALL_EDIT = {module.value: int(Level.EDIT) for module in Module}

DEFAULT_ROLES: list[dict[str, Any]] = [
    {
        "slug": Role.ADMINISTRATOR,
        "name": gettext_noop("Administrator"),
        "description": gettext_noop("Every setting and all data."),
        "prospect_scope": ProspectScope.ALL,
        "permissions": ALL_EDIT,
    },
    {
        "slug": Role.MARKETING,
        "name": gettext_noop("Marketing"),
        "description": gettext_noop("Marketing assets, automation and all prospects."),
        "prospect_scope": ProspectScope.ALL,
        "permissions": {
            Module.PROSPECTS.value: int(Level.EDIT),
            Module.VISITORS.value: int(Level.VIEW),
            Module.MARKETING.value: int(Level.EDIT),
            Module.AUTOMATION.value: int(Level.EDIT),
            Module.REPORTS.value: int(Level.VIEW),
            Module.SETTINGS.value: int(Level.NONE),
            Module.USERS.value: int(Level.NONE),
            Module.ADMIN_SITE.value: int(Level.NONE),
        },
    },
    {
        "slug": Role.SALES_MANAGER,
        "name": gettext_noop("Sales Manager"),
        "description": gettext_noop("All prospects and visitors; marketing read-only."),
        "prospect_scope": ProspectScope.ALL,
        "permissions": {
            Module.PROSPECTS.value: int(Level.EDIT),
            Module.VISITORS.value: int(Level.VIEW),
            Module.MARKETING.value: int(Level.VIEW),
            Module.AUTOMATION.value: int(Level.VIEW),
            Module.REPORTS.value: int(Level.VIEW),
            Module.SETTINGS.value: int(Level.NONE),
            Module.USERS.value: int(Level.NONE),
            Module.ADMIN_SITE.value: int(Level.NONE),
        },
    },
    {
        "slug": Role.SALES,
        "name": gettext_noop("Sales"),
        "description": gettext_noop("Only the prospects assigned to them."),
        "prospect_scope": ProspectScope.ASSIGNED,
        "permissions": {
            Module.PROSPECTS.value: int(Level.EDIT),
            Module.VISITORS.value: int(Level.NONE),
            Module.MARKETING.value: int(Level.NONE),
            Module.AUTOMATION.value: int(Level.NONE),
            Module.REPORTS.value: int(Level.NONE),
            Module.SETTINGS.value: int(Level.NONE),
            Module.USERS.value: int(Level.NONE),
            Module.ADMIN_SITE.value: int(Level.NONE),
        },
    },
]


def ensure_default_roles(role_model: Any = Role) -> None:
    """Create or restore the default roles (idempotent; used by the migration and tests)."""
    for definition in DEFAULT_ROLES:
        role_model.objects.update_or_create(
            slug=definition["slug"],
            defaults={
                "name": definition["name"],
                "description": definition["description"],
                "is_default": True,
                "permissions": {
                    key: int(value) for key, value in definition["permissions"].items()
                },
                "prospect_scope": str(definition["prospect_scope"]),
            },
        )
