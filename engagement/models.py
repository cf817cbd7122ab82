"""Models of engagement: automation rules (Engagement programs come in their own issue).

An automation rule is a criteria document (prospects.criteria) and a list of catalogue actions
(prospects.actions). It matches each prospect once, or again after ``repeat_after_days``; every
match is an ``AutomationRuleMatch`` row, which is also the rule's history.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class RuleStatus(models.TextChoices):
    PAUSED = "paused", _("Paused")
    RUNNING = "running", _("Running")


class AutomationRule(models.Model):
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    criteria = models.JSONField(_("criteria"), default=dict, blank=True)
    actions = models.JSONField(_("actions"), default=list, blank=True)
    status = models.CharField(
        _("status"), max_length=20, choices=RuleStatus.choices, default=RuleStatus.PAUSED
    )
    repeat = models.BooleanField(_("repeat"), default=False)
    repeat_after_days = models.PositiveIntegerField(
        _("match again after (days)"), null=True, blank=True
    )
    # Set when the rule could not be evaluated (e.g. its custom field was deleted); the rule is
    # paused with this message until someone fixes and resumes it.
    error = models.TextField(_("error"), blank=True)
    matched_count = models.PositiveIntegerField(_("matches"), default=0)
    last_evaluated_at = models.DateTimeField(_("last evaluated"), null=True, blank=True)
    resumed_at = models.DateTimeField(_("resumed at"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["name", "id"]
        verbose_name = _("automation rule")
        verbose_name_plural = _("automation rules")

    def __str__(self) -> str:
        return self.name


class AutomationRuleMatch(models.Model):
    """One match of a rule on a prospect; ``ordinal`` counts repeats (1 for the first)."""

    id = models.BigAutoField(primary_key=True)
    rule = models.ForeignKey(
        AutomationRule,
        verbose_name=_("rule"),
        on_delete=models.CASCADE,
        related_name="matches",
        db_index=False,  # the unique constraint starts with the rule
    )
    prospect = models.ForeignKey(
        "prospects.Prospect",
        verbose_name=_("prospect"),
        on_delete=models.CASCADE,
        related_name="automation_matches",
    )
    ordinal = models.PositiveIntegerField(_("match number"), default=1)
    matched_at = models.DateTimeField(_("matched at"), auto_now_add=True, db_index=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-matched_at", "-id"]
        verbose_name = _("automation rule match")
        verbose_name_plural = _("automation rule matches")
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["rule", "prospect", "ordinal"], name="automation_match_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule_id} → {self.prospect_id} #{self.ordinal}"
