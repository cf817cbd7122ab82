"""Users, roles and the audit log: who may do what, and the record of what they did."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class Module(models.TextChoices):
    """The areas of the product a role grants access to (one permission level each)."""

    PROSPECTS = "prospects", _("Prospects")
    VISITORS = "visitors", _("Visitors")
    MARKETING = "marketing", _("Marketing (emails, forms, landing pages, programs, campaigns)")
    AUTOMATION = "automation", _("Automation (rules, scoring, grading)")
    REPORTS = "reports", _("Reports")
    SETTINGS = "settings", _("Account settings")
    USERS = "users", _("Users, roles and audit log")
    ADMIN_SITE = "admin_site", _("Django admin")


class Level(models.IntegerChoices):
    NONE = 0, _("No access")
    VIEW = 1, _("View")
    EDIT = 2, _("View and edit")


class ProspectScope(models.TextChoices):
    ALL = "all", _("All prospects")
    ASSIGNED = "assigned", _("Only prospects assigned to the user")


LANGUAGE_CHOICES = [("", _("Browser setting")), ("ja", "日本語"), ("en", "English")]


class Role(models.Model):
    """A named set of per-module permission levels.

    The four default roles mirror Account Engagement's (seed 001) and cannot be edited or deleted;
    custom roles start as a copy of one of them.
    """

    ADMINISTRATOR = "administrator"
    MARKETING = "marketing"
    SALES_MANAGER = "sales_manager"
    SALES = "sales"

    name = models.CharField(_("name"), max_length=100, unique=True)
    slug = models.SlugField(_("identifier"), max_length=100, unique=True)
    description = models.CharField(_("description"), max_length=300, blank=True)
    is_default = models.BooleanField(
        _("default role"), default=False, help_text=_("Shipped with mapp; copy it to change it.")
    )
    permissions = models.JSONField(
        _("permissions"), default=dict, help_text=_("Permission level per module.")
    )
    prospect_scope = models.CharField(
        _("prospects visible"),
        max_length=20,
        choices=ProspectScope.choices,
        default=ProspectScope.ALL,
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-is_default", "id"]
        verbose_name = _("role")
        verbose_name_plural = _("roles")

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        # Default role names are stored in English and shown in the user's language.
        return gettext(self.name) if self.is_default else self.name

    def level_for(self, module: Module | str) -> Level:
        raw = self.permissions.get(str(module), Level.NONE)
        try:
            return Level(int(raw))
        except (TypeError, ValueError):
            return Level.NONE


class MappUserManager(UserManager["User"]):
    """Users sign in with their email address; there is no separate user name."""

    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra_fields: Any) -> User:
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(  # type: ignore[override]
        self, email: str, password: str | None = None, **extra_fields: Any
    ) -> User:
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(  # type: ignore[override]
        self, email: str, password: str | None = None, **extra_fields: Any
    ) -> User:
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        if "role" not in extra_fields:
            extra_fields["role"] = Role.objects.get(slug=Role.ADMINISTRATOR)
        return self._create_user(email, password, **extra_fields)


class User(AbstractUser):
    """A person who signs in to mapp. What they may do comes from their role, nothing else."""

    username = None  # type: ignore[assignment]
    email = models.EmailField(_("email address"), unique=True)
    role = models.ForeignKey(
        Role, verbose_name=_("role"), on_delete=models.PROTECT, related_name="users"
    )
    job_title = models.CharField(_("job title"), max_length=150, blank=True)
    language = models.CharField(_("language"), max_length=10, blank=True, choices=LANGUAGE_CHOICES)
    deactivated_at = models.DateTimeField(_("deactivated at"), null=True, blank=True)

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    objects = MappUserManager()  # type: ignore[misc]

    class Meta:
        ordering: ClassVar[list[str]] = ["last_name", "first_name", "email"]
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        # Japanese order: family name first.
        full_name = f"{self.last_name} {self.first_name}".strip()
        return full_name or self.email


class AuditLogEntry(models.Model):
    """One thing a user did. Append-only: a database trigger refuses UPDATE and DELETE."""

    created_at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)
    # No foreign-key constraint: the log must outlive anything it mentions and is never updated.
    actor = models.ForeignKey(
        User,
        verbose_name=_("user"),
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_email = models.CharField(_("user email"), max_length=254, blank=True)
    action = models.CharField(_("action"), max_length=100, db_index=True)
    object_type = models.CharField(_("object type"), max_length=100, blank=True)
    object_id = models.CharField(_("object id"), max_length=64, blank=True)
    object_repr = models.CharField(_("object"), max_length=300, blank=True)
    changes = models.JSONField(_("details"), default=dict, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        verbose_name = _("audit log entry")
        verbose_name_plural = _("audit log")
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
            models.Index(fields=["actor", "-created_at"], name="audit_actor_idx"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_email} {self.action} {self.object_repr}"
        )

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValueError("Audit log entries are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise ValueError("Audit log entries are append-only")


class Notification(models.Model):
    """An in-app notice for one user (mail is sent alongside by mapp.notifications)."""

    user = models.ForeignKey(
        User, verbose_name=_("user"), on_delete=models.CASCADE, related_name="notifications"
    )
    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("message"), blank=True)
    url = models.CharField(_("link"), max_length=500, blank=True)
    # Idempotency: a retried job that notifies with the same key does not notify twice.
    dedup_key = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["user", "dedup_key"],
                condition=~models.Q(dedup_key=""),
                name="notification_dedup_unique",
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["user", "read_at", "-created_at"], name="notification_unread_idx"),
        ]

    def __str__(self) -> str:
        return self.title


class AccountSettings(models.Model):
    """Account-wide settings; exactly one row (pk=1), see ``AccountSettings.load()``."""

    name = models.CharField(
        _("company name"),
        max_length=200,
        blank=True,
        help_text=_("Shown to prospects in emails and landing pages (the “account.name” field)."),
    )
    # The sender's particulars every marketing email must show (特定電子メール法).
    postal_address = models.TextField(_("postal address"), blank=True)
    contact_email = models.EmailField(_("contact email address"), blank=True)
    contact_phone = models.CharField(_("contact phone"), max_length=50, blank=True)
    mailable_prospect_limit = models.PositiveIntegerField(
        _("mailable prospect limit"),
        null=True,
        blank=True,
        help_text=_("Administrators are warned when more prospects than this are mailable."),
    )
    mailable_limit_warned_at = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("account settings")
        verbose_name_plural = _("account settings")

    def __str__(self) -> str:
        return str(_("Account settings"))

    @classmethod
    def load(cls) -> AccountSettings:
        settings_row, _created = cls.objects.get_or_create(pk=1)
        return settings_row
