"""Benchmark: retroactive rescore of 1,000,000 prospects after a scoring rule edit.

    .venv/bin/python bench/scoring_rescore.py [--prospects N] [--activities-per-prospect A]
                                              [--chunk C]

Measured, against a hand-written SQL baseline timed in the same run on the same data:
  * ``scoring.services.rescore_run()`` (what the Celery task runs after a rule edit: per chunk
    of prospect ids, delete the rule-caused ledger rows, re-insert them from the activities with
    the current rules — overrides, first-time-only, bots excluded — and set each score to its
    ledger sum) vs one transaction that writes the same ledger rows by hand with the simplest
    join (activity type → points, no overrides, no first-time rule) and one UPDATE of the
    scores, then rolls back;                                                   target < 60 s

Targets are printed as PASS / MISS: performance is judged by this ratio, never by a timed test.

It runs in its own database, ``mapp_bench_scoring``, on the server the app uses (DATABASE_URL, or
the embedded PostgreSQL of ``mapp.devservices``, started if needed): the development database is
never touched. Prospects and activities (page views, form submissions, email opens, a few bot
views) are generated once with INSERT … SELECT generate_series and reused by later runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from benchdb import ensure_database  # noqa: E402

BENCH_DATABASE = "mapp_bench_scoring"
DEFAULT_PROSPECTS = 1_000_000
TARGET_SECONDS = 60.0


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mapp.settings")
    os.environ["CELERY_BROKER_URL"] = "memory://localhost/"
    os.environ["CELERY_RESULT_BACKEND"] = "cache+memory://"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def _prospect_columns() -> dict[str, str]:
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


def _ensure_data(prospects: int, per_prospect: int) -> tuple[int, int]:
    from django.db import connection

    from prospects.models import Prospect
    from tracking.models import Activity
    from tracking.partitions import ensure_partitions

    table = Prospect._meta.db_table
    activities = Activity._meta.db_table
    ensure_partitions()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608
        existing = int(cursor.fetchone()[0])
        if existing < prospects:
            print(f"generating {prospects - existing:,} prospects …", flush=True)
            started = time.perf_counter()
            columns = _prospect_columns()
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608
                f"SELECT {', '.join(columns.values())} FROM generate_series(%s, %s) AS g",
                [existing + 1, prospects],
            )
            print(f"  {time.perf_counter() - started:.1f} s", flush=True)
        # The generated prospects have consecutive ids (one INSERT into a fresh database).
        cursor.execute(f"SELECT min(id) FROM {table}")  # noqa: S608
        first_id = int(cursor.fetchone()[0])
        cursor.execute(f"SELECT count(*) FROM {activities}")  # noqa: S608
        have = int(cursor.fetchone()[0])
        wanted = prospects * per_prospect
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
            print(f"  {time.perf_counter() - started:.1f} s; VACUUM ANALYZE …", flush=True)
        cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute(f"ANALYZE {activities}")
    return prospects, wanted


def _baseline() -> float:
    """The same work by hand, simplest form, in one transaction rolled back afterwards."""
    from django.db import connection, transaction

    from scoring.models import ScoreChange, ScoringRule
    from tracking.models import Activity

    ledger, rules = ScoreChange._meta.db_table, ScoringRule._meta.db_table
    activities = Activity._meta.db_table
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {ledger} WHERE cause = 'activity'")  # noqa: S608
        cursor.execute(
            f"""
            INSERT INTO {ledger} (prospect_id, points, cause, activity_id, activity_type, rule_id,
                                  label, occurred_at, created_at)
            SELECT a.prospect_id, r.points, 'activity', a.id, a.type, r.id, '', a.occurred_at,
                   now()
              FROM {activities} a
              JOIN {rules} r ON r.activity_type = a.type AND r.is_default AND r.is_active
             WHERE a.prospect_id IS NOT NULL AND NOT a.is_bot AND r.points <> 0
            """  # noqa: S608
        )
        cursor.execute(
            f"""
            UPDATE prospects_prospect p SET score = s.total
              FROM (SELECT prospect_id, sum(points) AS total FROM {ledger}
                     GROUP BY prospect_id) s
             WHERE p.id = s.prospect_id AND p.score <> s.total
            """  # noqa: S608
        )
        elapsed = time.perf_counter() - started
        transaction.set_rollback(True)
    return elapsed


def _run(arguments: argparse.Namespace) -> int:
    from django.db.models import Sum

    from prospects.models import Prospect
    from scoring.models import Rescore, ScoreChange, ScoringRule
    from scoring.services import RESCORE_CHUNK, rescore_run
    from tracking.models import ActivityType

    arguments.chunk = arguments.chunk or RESCORE_CHUNK
    prospects, activities = _ensure_data(arguments.prospects, arguments.activities_per_prospect)
    # Rules beyond the defaults: the pricing page 30, email opens 1 on the first open.
    ScoringRule.objects.get_or_create(
        activity_type=ActivityType.PAGE_VIEW,
        url_pattern="https://example.jp/pricing*",
        defaults={"points": 30, "name": "価格ページ"},
    )
    ScoringRule.objects.filter(activity_type=ActivityType.EMAIL_OPENED, is_default=True).update(
        points=1
    )
    print(f"{prospects:,} prospects, {activities:,} activities")
    print("first rescore (not timed: warms the cache, writes any missing ledger rows) …")
    started = time.perf_counter()
    rescore_run(Rescore.objects.create().pk, chunk=arguments.chunk)
    print(f"  {time.perf_counter() - started:.2f} s", flush=True)

    # The timed edit: page views change value (1 → 2 → … → 5 → 1 over successive runs), so
    # every page-view row of the ledger and nearly every score change.
    page_view = ScoringRule.objects.get(activity_type=ActivityType.PAGE_VIEW, is_default=True)
    page_view.points = page_view.points % 5 + 1
    page_view.save(update_fields=["points"])
    baseline = _baseline()
    rescore = Rescore.objects.create()
    started = time.perf_counter()
    rescore_run(rescore.pk, chunk=arguments.chunk)
    seconds = time.perf_counter() - started

    total = Prospect.objects.aggregate(total=Sum("score"))["total"]
    ledger = ScoreChange.objects.aggregate(total=Sum("points"))["total"]
    print(f"  ledger rows {ScoreChange.objects.count():,}; sum of scores {total:,}")
    assert total == ledger, "the scores must equal the ledger's sum"
    verdict = "PASS" if seconds < TARGET_SECONDS else "MISS"
    print(
        f"  rescore_run (chunk {arguments.chunk:,})   {seconds:8.2f} s   "
        f"baseline {baseline:8.2f} s   {seconds / baseline:5.1f}x   "
        f"< {TARGET_SECONDS:g} s  {verdict}"
    )
    return 0 if verdict == "PASS" else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--prospects", type=int, default=DEFAULT_PROSPECTS)
    parser.add_argument("--activities-per-prospect", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=0, help="prospect ids per transaction")
    arguments = parser.parse_args()

    from mapp.devservices import services

    with services() as service_environment:
        for key, value in service_environment.items():
            if key != "DATABASE_URL":
                os.environ.setdefault(key, value)
        database_url = ensure_database(service_environment["DATABASE_URL"], BENCH_DATABASE)
        _setup_django(database_url)
        return _run(arguments)


if __name__ == "__main__":
    sys.exit(main())
