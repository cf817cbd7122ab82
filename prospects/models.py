"""Prospects: the people marketing and sales work with.

This is the first slice (identity, company name and assignment) that users, roles and the
dashboard need; the prospects issue extends it (companies, custom fields, lists, mailability).
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _


class Prospect(models.Model):
    email = models.EmailField(_("email address"), max_length=254)
    last_name = models.CharField(_("last name"), max_length=100, blank=True)
    first_name = models.CharField(_("first name"), max_length=100, blank=True)
    company_name = models.CharField(_("company"), max_length=255, blank=True)
    job_title = models.CharField(_("job title"), max_length=255, blank=True)
    assigned_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("assigned user"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_prospects",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        verbose_name = _("prospect")
        verbose_name_plural = _("prospects")
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(Lower("email"), name="prospect_email_ci_unique"),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["assigned_user", "-created_at"], name="prospect_assigned_idx"),
        ]

    def __str__(self) -> str:
        name = f"{self.last_name} {self.first_name}".strip()
        return f"{name} <{self.email}>" if name else self.email
