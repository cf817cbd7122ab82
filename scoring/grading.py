"""Grading writes: regrades (set-based), profiles, profile assignment and criterion marks.

Every prospect is graded against one profile (its ProspectProfile row, or the Default profile
without one). Its grade starts at D; each criterion the prospect matches raises it by the
criterion's weight (1/3 to 3/3 of a letter), each it does not match lowers it, unknown ones do
nothing, and a criterion marked by hand (or by an action) counts as marked. ``Prospect.grade``
is written only by :func:`regrade`: one UPDATE per chunk and profile, only rows whose grade
changes, and those prospects are announced as changed (dynamic lists, the HOT rule and
automation rules re-test them; grading's own listener regrades them once more and settles).

Editing a profile queues a background :class:`~scoring.models.Regrade` of its prospects, run
chunk by chunk by the ``scoring.regrade`` task with its progress on the profiles page.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import OperationalError, connection, transaction
from django.db.models import Count, Max, Min, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from prospects.models import Prospect
from scoring.grading_compile import ProfilePlan, grade_expression, on_profile_q, profile_plan
from scoring.models import (
    CriterionMark,
    CriterionState,
    GradingCriterion,
    GradingProfile,
    ProspectProfile,
    Regrade,
    RescoreStatus,
)

logger = logging.getLogger(__name__)

PROSPECTS = Prospect._meta.db_table

# Prospect ids per statement of a full regrade (an id range). Each chunk is one UPDATE per
# profile, every criterion evaluated in the same pass. With the five Default criteria on field
# tests (development machine): 20,000 ids ≈ 0.75 s when most grades change, ≈ 0.07 s when none
# do (200,000 prospects: 7.7 s, then 0.7 s); a chunk's row locks are held only that long.
REGRADE_CHUNK = 20_000
# Listed prospects (a listener batch, an action) are regraded this many per statement.
REGRADE_BATCH = 5_000
REGRADE_RETRIES = 5


# --- profiles ----------------------------------------------------------------------------------


def default_profile() -> GradingProfile:
    """The Default profile (seeded by migration 0004; recreated if a test flushed it)."""
    profile = GradingProfile.objects.filter(is_default=True).first()
    if profile is None:
        profile, _created = GradingProfile.objects.get_or_create(
            is_default=True, defaults={"name": "Default"}
        )
    return profile


def _plans(
    *, profile: GradingProfile | None, prospect_ids: Sequence[int] | None
) -> list[ProfilePlan]:
    """The profiles to regrade, compiled: a fixed number of queries, whatever the prospects."""
    queryset = GradingProfile.objects.prefetch_related("criteria").order_by("pk")
    if profile is not None:
        queryset = queryset.filter(pk=profile.pk)
    elif prospect_ids is not None:
        # Only the profiles these prospects are on (the default always: no row means it).
        on = ProspectProfile.objects.filter(prospect_id__in=list(prospect_ids)).values("profile_id")
        queryset = queryset.filter(Q(pk__in=on) | Q(pk=default_profile().pk))
    else:
        default_profile()
    profiles = list(queryset)
    marked = frozenset(
        CriterionMark.objects.filter(criterion__profile__in=profiles)
        .values_list("criterion_id", flat=True)
        .distinct()
    )
    return [profile_plan(item, marked) for item in profiles]


def _regrade_scope(plans: Sequence[ProfilePlan], scope: Q) -> list[int]:
    """One UPDATE per profile over the prospects in ``scope``; returns the ids that changed.

    Rows are locked in id order (the sorted FOR NO KEY UPDATE) so that two regrades of
    overlapping prospects wait for each other instead of deadlocking.
    """
    changed: list[int] = []
    with transaction.atomic(), connection.cursor() as cursor:
        for plan in plans:
            computed = (
                Prospect.objects.filter(scope)
                .filter(on_profile_q(plan.profile))
                .annotate(new_grade=grade_expression(plan))
                .order_by()
                .values("id", "new_grade")
            )
            sql, params = computed.query.sql_with_params()
            cursor.execute(
                f"""
                WITH computed AS ({sql}),
                target AS (
                    SELECT p.id, computed.new_grade
                      FROM {PROSPECTS} p JOIN computed ON computed.id = p.id
                     WHERE p.grade IS DISTINCT FROM computed.new_grade
                     ORDER BY p.id
                       FOR NO KEY UPDATE OF p)
                UPDATE {PROSPECTS} p SET grade = target.new_grade
                  FROM target
                 WHERE p.id = target.id
                RETURNING p.id
                """,  # noqa: S608 - table names from Django, the rest parameters
                params,
            )
            changed.extend(int(row[0]) for row in cursor.fetchall())
        if changed:
            from prospects.services import schedule_dynamic_list_refresh

            # After commit: dynamic lists, the HOT rule and automation rules re-test them.
            schedule_dynamic_list_refresh(changed)
    return changed


def _with_retries(plans: Sequence[ProfilePlan], scope: Q) -> list[int]:
    for attempt in range(REGRADE_RETRIES):
        try:
            return _regrade_scope(plans, scope)
        except OperationalError:  # a deadlock or serialization failure with another writer
            if attempt == REGRADE_RETRIES - 1 or connection.in_atomic_block:
                raise
            logger.warning("regrade chunk retried")
    return []


def regrade(
    *,
    prospect_ids: Sequence[int] | None = None,
    profile: GradingProfile | None = None,
    chunk: int = REGRADE_CHUNK,
) -> list[int]:
    """Bring grades in line with the profiles; returns the ids whose grade changed.

    ``prospect_ids`` None: every prospect (of ``profile``, or of every profile), by id range;
    a list: those prospects only. Set-based: one UPDATE per chunk and profile.
    """
    plans = _plans(profile=profile, prospect_ids=prospect_ids)
    changed: list[int] = []
    if prospect_ids is not None:
        ids = sorted({int(pk) for pk in prospect_ids})
        for start in range(0, len(ids), REGRADE_BATCH):
            changed.extend(_with_retries(plans, Q(pk__in=ids[start : start + REGRADE_BATCH])))
        return changed
    bounds = Prospect.objects.aggregate(low=Min("id"), high=Max("id"))
    if bounds["low"] is None:
        return changed
    low = int(bounds["low"])
    while low <= bounds["high"]:
        changed.extend(_with_retries(plans, Q(pk__gte=low, pk__lt=low + chunk)))
        low += chunk
    return changed


# --- background regrades -----------------------------------------------------------------------


def regrade_request(*, profile: GradingProfile | None = None, actor: Any = None) -> Regrade:
    """Queue a background regrade of ``profile``'s prospects (every prospect: None), after
    commit. One already queued and not started for the same profile (or for all) covers it."""
    pending = Regrade.objects.filter(status=RescoreStatus.QUEUED).filter(
        Q(profile__isnull=True) | Q(profile=profile) if profile is not None else Q(profile=None)
    )
    existing = pending.first()
    if existing is not None:
        if existing.is_stale(now=timezone.now()):
            _enqueue_regrade(existing.pk)
        return existing
    job = Regrade.objects.create(
        profile=profile, requested_by=actor if getattr(actor, "pk", None) else None
    )
    _enqueue_regrade(job.pk)
    return job


def _enqueue_regrade(regrade_id: int) -> None:
    def enqueue() -> None:
        from scoring.grading_tasks import regrade_job

        regrade_job.delay(regrade_id)

    transaction.on_commit(enqueue)


def _scope_of(job: Regrade) -> Q:
    return on_profile_q(job.profile) if job.profile is not None else Q()


def regrade_run(regrade_id: int, *, chunk: int = REGRADE_CHUNK) -> Regrade:
    """Run a queued regrade chunk by chunk, committing and recording progress as it goes."""
    claimed = Regrade.claim(regrade_id)
    job = Regrade.objects.select_related("profile").get(pk=regrade_id)
    if not claimed:
        return job  # done already: a duplicated task changes nothing
    scope = _scope_of(job)
    bounds = Prospect.objects.filter(scope).aggregate(
        low=Min("id"), high=Max("id"), total=Count("id")
    )
    job.total = bounds["total"]
    job.processed = 0
    job.save(update_fields=["total", "processed"])
    try:
        plans = _plans(profile=job.profile, prospect_ids=None)
        if bounds["low"] is not None:
            low = int(bounds["low"])
            while low <= bounds["high"]:
                high = low + chunk
                _with_retries(plans, Q(pk__gte=low, pk__lt=high))
                job.processed = Prospect.objects.filter(scope, pk__lt=high).count()
                job.save(update_fields=["processed"])
                low = high
    except Exception as error:
        job.mark_failed(error)
        raise
    job.mark_done()
    _notify_regraded(job)
    return job


def _notify_regraded(job: Regrade) -> None:
    from django.urls import reverse

    from mapp.notifications import notify_administrators

    if job.profile is not None:
        body = _("%(count)d prospects of the profile “%(profile)s” were regraded.") % {
            "count": job.total,
            "profile": job.profile.name,
        }
    else:
        body = _("All %(count)d prospects were regraded with the current profiles.") % {
            "count": job.total
        }
    notify_administrators(
        title=_("Grades recalculated"),
        body=body,
        url=reverse("grading:profiles"),
        dedup_key=f"scoring-regrade-{job.pk}",
    )


# --- profile editing -----------------------------------------------------------------------------


def grading_profile_save(
    *,
    profile: GradingProfile,
    criteria: Sequence[GradingCriterion],
    removed: Sequence[GradingCriterion] = (),
    actor: Any = None,
) -> Regrade:
    """Save a profile with its criteria in this order; its prospects are regraded in the
    background. The Default profile keeps its name."""
    from mapp.services import audit_log_record

    with transaction.atomic():
        created = profile.pk is None
        if not created:
            stored = GradingProfile.objects.select_for_update().get(pk=profile.pk)
            if stored.is_default and profile.name != stored.name:
                raise ValidationError({"name": _("The Default profile cannot be renamed.")})
        profile.save()
        for criterion in removed:
            if criterion.pk and criterion.profile_id == profile.pk:
                criterion.delete()
        for position, criterion in enumerate(criteria):
            criterion.profile = profile
            criterion.position = position
            criterion.save()
        audit_log_record(
            actor=actor if getattr(actor, "pk", None) else None,
            action="grading.profile_create" if created else "grading.profile_change",
            target=profile,
            changes={
                "criteria": [
                    {"name": criterion.name, "weight": criterion.weight} for criterion in criteria
                ]
            },
        )
        return regrade_request(profile=profile, actor=actor)


def grading_profile_delete(*, profile: GradingProfile, actor: Any = None) -> Regrade:
    """Delete a profile (never the Default one): its prospects go back to the Default profile
    and are regraded in the background."""
    from mapp.services import audit_log_record

    if profile.is_default:
        raise PermissionDenied(_("The Default profile cannot be deleted."))
    with transaction.atomic():
        audit_log_record(
            actor=actor if getattr(actor, "pk", None) else None,
            action="grading.profile_delete",
            target=profile,
        )
        moved = list(profile.assignments.values_list("prospect_id", flat=True))
        profile.delete()  # its ProspectProfile rows go with it: those prospects are on Default
        if moved:
            from prospects.services import schedule_dynamic_list_refresh

            # Criteria on the grading profile (lists, rules) re-test them.
            schedule_dynamic_list_refresh(moved)
        return regrade_request(profile=default_profile(), actor=actor)


# --- one prospect --------------------------------------------------------------------------------


def prospect_grading_profile(prospect: Prospect) -> GradingProfile:
    row = ProspectProfile.objects.select_related("profile").filter(prospect_id=prospect.pk).first()
    return row.profile if row is not None else default_profile()


def _regrade_one(prospect: Prospect) -> str:
    regrade(prospect_ids=[prospect.pk])
    grade = Prospect.objects.filter(pk=prospect.pk).values_list("grade", flat=True).first()
    prospect.grade = grade or ""
    return prospect.grade


def prospect_profile_set(*, prospect: Prospect, profile: GradingProfile) -> bool:
    """Grade ``prospect`` against ``profile`` from now on, and regrade it at once.

    Returns whether the profile changed. The Default profile is stored as "no row".
    """
    with transaction.atomic():
        current = (
            ProspectProfile.objects.select_for_update()
            .filter(prospect_id=prospect.pk)
            .values_list("profile_id", flat=True)
            .first()
        )
        if profile.is_default:
            changed = current is not None and current != profile.pk
            ProspectProfile.objects.filter(prospect_id=prospect.pk).delete()
        else:
            changed = current != profile.pk
            if changed:
                ProspectProfile.objects.update_or_create(
                    prospect_id=prospect.pk, defaults={"profile": profile}
                )
        _regrade_one(prospect)
        if changed:
            from prospects.services import schedule_dynamic_list_refresh

            # Criteria on the grading profile (lists, rules) re-test it, whatever its grade.
            schedule_dynamic_list_refresh([prospect.pk])
    return changed


def criterion_mark_set(
    *, prospect: Prospect, criterion: GradingCriterion, state: str, actor: Any = None
) -> str:
    """Mark a criterion for a prospect (matches / does not match / not known), overriding its
    data; returns the new grade. ``actor`` None: set by an automation."""
    if state not in CriterionState.values:
        raise ValidationError(_("Unknown criterion state."))
    with transaction.atomic():
        CriterionMark.objects.update_or_create(
            prospect_id=prospect.pk,
            criterion=criterion,
            defaults={
                "state": state,
                "marked_by": actor if getattr(actor, "pk", None) else None,
            },
        )
        return _regrade_one(prospect)


def criterion_mark_reset(*, prospect: Prospect, criterion: GradingCriterion) -> str:
    """Forget a mark: the criterion follows the prospect's data again; returns the new grade."""
    with transaction.atomic():
        CriterionMark.objects.filter(prospect_id=prospect.pk, criterion=criterion).delete()
        return _regrade_one(prospect)


def grading_history_move(*, from_prospect_ids: Sequence[int], to_prospect_id: int) -> None:
    """A merge: the survivor keeps its own profile and marks, and takes over what it lacks
    from the merged records (the most recent first). Its grade follows through the
    prospects-changed listener once the merge commits."""
    ids = [int(pk) for pk in from_prospect_ids if int(pk) != to_prospect_id]
    if not ids:
        return
    if not ProspectProfile.objects.filter(prospect_id=to_prospect_id).exists():
        row = ProspectProfile.objects.filter(prospect_id__in=ids).order_by("-assigned_at").first()
        if row is not None:
            ProspectProfile.objects.create(prospect_id=to_prospect_id, profile_id=row.profile_id)
    taken = set(
        CriterionMark.objects.filter(prospect_id=to_prospect_id).values_list(
            "criterion_id", flat=True
        )
    )
    moved = []
    for mark in CriterionMark.objects.filter(prospect_id__in=ids).order_by("-marked_at", "-id"):
        if mark.criterion_id not in taken:
            taken.add(mark.criterion_id)
            moved.append(mark.pk)
    CriterionMark.objects.filter(pk__in=moved).update(prospect_id=to_prospect_id)


# --- registration ------------------------------------------------------------------------------


def _on_prospects_changed(prospect_ids: list[int]) -> None:
    """The registry calls this after commit: regrade those prospects in the background."""
    from scoring.grading_tasks import regrade_prospects

    regrade_prospects.delay(list(prospect_ids))


def register() -> None:
    """Called from ScoringConfig.ready(): tasks, subjects, actions, listener and panel."""
    from prospects.panels import ProspectPanel, register_prospect_panel
    from prospects.services import register_merge_handler, register_prospects_changed_listener
    from scoring import grading_tasks  # noqa: F401 - the worker registers the tasks
    from scoring.grading_actions import register_grading_actions
    from scoring.grading_selectors import grade_panel_context
    from scoring.grading_subjects import register_grading_subjects

    register_grading_subjects()
    register_grading_actions()
    register_prospects_changed_listener("scoring.grading", _on_prospects_changed)
    register_merge_handler(
        lambda survivor, merged_ids: grading_history_move(
            from_prospect_ids=merged_ids, to_prospect_id=survivor.pk
        )
    )
    register_prospect_panel(
        ProspectPanel(
            key="grade",
            title=gettext_lazy("Why this grade"),
            template="scoring/_grade_panel.html",
            context=grade_panel_context,
            order=25,
        )
    )
