"""Role-based access: the one place every view, API view and admin page goes through.

Each view declares what it needs with :func:`access_required` (a module and a level),
:func:`login_required_only` (any signed-in user) or :func:`public`. ``AccessMiddleware``
reads that declaration before the view runs and refuses anything undeclared, so a view that
forgets to say what it needs is closed, not open. Django admin pages are checked by the same
middleware (the role must grant the admin site) and by :class:`GuardedModelAdmin` per model;
DRF views declare ``access_module`` and are checked by :class:`ModulePermission`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.permissions import BasePermission

from mapp.models import Level, Module

if TYPE_CHECKING:
    from mapp.models import User

logger = logging.getLogger(__name__)

ViewFunc = TypeVar("ViewFunc", bound=Callable[..., Any])

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class AccessRule:
    """What a view needs: ``module`` at ``read_level`` to read, at ``write_level`` to change."""

    module: Module | None  # None: any signed-in user
    read_level: Level = Level.VIEW
    write_level: Level = Level.EDIT
    is_public: bool = False

    def level_for_method(self, method: str) -> Level:
        return self.read_level if method.upper() in SAFE_METHODS else self.write_level


PUBLIC = AccessRule(module=None, is_public=True)
SIGNED_IN = AccessRule(module=None)
ADMIN_SITE_RULE = AccessRule(
    module=Module.ADMIN_SITE, read_level=Level.VIEW, write_level=Level.VIEW
)

ACCESS_ATTRIBUTE = "mapp_access_rule"


def user_level(user: Any, module: Module | str) -> Level:
    """The level ``user``'s role grants on ``module``; NONE for anonymous or inactive users."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return Level.NONE
    role = getattr(user, "role", None)
    if role is None:
        return Level.NONE
    return role.level_for(module)


def has_access(user: Any, module: Module | str, level: Level = Level.VIEW) -> bool:
    return user_level(user, module) >= level


def require_access(user: Any, module: Module | str, level: Level = Level.VIEW) -> None:
    if not has_access(user, module, level):
        raise PermissionDenied


def request_user(request: HttpRequest) -> User:
    """The signed-in user of a request the middleware already let through."""
    from mapp.models import User

    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied
    return user


def sees_all_prospects(user: User) -> bool:
    """Whether the role's prospect scope is 'all' (else: only prospects assigned to the user)."""
    from mapp.models import ProspectScope

    return bool(user.role and user.role.prospect_scope == ProspectScope.ALL)


def _mark(view: ViewFunc, rule: AccessRule) -> ViewFunc:
    setattr(view, ACCESS_ATTRIBUTE, rule)
    return view


def access_required(
    module: Module, *, read_level: Level = Level.VIEW, write_level: Level = Level.EDIT
) -> Callable[[ViewFunc], ViewFunc]:
    """Declare that a view needs ``module``: ``read_level`` for GET, ``write_level`` otherwise."""

    def decorator(view: ViewFunc) -> ViewFunc:
        return _mark(
            view, AccessRule(module=module, read_level=read_level, write_level=write_level)
        )

    return decorator


def login_required_only(view: ViewFunc) -> ViewFunc:
    """Declare that any signed-in, active user may use this view (e.g. their own dashboard)."""
    return _mark(view, SIGNED_IN)


def public(view: ViewFunc) -> ViewFunc:
    """Declare a view open to anyone (login, password reset, health, tracking endpoints)."""
    return _mark(view, PUBLIC)


# DRF views authenticate inside the view (sessions now, API tokens later), so the middleware
# only checks that they are guarded by ModulePermission, which then applies the role.
DRF_VIEW = AccessRule(module=None, is_public=True)


def rule_for_view(view_func: Callable[..., Any], request: HttpRequest) -> AccessRule | None:
    rule = getattr(view_func, ACCESS_ATTRIBUTE, None)
    if rule is not None:
        return rule
    view_class = getattr(view_func, "cls", None) or getattr(view_func, "view_class", None)
    if view_class is not None:
        from rest_framework.views import APIView

        if issubclass(view_class, APIView):
            guarded = any(
                isinstance(permission, type) and issubclass(permission, ModulePermission)
                for permission in view_class.permission_classes
            )
            return DRF_VIEW if guarded else None
        rule = getattr(view_class, ACCESS_ATTRIBUTE, None)
        if rule is not None:
            return rule
        module = getattr(view_class, "access_module", None)
        if module is not None or getattr(view_class, "access_signed_in", False):
            return AccessRule(module=module)
    match = getattr(request, "resolver_match", None)
    if match is not None and match.app_name == "admin":
        # Django admin: the login page is public, everything else needs the admin site;
        # each model's own module is checked by GuardedModelAdmin.
        if match.url_name in {"login", "logout", "password_reset", "jsi18n"}:
            return PUBLIC
        return ADMIN_SITE_RULE
    return None


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get(
        "Accept", ""
    )


class AccessMiddleware:
    """Refuses every request whose view does not declare access, or whose user lacks it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: Any,
        view_kwargs: Any,
    ) -> HttpResponse | None:
        rule = rule_for_view(view_func, request)
        if rule is None:
            logger.error("View %s declares no access rule; refusing", view_func)
            raise PermissionDenied("This page declares no access rule.")
        if rule.is_public:
            return None
        user = request.user
        if not user.is_authenticated:
            if _wants_json(request):
                return JsonResponse({"detail": "Authentication required."}, status=401)
            return redirect_to_login(request.get_full_path())
        if not user.is_active:
            raise PermissionDenied
        if rule.module is None:
            return None
        if not has_access(user, rule.module, rule.level_for_method(request.method or "GET")):
            raise PermissionDenied
        return None


class ModulePermission(BasePermission):
    """DRF: the view's ``access_module`` at VIEW to read and EDIT to write. No module, no access."""

    def has_permission(self, request: Any, view: Any) -> bool:
        module = getattr(view, "access_module", None)
        if module is None:
            return bool(getattr(view, "access_signed_in", False) and request.user.is_authenticated)
        level = Level.VIEW if request.method in SAFE_METHODS else Level.EDIT
        return has_access(request.user, module, level)
