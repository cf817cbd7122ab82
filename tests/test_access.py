"""Roles decide every page: declared per view, enforced in one middleware, fail closed."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from mapp.access import has_access, rule_for_view
from mapp.admin_site import GuardedModelAdmin
from mapp.models import Level, Module, Role, User
from mapp.services import role_copy, role_update
from tests.conftest import client_for
from tests.factories import ProspectFactory, make_user

# Framework tables that are not business data and have no admin on purpose.
MODELS_WITHOUT_ADMIN = {
    "auth.permission",  # mapp's roles replace Django permissions
    "auth.group",  # mapp's roles replace Django groups
    "contenttypes.contenttype",
    "sessions.session",
    "admin.logentry",  # superseded by the append-only audit log
    "django_celery_beat.periodictasks",  # beat's internal change marker
    "axes.accessattemptexpiration",  # axes' internal expiry of a lockout, shown on the attempt
}


def _walk(
    patterns: list[URLPattern | URLResolver], prefix: str = ""
) -> list[tuple[str, URLPattern]]:
    found: list[tuple[str, URLPattern]] = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found.extend(_walk(pattern.url_patterns, prefix + str(pattern.pattern)))
        else:
            found.append((prefix + str(pattern.pattern), pattern))
    return found


def test_every_view_outside_the_admin_declares_its_access() -> None:
    request = RequestFactory().get("/")
    undeclared = [
        route
        for route, pattern in _walk(get_resolver().url_patterns)
        if not route.startswith("admin/") and rule_for_view(pattern.callback, request) is None
    ]
    assert undeclared == []


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_sign_in_but_health_is_public() -> None:
    client = Client()
    for url in ["/", reverse("prospects:list"), reverse("users:list"), "/admin/"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert "login" in response["Location"]
    assert client.get(reverse("login")).status_code == 200


def test_default_roles_grant_what_the_seed_describes(
    administrator: User, marketer: User, sales_manager: User, sales_user: User
) -> None:
    assert all(has_access(administrator, module, Level.EDIT) for module in Module)
    assert has_access(marketer, Module.MARKETING, Level.EDIT)
    assert not has_access(marketer, Module.USERS)
    assert has_access(sales_manager, Module.VISITORS)
    assert has_access(sales_manager, Module.MARKETING, Level.VIEW)
    assert not has_access(sales_manager, Module.MARKETING, Level.EDIT)
    assert has_access(sales_user, Module.PROSPECTS, Level.EDIT)
    assert not has_access(sales_user, Module.VISITORS)
    assert not has_access(sales_user, Module.MARKETING)


def test_sales_user_cannot_open_administrator_pages(sales_user: User) -> None:
    client = client_for(sales_user)
    for url in [
        reverse("users:list"),
        reverse("users:roles"),
        reverse("users:audit_log"),
        "/admin/",
    ]:
        assert client.get(url).status_code == 403, url


def test_sales_user_sees_only_their_own_prospects(sales_user: User, sales_manager: User) -> None:
    own = ProspectFactory.create(assigned_user=sales_user, email="own@sample-shoji.co.jp")
    other = ProspectFactory.create(assigned_user=sales_manager, email="other@mirai-kogyo.jp")
    unassigned = ProspectFactory.create(assigned_user=None, email="nobody@mirai-kogyo.jp")
    client = client_for(sales_user)

    listing = client.get(reverse("prospects:list")).content.decode()
    assert own.email in listing
    assert other.email not in listing
    assert unassigned.email not in listing
    assert client.get(reverse("prospects:detail", args=[own.pk])).status_code == 200
    # Someone else's prospect does not exist for this user: 404, which reveals nothing.
    assert client.get(reverse("prospects:detail", args=[other.pk])).status_code == 404
    assert client.get(reverse("prospects:detail", args=[unassigned.pk])).status_code == 404


def test_sales_manager_sees_every_prospect(sales_manager: User, sales_user: User) -> None:
    prospect = ProspectFactory.create(assigned_user=sales_user)
    response = client_for(sales_manager).get(reverse("prospects:detail", args=[prospect.pk]))
    assert response.status_code == 200


def test_a_custom_role_copied_from_sales_can_be_granted_user_viewing(administrator: User) -> None:
    custom = role_copy(
        actor=administrator, source=Role.objects.get(slug=Role.SALES), name="Partner"
    )
    permissions = dict(custom.permissions, users=int(Level.VIEW))
    role_update(
        actor=administrator,
        role=custom,
        name="Partner",
        permissions=permissions,
        prospect_scope="assigned",
    )
    partner = make_user(Role.SALES, email="partner@example.jp")
    partner.role = custom
    partner.save(update_fields=["role"])
    client = client_for(partner)

    assert client.get(reverse("users:list")).status_code == 200
    assert client.get(reverse("users:create")).status_code == 403  # viewing is not editing
    assert client.post(reverse("users:create"), {"email": "x@example.jp"}).status_code == 403


def test_a_deactivated_user_loses_their_session(marketer: User) -> None:
    client = client_for(marketer)
    assert client.get(reverse("prospects:list")).status_code == 200
    marketer.is_active = False
    marketer.save(update_fields=["is_active"])
    assert client.get(reverse("prospects:list")).status_code == 302


def test_every_model_has_a_guarded_searchable_filterable_admin() -> None:
    problems = []
    for model in apps.get_models():
        label = model._meta.label_lower
        if label in MODELS_WITHOUT_ADMIN:
            continue
        model_admin = admin.site._registry.get(model)
        if model_admin is None:
            problems.append(f"{label}: not registered")
            continue
        if not isinstance(model_admin, GuardedModelAdmin):
            problems.append(f"{label}: admin not role-guarded")
        if not model_admin.search_fields:
            problems.append(f"{label}: no search_fields")
        if not model_admin.list_filter:
            problems.append(f"{label}: no list_filter")
    assert problems == []


def _changelist_urls() -> list[str]:
    return [
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for model in admin.site._registry
    ]


def test_administrator_can_search_every_admin_list(administrator: User) -> None:
    client = client_for(administrator)
    for url in _changelist_urls():
        response = client.get(url, {"q": "株式会社"})
        assert response.status_code == 200, url


def test_no_admin_page_opens_for_roles_without_the_admin_site(
    marketer: User, sales_manager: User, sales_user: User
) -> None:
    for user in (marketer, sales_manager, sales_user):
        client = client_for(user)
        for url in ["/admin/", *_changelist_urls()]:
            assert client.get(url).status_code == 403, (user.email, url)


def test_admin_site_is_scoped_by_module_for_custom_roles(administrator: User) -> None:
    """A role with the admin site but without 'users' sees prospects in admin, not users."""
    custom = role_copy(
        actor=administrator, source=Role.objects.get(slug=Role.MARKETING), name="Ops"
    )
    role_update(
        actor=administrator,
        role=custom,
        name="Ops",
        permissions=dict(custom.permissions, admin_site=int(Level.VIEW)),
        prospect_scope="all",
    )
    operator = make_user(Role.MARKETING, email="ops@example.jp")
    operator.role = custom
    operator.save(update_fields=["role"])
    client = client_for(operator)

    assert client.get(reverse("admin:prospects_prospect_changelist")).status_code == 200
    assert client.get(reverse("admin:mapp_user_changelist")).status_code == 403
    assert client.get(reverse("admin:mapp_auditlogentry_changelist")).status_code == 403


def test_sales_in_admin_would_see_only_their_prospects(administrator: User) -> None:
    custom = role_copy(
        actor=administrator, source=Role.objects.get(slug=Role.SALES), name="Sales+admin"
    )
    role_update(
        actor=administrator,
        role=custom,
        name="Sales+admin",
        permissions=dict(custom.permissions, admin_site=int(Level.VIEW)),
        prospect_scope="assigned",
    )
    seller = make_user(Role.SALES, email="seller@example.jp")
    seller.role = custom
    seller.save(update_fields=["role"])
    own = ProspectFactory.create(assigned_user=seller, email="mine@sample-shoji.co.jp")
    other = ProspectFactory.create(assigned_user=administrator, email="theirs@sample-shoji.co.jp")

    client = client_for(seller)
    listing = client.get(reverse("admin:prospects_prospect_changelist")).content.decode()
    assert own.email in listing
    assert other.email not in listing
    change_url = reverse("admin:prospects_prospect_change", args=[other.pk])
    assert client.get(change_url).status_code in {302, 404}  # admin redirects "does not exist"
