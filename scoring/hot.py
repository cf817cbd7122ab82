"""The HOT rule (Hot Profile's HOT threshold) and each prospect's status: HOT, 反応あり, 反応なし.

A prospect is
- **HOT** when its score is at least the account's threshold and it meets the rule's further
  criteria (one criteria document, compiled to SQL like every other criteria);
- **Engaged** (反応あり) when it is not HOT but its behaviour has scored: at least one positive
  ledger row caused by an activity or a page action;
- **No response** (反応なし) otherwise.

:func:`hot_evaluate` brings stored statuses in line with that, set-based: one read finds the
prospects whose status is out of date, then, per chunk, their rows are locked in id order and
one UPDATE … RETURNING writes the new statuses. Every change is a ``status_changed`` activity
(so automation rules and programs can react), and a prospect that became HOT gets the rule's
actions at once (notify the assigned user, a follow-up task…), in the same transaction, each run
idempotent on ``hot:<prospect>:<hot since>``: a retried evaluation never notifies twice, while
leaving HOT and coming back (a new "HOT since") notifies again.

Evaluations are triggered by the prospects-changed listener (score, fields, tags, lists…), by an
hourly sweep (criteria that move with time) and by saving the rule. They settle: an evaluation
signals only the prospects whose status it changed, and evaluating those again changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from prospects.actions import ActionContext, actions_run, actions_validate
from prospects.criteria import (
    CriteriaError,
    compile_criteria,
    criteria_conditions,
    validate_criteria,
)
from prospects.models import HotStatus, Prospect
from scoring.models import HotRule, ScoreCause, ScoreChange
from tracking.models import Activity, ActivityType

if TYPE_CHECKING:
    from mapp.models import User

logger = logging.getLogger(__name__)

HOT = HotStatus.HOT.value
ENGAGED = HotStatus.ENGAGED.value
NO_RESPONSE = HotStatus.NO_RESPONSE.value

# Ledger causes that are the prospect's own behaviour: they make a prospect "engaged".
BEHAVIOUR_CAUSES = (ScoreCause.ACTIVITY.value, ScoreCause.PAGE_ACTION.value)

# Prospect ids per evaluation transaction. The read that finds out-of-date statuses probes the
# ledger once per prospect: 10,000 ids ≈ 120 ms when nothing changed (the hourly sweep of 1M
# prospects ≈ 12 s). Only changed rows are locked and written; when most of a chunk changes
# (a new threshold) its status activities make it ≈ 2 s, plus the rule's actions (≈ 10 queries
# per new HOT lead), all while the chunk's changed rows stay locked.
HOT_EVALUATION_CHUNK = 10_000

LISTENER_KEY = "scoring.hot"
ACTION_CAUSE = "hot_rule"
STATUS_OBJECT_TYPE = "hot_status"

# The seeded rule (migration scoring/0004), used again when the row is missing (a flushed test
# database): score ≥ 80, notify the assigned user and give them a follow-up task.
DEFAULT_THRESHOLD = 80
DEFAULT_ACTIONS: list[dict[str, Any]] = [
    {"action": "notify_assigned_user", "config": {"note": ""}},
    {
        "action": "create_task_for_assigned_user",
        "config": {
            "subject": "HOTリードをフォロー / Follow up a HOT lead",
            "due_in_days": 1,
            "priority": 3,
            "notes": "",
        },
    },
]

PROSPECTS = Prospect._meta.db_table


# --- the rule ------------------------------------------------------------------------------------


def hot_rule_get() -> HotRule:
    """The account's HOT rule (one row, made with the seeded defaults if missing)."""
    rule = HotRule.objects.order_by("pk").first()
    if rule is not None:
        return rule
    rule, _created = HotRule.objects.get_or_create(
        pk=1,
        defaults={"threshold": DEFAULT_THRESHOLD, "criteria": {}, "actions": DEFAULT_ACTIONS},
    )
    return rule


def hot_criteria_validate(document: Any) -> dict[str, Any]:
    """The rule's further criteria, cleaned; CriteriaError when they are not valid.

    They may not test the status itself: "HOT when not HOT" would flip at every evaluation.
    """
    cleaned = validate_criteria(document or {})
    for condition in criteria_conditions(cleaned):
        if condition.get("subject") == "field" and condition.get("field") == "hot_status":
            raise CriteriaError(_("The HOT rule cannot test the HOT status itself."))
    return cleaned


def hot_rule_save(
    *,
    actor: User | None,
    threshold: int,
    criteria: Any,
    actions: Any,
    digest_enabled: bool,
    digest_hour: int,
) -> HotRule:
    """Change the rule; every prospect is evaluated again in the background (after commit).

    Raises CriteriaError or ValidationError for criteria or actions that are not valid.
    """
    from mapp.services import audit_log_record

    if not 0 <= digest_hour <= 23:
        raise ValidationError(_("The digest hour must be from 0 to 23."))
    clean_criteria = hot_criteria_validate(criteria)
    clean_actions = actions_validate(actions, actor=actor)
    with transaction.atomic():
        rule = HotRule.objects.select_for_update().get(pk=hot_rule_get().pk)
        rule.threshold = threshold
        rule.criteria = clean_criteria
        rule.actions = clean_actions
        rule.digest_enabled = digest_enabled
        rule.digest_hour = digest_hour
        rule.error = ""  # a saved rule is valid; the evaluation says again if it is not
        rule.updated_by = actor if actor is not None and actor.pk else None
        rule.save()
        audit_log_record(
            actor=actor,
            action="scoring.hot_rule_change",
            target=rule,
            changes={
                "threshold": threshold,
                "criteria": clean_criteria,
                "actions": [item["action"] for item in clean_actions],
                "digest_enabled": digest_enabled,
                "digest_hour": digest_hour,
            },
        )
        hot_evaluate_all_request()
    return rule


def hot_evaluate_all_request() -> None:
    """Queue one evaluation of every prospect (after commit)."""

    def enqueue() -> None:
        from scoring.hot_tasks import evaluate_hot_all

        evaluate_hot_all.delay()

    transaction.on_commit(enqueue)


def _rule_invalid(rule: HotRule, error: CriteriaError) -> str:
    """Keep every status as it is, say why on the rule, tell administrators once."""
    from mapp.notifications import notify_administrators

    message = str(error)[:2000]
    if rule.error == message:
        return message  # known already: every evaluation until the fix lands here
    HotRule.objects.filter(pk=rule.pk).update(error=message)
    rule.error = message
    logger.warning("HOT rule %s is not valid: %s", rule.pk, message)
    notify_administrators(
        title=_("The HOT rule needs attention"),
        body=_(
            "Its criteria are no longer valid, so HOT statuses are kept as they are until the "
            "rule is fixed: %(error)s"
        )
        % {"error": message},
        url=reverse("hot:settings"),
        # Once per version of the rule: saving it again (a fix) starts afresh.
        dedup_key=f"hot-rule-invalid:{rule.pk}:{rule.updated_at.isoformat()}",
    )
    return message


def _criteria_q(rule: HotRule) -> Q:
    return compile_criteria(hot_criteria_validate(rule.criteria), validated=True)


# --- evaluation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusChange:
    prospect_id: int
    from_status: str
    to_status: str
    hot_since: Any  # aware datetime or None

    @property
    def status_changed(self) -> bool:
        return self.from_status != self.to_status

    @property
    def became_hot(self) -> bool:
        return self.status_changed and self.to_status == HOT


@dataclass
class HotEvaluation:
    changes: list[StatusChange] = field(default_factory=list)
    error: str = ""

    @property
    def status_changes(self) -> list[StatusChange]:
        return [change for change in self.changes if change.status_changed]

    @property
    def became_hot(self) -> list[int]:
        return [change.prospect_id for change in self.changes if change.became_hot]


def _evaluated(queryset: QuerySet[Prospect], *, threshold: int, criteria_q: Q) -> QuerySet[Any]:
    """``queryset`` with ``new_status``: what the rule says each prospect's status is now."""
    behaviour = ScoreChange.objects.filter(
        prospect_id=OuterRef("pk"), points__gt=0, cause__in=BEHAVIOUR_CAUSES
    )
    return queryset.order_by().annotate(
        new_status=Case(
            When(Q(score__gte=threshold) & criteria_q, then=Value(HOT)),
            When(Exists(behaviour), then=Value(ENGAGED)),
            default=Value(NO_RESPONSE),
            output_field=CharField(),
        )
    )


# The status is out of date, or "HOT since" does not go with it (set exactly while HOT).
_OUT_OF_DATE = (
    ~Q(new_status=F("hot_status"))
    | Q(new_status=HOT, hot_since__isnull=True)
    | (~Q(new_status=HOT) & Q(hot_since__isnull=False))
)

_UPDATE = """
WITH evaluated AS ({evaluated})
UPDATE {prospects} p
   SET hot_status = e.new_status,
       hot_since = CASE WHEN e.new_status <> %s THEN NULL
                        WHEN e.hot_status = %s AND e.hot_since IS NOT NULL THEN e.hot_since
                        ELSE %s END
  FROM evaluated e
 WHERE p.id = e.id
   AND (e.new_status <> e.hot_status OR (e.new_status = %s) <> (e.hot_since IS NOT NULL))
RETURNING p.id, e.hot_status, p.hot_status, p.hot_since
"""


def _evaluate_chunk(*, rule: HotRule, criteria_q: Q, scope: Q) -> list[StatusChange]:
    """Evaluate the prospects in ``scope``; write, record and act on what changed."""
    stale = list(
        _evaluated(Prospect.objects.filter(scope), threshold=rule.threshold, criteria_q=criteria_q)
        .filter(_OUT_OF_DATE)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if not stale:
        return []
    with transaction.atomic(), connection.cursor() as cursor:
        # Locked in id order (as every prospect writer does), then evaluated again by a new
        # statement that sees everything committed before the locks were granted: a concurrent
        # evaluation waits here and then finds nothing left to change.
        cursor.execute(
            f"SELECT id FROM {PROSPECTS} WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE",  # noqa: S608
            [stale],
        )
        evaluated_sql, evaluated_params = (
            _evaluated(
                Prospect.objects.filter(pk__in=stale),
                threshold=rule.threshold,
                criteria_q=criteria_q,
            )
            .values("id", "hot_status", "hot_since", "new_status")
            .query.sql_with_params()
        )
        cursor.execute(
            _UPDATE.format(evaluated=evaluated_sql, prospects=PROSPECTS),
            [*evaluated_params, HOT, HOT, timezone.now(), HOT],
        )
        changes = [
            StatusChange(prospect_id=row[0], from_status=row[1], to_status=row[2], hot_since=row[3])
            for row in sorted(cursor.fetchall())
        ]
        status_changes = [change for change in changes if change.status_changed]
        _record_status_changes(status_changes)
        _run_hot_actions(rule, [change for change in changes if change.became_hot])
        if status_changes:
            from prospects.services import schedule_dynamic_list_refresh

            # Dynamic lists, grading, automation rules… that test the status; evaluating these
            # prospects again (this module's own listener) finds nothing to change.
            schedule_dynamic_list_refresh([change.prospect_id for change in status_changes])
    return changes


def _status_label(status: str) -> str:
    labels = dict(HotStatus.choices)
    return str(labels.get(status, status))


def _record_status_changes(changes: Sequence[StatusChange]) -> None:
    if not changes:
        return
    from tracking.services import activities_record_many

    now = timezone.now()
    with translation.override(settings.LANGUAGE_CODE):
        activities = [
            Activity(
                occurred_at=now,
                type=ActivityType.STATUS_CHANGED,
                prospect_id=change.prospect_id,
                object_type=STATUS_OBJECT_TYPE,
                object_id=change.to_status,
                object_label=(
                    f"{_status_label(change.from_status)} → {_status_label(change.to_status)}"
                ),
                payload={"from": change.from_status, "to": change.to_status},
            )
            for change in changes
        ]
    activities_record_many(activities)


def hot_action_key(prospect_id: int, hot_since: Any) -> str:
    """The idempotency key of the actions run when a prospect became HOT at ``hot_since``."""
    return f"hot:{prospect_id}:{hot_since.isoformat()}"


def _run_hot_actions(rule: HotRule, changes: Sequence[StatusChange]) -> None:
    if not changes or not rule.actions:
        return
    prospects = Prospect.objects.select_related("assigned_user").in_bulk(
        [change.prospect_id for change in changes]
    )
    for change in changes:
        prospect = prospects.get(change.prospect_id)
        if prospect is None:
            continue
        assignee = prospect.assigned_user
        language = (assignee.language if assignee is not None else "") or settings.LANGUAGE_CODE
        with translation.override(language):
            label = _("Became HOT (score %(score)d, threshold %(threshold)d)") % {
                "score": prospect.score,
                "threshold": rule.threshold,
            }
        actions_run(
            actions=rule.actions,
            prospect=prospect,
            context=ActionContext(
                cause_type=ACTION_CAUSE,
                cause_id=rule.pk,
                cause_label=label,
                idempotency_key=hot_action_key(change.prospect_id, change.hot_since),
            ),
        )


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    unique = sorted({int(pk) for pk in ids})
    for start in range(0, len(unique), HOT_EVALUATION_CHUNK):
        yield unique[start : start + HOT_EVALUATION_CHUNK]


def hot_evaluate(*, prospect_ids: Sequence[int] | None = None) -> HotEvaluation:
    """Bring the HOT status of these prospects (None: every prospect) in line with the rule.

    Each chunk commits on its own. When the rule's criteria are no longer valid (a custom field
    or list they name was deleted) nothing changes: the error is stored on the rule and the
    administrators are told once.
    """
    rule = hot_rule_get()
    try:
        criteria_q = _criteria_q(rule)
    except CriteriaError as error:
        return HotEvaluation(error=_rule_invalid(rule, error))
    if rule.error:
        HotRule.objects.filter(pk=rule.pk).update(error="")
        rule.error = ""
    result = HotEvaluation()
    if prospect_ids is not None:
        for chunk in _chunks(prospect_ids):
            result.changes += _evaluate_chunk(
                rule=rule, criteria_q=criteria_q, scope=Q(pk__in=chunk)
            )
        return result
    bounds = Prospect.objects.aggregate(low=Min("pk"), high=Max("pk"))
    if bounds["low"] is None:
        return result
    low = bounds["low"]
    while low <= bounds["high"]:
        high = low + HOT_EVALUATION_CHUNK
        result.changes += _evaluate_chunk(
            rule=rule, criteria_q=criteria_q, scope=Q(pk__gte=low, pk__lt=high)
        )
        low = high
    return result


# --- reads ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusCount:
    status: str
    label: str
    count: int


def hot_status_counts(prospects: QuerySet[Prospect]) -> list[StatusCount]:
    """How many of ``prospects`` (a role-scoped queryset) have each status, HOT first."""
    counts = {
        row["hot_status"]: row["total"]
        for row in prospects.order_by().values("hot_status").annotate(total=Count("pk"))
    }
    return [
        StatusCount(status=value, label=str(label), count=counts.get(value, 0))
        for value, label in HotStatus.choices
    ]


# --- wiring --------------------------------------------------------------------------------------


def _prospects_changed(ids: list[int]) -> None:
    """Prospects changed (after commit): evaluate them in the background, within seconds."""
    from scoring.hot_tasks import evaluate_hot

    evaluate_hot.delay(list(ids))


def register() -> None:
    """Called from ScoringConfig.ready(): the listener, and the tasks for the worker."""
    from prospects.services import register_prospects_changed_listener
    from scoring import hot_tasks  # noqa: F401 - registers the Celery tasks

    register_prospects_changed_listener(LISTENER_KEY, _prospects_changed)
