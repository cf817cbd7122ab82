"""Scoring writes: activities scored by rules, actions and manual edits, retroactive rescores.

Every change of ``Prospect.score`` goes through here and writes a ``ScoreChange`` row in the
same transaction, so the score always equals the sum of the prospect's ledger.

Lock order, the same everywhere so that writers never deadlock each other: first the ledger
table (ROW EXCLUSIVE, for every writer), then the prospect rows in id order (a rescore chunk
locks every prospect of its id range this way before it reads anything).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.db import OperationalError, connection, connections, transaction
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
                       AND rule_id IS NOT NULL  -- rule-less rows (page actions) are keyed
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

# Prospect ids per chunk, one transaction each. A chunk locks its prospects' rows for its
# duration (≈ 5–7 s for 100,000 prospects with 3 activities each, two chunks at a time on 2
# cores), so deliveries and edits for those prospects wait that long; everyone else's go on.
# Smaller chunks wait less and cost more in all (1M prospects, bench/scoring_rescore.py, 2
# sessions: 100,000 ≈ 35–37 s, 50,000 ≈ 35–46 s, 25,000 ≈ 54 s).
RESCORE_CHUNK = 100_000
# Chunks run side by side in this many database sessions (threads of the task, each with its
# own connection) when the rescore owns its transactions. Nearly all the time is PostgreSQL
# rewriting rows and index entries, so this should not exceed the database server's cores.
RESCORE_PARALLELISM = 2
RESCORE_RETRIES = 5


def rescore_request(*, actor: Any = None) -> Rescore:
    """The rules changed: queue one background rescore of every prospect (after commit).

    A rescore already queued and not started covers this change too.
    """
    pending = Rescore.objects.filter(status=RescoreStatus.QUEUED).first()
    if pending is not None:
        # A task the broker lost (a Redis restart) would leave the rescore queued for ever and
        # swallow every later change: one queued this long ago is queued again.
        if pending.is_stale(now=timezone.now()):
            _enqueue_rescore(pending.pk)
        return pending
    rescore = Rescore.objects.create(requested_by=actor if getattr(actor, "pk", None) else None)
    _enqueue_rescore(rescore.pk)
    return rescore


def _enqueue_rescore(rescore_id: int) -> None:
    def enqueue() -> None:
        from scoring.tasks import rescore_all

        rescore_all.delay(rescore_id)

    transaction.on_commit(enqueue)


# One chunk's ledger, old and new side by side: every ledger row of the prospects in
# [low, high) (any cause) fully joined with the rows the current rules give their activities
# ("first time only": the earliest activity per prospect, rule and object). Only rows of the
# cause "activity" pair with a wanted row; the other causes (manual edits, actions, page
# actions, decay, the initial score) keep their points. ``new_points`` is NULL for an activity
# row no rule gives any more; ``ledger_id`` is NULL for a wanted row not yet in the ledger
# (which may belong to a deleted prospect: activities outlive their prospect).
_CHUNK_ROWS = f"""
CREATE TEMP TABLE scoring_rescore_rows ON COMMIT DROP AS
WITH m AS MATERIALIZED (
    SELECT x.prospect_id, x.activity_id, x.rule_id, x.points, x.type, x.occurred_at,
           CASE WHEN x.first_time_only
                THEN left(x.object_type || ':' || x.object_id, 110) END AS first_key,
           left(CASE WHEN x.object_label <> '' THEN x.object_label
                     ELSE trim(x.object_type || ' ' || x.object_id) END, 255) AS label
      FROM ({_MATCHED.format(where="a.prospect_id >= %(low)s AND a.prospect_id < %(high)s")}) x
     WHERE x.points <> 0),
wanted AS (
    SELECT * FROM m WHERE first_key IS NULL
    UNION ALL
    SELECT * FROM (SELECT DISTINCT ON (prospect_id, rule_id, first_key) *
                     FROM m WHERE first_key IS NOT NULL
                    ORDER BY prospect_id, rule_id, first_key, occurred_at, activity_id) f),
current AS (
    SELECT id, prospect_id, cause, points, first_key, activity_id,
           CASE WHEN cause = '{ScoreCause.ACTIVITY.value}' THEN rule_id END AS activity_rule_id
      FROM {LEDGER} WHERE prospect_id >= %(low)s AND prospect_id < %(high)s)
SELECT l.id AS ledger_id, COALESCE(l.prospect_id, d.prospect_id) AS prospect_id,
       l.cause = '{ScoreCause.ACTIVITY.value}' AS is_activity_row,
       l.points AS old_points, l.first_key AS old_first_key,
       CASE WHEN l.cause IS NULL OR l.cause = '{ScoreCause.ACTIVITY.value}' THEN d.points
            ELSE l.points END AS new_points,
       d.activity_id, d.rule_id, d.type, d.first_key, d.label, d.occurred_at
  FROM current l
  FULL JOIN wanted d
    ON l.prospect_id = d.prospect_id AND l.activity_id = d.activity_id
   AND l.activity_rule_id = d.rule_id
"""  # noqa: S608

# The ledger rows of a chunk are found by id within the chunk's range of prospects (the
# range lets PostgreSQL read them through the ledger's (prospect, activity, rule) index
# instead of the whole table).
_CHUNK_LEDGER = "l.id = x.ledger_id AND l.prospect_id >= %(low)s AND l.prospect_id < %(high)s"


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


def _rescore_chunk(low: int, high: int) -> tuple[int, list[int]]:
    """Bring the rule-caused ledger rows and the scores of prospects in [low, high) up to date.

    Returns how many prospects the range holds and the ids whose score changed. The ledger is
    brought to what the rules give by difference, found in one pass (``_CHUNK_ROWS``): rows no
    rule gives any more are deleted, rows whose points changed are updated in place, missing
    rows are inserted; rows of other causes are left as they are. Each score becomes the sum of
    its new ledger, taken from the same pass.

    Concurrency: like every ledger writer, the chunk takes the ledger in ROW EXCLUSIVE mode and
    then its prospects' rows in id order, so writers for those prospects (deliveries, actions,
    merges) wait for the chunk and see its result, writers for other prospects go on, and chunks
    of other ranges run in parallel.
    """
    params = {"low": low, "high": high}
    owned = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '64MB'")  # the chunk's joins stay in memory
        if owned:
            # A chunk lost in a crash is redone by the task's retry (acks_late) and the rescore
            # row's progress, committed later, is lost with it; no need to wait for the disk.
            cursor.execute("SET LOCAL synchronous_commit = off")
        _lock_ledger(cursor)
        cursor.execute(
            f"""SELECT count(*) FROM (
                    SELECT id FROM {PROSPECTS} WHERE id >= %(low)s AND id < %(high)s
                     ORDER BY id FOR NO KEY UPDATE) locked""",  # noqa: S608
            params,
        )
        count = int(cursor.fetchone()[0])
        cursor.execute("DROP TABLE IF EXISTS scoring_rescore_rows")
        cursor.execute(_CHUNK_ROWS, params)
        cursor.execute("ANALYZE scoring_rescore_rows")
        cursor.execute(
            f"""DELETE FROM {LEDGER} l USING scoring_rescore_rows x
                 WHERE {_CHUNK_LEDGER} AND x.is_activity_row AND x.new_points IS NULL""",  # noqa: S608
            params,
        )
        cursor.execute(
            f"""UPDATE {LEDGER} l SET points = x.new_points, first_key = x.first_key
                  FROM scoring_rescore_rows x
                 WHERE {_CHUNK_LEDGER} AND x.is_activity_row
                   AND (x.new_points <> x.old_points
                        OR x.first_key IS DISTINCT FROM x.old_first_key)""",  # noqa: S608
            params,
        )
        cursor.execute(
            f"""INSERT INTO {LEDGER} (prospect_id, points, cause, activity_id, activity_type,
                                      rule_id, first_key, label, occurred_at, created_at)
                SELECT x.prospect_id, x.new_points, %(cause)s, x.activity_id, x.type,
                       x.rule_id, x.first_key, x.label, x.occurred_at, now()
                  FROM scoring_rescore_rows x
                 WHERE x.ledger_id IS NULL
                   AND EXISTS (SELECT 1 FROM {PROSPECTS} p WHERE p.id = x.prospect_id)
                 ORDER BY x.prospect_id, x.activity_id""",  # noqa: S608
            {"cause": ScoreCause.ACTIVITY.value},
        )
        cursor.execute(
            f"""
            UPDATE {PROSPECTS} p SET score = t.total
              FROM (SELECT p2.id, COALESCE(s.total, 0) AS total
                      FROM {PROSPECTS} p2
                      LEFT JOIN (SELECT prospect_id, sum(new_points) AS total
                                   FROM scoring_rescore_rows GROUP BY prospect_id) s
                        ON s.prospect_id = p2.id
                     WHERE p2.id >= %(low)s AND p2.id < %(high)s) t
             WHERE p.id = t.id AND p.id >= %(low)s AND p.id < %(high)s AND p.score <> t.total
            RETURNING p.id
            """,  # noqa: S608
            params,
        )
        changed = [int(row[0]) for row in cursor.fetchall()]
        cursor.execute("DROP TABLE scoring_rescore_rows")  # inside an outer transaction too
    return count, changed


def _rescore_range(low: int, high: int) -> tuple[int, list[int]]:
    """One chunk, tried again after a deadlock (a writer that locks prospects out of order)."""
    for attempt in range(RESCORE_RETRIES):
        try:
            return _rescore_chunk(low, high)
        except OperationalError:
            if attempt == RESCORE_RETRIES - 1:
                raise
            logger.warning("rescore chunk %d-%d retried", low, high)
    raise AssertionError("unreachable")  # pragma: no cover


def _rescore_ranges(
    ranges: list[tuple[int, int]],
    parallelism: int,
    chunk_done: Callable[[int, list[int]], None],
) -> None:
    """Run the chunks, ``parallelism`` at a time; ``chunk_done(count, changed ids)`` is called
    in this thread after each chunk has committed.

    Inside a caller's transaction the chunks run one after another in it (other sessions
    would not see its rows); otherwise each thread runs chunks in a connection of its own.
    """
    if parallelism <= 1 or len(ranges) <= 1 or connection.in_atomic_block:
        for low, high in ranges:
            chunk_done(*_rescore_range(low, high))
        return
    pending = list(reversed(ranges))
    results: queue.Queue[tuple[int, list[int]] | BaseException] = queue.Queue()
    stop = threading.Event()
    lock = threading.Lock()

    def work() -> None:
        try:
            while not stop.is_set():
                with lock:
                    if not pending:
                        return
                    low, high = pending.pop()
                results.put(_rescore_range(low, high))
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            stop.set()
            results.put(error)
        finally:
            connections.close_all()  # this thread's own connection

    threads = [
        threading.Thread(target=work, name=f"rescore-{number}", daemon=True)
        for number in range(min(parallelism, len(ranges)))
    ]
    for thread in threads:
        thread.start()
    try:
        for _ in ranges:
            result = results.get()
            if isinstance(result, BaseException):
                raise result
            chunk_done(*result)
    finally:
        stop.set()  # after an error: the other threads finish their chunk and stop
        for thread in threads:
            thread.join()


def rescore_run(
    rescore_id: int, *, chunk: int = RESCORE_CHUNK, parallelism: int = RESCORE_PARALLELISM
) -> Rescore:
    """Run a queued rescore chunk by chunk, committing and recording progress as it goes.

    Prospects whose score changed are announced like any other score change (dynamic lists
    with score criteria and the prospects-changed listeners), a chunk at a time.
    """
    claimed = Rescore.claim(rescore_id)
    rescore = Rescore.objects.get(pk=rescore_id)
    if not claimed:
        return rescore  # done already: a duplicated task changes nothing
    bounds = Prospect.objects.aggregate(low=Min("id"), high=Max("id"), total=Count("id"))
    low_id, high_id = bounds["low"], bounds["high"]
    rescore.total = bounds["total"]
    rescore.processed = 0
    rescore.save(update_fields=["total", "processed"])
    step = max(chunk, 1)
    ranges = []
    if low_id is not None and high_id is not None:
        ranges = [(low, low + step) for low in range(low_id, high_id + 1, step)]

    def chunk_done(count: int, changed: list[int]) -> None:
        if changed:
            _after_score_change(changed)
        rescore.processed += count
        rescore.save(update_fields=["processed"])

    try:
        _rescore_ranges(ranges, parallelism, chunk_done)
    except Exception as error:
        rescore.mark_failed(error)
        raise
    rescore.mark_done()
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
