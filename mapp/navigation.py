"""The app's navigation, filtered by role. Areas not built yet show, greyed out, without a link."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from mapp.access import has_access, sees_all_prospects
from mapp.models import Level, Module


@dataclass(frozen=True)
class NavItem:
    label: str | Promise
    module: Module
    url_name: str | None = None  # None: the area is not built yet
    level: Level = Level.VIEW
    visible: Callable[[Any], bool] | None = None  # a further condition after the module


@dataclass(frozen=True)
class NavSection:
    key: str
    label: str | Promise
    items: tuple[NavItem, ...] = field(default_factory=tuple)


NAVIGATION: tuple[NavSection, ...] = (
    NavSection(
        "prospects",
        _("Prospects"),
        (
            NavItem(_("Prospects"), Module.PROSPECTS, "prospects:list"),
            NavItem(_("Lists"), Module.PROSPECTS, "lists:index"),
            NavItem(_("Tasks"), Module.PROSPECTS, "tasks:mine"),
            NavItem(
                _("Import"),
                Module.PROSPECTS,
                "prospects_import:list",
                Level.EDIT,
                visible=sees_all_prospects,
            ),
            NavItem(_("Export"), Module.PROSPECTS, "prospects_import:export"),
            NavItem(_("Visitors"), Module.VISITORS, "visitors:list"),
        ),
    ),
    NavSection(
        "marketing",
        _("Marketing"),
        (
            NavItem(_("Emails"), Module.MARKETING, "emails:list"),
            NavItem(_("Email templates"), Module.MARKETING, "emails:templates"),
            NavItem(_("Forms"), Module.MARKETING, "forms:list"),
            NavItem(_("Form handlers"), Module.MARKETING, "forms:handlers"),
            NavItem(_("Landing pages"), Module.MARKETING, "forms:landing_pages"),
            NavItem(_("Engagement programs"), Module.MARKETING),
            NavItem(_("Campaigns"), Module.MARKETING),
            NavItem(_("Custom redirects"), Module.MARKETING, "assets:redirects"),
            NavItem(_("Files"), Module.MARKETING, "assets:files"),
        ),
    ),
    NavSection(
        "automation",
        _("Automation"),
        (
            NavItem(_("Automation rules"), Module.AUTOMATION, "automation:list"),
            NavItem(_("Scoring"), Module.AUTOMATION, "scoring:rules"),
            NavItem(_("Score decay"), Module.AUTOMATION, "decay:list"),
            NavItem(_("Grading"), Module.AUTOMATION, "grading:profiles"),
            NavItem(_("HOT rule"), Module.AUTOMATION, "hot:settings"),
            NavItem(_("Page actions"), Module.AUTOMATION, "page_actions:list"),
        ),
    ),
    NavSection(
        "sales",
        _("Sales"),
        (
            NavItem(_("My HOT leads"), Module.PROSPECTS, "sales:hot_leads"),
            NavItem(_("Overdue tasks"), Module.PROSPECTS, "sales:overdue_tasks"),
            NavItem(
                _("Sales manager dashboard"),
                Module.PROSPECTS,
                "sales:manager",
                visible=sees_all_prospects,
            ),
        ),
    ),
    NavSection(
        "reports",
        _("Reports"),
        (
            NavItem(_("HOT threshold advisor"), Module.REPORTS, "advisor:report"),
            NavItem(_("Reports"), Module.REPORTS),
        ),
    ),
    NavSection(
        "settings",
        _("Settings"),
        (
            NavItem(_("Users"), Module.USERS, "users:list"),
            NavItem(_("Roles"), Module.USERS, "users:roles"),
            NavItem(_("Audit log"), Module.USERS, "users:audit_log"),
            NavItem(_("Tracking"), Module.SETTINGS, "visitors:settings"),
            NavItem(_("Sending domains"), Module.SETTINGS, "emails:domains", level=Level.EDIT),
            NavItem(_("System status"), Module.SETTINGS, "system_status"),
            NavItem(
                _("Outbox"),
                Module.SETTINGS,
                "outbox:list",
                visible=lambda user: bool(getattr(settings, "OUTBOX_ENABLED", False)),
            ),
            NavItem(_("API tokens"), Module.PROSPECTS, "api_tokens"),
            NavItem(_("Django admin"), Module.ADMIN_SITE, "admin:index"),
        ),
    ),
)


def navigation_for(user: Any, current_path: str = "") -> list[dict[str, Any]]:
    sections: list[dict[str, Any]] = []
    for section in NAVIGATION:
        items: list[dict[str, Any]] = []
        for item in section.items:
            if not has_access(user, item.module, item.level):
                continue
            if item.visible is not None and not item.visible(user):
                continue
            url = reverse(item.url_name) if item.url_name else None
            items.append({"label": item.label, "url": url, "is_active": False})
        if items:
            sections.append({"key": section.key, "label": section.label, "items": items})
    # The current page belongs to the item with the longest URL that prefixes it.
    matches: list[dict[str, Any]] = [
        item
        for section in sections
        for item in section["items"]
        if item["url"] and current_path.startswith(item["url"])
    ]
    if matches:
        max(matches, key=lambda item: len(item["url"]))["is_active"] = True
    return sections
