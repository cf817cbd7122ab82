"""Models of scoring: scoring rules and the score ledger.

The ledger is the truth of a score: every point change is a ``ScoreChange`` row with its cause,
and ``Prospect.score`` always equals the sum of the prospect's rows (a score that existed before
the ledger is recorded as one "initial" row). Scores are written only by ``scoring.services``.
"""

from __future__ import annotations

import datetime
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
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
    PAGE_ACTION = "page_action", _("Page action")
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
            # Rows without a scoring rule (page actions, decay) are made once by their key,
            # e.g. "page:3:981" (page action 3, activity 981) or "decay:2:2026-11-01".
            # (Only these causes: "first time only" rows of two deleted rules on one object
            # both keep their key with no rule, and must not collide.)
            models.UniqueConstraint(
                fields=["prospect", "first_key"],
                condition=Q(
                    rule__isnull=True,
                    first_key__isnull=False,
                    cause__in=["page_action", "decay"],
                ),
                name="score_change_keyed_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.points:+d} {self.cause}"


class RescoreStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


# A run queued this long ago without starting is queued again when asked for once more: its
# task was lost, and it would otherwise swallow every later request.
REQUEUE_AFTER = datetime.timedelta(minutes=10)


class BackgroundRun(models.Model):
    """A job over many prospects run in the background (rescore, regrade), with its progress."""

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
        abstract = True
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, int(self.processed * 100 / self.total))

    @classmethod
    def claim(cls, pk: int) -> bool:
        """Mark the run as running; False when it has finished already (a duplicated task)."""
        return bool(
            cls._default_manager.filter(
                pk=pk, status__in=[RescoreStatus.QUEUED, RescoreStatus.RUNNING]
            ).update(status=RescoreStatus.RUNNING)
        )

    def is_stale(self, *, now: datetime.datetime) -> bool:
        """Queued for so long that its task was probably lost (a broker restart)."""
        return self.status == RescoreStatus.QUEUED and self.created_at < now - REQUEUE_AFTER

    def mark_failed(self, error: BaseException) -> None:
        self.status = RescoreStatus.FAILED
        self.error = str(error)[:2000]
        self.finished_at = timezone.now()
        self.save(update_fields=["status", "error", "finished_at"])

    def mark_done(self) -> None:
        self.status = RescoreStatus.DONE
        self.processed = self.total
        self.finished_at = timezone.now()
        self.save(update_fields=["status", "processed", "finished_at"])


class Rescore(BackgroundRun):
    """A retroactive rescore of every prospect after the rules changed, with its progress."""

    class Meta(BackgroundRun.Meta):
        verbose_name = _("rescore")
        verbose_name_plural = _("rescores")

    def __str__(self) -> str:
        return f"rescore {self.pk} {self.status}"


class ScoreDecayRule(models.Model):
    """Optional decay: ``points`` (negative) after ``inactive_days`` without activity.

    Run daily; a prospect decays once per ``inactive_days`` of inactivity (the ledger row's key
    names the rule and the period), never below ``floor``.
    """

    name = models.CharField(_("name"), max_length=200)
    inactive_days = models.PositiveIntegerField(_("days without activity"))
    points = models.IntegerField(_("points"), help_text=_("Usually negative, e.g. -10."))
    floor = models.IntegerField(
        _("lowest score"), default=0, help_text=_("Decay never takes a score below this.")
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["inactive_days", "id"]
        verbose_name = _("score decay rule")
        verbose_name_plural = _("score decay rules")

    def __str__(self) -> str:
        return self.name


# --- grading -------------------------------------------------------------------------------

# Account Engagement's scale, lowest first; each step is a third of a letter. Prospects start
# at D; a matched criterion raises the grade by its weight, a not-matched one lowers it.
GRADE_SCALE: tuple[str, ...] = (
    "F", "D-", "D", "D+", "C-", "C", "C+", "B-", "B", "B+", "A-", "A", "A+",
)  # fmt: skip
GRADE_START = GRADE_SCALE.index("D")


class GradingProfile(models.Model):
    """A persona (プロファイル): criteria that say how well a prospect fits."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    description = models.TextField(_("description"), blank=True)
    is_default = models.BooleanField(_("default profile"), default=False, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-is_default", "name"]
        verbose_name = _("grading profile")
        verbose_name_plural = _("grading profiles")
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_profile"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class CriterionWeight(models.IntegerChoices):
    ONE_THIRD = 1, _("1/3 of a letter")
    TWO_THIRDS = 2, _("2/3 of a letter")
    FULL = 3, _("A full letter")


class GradingCriterion(models.Model):
    """One criterion of a profile: a criteria-engine document, worth 1/3…3/3 of a letter."""

    profile = models.ForeignKey(
        GradingProfile,
        verbose_name=_("profile"),
        on_delete=models.CASCADE,
        related_name="criteria",
    )
    name = models.CharField(_("name"), max_length=200)
    criteria = models.JSONField(_("criteria"), default=dict, blank=True)
    weight = models.PositiveSmallIntegerField(
        _("weight"), choices=CriterionWeight.choices, default=CriterionWeight.TWO_THIRDS
    )
    position = models.PositiveIntegerField(_("position"), default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["profile", "position", "id"]
        verbose_name = _("grading criterion")
        verbose_name_plural = _("grading criteria")

    def __str__(self) -> str:
        return self.name


class CriterionState(models.TextChoices):
    MATCHED = "matched", _("Matches")
    NOT_MATCHED = "not_matched", _("Does not match")
    UNKNOWN = "unknown", _("Unknown")


class ProspectProfile(models.Model):
    """The profile a prospect is graded against; a prospect without a row has the default."""

    prospect = models.OneToOneField(
        "prospects.Prospect",
        verbose_name=_("prospect"),
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="grading_profile",
    )
    profile = models.ForeignKey(
        GradingProfile,
        verbose_name=_("profile"),
        on_delete=models.CASCADE,  # a deleted profile's prospects fall back to the default
        related_name="assignments",
    )
    assigned_at = models.DateTimeField(_("assigned at"), auto_now=True)

    class Meta:
        verbose_name = _("prospect profile")
        verbose_name_plural = _("prospect profiles")

    def __str__(self) -> str:
        return f"{self.prospect_id} → {self.profile_id}"


class CriterionMark(models.Model):
    """A criterion marked by hand (or by an action): it overrides what the data says."""

    prospect = models.ForeignKey(
        "prospects.Prospect",
        verbose_name=_("prospect"),
        on_delete=models.CASCADE,
        related_name="criterion_marks",
        db_index=False,  # the unique constraint starts with the prospect
    )
    criterion = models.ForeignKey(
        GradingCriterion,
        verbose_name=_("criterion"),
        on_delete=models.CASCADE,
        related_name="marks",
    )
    state = models.CharField(_("state"), max_length=20, choices=CriterionState.choices)
    marked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("marked by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    marked_at = models.DateTimeField(_("marked at"), auto_now=True)

    class Meta:
        verbose_name = _("criterion mark")
        verbose_name_plural = _("criterion marks")
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["prospect", "criterion"], name="criterion_mark_once"),
        ]

    def __str__(self) -> str:
        return f"{self.prospect_id} {self.criterion_id} {self.state}"


class Regrade(BackgroundRun):
    """A background regrade of a profile's prospects (all prospects when ``profile`` is empty)."""

    profile = models.ForeignKey(
        GradingProfile,
        verbose_name=_("profile"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta(BackgroundRun.Meta):
        verbose_name = _("regrade")
        verbose_name_plural = _("regrades")

    def __str__(self) -> str:
        return f"regrade {self.pk} {self.status}"


# --- HOT -------------------------------------------------------------------------------------


class HotRule(models.Model):
    """The account's HOT rule (one row): score ≥ threshold, optionally with criteria.

    ``actions`` (the action catalogue's JSON) run once when a prospect becomes HOT; by default
    they notify the assigned user and create a follow-up task.
    """

    threshold = models.IntegerField(_("score threshold"), default=80)
    criteria = models.JSONField(_("further criteria"), default=dict, blank=True)
    actions = models.JSONField(_("when a prospect becomes HOT"), default=list, blank=True)
    digest_enabled = models.BooleanField(_("send the daily HOT-lead digest"), default=True)
    digest_hour = models.PositiveSmallIntegerField(_("digest time (hour, local time)"), default=8)
    error = models.TextField(_("error"), blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("HOT rule")
        verbose_name_plural = _("HOT rule")

    def __str__(self) -> str:
        return f"HOT ≥ {self.threshold}"


class HotDigest(models.Model):
    """One user's daily HOT-lead digest: at most one per user and day, however often beat fires."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,  # the unique constraint starts with the user
    )
    day = models.DateField(_("day"))
    since = models.DateTimeField(_("HOT since"))
    until = models.DateTimeField(_("HOT until"))
    prospect_count = models.PositiveIntegerField(_("prospects"), default=0)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-day", "user"]
        verbose_name = _("HOT-lead digest")
        verbose_name_plural = _("HOT-lead digests")
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["user", "day"], name="hot_digest_once_a_day"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.day}"


# --- page actions ----------------------------------------------------------------------------


class UrlMatch(models.TextChoices):
    EXACT = "exact", _("Exact URL")
    PREFIX = "prefix", _("URL starts with")
    WILDCARD = "wildcard", _("Wildcard (* matches anything)")


class PageAction(models.Model):
    """A tracked page (URL pattern): on a prospect's view, score and run catalogue actions."""

    name = models.CharField(_("name"), max_length=200)
    match_type = models.CharField(
        _("match"), max_length=20, choices=UrlMatch.choices, default=UrlMatch.EXACT
    )
    url_pattern = models.CharField(_("URL"), max_length=2000)
    points = models.IntegerField(_("score"), default=0)
    is_priority = models.BooleanField(
        _("priority page"),
        default=False,
        help_text=_("Notify the assigned user at once when a prospect views this page."),
    )
    actions = models.JSONField(_("actions"), default=list, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["name", "id"]
        verbose_name = _("page action")
        verbose_name_plural = _("page actions")

    def __str__(self) -> str:
        return self.name
