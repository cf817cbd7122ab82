"""User, role and audit-log management (Settings). Every write goes through mapp.services."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _

from mapp import services
from mapp.access import access_required, request_user
from mapp.assignments import assigned_counts, assigned_object_kinds
from mapp.forms import RoleCopyForm, RoleEditForm, UserCreateForm, UserDeactivateForm, UserEditForm
from mapp.models import AuditLogEntry, Level, Module, Role, User

AUDIT_LOG_PAGE_SIZE = 50
USER_PAGE_SIZE = 50


def _errors_to_form(form: Any, error: ValidationError) -> None:
    for message in error.messages:
        form.add_error(None, message)


@access_required(Module.USERS)
def user_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    users = User.objects.select_related("role").order_by("-is_active", "last_name", "email")
    if query:
        users = users.filter(
            Q(email__icontains=query)
            | Q(last_name__icontains=query)
            | Q(first_name__icontains=query)
        )
    page = Paginator(users, USER_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "users/user_list.html", {"page": page, "query": query})


@access_required(Module.USERS, read_level=Level.EDIT)
def user_create(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_create(
                actor=request_user(request), request=request, **form.cleaned_data
            )
        except ValidationError as error:
            _errors_to_form(form, error)
        else:
            messages.success(
                request,
                _("User %(email)s created; an email to set a password was sent.")
                % {"email": user.email},
            )
            return redirect("users:list")
    return render(request, "users/user_form.html", {"form": form, "is_new": True})


@access_required(Module.USERS, read_level=Level.EDIT)
def user_edit(request: HttpRequest, user_id: int) -> HttpResponse:
    user = get_object_or_404(User.objects.select_related("role"), pk=user_id)
    initial = {field: getattr(user, field) for field in services.USER_EDITABLE_FIELDS}
    form = UserEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.user_update(
                actor=request_user(request), user=user, data=form.cleaned_data, request=request
            )
        except ValidationError as error:
            _errors_to_form(form, error)
        else:
            messages.success(request, _("Changes saved."))
            return redirect("users:list")
    return render(
        request, "users/user_form.html", {"form": form, "edited_user": user, "is_new": False}
    )


@access_required(Module.USERS, read_level=Level.EDIT)
def user_deactivate(request: HttpRequest, user_id: int) -> HttpResponse:
    user = get_object_or_404(User, pk=user_id)
    form = UserDeactivateForm(request.POST or None, user=user)
    if request.method == "POST" and form.is_valid():
        try:
            moved = services.user_deactivate(
                actor=request_user(request),
                user=user,
                reassign_to=form.cleaned_data["reassign_to"],
                request=request,
            )
        except ValidationError as error:
            _errors_to_form(form, error)
        else:
            messages.success(
                request,
                _("%(user)s was deactivated; %(count)d assigned records were handed over.")
                % {"user": user.display_name, "count": sum(moved.values())},
            )
            return redirect("users:list")
    counts = assigned_counts(user)
    assigned = [
        {"label": kind.label, "count": counts.get(kind.key, 0)} for kind in assigned_object_kinds()
    ]
    return render(
        request,
        "users/user_deactivate.html",
        {"form": form, "edited_user": user, "assigned": assigned},
    )


@access_required(Module.USERS, read_level=Level.EDIT)
def user_reactivate(request: HttpRequest, user_id: int) -> HttpResponse:
    user = get_object_or_404(User, pk=user_id)
    if request.method == "POST":
        services.user_reactivate(actor=request_user(request), user=user, request=request)
        messages.success(request, _("%(user)s was reactivated.") % {"user": user.display_name})
    return redirect("users:list")


@access_required(Module.USERS)
def role_list(request: HttpRequest) -> HttpResponse:
    roles = Role.objects.annotate(user_count=Count("users")).order_by("-is_default", "id")
    copy_form = RoleCopyForm(request.POST or None)
    if request.method == "POST" and copy_form.is_valid():
        try:
            role = services.role_copy(
                actor=request_user(request),
                source=copy_form.cleaned_data["source"],
                name=copy_form.cleaned_data["name"],
                request=request,
            )
        except ValidationError as error:
            _errors_to_form(copy_form, error)
        else:
            messages.success(request, _("Role %(name)s created.") % {"name": role.name})
            return redirect("users:role_edit", role_id=role.pk)
    rows = [
        {"role": role, "levels": [role.level_for(module) for module in Module]} for role in roles
    ]
    return render(
        request,
        "users/role_list.html",
        {"rows": rows, "modules": list(Module), "copy_form": copy_form},
    )


@access_required(Module.USERS, read_level=Level.EDIT)
def role_edit(request: HttpRequest, role_id: int) -> HttpResponse:
    role = get_object_or_404(Role, pk=role_id)
    if role.is_default:
        messages.info(
            request, _("Default roles cannot be changed; copy one to make a custom role.")
        )
        return redirect("users:roles")
    form = RoleEditForm(request.POST or None, initial=RoleEditForm.initial_for(role))
    if request.method == "POST" and form.is_valid():
        try:
            services.role_update(
                actor=request_user(request),
                role=role,
                name=form.cleaned_data["name"],
                permissions=form.permissions(),
                prospect_scope=form.cleaned_data["prospect_scope"],
                request=request,
            )
        except ValidationError as error:
            _errors_to_form(form, error)
        else:
            messages.success(request, _("Changes saved."))
            return redirect("users:roles")
    return render(request, "users/role_form.html", {"form": form, "role": role})


@access_required(Module.USERS)
def audit_log(request: HttpRequest) -> HttpResponse:
    entries = AuditLogEntry.objects.all()
    query = request.GET.get("q", "").strip()
    if query:
        entries = entries.filter(
            Q(actor_email__icontains=query)
            | Q(action__icontains=query)
            | Q(object_repr__icontains=query)
        )
    page = Paginator(entries, AUDIT_LOG_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "users/audit_log.html", {"page": page, "query": query})
