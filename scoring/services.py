"""Scoring writes: activities scored by rules, actions and manual edits, retroactive rescores.

Every change of ``Prospect.score`` goes through here and writes a ``ScoreChange`` row in the
same transaction, so the score always equals the sum of the prospect's ledger.

Lock order, the same everywhere so that writers never deadlock each other: first the ledger
table (ROW EXCLUSIVE for writers of a few rows, SHARE ROW EXCLUSIVE for a rescore chunk, which
lets readers on), then the prospect rows in id order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.db import OperationalError, connection, transaction
from django.db.models import Count, Max, Min
from django.utils import timezone
from django.utils.translation import gettext as _

from prospects.models import Prospect
from scoring.models import Rescore, RescoreStatus, ScoreCause, ScoreChange, ScoringRule
from tracking.models import Activity

logger = logging.getLogger(__name__)

# Scores stay within these bounds when an action or a person sets or adjusts them.
SCORE_MIN = -1_000_000
SCORE_MAX = 1_000_000

LEDGER = ScoreChange._meta.db_table
RULES = ScoringRule._meta.db_table
ACTIVITIES = Activity._meta.db_table
PROSPECTS = Prospect._meta.db_table

# The most specific active rule for each activity: a rule for the activity's object or URL
# overrides the rule for its type. ``{where}`` selects the activities.
_MATCHED = f"""
SELECT DISTINCT ON (a.id)
       a.id AS activity_id, a.prospect_id, a.type, a.occurred_at, a.object_type, a.object_id,
       a.object_label, r.id AS rule_id, r.points, r.first_time_only
  FROM {ACTIVITIES} a
  JOIN {RULES} r
    ON r.activity_type = a.type AND r.is_active
   AND (r.object_id = ''
        OR (r.object_id = a.object_id AND (r.object_type = '' OR r.object_type = a.object_type)))
   AND (r.url_pattern = ''
        OR a.object_label LIKE replace(replace(replace(replace(
               r.url_pattern, '\\', '\\\\'), '%%', '\\%%'), '_', '\\_'), '*', '%%'))
 WHERE a.prospect_id IS NOT NULL AND NOT a.is_bot AND ({{where}})
 ORDER BY a.id, (r.object_id <> '' OR r.url_pattern <> '') DESC, r.id
"""  # noqa: S608

# Ledger rows for the matched activities; a row already there (a re-delivered activity, or a
# "first time only" object already scored) is skipped. Zero-point matches are not recorded.
_INSERT = f"""
INSERT INTO {LEDGER} (prospect_id, points, cause, activity_id, activity_type, rule_id,
                      first_key, label, occurred_at, created_at)
SELECT m.prospect_id, m.points, '{ScoreCause.ACTIVITY.value}', m.activity_id, m.type, m.rule_id,
       CASE WHEN m.first_time_only THEN left(m.object_type || ':' || m.object_id, 110) END,
       left(CASE WHEN m.object_label <> '' THEN m.object_label
                 ELSE trim(m.object_type || ' ' || m.object_id) END, 255),
       m.occurred_at, now()
  FROM ({_MATCHED}) m
 WHERE m.points <> 0
 ORDER BY m.occurred_at, m.activity_id
ON CONFLICT DO NOTHING
"""  # noqa: S608


def _lock_ledger(cursor: Any, mode: str = "ROW EXCLUSIVE") -> None:
    cursor.execute(f"LOCK TABLE {LEDGER} IN {mode} MODE")


def _lock_prospects(cursor: Any, prospect_ids: Sequence[int]) -> None:
    cursor.execute(
        f"SELECT id FROM {PROSPECTS} WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE",  # noqa: S608
        [sorted(set(prospect_ids))],
    )


# --- activities -----------------------------------------------------------------------------


def score_activities(activities: Sequence[Activity]) -> int:
    """The activity consumer: score a batch by the rules, set-based; returns points added.

    Called inside the delivery transaction (exactly once per activity and owner); the ledger's
    unique constraints make even a second call harmless. One INSERT … SELECT writes the ledger
    rows and the same statement adds their sum to each prospect's score.
    """
    ids = [activity.pk for activity in activities if activity.prospect_id and not activity.is_bot]
    if not ids:
        return 0
    prospect_ids = [activity.prospect_id for activity in activities if activity.prospect_id]
    with transaction.atomic(), connection.cursor() as cursor:
        _lock_ledger(cursor)
        _lock_prospects(cursor, prospect_ids)
        cursor.execute(
            f"""
            WITH inserted AS ({_INSERT.format(where="a.id = ANY(%s)")}
                              RETURNING prospect_id, points),
                 delta AS (SELECT prospect_id, sum(points) AS points
                             FROM inserted GROUP BY prospect_id)
            UPDATE {PROSPECTS} p SET score = p.score + delta.points
              FROM delta WHERE p.id = delta.prospect_id
            RETURNING delta.points
            """,  # noqa: S608
            [ids],
        )
        added = sum(int(row[0]) for row in cursor.fetchall())
    if added:
        _after_score_change(prospect_ids)
    return added


def _after_score_change(prospect_ids: Sequence[int]) -> None:
    from prospects.services import schedule_dynamic_list_refresh

    schedule_dynamic_list_refresh(sorted(set(prospect_ids)))  # lists with score criteria


# --- actions and manual edits ----------------------------------------------------------------


def score_change(
    *,
    prospect: Prospect,
    points: int | None = None,
    set_to: int | None = None,
    cause: str,
    label: str = "",
    actor: Any = None,
    action_run_id: int | None = None,
) -> int:
    """Add ``points`` to the score, or set it to ``set_to``; one ledger row for the change.

    Returns the new score (also set on ``prospect``). The result stays within
    [SCORE_MIN, SCORE_MAX]; the row records the change actually made.
    """
    if (points is None) == (set_to is None):
        raise ValueError("give points or set_to")
    actor_id = getattr(actor, "pk", None)
    # savepoint=False: two statements, and an error rolls back the caller's transaction anyway.
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        _lock_ledger(cursor)
        cursor.execute(
            f"""
            WITH current AS (
                SELECT id, score FROM {PROSPECTS} WHERE id = %(id)s FOR NO KEY UPDATE),
            target AS (
                SELECT id, score AS old,
                       LEAST(GREATEST(COALESCE(%(set_to)s::integer, score + %(points)s::integer),
                                      %(min)s), %(max)s) AS new
                  FROM current),
            ledger AS (
                INSERT INTO {LEDGER} (prospect_id, points, cause, activity_type, label,
                                      actor_id, action_run_id, occurred_at, created_at)
                SELECT id, new - old, %(cause)s, '', %(label)s, %(actor)s, %(run)s, now(), now()
                  FROM target WHERE new <> old),
            changed AS (
                UPDATE {PROSPECTS} p SET score = target.new
                  FROM target WHERE p.id = target.id AND target.new <> target.old)
            SELECT old, new FROM target
            """,  # noqa: S608
            {
                "id": prospect.pk,
                "set_to": set_to,
                "points": points or 0,
                "min": SCORE_MIN,
                "max": SCORE_MAX,
                "cause": str(cause),
                "label": str(label)[:255],
                "actor": actor_id,
                "run": action_run_id,
            },
        )
        row = cursor.fetchone()
    if row is None:
        raise Prospect.DoesNotExist(f"prospect {prospect.pk} does not exist")
    old, target = row
    prospect.score = target
    if target != old:
        _after_score_change([prospect.pk])
    return int(target)


def score_set_manually(*, prospect: Prospect, score: int, actor: Any, reason: str = "") -> int:
    """A person sets the score (the prospect page); recorded as a manual edit."""
    return score_change(
        prospect=prospect,
        set_to=score,
        cause=ScoreCause.MANUAL,
        label=reason or _("Score edited by hand"),
        actor=actor,
    )


# --- merges ------------------------------------------------------------------------------------


def score_history_move(*, from_prospect_ids: Sequence[int], to_prospect_id: int) -> int | None:
    """A merge: the merged prospects' ledger moves to the survivor, whose score is its sum.

    Returns the survivor's new score (the caller's instance must take it before it saves).

    An activity or "first time" object scored for both records counts once. The activities move
    to the survivor too and are delivered again; their rows are already here, so nothing
    scores twice.
    """
    ids = [int(pk) for pk in from_prospect_ids if int(pk) != to_prospect_id]
    if not ids:
        return None
    with connection.cursor() as cursor:
        _lock_ledger(cursor)
        _lock_prospects(cursor, [to_prospect_id, *ids])
        everyone = [to_prospect_id, *ids]
        # Duplicates (same activity and rule, or same first-time object and rule): keep one.
        cursor.execute(
            f"""
            DELETE FROM {LEDGER} c USING (
                SELECT id, row_number() OVER (
                           PARTITION BY activity_id, rule_id ORDER BY occurred_at, id) AS n
                  FROM {LEDGER}
                 WHERE prospect_id = ANY(%s) AND activity_id IS NOT NULL
                UNION ALL
                SELECT id, row_number() OVER (
                           PARTITION BY rule_id, first_key ORDER BY occurred_at, id) AS n
                  FROM {LEDGER}
                 WHERE prospect_id = ANY(%s) AND first_key IS NOT NULL
            ) dup
            WHERE c.id = dup.id AND dup.n > 1
            """,  # noqa: S608
            [everyone, everyone],
        )
        cursor.execute(
            f"UPDATE {LEDGER} SET prospect_id = %s WHERE prospect_id = ANY(%s)",  # noqa: S608
            [to_prospect_id, ids],
        )
        cursor.execute(
            f"""UPDATE {PROSPECTS} SET score = (
                    SELECT COALESCE(sum(points), 0) FROM {LEDGER} WHERE prospect_id = %s)
                WHERE id = %s RETURNING score""",  # noqa: S608
            [to_prospect_id, to_prospect_id],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else None


# --- retroactive rescore -----------------------------------------------------------------------

# Prospect ids per transaction. Activity deliveries wait for a chunk (its table lock); smaller
# chunks wait less but each scans the activities again (1M prospects: 200k ≈ 25 s a chunk,
# 123 s in all; 50k ≈ 10 s a chunk, 213 s in all, on the development machine).
RESCORE_CHUNK = 200_000
RESCORE_RETRIES = 5


def rescore_request(*, actor: Any = None) -> Rescore:
    """The rules changed: queue one background rescore of every prospect (after commit).

    A rescore already queued and not started covers this change too.
    """
    pending = Rescore.objects.filter(status=RescoreStatus.QUEUED).first()
    if pending is not None:
        return pending
    rescore = Rescore.objects.create(requested_by=actor if getattr(actor, "pk", None) else None)

    def enqueue() -> None:
        from scoring.tasks import rescore_all

        rescore_all.delay(rescore.pk)

    transaction.on_commit(enqueue)
    return rescore


# The rows the rules give the activities of a range of prospects, "first time only" applied
# (the earliest activity per prospect, rule and object).
_DESIRED = f"""
CREATE TEMP TABLE scoring_desired ON COMMIT DROP AS
WITH m AS MATERIALIZED (
    SELECT x.prospect_id, x.activity_id, x.rule_id, x.points, x.type, x.occurred_at,
           CASE WHEN x.first_time_only
                THEN left(x.object_type || ':' || x.object_id, 110) END AS first_key,
           left(CASE WHEN x.object_label <> '' THEN x.object_label
                     ELSE trim(x.object_type || ' ' || x.object_id) END, 255) AS label
      FROM ({_MATCHED.format(where="a.prospect_id >= %s AND a.prospect_id < %s")}) x
     WHERE x.points <> 0)
SELECT * FROM m WHERE first_key IS NULL
UNION ALL
SELECT * FROM (SELECT DISTINCT ON (prospect_id, rule_id, first_key) *
                 FROM m WHERE first_key IS NOT NULL
                ORDER BY prospect_id, rule_id, first_key, occurred_at, activity_id) f
"""  # noqa: S608

_SAME_ROW = (
    "l.prospect_id = d.prospect_id AND l.activity_id = d.activity_id AND l.rule_id = d.rule_id"
)


def scoring_rule_save(*, rule: ScoringRule, actor: Any) -> ScoringRule:
    """Create or change a rule; every prospect is rescored in the background."""
    from mapp.services import audit_log_record

    with transaction.atomic():
        created = rule.pk is None
        rule.save()
        audit_log_record(
            actor=actor,
            action="scoring.rule_create" if created else "scoring.rule_change",
            target=rule,
            changes={"activity_type": rule.activity_type, "points": rule.points},
        )
        rescore_request(actor=actor)
    return rule


def scoring_rule_delete(*, rule: ScoringRule, actor: Any) -> None:
    from mapp.services import audit_log_record

    with transaction.atomic():
        audit_log_record(actor=actor, action="scoring.rule_delete", target=rule)
        rule.delete()
        rescore_request(actor=actor)


def _rescore_chunk(low: int, high: int) -> None:
    """Recompute the rule-caused rows and the scores of prospects with ids in [low, high).

    The ledger is brought to what the rules give by difference: rows no rule gives any more are
    deleted, rows whose points changed are updated in place (a column without an index: cheap
    in-page updates), missing rows are inserted. Then each changed score is set to its sum.
    """
    activity = ScoreCause.ACTIVITY.value
    with transaction.atomic(), connection.cursor() as cursor:
        # Writers wait for this chunk (a few seconds); readers do not.
        _lock_ledger(cursor, "SHARE ROW EXCLUSIVE")
        cursor.execute("SET LOCAL work_mem = '64MB'")  # the matching sorts stay in memory
        cursor.execute("DROP TABLE IF EXISTS scoring_desired")
        cursor.execute(_DESIRED, [low, high])
        cursor.execute("ANALYZE scoring_desired")
        cursor.execute(
            f"""DELETE FROM {LEDGER} l
                 WHERE l.cause = %s AND l.prospect_id >= %s AND l.prospect_id < %s
                   AND NOT EXISTS (SELECT 1 FROM scoring_desired d WHERE {_SAME_ROW})""",  # noqa: S608
            [activity, low, high],
        )
        cursor.execute(
            f"""UPDATE {LEDGER} l SET points = d.points, first_key = d.first_key
                  FROM scoring_desired d
                 WHERE {_SAME_ROW}
                   AND (l.points <> d.points OR l.first_key IS DISTINCT FROM d.first_key)"""  # noqa: S608
        )
        cursor.execute(
            f"""INSERT INTO {LEDGER} (prospect_id, points, cause, activity_id, activity_type,
                                      rule_id, first_key, label, occurred_at, created_at)
                SELECT d.prospect_id, d.points, %s, d.activity_id, d.type, d.rule_id,
                       d.first_key, d.label, d.occurred_at, now()
                  FROM scoring_desired d
                 WHERE NOT EXISTS (SELECT 1 FROM {LEDGER} l WHERE {_SAME_ROW})""",  # noqa: S608
            [activity],
        )
        cursor.execute(
            f"""
            UPDATE {PROSPECTS} p SET score = s.total
              FROM (SELECT p2.id, COALESCE(sum(c.points), 0) AS total
                      FROM {PROSPECTS} p2 LEFT JOIN {LEDGER} c ON c.prospect_id = p2.id
                     WHERE p2.id >= %s AND p2.id < %s
                     GROUP BY p2.id) s
             WHERE p.id = s.id AND p.score <> s.total
            """,  # noqa: S608
            [low, high],
        )
        cursor.execute("DROP TABLE scoring_desired")  # inside an outer transaction too


def rescore_run(rescore_id: int, *, chunk: int = RESCORE_CHUNK) -> Rescore:
    """Run a queued rescore chunk by chunk, committing and recording progress as it goes."""
    claimed = Rescore.objects.filter(
        pk=rescore_id, status__in=[RescoreStatus.QUEUED, RescoreStatus.RUNNING]
    ).update(status=RescoreStatus.RUNNING)
    rescore = Rescore.objects.get(pk=rescore_id)
    if not claimed:
        return rescore  # done already: a duplicated task changes nothing
    bounds = Prospect.objects.aggregate(low=Min("id"), high=Max("id"), total=Count("id"))
    low_id, high_id = bounds["low"], bounds["high"]
    rescore.total = bounds["total"]
    rescore.processed = 0
    rescore.save(update_fields=["total", "processed"])
    try:
        if low_id is not None and high_id is not None:
            low = low_id
            while low <= high_id:
                high = low + chunk
                for attempt in range(RESCORE_RETRIES):
                    try:
                        _rescore_chunk(low, high)
                        break
                    except OperationalError:  # a deadlock with a writer that locked a prospect
                        if attempt == RESCORE_RETRIES - 1:
                            raise
                        logger.warning("rescore chunk %d-%d retried", low, high)
                rescore.processed = Prospect.objects.filter(pk__lt=high).count()
                rescore.save(update_fields=["processed"])
                low = high
    except Exception as error:
        rescore.status = RescoreStatus.FAILED
        rescore.error = str(error)[:2000]
        rescore.finished_at = timezone.now()
        rescore.save(update_fields=["status", "error", "finished_at"])
        raise
    rescore.status = RescoreStatus.DONE
    rescore.processed = rescore.total
    rescore.finished_at = timezone.now()
    rescore.save(update_fields=["status", "processed", "finished_at"])
    _notify_rescored(rescore)
    return rescore


def _notify_rescored(rescore: Rescore) -> None:
    from mapp.notifications import notify_administrators

    notify_administrators(
        title=_("Scores recalculated"),
        body=_("All %(count)d prospects were rescored with the current scoring rules.")
        % {"count": rescore.total},
        dedup_key=f"scoring-rescore-{rescore.pk}",
    )
