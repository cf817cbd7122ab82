"""Models of scoring: scoring rules and the score ledger.

The ledger is the truth of a score: every point change is a ``ScoreChange`` row with its cause,
and ``Prospect.score`` always equals the sum of the prospect's rows (a score that existed before
the ledger is recorded as one "initial" row). Scores are written only by ``scoring.services``.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tracking.models import ActivityType


class ScoringRule(models.Model):
    """Points for an activity type, optionally only for one object (a form, a file, a URL).

    For each activity the most specific active rule applies: a rule for the activity's object
    (or a URL pattern matching a page view's URL) overrides the rule for the type as a whole.
    """

    name = models.CharField(_("name"), max_length=200, blank=True)
    activity_type = models.CharField(_("activity"), max_length=40, choices=ActivityType.choices)
    points = models.IntegerField(_("points"))
    object_type = models.CharField(_("object type"), max_length=40, blank=True)
    object_id = models.CharField(
        _("object id"),
        max_length=64,
        blank=True,
        help_text=_("Only activities about this object (for example one form or one file)."),
    )
    url_pattern = models.CharField(
        _("URL pattern"),
        max_length=2000,
        blank=True,
        help_text=_("Page views only: the exact URL, or a pattern where * matches anything."),
    )
    first_time_only = models.BooleanField(
        _("first time only"),
        default=False,
        help_text=_("Score only the first such activity per prospect and object."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    is_default = models.BooleanField(_("default rule"), default=False, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["activity_type", "object_type", "object_id", "id"]
        verbose_name = _("scoring rule")
        verbose_name_plural = _("scoring rules")

    def __str__(self) -> str:
        return self.name or f"{self.get_activity_type_display()} {self.points:+d}"

    @property
    def is_override(self) -> bool:
        return bool(self.object_id or self.url_pattern)


class ScoreCause(models.TextChoices):
    ACTIVITY = "activity", _("Activity")
    ACTION = "action", _("Action")
    MANUAL = "manual", _("Manual edit")
    DECAY = "decay", _("Decay")
    INITIAL = "initial", _("Score before the ledger")


class ScoreChange(models.Model):
    """One change of a prospect's score (a delta), and why."""

    id = models.BigAutoField(primary_key=True)
    prospect = models.ForeignKey(
        "prospects.Prospect",
        verbose_name=_("prospect"),
        on_delete=models.CASCADE,
        related_name="score_changes",
        db_index=False,  # the unique constraint below starts with the prospect
    )
    points = models.IntegerField(_("points"))
    cause = models.CharField(_("cause"), max_length=20, choices=ScoreCause.choices)
    # The activity table is partitioned and has no foreign keys; history outlives its rows.
    activity_id = models.BigIntegerField(_("activity"), null=True, blank=True)
    activity_type = models.CharField(_("activity type"), max_length=40, blank=True)
    rule = models.ForeignKey(
        ScoringRule,
        verbose_name=_("rule"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # rules are rarely deleted; every index slows a rescore's inserts
    )
    # For "first time only" rules: the object scored once per prospect ("form:12"). NULL, not
    # "", for every other row: the partial unique constraint below covers only non-NULL keys.
    first_key = models.CharField(max_length=110, null=True, blank=True)  # noqa: DJ001
    action_run_id = models.BigIntegerField(_("action run"), null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("changed by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    label = models.CharField(_("description"), max_length=255, blank=True)
    occurred_at = models.DateTimeField(_("when"))
    created_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-occurred_at", "-id"]
        verbose_name = _("score change")
        verbose_name_plural = _("score changes")
        constraints: ClassVar[list[models.BaseConstraint]] = [
            # A re-delivered activity never scores twice.
            models.UniqueConstraint(
                fields=["prospect", "activity_id", "rule"], name="score_change_activity_once"
            ),
            models.UniqueConstraint(
                fields=["prospect", "rule", "first_key"],
                condition=Q(first_key__isnull=False),
                name="score_change_first_time_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.points:+d} {self.cause}"


class RescoreStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class Rescore(models.Model):
    """A retroactive rescore of every prospect after the rules changed, with its progress."""

    status = models.CharField(
        _("status"), max_length=20, choices=RescoreStatus.choices, default=RescoreStatus.QUEUED
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    total = models.BigIntegerField(_("prospects"), default=0)
    processed = models.BigIntegerField(_("processed"), default=0)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("requested at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        verbose_name = _("rescore")
        verbose_name_plural = _("rescores")

    def __str__(self) -> str:
        return f"rescore {self.pk} {self.status}"

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, int(self.processed * 100 / self.total))
