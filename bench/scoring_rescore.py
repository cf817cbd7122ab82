"""Benchmark: retroactive rescore of 1,000,000 prospects after a scoring rule edit.

    .venv/bin/python bench/scoring_rescore.py [--prospects N] [--activities-per-prospect A]
                                              [--chunk C] [--parallelism P] [--rounds R]
                                              [--database NAME]

Each round changes the value of a page view (1 → 2 → … → 5 → 1: every page-view row of the
ledger and nearly every score change), then measures on the same data:

  baseline  the same result written by hand in one transaction, the simplest set-based way:
            DELETE every rule-caused ledger row, INSERT them all again from the activities
            with the current rules (the same rule matching as the app: overrides, "first time
            only", bots excluded), UPDATE every changed score to its ledger sum; checksummed,
            then rolled back;
  rescore   ``scoring.services.rescore_run()`` as the Celery task runs it: chunks of
            ``--chunk`` prospect ids (RESCORE_CHUNK), ``--parallelism`` of them at a time in
            sessions of their own (RESCORE_PARALLELISM); per chunk its prospects locked, one
            pass for the difference between the ledger and the rules, the changed rows
            deleted / updated / inserted, the changed scores set to their ledger sums and
            announced to the prospects-changed listeners.               target < 60 s

The tables are vacuumed and analysed before each phase (untimed), so both start from the same
physical state. Checked (exit status 1 if not, or if the target is missed): the rescore's ledger
and scores equal the baseline's (row count, points, scores and a per-prospect checksum), every
score equals its ledger sum, and the rows of other causes (manual edits, page actions, decay)
are untouched. Printed with each phase: the CPU this process and the bench database's
PostgreSQL backends used, and the cores other processes kept busy meanwhile (``others``: this
machine is shared) with the load average.

Data (generated once in ``mapp_bench_scoring``, ``--database``, then reused): prospects from
INSERT … SELECT generate_series; ``--activities-per-prospect`` (3) activities each — 80 % page
views (1 in 20 on the pricing page, worth 30 by a URL rule; 1 in 50 by a bot), 10 % email opens
of 20 emails (1 point, first time only), 10 % form submissions of 5 forms; ledger rows of other
causes for 1 prospect in 10 (page action +5), 1 in 7 (decay −2) and 1 in 13 (manual +10). The
first run also writes the whole ledger (an untimed rescore; each run starts with one, which
also warms the cache).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from benchdb import ensure_database, one_run_at_a_time  # noqa: E402
from scoring_activity_rate import (  # noqa: E402
    Measured,
    ensure_prospects,
    measure,
    setup_django,
    vacuum,
)

BENCH_DATABASE = "mapp_bench_scoring"
DEFAULT_PROSPECTS = 1_000_000
TARGET_SECONDS = 60.0
# Rows of other causes: (cause, points, every n-th prospect, key prefix).
OTHER_ROWS = (("page_action", 5, 10, "page:1:"), ("decay", -2, 7, "decay:1:0:"))
MANUAL_EVERY = 13


def _ensure_activities(prospects: int, per_prospect: int, first_id: int) -> int:
    from django.db import connection

    from tracking.models import Activity

    activities = Activity._meta.db_table
    wanted = prospects * per_prospect
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {activities}")  # noqa: S608
        have = int(cursor.fetchone()[0])
        if have < wanted:
            print(f"generating {wanted - have:,} activities …", flush=True)
            started = time.perf_counter()
            cursor.execute("SELECT setseed(0.42)")
            # Per activity: 80 % page views (1 in 20 of them on the pricing page, 1 in 50 by a
            # bot), 10 % email opens of 20 emails, 10 % form submissions of 5 forms.
            cursor.execute(
                f"""
                INSERT INTO {activities} (occurred_at, type, prospect_id, visitor_id, object_type,
                                          object_id, object_label, payload, is_bot, created_at)
                SELECT now() - (g %% 72) * interval '1 minute',
                       CASE WHEN k < 80 THEN 'page_view' WHEN k < 90 THEN 'email_opened'
                            ELSE 'form_success' END,
                       s.prospect_id, NULL,
                       CASE WHEN k < 80 THEN 'url' WHEN k < 90 THEN 'email' ELSE 'form' END,
                       CASE WHEN k < 80 THEN '' WHEN k < 90 THEN (g %% 20)::text
                            ELSE (g %% 5)::text END,
                       CASE WHEN k < 80 THEN
                            CASE WHEN g %% 20 = 0 THEN 'https://example.jp/pricing'
                                 ELSE 'https://example.jp/page/' || (g %% 300) END
                            ELSE '' END,
                       '{{}}'::jsonb, k < 80 AND g %% 50 = 0, now()
                  FROM (SELECT g, (g * 7919) %% 100 AS k, %s + (g %% %s) AS prospect_id
                          FROM generate_series(%s::bigint, %s::bigint) AS g) s
                """,  # noqa: S608
                [first_id, prospects, have + 1, wanted],
            )
            cursor.execute(f"ANALYZE {activities}")
            print(f"  {time.perf_counter() - started:.1f} s", flush=True)
        cursor.execute(f"SELECT count(*) FROM {activities}")  # noqa: S608
        return int(cursor.fetchone()[0])


def _ensure_other_rows(first_id: int) -> None:
    """Ledger rows a rescore must leave alone (page actions, decay, manual edits), once."""
    from django.db import connection

    from prospects.models import Prospect
    from scoring.models import ScoreCause, ScoreChange

    ledger, prospects = ScoreChange._meta.db_table, Prospect._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {ledger} WHERE cause <> %s LIMIT 1",  # noqa: S608
            [ScoreCause.ACTIVITY.value],
        )
        if cursor.fetchone():
            return
        print("adding ledger rows of other causes …", flush=True)
        for cause, points, every, prefix in OTHER_ROWS:
            cursor.execute(
                f"""INSERT INTO {ledger} (prospect_id, points, cause, activity_type, first_key,
                                          label, occurred_at, created_at)
                    SELECT id, %s, %s, '', %s || id, %s, now(), now() FROM {prospects}
                     WHERE (id - %s) %% %s = 0""",  # noqa: S608
                [points, cause, prefix, cause, first_id, every],
            )
        cursor.execute(
            f"""INSERT INTO {ledger} (prospect_id, points, cause, activity_type, label,
                                      occurred_at, created_at)
                SELECT id, 10, %s, '', 'bench', now(), now() FROM {prospects}
                 WHERE (id - %s) %% %s = 0""",  # noqa: S608
            [ScoreCause.MANUAL.value, first_id, MANUAL_EVERY],
        )
        # The scores take these rows in the first (untimed) rescore, which sets every score
        # to its ledger sum.


def _ensure_rules() -> None:
    from scoring.models import ScoringRule
    from tracking.models import ActivityType

    # Rules beyond the defaults: the pricing page 30, email opens 1 on the first open.
    ScoringRule.objects.get_or_create(
        activity_type=ActivityType.PAGE_VIEW,
        url_pattern="https://example.jp/pricing*",
        defaults={"points": 30, "name": "価格ページ"},
    )
    ScoringRule.objects.filter(activity_type=ActivityType.EMAIL_OPENED, is_default=True).update(
        points=1
    )


def _edit_rule() -> int:
    """The edit being measured: page views change value (1 → 2 → … → 5 → 1)."""
    from scoring.models import ScoringRule
    from tracking.models import ActivityType

    page_view = ScoringRule.objects.get(activity_type=ActivityType.PAGE_VIEW, is_default=True)
    page_view.points = page_view.points % 5 + 1
    page_view.save(update_fields=["points"])
    return page_view.points


# --- checks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    rows: int  # rule-caused ledger rows
    points: int  # their points
    scores: int
    weighted: int  # sum of score × (id mod 9973): differs when points land on other prospects


def _outcome(cursor: Any) -> Outcome:
    from prospects.models import Prospect
    from scoring.models import ScoreCause, ScoreChange

    ledger, prospects = ScoreChange._meta.db_table, Prospect._meta.db_table
    cursor.execute(
        f"SELECT count(*), COALESCE(sum(points), 0) FROM {ledger} WHERE cause = %s",  # noqa: S608
        [ScoreCause.ACTIVITY.value],
    )
    rows, points = cursor.fetchone()
    cursor.execute(
        f"SELECT COALESCE(sum(score), 0), COALESCE(sum(score::bigint * (id % 9973)), 0) "  # noqa: S608
        f"FROM {prospects}"
    )
    scores, weighted = cursor.fetchone()
    return Outcome(int(rows), int(points), int(scores), int(weighted))


def _other_rows_checksum() -> tuple[int, int, int]:
    from django.db import connection

    from scoring.models import ScoreCause, ScoreChange

    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT count(*), COALESCE(sum(points), 0),
                       COALESCE(sum(id * 31 + prospect_id * 7 + points), 0)
                  FROM {ScoreChange._meta.db_table} WHERE cause <> %s""",  # noqa: S608
            [ScoreCause.ACTIVITY.value],
        )
        count, points, mixed = cursor.fetchone()
    return int(count), int(points), int(mixed)


def _scores_off_their_ledger() -> int:
    from django.db import connection

    from prospects.models import Prospect
    from scoring.models import ScoreChange

    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT count(*) FROM {Prospect._meta.db_table} p
                  LEFT JOIN (SELECT prospect_id, sum(points) AS total
                               FROM {ScoreChange._meta.db_table} GROUP BY prospect_id) l
                    ON l.prospect_id = p.id
                 WHERE p.score <> COALESCE(l.total, 0)"""  # noqa: S608
        )
        return int(cursor.fetchone()[0])


# --- the two phases -------------------------------------------------------------------------------


def _baseline(outcomes: list[tuple[Outcome, float]]) -> None:
    """The whole rewrite by hand in one transaction; its result is checksummed, then undone."""
    from django.db import connection, transaction

    from scoring.models import ScoreCause
    from scoring.services import _MATCHED, LEDGER, PROSPECTS

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(
            f"DELETE FROM {LEDGER} WHERE cause = %s",  # noqa: S608
            [ScoreCause.ACTIVITY.value],
        )
        # "First time only": the earliest activity per prospect, rule and object.
        cursor.execute(
            f"""
            INSERT INTO {LEDGER} (prospect_id, points, cause, activity_id, activity_type,
                                  rule_id, first_key, label, occurred_at, created_at)
            WITH m AS MATERIALIZED (
                SELECT x.prospect_id, x.points, x.activity_id, x.type, x.rule_id,
                       CASE WHEN x.first_time_only
                            THEN left(x.object_type || ':' || x.object_id, 110) END AS first_key,
                       left(CASE WHEN x.object_label <> '' THEN x.object_label
                                 ELSE trim(x.object_type || ' ' || x.object_id) END, 255) AS label,
                       x.occurred_at
                  FROM ({_MATCHED.format(where="TRUE")}) x
                 WHERE x.points <> 0
                   AND EXISTS (SELECT 1 FROM {PROSPECTS} p WHERE p.id = x.prospect_id))
            SELECT prospect_id, points, %(cause)s, activity_id, type, rule_id, first_key, label,
                   occurred_at, now()
              FROM m WHERE first_key IS NULL
            UNION ALL
            SELECT * FROM (
                SELECT DISTINCT ON (prospect_id, rule_id, first_key)
                       prospect_id, points, %(cause)s, activity_id, type, rule_id, first_key,
                       label, occurred_at, now()
                  FROM m WHERE first_key IS NOT NULL
                 ORDER BY prospect_id, rule_id, first_key, occurred_at, activity_id) f
            """,  # noqa: S608
            {"cause": ScoreCause.ACTIVITY.value},
        )
        cursor.execute(
            f"""
            UPDATE {PROSPECTS} p SET score = s.total
              FROM (SELECT p2.id, COALESCE(sum(c.points), 0) AS total
                      FROM {PROSPECTS} p2 LEFT JOIN {LEDGER} c ON c.prospect_id = p2.id
                     GROUP BY p2.id) s
             WHERE p.id = s.id AND p.score <> s.total
            """  # noqa: S608
        )
        started = time.perf_counter()
        outcome = _outcome(cursor)
        outcomes.append((outcome, time.perf_counter() - started))  # not counted as work
        transaction.set_rollback(True)


def _rescore(chunk: int, parallelism: int) -> None:
    from scoring.models import Rescore
    from scoring.services import rescore_run

    rescore_run(Rescore.objects.create().pk, chunk=chunk, parallelism=parallelism)


# --- run ------------------------------------------------------------------------------------------


def _tables() -> tuple[str, str]:
    from prospects.models import Prospect
    from scoring.models import ScoreChange

    return ScoreChange._meta.db_table, Prospect._meta.db_table


def _line(result: Measured, count: int) -> str:
    this, postgres, _others = result.cpu
    return (
        f"{result.seconds:8.2f} s   CPU this {this:6.1f} s + PostgreSQL {postgres:6.1f} s "
        f"({postgres * 1e6 / count:5.0f} µs per prospect)   others {result.others():4.2f} "
        f"cores   load {result.load[0]:4.1f}→{result.load[1]:<4.1f}"
    )


def _run(arguments: argparse.Namespace) -> int:
    from django.db import connection

    from prospects.models import Prospect
    from scoring.services import RESCORE_CHUNK, RESCORE_PARALLELISM

    chunk = arguments.chunk or RESCORE_CHUNK
    parallelism = arguments.parallelism or RESCORE_PARALLELISM
    first_id = ensure_prospects(arguments.prospects)
    activities = _ensure_activities(
        arguments.prospects, arguments.activities_per_prospect, first_id
    )
    _ensure_other_rows(first_id)
    _ensure_rules()
    prospects = Prospect.objects.count()
    print(f"{prospects:,} prospects, {activities:,} activities")
    print("first rescore (not timed: writes any missing ledger rows, warms the cache) …")
    started = time.perf_counter()
    _rescore(chunk, parallelism)
    print(f"  {time.perf_counter() - started:.2f} s", flush=True)
    tables = _tables()

    problems: list[str] = []
    rounds: list[tuple[Measured, Measured]] = []
    for round_number in range(1, arguments.rounds + 1):
        points = _edit_rule()
        print(f"round {round_number}: page views now worth {points}", flush=True)
        vacuum(*tables)
        outcomes: list[tuple[Outcome, float]] = []
        baseline = measure(
            "baseline", round_number, arguments.database, partial(_baseline, outcomes)
        )
        expected, checksum_seconds = outcomes[0]
        baseline.seconds -= checksum_seconds
        print(f"  baseline {_line(baseline, prospects)}", flush=True)
        vacuum(*tables)
        others_before = _other_rows_checksum()
        rescore = measure(
            "rescore", round_number, arguments.database, lambda: _rescore(chunk, parallelism)
        )
        print(f"  rescore  {_line(rescore, prospects)}", flush=True)
        rounds.append((baseline, rescore))
        with connection.cursor() as cursor:
            result = _outcome(cursor)
        ledger = f"{result.rows:,} rule-caused ledger rows, {result.points:,} points"
        print(f"  {ledger}; scores add up to {result.scores:,}", flush=True)
        if result != expected:
            problems.append(
                f"round {round_number}: {result} differs from the baseline's {expected}"
            )
        if _other_rows_checksum() != others_before:
            problems.append(f"round {round_number}: rows of other causes changed")
        off = _scores_off_their_ledger()
        if off:
            problems.append(f"round {round_number}: {off} scores differ from their ledger sums")

    seconds = statistics.median(rescore.seconds for _baseline_result, rescore in rounds)
    baseline_seconds = statistics.median(baseline.seconds for baseline, _rescore in rounds)
    verdict = "PASS" if seconds < TARGET_SECONDS else "MISS"
    label = f"median of {len(rounds)} rounds" if len(rounds) > 1 else "one round"
    print()
    print(f"{prospects:,} prospects, {activities:,} activities, {label}:")
    print(
        f"  rescore_run (chunk {chunk:,}, {parallelism} session{'s' if parallelism > 1 else ''})"
        f" {seconds:8.2f} s   "
        f"baseline (1 session) {baseline_seconds:8.2f} s   {seconds / baseline_seconds:5.2f}x   "
        f"< {TARGET_SECONDS:g} s  {verdict}"
    )
    for problem in problems:
        print(f"PROBLEM {problem}")
    checks = "FAIL" if problems else "PASS"
    print(f"same ledger and scores as the baseline, other causes untouched   {checks}")
    return 0 if verdict == "PASS" and not problems else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--prospects", type=int, default=DEFAULT_PROSPECTS)
    parser.add_argument("--activities-per-prospect", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=0, help="prospect ids per chunk")
    parser.add_argument("--parallelism", type=int, default=0, help="chunks at a time")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--database", default=BENCH_DATABASE)
    arguments = parser.parse_args()
    if arguments.prospects < 1 or arguments.rounds < 1 or arguments.activities_per_prospect < 1:
        parser.error("--prospects, --activities-per-prospect and --rounds must be at least 1")

    from mapp.devservices import services

    with one_run_at_a_time(arguments.database), services() as service_environment:
        for key, value in service_environment.items():
            if key != "DATABASE_URL":
                os.environ.setdefault(key, value)
        database_url = ensure_database(service_environment["DATABASE_URL"], arguments.database)
        setup_django(database_url)
        return _run(arguments)


if __name__ == "__main__":
    sys.exit(main())
