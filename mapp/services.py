"""Writes for users, roles and the audit log. Views, admin and commands call these."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.contrib.auth.forms import PasswordResetForm
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from mapp.assignments import assigned_object_kinds
from mapp.models import AuditLogEntry, Level, Module, ProspectScope, Role, User


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address; X-Forwarded-For only as far as settings.TRUSTED_PROXY_COUNT allows."""
    if request is None:
        return None
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR") or None


def audit_log_record(
    *,
    actor: User | None,
    action: str,
    target: Any = None,
    changes: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    actor_email: str = "",
) -> AuditLogEntry:
    """Append one entry to the audit log (who, what, when, from which IP)."""
    object_type = object_id = object_repr = ""
    if target is not None:
        object_type = (
            target._meta.label_lower if hasattr(target, "_meta") else type(target).__name__
        )
        object_id = str(getattr(target, "pk", "") or "")
        object_repr = str(target)[:300]
    return AuditLogEntry.objects.create(
        actor=actor if actor is not None and actor.pk else None,
        actor_email=(actor.email if actor is not None else actor_email)[:254],
        action=action[:100],
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr,
        changes=changes or {},
        ip_address=client_ip(request),
    )


# --- Roles ------------------------------------------------------------------------------------


def _validated_permissions(permissions: dict[str, Any]) -> dict[str, int]:
    cleaned: dict[str, int] = {}
    for module in Module:
        raw = permissions.get(module.value, Level.NONE)
        try:
            level = Level(int(raw))
        except (TypeError, ValueError) as error:
            raise ValidationError(
                _("Invalid permission level for %(module)s.") % {"module": module.label}
            ) from error
        cleaned[module.value] = int(level)
    return cleaned


def role_copy(*, actor: User, source: Role, name: str, request: HttpRequest | None = None) -> Role:
    """A custom role starts as a copy of an existing one (Account Engagement's way)."""
    name = name.strip()
    if not name:
        raise ValidationError(_("A role needs a name."))
    if Role.objects.filter(name__iexact=name).exists():
        raise ValidationError(_("A role with this name already exists."))
    base_slug = "custom-" + secrets.token_hex(4)
    role = Role.objects.create(
        name=name,
        slug=base_slug,
        description=source.description,
        is_default=False,
        permissions=dict(source.permissions),
        prospect_scope=source.prospect_scope,
    )
    audit_log_record(
        actor=actor,
        action="role.create",
        target=role,
        changes={"copied_from": source.slug},
        request=request,
    )
    return role


def role_update(
    *,
    actor: User,
    role: Role,
    name: str,
    permissions: dict[str, Any],
    prospect_scope: str,
    request: HttpRequest | None = None,
) -> Role:
    if role.is_default:
        raise ValidationError(_("Default roles cannot be changed; copy one to make a custom role."))
    if prospect_scope not in ProspectScope.values:
        raise ValidationError(_("Invalid prospect scope."))
    cleaned = _validated_permissions(permissions)
    before = {
        "name": role.name,
        "permissions": role.permissions,
        "prospect_scope": role.prospect_scope,
    }
    role.name = name.strip() or role.name
    role.permissions = cleaned
    role.prospect_scope = prospect_scope
    role.save(update_fields=["name", "permissions", "prospect_scope", "updated_at"])
    audit_log_record(
        actor=actor,
        action="role.update",
        target=role,
        changes={
            "before": before,
            "after": {"name": role.name, "permissions": cleaned, "prospect_scope": prospect_scope},
        },
        request=request,
    )
    return role


def role_delete(*, actor: User, role: Role, request: HttpRequest | None = None) -> None:
    if role.is_default:
        raise ValidationError(_("Default roles cannot be deleted."))
    if role.users.exists():
        raise ValidationError(_("This role still has users; give them another role first."))
    audit_log_record(actor=actor, action="role.delete", target=role, request=request)
    role.delete()


# --- Users ------------------------------------------------------------------------------------


class _InvitationForm(PasswordResetForm):
    """Django's reset form skips users without a usable password; invitees have none yet."""

    def get_users(self, email: str) -> Iterator[User]:
        return iter(User.objects.filter(email__iexact=email, is_active=True))


def _send_set_password_mail(*, user: User, request: HttpRequest | None) -> None:
    """New users choose their own password through a password-reset link."""
    form = _InvitationForm(data={"email": user.email})
    if form.is_valid():
        domain = settings.SITE_URL.split("://", 1)[-1]
        form.save(
            request=request,
            use_https=settings.SITE_URL.startswith("https://"),
            domain_override=domain,
            subject_template_name="registration/password_set_subject.txt",
            email_template_name="registration/password_set_email.txt",
        )


def user_create(
    *,
    actor: User | None,
    email: str,
    role: Role,
    first_name: str = "",
    last_name: str = "",
    job_title: str = "",
    language: str = "",
    password: str | None = None,
    send_invitation: bool = True,
    request: HttpRequest | None = None,
) -> User:
    email = User.objects.normalize_email(email.strip()).lower()
    if User.objects.filter(email__iexact=email).exists():
        raise ValidationError(_("A user with this email address already exists."))
    user = User.objects.create_user(
        email=email,
        password=password,
        role=role,
        first_name=first_name,
        last_name=last_name,
        job_title=job_title,
        language=language,
    )
    audit_log_record(
        actor=actor, action="user.create", target=user, changes={"role": role.slug}, request=request
    )
    if password is None and send_invitation:
        transaction.on_commit(lambda: _send_set_password_mail(user=user, request=request))
    return user


USER_EDITABLE_FIELDS = ("first_name", "last_name", "job_title", "language", "role")


def user_update(
    *, actor: User, user: User, data: dict[str, Any], request: HttpRequest | None = None
) -> User:
    changes: dict[str, Any] = {}
    for field in USER_EDITABLE_FIELDS:
        if field not in data:
            continue
        old, new = getattr(user, field), data[field]
        if old != new:
            changes[field] = {"from": str(old), "to": str(new)}
            setattr(user, field, new)
    if "role" in changes and user.pk == actor.pk and not _role_manages_users(data["role"]):
        raise ValidationError(_("You cannot take away your own right to manage users."))
    if changes:
        user.save(update_fields=[*changes.keys()])
        audit_log_record(
            actor=actor, action="user.update", target=user, changes=changes, request=request
        )
    return user


def _role_manages_users(role: Role) -> bool:
    return role.level_for(Module.USERS) >= Level.EDIT


@transaction.atomic
def user_deactivate(
    *, actor: User, user: User, reassign_to: User | None, request: HttpRequest | None = None
) -> dict[str, int]:
    """Deactivate ``user``; everything assigned to them goes to ``reassign_to`` (or unassigned)."""
    if user.pk == actor.pk:
        raise ValidationError(_("You cannot deactivate yourself."))
    if reassign_to is not None and (reassign_to.pk == user.pk or not reassign_to.is_active):
        raise ValidationError(_("Choose an active user other than the one being deactivated."))
    user = User.objects.select_for_update().get(pk=user.pk)
    if not user.is_active:
        raise ValidationError(_("This user is already deactivated."))
    moved = {kind.key: kind.reassign(user, reassign_to) for kind in assigned_object_kinds()}
    user.is_active = False
    user.deactivated_at = timezone.now()
    user.save(update_fields=["is_active", "deactivated_at"])
    audit_log_record(
        actor=actor,
        action="user.deactivate",
        target=user,
        changes={"reassigned_to": reassign_to.email if reassign_to else None, "moved": moved},
        request=request,
    )
    return moved


def user_reactivate(*, actor: User, user: User, request: HttpRequest | None = None) -> User:
    user.is_active = True
    user.deactivated_at = None
    user.save(update_fields=["is_active", "deactivated_at"])
    audit_log_record(actor=actor, action="user.reactivate", target=user, request=request)
    return user


def ensure_first_administrator(
    *, email: str, password: str | None
) -> tuple[User | None, str | None]:
    """Create the first administrator if no user exists yet.

    Returns (user, generated_password); the generated password is shown once by the caller.
    """
    if User.objects.exists():
        return None, None
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(12)
    user = User.objects.create_superuser(email=email, password=password)
    audit_log_record(
        actor=None, actor_email="system", action="user.create_first_admin", target=user
    )
    return user, generated
