"""Benchmark: activities scored per second, the delivery path against one set-based statement.

    .venv/bin/python bench/scoring_activity_rate.py [--activities N] [--prospects P]
                                                    [--rounds R] [--batch B] [--database NAME]

The same 100,000 activities (``--activities``) of 20,000 prospects (``--prospects``) are scored
from nothing by each of three paths, measured in the same run:

  deliver   ``tracking.services.deliver_activities()`` on batches of ``DELIVERY_BATCH`` (500)
            activity ids in id order, as the Celery drain task calls it, with the scoring
            consumer as the only consumer: it loads the activities, records their delivery rows
            (the exactly-once bookkeeping), and calls ``score_activities()`` — one INSERT …
            SELECT into the ledger and one UPDATE of the scores per batch — then announces
            the changed prospects (``_after_score_change``: dynamic lists and listeners);
  consumer  ``scoring.services.score_activities()`` alone on the same batches (activities
            loaded beforehand, untimed): the consumer without the delivery bookkeeping;
  baseline  one SQL statement scoring all of them at once: the consumer's own statement
            (the rules' matching, "first time only", the ledger insert and the scores' update)
            over every activity id instead of a batch.

Printed: activities per second of each (bots and anonymous activities included: the delivery
path receives them too), the ratio of each path to the baseline, and the CPU one activity cost
this process and the bench database's PostgreSQL backends, with the cores other processes used
meanwhile. Checked after every phase (exit status 1 if not): every prospect's score equals its
ledger sum, and the ledger and the scores are the same as the baseline's.

Data (generated once, kept): prospects from INSERT … SELECT generate_series; activities with
times increasing with their ids — 55 % page views (1 in 20 on the pricing page, which a URL rule
makes worth 30; 1 in 40 by a bot; 1 in 20 anonymous), 15 % email opens of 20 emails (1 point,
first time only per email), 8 % email clicks, 5 % form submissions, 3 % form errors, 4 % file
downloads, 4 % custom redirect clicks, 3 % sends (no rule), 3 % landing-page submissions; each
prospect chosen by a multiplicative hash of the activity's number. Rules: the seeded defaults,
email opens set to 1, plus the pricing-page rule.

Before each phase the ledger and the delivery rows are emptied (TRUNCATE), every score set to
0 and the tables vacuumed and analysed, so each phase starts from the same data and the same
physical state. The phases take turns (``--rounds``, default 3, order rotating), so a busier
minute of a shared machine slows every path rather than one; the median of the rounds is
reported. Database ``mapp_bench_scoring_rate`` (``--database``) on the server the app uses.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from benchdb import ensure_database, one_run_at_a_time  # noqa: E402

BENCH_DATABASE = "mapp_bench_scoring_rate"
DEFAULT_ACTIVITIES = 100_000
DEFAULT_PROSPECTS = 20_000
PRICING_URL = "https://example.jp/pricing"
KINDS = ("deliver", "consumer", "baseline")


# --- shared with bench/scoring_rescore.py ---------------------------------------------------------


def setup_django(database_url: str) -> None:
    """Point Django at the bench database (Celery at an in-memory broker) and migrate it."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mapp.settings")
    os.environ["CELERY_BROKER_URL"] = "memory://localhost/"
    os.environ["CELERY_RESULT_BACKEND"] = "cache+memory://"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from tracking.partitions import ensure_partitions

    ensure_partitions()


def prospect_columns() -> dict[str, str]:
    """An SQL expression per Prospect column for INSERT … SELECT over generate_series(g)."""
    from django.db import models

    from prospects.models import Prospect

    chosen = {
        "email": "'bench-' || g || '@example.jp'",
        "last_name": "'佐藤'",
        "first_name": "'花子' || g",
        "full_name_normalized": "'佐藤花子' || g",
        "created_at": "now()",
        "updated_at": "now()",
    }
    expressions = {}
    for field in Prospect._meta.concrete_fields:
        if field.primary_key:
            continue
        if field.column in chosen:
            expressions[field.column] = chosen[field.column]
        elif field.null:
            expressions[field.column] = "NULL"
        elif isinstance(field, models.DateTimeField):
            expressions[field.column] = "now()"
        elif isinstance(field, models.BooleanField):
            expressions[field.column] = "TRUE" if field.get_default() else "FALSE"
        elif isinstance(field, models.IntegerField | models.DecimalField | models.FloatField):
            expressions[field.column] = str(int(field.get_default() or 0))
        else:
            expressions[field.column] = "''"
    return expressions


def ensure_prospects(count: int) -> int:
    """At least ``count`` generated prospects; returns the first one's id (ids are consecutive:
    one INSERT into a fresh table)."""
    from django.db import connection

    from prospects.models import Prospect

    table = Prospect._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608
        existing = int(cursor.fetchone()[0])
        if existing < count:
            print(f"generating {count - existing:,} prospects …", flush=True)
            started = time.perf_counter()
            columns = prospect_columns()
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608
                f"SELECT {', '.join(columns.values())} FROM generate_series(%s, %s) AS g",
                [existing + 1, count],
            )
            cursor.execute(f"VACUUM ANALYZE {table}")
            print(f"  {time.perf_counter() - started:.1f} s", flush=True)
        cursor.execute(f"SELECT min(id) FROM {table}")  # noqa: S608
        return int(cursor.fetchone()[0])


@dataclass
class Cpu:
    """CPU seconds of this process, of the bench database's PostgreSQL backends (with their
    parallel workers while they run, and autovacuum), and of the whole machine, at one moment."""

    this: float
    postgres: dict[int, float]
    machine: float

    @classmethod
    def now(cls, database: str) -> Cpu:
        import psutil

        def seconds(process: psutil.Process) -> float:
            times = process.cpu_times()
            return float(times.user + times.system)

        ours: dict[int, float] = {}
        workers: dict[int, tuple[int, float]] = {}
        for process in psutil.process_iter(["cmdline"]):
            title = " ".join(process.info["cmdline"] or ())
            if not title.startswith("postgres:"):
                continue
            with contextlib.suppress(psutil.Error):
                if f" {database} " in f"{title} ":
                    ours[process.pid] = seconds(process)
                elif found := re.match(r"postgres: parallel worker for PID (\d+)", title):
                    workers[process.pid] = (int(found.group(1)), seconds(process))
        for pid, (leader, used) in workers.items():
            if leader in ours:
                ours[pid] = used
        machine = psutil.cpu_times()
        busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        return cls(seconds(psutil.Process()), ours, busy)

    def since(self, earlier: Cpu) -> tuple[float, float, float]:
        """(this process, PostgreSQL, everything else on the machine) in CPU seconds."""
        this = self.this - earlier.this
        postgres = sum(
            max(used - earlier.postgres.get(pid, 0.0), 0.0) for pid, used in self.postgres.items()
        )
        return this, postgres, max(self.machine - earlier.machine - this - postgres, 0.0)


@dataclass
class Measured:
    kind: str
    round: int
    seconds: float
    cpu: tuple[float, float, float]
    load: tuple[float, float]  # one-minute load average before and after

    def others(self) -> float:
        """Cores other processes kept busy meanwhile, on average."""
        return self.cpu[2] / self.seconds


def measure(kind: str, round_number: int, database: str, work: Callable[[], object]) -> Measured:
    """Time ``work``; the CPU of backends that end during it (a rescore's own sessions) is
    taken from their last sample, every half second (the processes that end are gone)."""
    load = os.getloadavg()[0]
    first = Cpu.now(database)
    seen = dict(first.postgres)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            seen.update(Cpu.now(database).postgres)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        work()
    finally:
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
    last = Cpu.now(database)
    seen.update(last.postgres)
    cpu = Cpu(last.this, seen, last.machine).since(first)
    return Measured(kind, round_number, seconds, cpu, (load, os.getloadavg()[0]))


def vacuum(*tables: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM ANALYZE {table}")


# --- data -----------------------------------------------------------------------------------------


def _ensure_rules() -> None:
    from scoring.models import ScoringRule
    from tracking.models import ActivityType

    ScoringRule.objects.get_or_create(
        activity_type=ActivityType.PAGE_VIEW,
        url_pattern=f"{PRICING_URL}*",
        defaults={"points": 30, "name": "価格ページ"},
    )
    ScoringRule.objects.filter(activity_type=ActivityType.EMAIL_OPENED, is_default=True).update(
        points=1
    )


def _ensure_activities(count: int, prospects: int, first_prospect: int) -> None:
    from django.db import connection

    from tracking.models import Activity

    table = Activity._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608
        have = int(cursor.fetchone()[0])
        if have >= count:
            return
        print(f"generating {count - have:,} activities …", flush=True)
        started = time.perf_counter()
        # k picks the type (see the docstring); times rise with g, 10 ms apart, ending now.
        cursor.execute(
            f"""
            INSERT INTO {table} (occurred_at, type, prospect_id, visitor_id, object_type,
                                 object_id, object_label, payload, is_bot, created_at)
            SELECT now() - (%(count)s - g) * interval '10 milliseconds',
                   CASE WHEN k < 55 THEN 'page_view' WHEN k < 70 THEN 'email_opened'
                        WHEN k < 78 THEN 'email_clicked' WHEN k < 83 THEN 'form_success'
                        WHEN k < 86 THEN 'form_error' WHEN k < 90 THEN 'file_download'
                        WHEN k < 94 THEN 'custom_redirect_click' WHEN k < 97 THEN 'email_sent'
                        ELSE 'landing_page_success' END,
                   CASE WHEN k < 55 AND g %% 20 = 7 THEN NULL
                        ELSE %(first)s + (g * 104729) %% %(prospects)s END,
                   NULL,
                   CASE WHEN k < 55 THEN 'url' WHEN k < 78 OR k BETWEEN 94 AND 96 THEN 'email'
                        WHEN k < 86 THEN 'form' WHEN k < 90 THEN 'file'
                        WHEN k < 94 THEN 'redirect' ELSE 'landing_page' END,
                   CASE WHEN k < 55 THEN '' ELSE (g %% 20)::text END,
                   CASE WHEN k < 55 THEN
                        CASE WHEN g %% 20 = 0 THEN %(pricing)s
                             ELSE 'https://example.jp/page/' || (g %% 300) END
                        WHEN k BETWEEN 70 AND 77 THEN 'https://example.jp/l/' || (g %% 7)
                        ELSE '' END,
                   '{{}}'::jsonb, k < 55 AND g %% 40 = 1, now()
              FROM (SELECT g, (g * 7919) %% 100 AS k
                      FROM generate_series(%(low)s::bigint, %(count)s::bigint) AS g) s
            """,  # noqa: S608
            {
                "count": count,
                "first": first_prospect,
                "prospects": prospects,
                "pricing": PRICING_URL,
                "low": have + 1,
            },
        )
        cursor.execute(f"ANALYZE {table}")
        print(f"  {time.perf_counter() - started:.1f} s", flush=True)


def _reset() -> None:
    """Nothing scored: empty ledger and deliveries, every score 0, tables vacuumed."""
    from django.db import connection

    from prospects.models import Prospect
    from scoring.models import ScoreChange
    from tracking.models import ActivityDelivery

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {ScoreChange._meta.db_table}, {ActivityDelivery._meta.db_table}")
        cursor.execute(
            f"UPDATE {Prospect._meta.db_table} SET score = 0 WHERE score <> 0"  # noqa: S608
        )
    vacuum(Prospect._meta.db_table, ScoreChange._meta.db_table, ActivityDelivery._meta.db_table)


@dataclass(frozen=True)
class Outcome:
    """What scoring produced: ledger rows and points, and the scores' checksums."""

    rows: int
    points: int
    scores: int
    weighted: int  # sum of score × (id mod 9973): differs when points land on other prospects
    mismatched: int  # prospects whose score is not their ledger sum

    def problems(self, expected: Outcome | None) -> list[str]:
        found = []
        if self.mismatched:
            found.append(f"{self.mismatched} prospects' scores differ from their ledger sums")
        if self.scores != self.points:
            found.append(f"scores add up to {self.scores:,}, the ledger to {self.points:,}")
        if expected is not None and self != expected:
            found.append(f"result {self} differs from the baseline's {expected}")
        return found


def _outcome() -> Outcome:
    from django.db import connection

    from prospects.models import Prospect
    from scoring.models import ScoreChange

    ledger, prospects = ScoreChange._meta.db_table, Prospect._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), COALESCE(sum(points), 0) FROM {ledger}")  # noqa: S608
        rows, points = cursor.fetchone()
        cursor.execute(
            f"SELECT COALESCE(sum(score), 0), COALESCE(sum(score::bigint * (id % 9973)), 0) "  # noqa: S608
            f"FROM {prospects}"
        )
        scores, weighted = cursor.fetchone()
        cursor.execute(
            f"""SELECT count(*) FROM {prospects} p
                  LEFT JOIN (SELECT prospect_id, sum(points) AS total FROM {ledger}
                              GROUP BY prospect_id) l ON l.prospect_id = p.id
                 WHERE p.score <> COALESCE(l.total, 0)"""  # noqa: S608
        )
        mismatched = cursor.fetchone()[0]
    return Outcome(int(rows), int(points), int(scores), int(weighted), int(mismatched))


# --- the three paths ------------------------------------------------------------------------------


def _batches(batch: int) -> list[list[int]]:
    from tracking.models import Activity

    ids = list(Activity.objects.order_by("id").values_list("id", flat=True))
    return [ids[start : start + batch] for start in range(0, len(ids), batch)]


def _only_the_scoring_consumer() -> None:
    """Other apps' consumers (page actions, automation rules…) are not activity → score work."""
    from tracking.consumers import activity_consumers, unregister_activity_consumer

    for consumer in activity_consumers():
        if consumer.key != "scoring.rules":
            unregister_activity_consumer(consumer.key)


def _deliver(batches: list[list[int]]) -> Callable[[], None]:
    from tracking.services import deliver_activities

    def run() -> None:
        for ids in batches:
            deliver_activities(ids)

    return run


def _consumer(batches: list[list[int]]) -> Callable[[], None]:
    from scoring.services import score_activities
    from tracking.models import Activity

    loaded = []
    for ids in batches:
        activities = Activity.objects.filter(pk__in=ids).order_by("occurred_at", "id")
        loaded.append(list(activities.only("id", "prospect_id", "is_bot", "occurred_at")))

    def run() -> None:
        for activities in loaded:
            score_activities(activities)

    return run


def _baseline(first_id: int, last_id: int) -> None:
    """The consumer's statement over every activity at once, in one transaction."""
    from django.db import connection, transaction

    from scoring.services import _INSERT, PROSPECTS

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH inserted AS ({_INSERT.format(where="a.id BETWEEN %s AND %s")}
                              RETURNING prospect_id, points),
                 delta AS (SELECT prospect_id, sum(points) AS points
                             FROM inserted GROUP BY prospect_id)
            UPDATE {PROSPECTS} p SET score = p.score + delta.points
              FROM delta WHERE p.id = delta.prospect_id
            """,  # noqa: S608
            [first_id, last_id],
        )


# --- run ------------------------------------------------------------------------------------------


def _report(results: list[Measured], activities: int, rounds: int) -> None:
    print()
    print(
        f"{'round':>5} {'path':<9} {'seconds':>8} {'activities/s':>13} {'µs CPU/activity':>16}"
        f" {'others':>7} {'load':>9}"
    )
    for result in results:
        this, postgres, _others = result.cpu
        print(
            f"{result.round:>5} {result.kind:<9} {result.seconds:8.2f} "
            f"{activities / result.seconds:13,.0f} "
            f"{this * 1e6 / activities:7.0f} + {postgres * 1e6 / activities:6.0f}"
            f" {result.others():7.2f} {result.load[0]:4.1f}→{result.load[1]:<4.1f}"
        )
    print("  (µs CPU per activity: this process + the bench database's PostgreSQL backends;")
    print("   others: cores other processes kept busy meanwhile, on average)")
    median = {
        kind: statistics.median(result.seconds for result in results if result.kind == kind)
        for kind in KINDS
    }
    print()
    label = f"median of {rounds} rounds" if rounds > 1 else "one round"
    print(f"{activities:,} activities, {label}:")
    for kind in KINDS:
        rate = activities / median[kind]
        line = f"  {kind:<9} {rate:10,.0f} activities/s  ({median[kind]:.2f} s)"
        if kind != "baseline":
            share = median["baseline"] / median[kind]
            line += f"   {share:6.1%} of the baseline's rate ({1 / share:.1f}x its time)"
        print(line)


def _run(arguments: argparse.Namespace) -> int:
    from tracking.models import Activity
    from tracking.services import DELIVERY_BATCH

    batch = arguments.batch or DELIVERY_BATCH
    first_prospect = ensure_prospects(arguments.prospects)
    _ensure_activities(arguments.activities, arguments.prospects, first_prospect)
    _ensure_rules()
    _only_the_scoring_consumer()
    activities = Activity.objects.count()
    if activities != arguments.activities:
        print(f"the database holds {activities:,} activities; --activities {activities} or a")
        print("database of its own (--database) is needed")
        return 2
    batches = _batches(batch)
    first_id, last_id = batches[0][0], batches[-1][-1]
    print(
        f"{activities:,} activities of {arguments.prospects:,} prospects; "
        f"deliveries in {len(batches):,} batches of {batch}"
    )
    results: list[Measured] = []
    outcomes: list[Outcome] = []
    for round_number in range(1, arguments.rounds + 1):
        shift = (round_number - 1) % len(KINDS)
        for kind in KINDS[shift:] + KINDS[:shift]:
            _reset()
            if kind == "deliver":
                work: Callable[[], object] = _deliver(batches)
            elif kind == "consumer":
                work = _consumer(batches)
            else:
                work = lambda: _baseline(first_id, last_id)  # noqa: E731
            result = measure(kind, round_number, arguments.database, work)
            outcome = _outcome()
            results.append(result)
            outcomes.append(outcome)
            print(
                f"  round {round_number} {kind:<9} {result.seconds:7.2f} s "
                f"{activities / result.seconds:9,.0f}/s   ledger {outcome.rows:,} rows, "
                f"{outcome.points:,} points",
                flush=True,
            )
    # Every phase against the first baseline (measured in round 1, maybe after an app path).
    expected = next(o for r, o in zip(results, outcomes, strict=True) if r.kind == "baseline")
    problems = [
        f"round {result.round} {result.kind}: {problem}"
        for result, outcome in zip(results, outcomes, strict=True)
        for problem in outcome.problems(expected)
    ]
    _report(results, activities, arguments.rounds)
    print()
    for problem in problems:
        print(f"PROBLEM {problem}")
    verdict = "PASS" if not problems else "FAIL"
    print(f"every phase: scores = ledger sums = the baseline's result   {verdict}")
    return 0 if not problems else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--activities", type=int, default=DEFAULT_ACTIVITIES)
    parser.add_argument("--prospects", type=int, default=DEFAULT_PROSPECTS)
    parser.add_argument("--rounds", type=int, default=3, help="each path once per round")
    parser.add_argument("--batch", type=int, default=0, help="ids per delivery (DELIVERY_BATCH)")
    parser.add_argument("--database", default=BENCH_DATABASE)
    arguments = parser.parse_args()
    if arguments.activities < 1 or arguments.prospects < 1 or arguments.rounds < 1:
        parser.error("--activities, --prospects and --rounds must be at least 1")

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
