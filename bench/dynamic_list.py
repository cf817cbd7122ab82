"""Benchmark: a dynamic list over 1,000,000 synthetic prospects.

    .venv/bin/python bench/dynamic_list.py [--prospects N] [--repeat R] [--refresh-repeat R]
                                           [--no-explain] [--try-upper-indexes]

Criteria (3 conditions, one nested group):
    (industry = IT OR industry = 製造) AND job_level >= 3 (Manager) AND employee_count >= 100

Measured, each against a hand-written SQL baseline timed in the same run on the same data:
  * preview: ``prospects_matching(criteria).count()`` (what the builder's live count runs)
    vs ``SELECT count(*) … WHERE <the same conditions written by hand>``;   target < 1 s
  * full refresh: ``dynamic_list_refresh()`` of a new list (first run inserts every member,
    second run changes nothing) vs ``INSERT INTO <temp table> SELECT id … WHERE …``; target < 15 s

Targets are printed as PASS / MISS: performance is judged by this ratio, never by a timed test.

It runs in its own database, ``mapp_bench_lists``, on the server the app uses (DATABASE_URL, or
the embedded PostgreSQL of ``mapp.devservices``, started if needed): the development database is
never touched. The prospects are generated once (one INSERT … SELECT generate_series, ≈ 30 s
for 1M rows with the table's indexes) and reused by later runs. Celery messages go to an
in-memory broker, so no worker refreshes the list behind the benchmark's back.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from benchdb import ensure_database  # noqa: E402

BENCH_DATABASE = "mapp_bench_lists"
DEFAULT_PROSPECTS = 1_000_000
PREVIEW_TARGET_SECONDS = 1.0
REFRESH_TARGET_SECONDS = 15.0
BENCH_LIST_PREFIX = "bench: "

INDUSTRIES = ["IT", "製造", "金融", "小売", "不動産", "医療", "建設", "物流", "教育", "サービス"]

CRITERIA: dict[str, Any] = {
    "match": "all",
    "conditions": [
        {
            "match": "any",
            "conditions": [
                {"subject": "field", "field": "industry", "operator": "equals", "value": "IT"},
                {"subject": "field", "field": "industry", "operator": "equals", "value": "製造"},
            ],
        },
        {"subject": "field", "field": "job_level", "operator": "gte", "value": 3},
        {"subject": "field", "field": "employee_count", "operator": "gte", "value": 100},
    ],
}
BASELINE_WHERE = (
    "(industry = 'IT' OR industry = '製造') AND job_level >= 3 AND employee_count >= 100"
)


# --- database set-up (before Django) ------------------------------------------------------------


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mapp.settings")
    # list_create schedules a refresh on Celery: keep that message in this process, unconsumed.
    os.environ["CELERY_BROKER_URL"] = "memory://localhost/"
    os.environ["CELERY_RESULT_BACKEND"] = "cache+memory://"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


# --- synthetic prospects ------------------------------------------------------------------------


def _column_expressions() -> dict[str, str]:
    """An SQL expression per Prospect column for INSERT … SELECT over generate_series(g).

    Columns not named here get their model default (or '' / NULL), so a field added to the model
    later does not break the benchmark.
    """
    from django.db import models

    from prospects.models import Prospect

    industries = ", ".join(f"'{industry}'" for industry in INDUSTRIES)
    chosen = {
        "email": "'bench-' || g || '@example.jp'",
        "last_name": "'佐藤'",
        "first_name": "'花子' || g",
        "company_name": "'株式会社ベンチ' || (g %% 50000)",
        "company_name_normalized": "'ベンチ' || (g %% 50000)",
        "full_name_normalized": "'佐藤花子' || g",
        "industry": f"(ARRAY[{industries}])[1 + floor(random() * {len(INDUSTRIES)})::int]",
        "job_level": "floor(random() * 6)::int",
        "employee_count": "1 + floor(random() * 10000)::int",
        "created_at": "now() - (g %% 1000) * interval '1 hour'",
        "updated_at": "now()",
    }
    expressions = {}
    for field in Prospect._meta.concrete_fields:
        if field.primary_key:
            continue
        column = field.column
        if column in chosen:
            expressions[column] = chosen[column]
        elif field.null:
            expressions[column] = "NULL"
        elif isinstance(field, models.DateTimeField):
            expressions[column] = "now()"
        elif isinstance(field, models.BooleanField):
            expressions[column] = "TRUE" if field.get_default() else "FALSE"
        elif isinstance(field, models.IntegerField | models.DecimalField | models.FloatField):
            expressions[column] = str(int(field.get_default() or 0))
        else:
            expressions[column] = "''"
    return expressions


def _ensure_prospects(count: int) -> int:
    from django.db import connection

    from prospects.models import Prospect

    table = Prospect._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - table name from Django
        existing = int(cursor.fetchone()[0])
        if existing >= count:
            print(f"reusing {existing:,} prospects in {BENCH_DATABASE}")
            return existing
        print(f"generating {count - existing:,} prospects …", flush=True)
        expressions = _column_expressions()
        started = time.perf_counter()
        cursor.execute("SELECT setseed(0.42)")  # the same data on every machine
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(expressions)}) "  # noqa: S608 - from the model
            f"SELECT {', '.join(expressions.values())} FROM generate_series(%s, %s) AS g",
            [existing + 1, count],
        )
        print(f"  inserted in {time.perf_counter() - started:.1f} s; VACUUM ANALYZE …", flush=True)
        cursor.execute(f"VACUUM ANALYZE {table}")
    return count


# --- measuring ----------------------------------------------------------------------------------


def _best_of(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    """The fastest of ``repeat`` runs after one warm-up (the data is then in the cache for both
    the measured code and its baseline, so the ratio compares work, not disk)."""
    result = run()
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        timings.append(time.perf_counter() - started)
    return min(timings), result


def _timed(run: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def _scalar(statement: str, params: list[Any] | None = None) -> Any:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])
        row = cursor.fetchone()
        return row[0] if row else None


def _explain(statement: str, params: list[Any] | tuple[Any, ...]) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {statement}", params)
        return "\n".join("    " + row[0] for row in cursor.fetchall())


@contextmanager
def _scratch_table() -> Iterator[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_scratch")
        cursor.execute("CREATE TEMP TABLE bench_scratch (prospect_id bigint)")
    try:
        yield "bench_scratch"
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS bench_scratch")


def _baseline_insert(repeat: int) -> float:
    """INSERT INTO <temp table> SELECT id … WHERE <hand-written conditions>, best of ``repeat``."""
    from django.db import connection

    from prospects.models import Prospect

    table = Prospect._meta.db_table
    timings = []
    with _scratch_table() as scratch, connection.cursor() as cursor:
        for _ in range(repeat):
            cursor.execute(f"TRUNCATE {scratch}")
            started = time.perf_counter()
            cursor.execute(
                f"INSERT INTO {scratch} SELECT id FROM {table} WHERE {BASELINE_WHERE}"  # noqa: S608
            )
            timings.append(time.perf_counter() - started)
    return min(timings)


def _membership_insert_baseline(list_id: int) -> float:
    """The same rows written by hand into the real membership table (its indexes and foreign
    keys): what any refresh must at least pay to insert them."""
    from django.db import connection

    from prospects.models import ListMembership, Prospect

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {ListMembership._meta.db_table} "  # noqa: S608 - names from Django
            f"(prospect_list_id, prospect_id, source, created_at) "
            f"SELECT %s, id, 'criteria', now() FROM {Prospect._meta.db_table} "
            f"WHERE {BASELINE_WHERE}",
            [list_id],
        )
    return time.perf_counter() - started


def _verdict(seconds: float, target: float) -> str:
    return "PASS" if seconds < target else "MISS"


def _row(label: str, seconds: float, baseline: float | None, target: float | None) -> str:
    ratio = f"{seconds / baseline:7.1f}x" if baseline else " " * 8
    baseline_text = f"{baseline:8.4f} s" if baseline is not None else " " * 10
    target_text = f"< {target:g} s  {_verdict(seconds, target)}" if target is not None else ""
    return f"  {label:<46} {seconds:8.4f} s  {baseline_text}  {ratio}  {target_text}".rstrip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--prospects", type=int, default=DEFAULT_PROSPECTS)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each count")
    parser.add_argument(
        "--refresh-repeat", type=int, default=3, help="fresh lists refreshed (best kept)"
    )
    parser.add_argument("--no-explain", action="store_true", help="skip the query plans")
    parser.add_argument(
        "--try-upper-indexes",
        action="store_true",
        help="also measure the previews with UPPER() expression indexes (dropped afterwards)",
    )
    arguments = parser.parse_args()

    from mapp.devservices import services

    with services() as service_environment:
        for key, value in service_environment.items():
            if key != "DATABASE_URL":
                os.environ.setdefault(key, value)
        database_url = ensure_database(service_environment["DATABASE_URL"], BENCH_DATABASE)
        _setup_django(database_url)
        return _run(arguments)


def _selective_criteria(total: int) -> tuple[dict[str, Any], str, list[Any]]:
    """One prospect by email, typed in capitals: text equality on a column with an index."""
    from prospects.models import Prospect

    email = f"BENCH-{max(total // 2, 1)}@EXAMPLE.JP"
    criteria = {
        "match": "all",
        "conditions": [
            {"subject": "field", "field": "email", "operator": "equals", "value": email}
        ],
    }
    # By hand, case-insensitive as the criteria mean it: the form the unique index is built on.
    baseline = f"SELECT count(*) FROM {Prospect._meta.db_table} WHERE lower(email) = lower(%s)"  # noqa: S608
    return criteria, baseline, [email]


def _measure_preview(
    repeat: int, criteria: dict[str, Any], baseline_sql: str, params: list[Any]
) -> tuple[float, float, int, str]:
    """(preview seconds, baseline seconds, count, the SQL .count() really sends)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from prospects.criteria import prospects_matching, validate_criteria

    clean = validate_criteria(criteria)
    baseline_seconds, baseline_count = _best_of(repeat, lambda: _scalar(baseline_sql, params))
    preview_seconds, preview_count = _best_of(repeat, lambda: prospects_matching(clean).count())
    if preview_count != baseline_count:
        raise SystemExit(f"MISMATCH: criteria count {preview_count} != SQL {baseline_count}")
    # Django drops the default ORDER BY for a count: capture the statement it really sends.
    with CaptureQueriesContext(connection) as queries:
        prospects_matching(clean).count()
    return preview_seconds, baseline_seconds, preview_count, queries.captured_queries[-1]["sql"]


def _run(arguments: argparse.Namespace) -> int:
    from prospects.models import ListMembership, Prospect, ProspectList
    from prospects.services import dynamic_list_refresh, list_create

    total = _ensure_prospects(arguments.prospects)
    table = Prospect._meta.db_table
    server_version = _scalar("SHOW server_version")
    print(
        f"\nmapp bench: dynamic list over {total:,} prospects "
        f"(database {BENCH_DATABASE}, PostgreSQL {server_version})"
    )
    print(
        "criteria: (industry = IT OR industry = 製造) AND job_level >= 3 AND employee_count >= 100"
    )

    # 1. the preview count, against the hand-written COUNT
    baseline_sql = f"SELECT count(*) FROM {table} WHERE {BASELINE_WHERE}"  # noqa: S608
    preview_seconds, baseline_count_seconds, matching_count, preview_sql = _measure_preview(
        arguments.repeat, CRITERIA, baseline_sql, []
    )
    selective, selective_baseline_sql, selective_params = _selective_criteria(total)
    selective_seconds, selective_baseline_seconds, _one, selective_sql = _measure_preview(
        arguments.repeat, selective, selective_baseline_sql, selective_params
    )
    print(f"matching prospects: {matching_count:,} ({matching_count / total:.1%})\n")
    print(f"  {'step':<46} {'time':>10}  {'baseline':>10}  {'ratio':>8}  target")
    print(_row("  baseline: hand-written SELECT count(*)", baseline_count_seconds, None, None))
    print(
        _row(
            "preview: prospects_matching().count()",
            preview_seconds,
            baseline_count_seconds,
            PREVIEW_TARGET_SECONDS,
        )
    )
    print(
        _row("  baseline: count(*) WHERE lower(email) = …", selective_baseline_seconds, None, None)
    )
    print(
        _row(
            "preview, selective: email is <one address>",
            selective_seconds,
            selective_baseline_seconds,
            PREVIEW_TARGET_SECONDS,
        )
    )

    # 2. the full refresh of a new dynamic list, against INSERT … SELECT into a temp table.
    # Best of --refresh-repeat fresh lists: the machine's noise hits a 2-second write hard.
    ProspectList.objects.filter(name__startswith=BENCH_LIST_PREFIX).delete()
    baseline_insert_seconds = _baseline_insert(arguments.refresh_repeat)
    first_timings, second_timings, membership_timings = [], [], []
    added = 0
    for attempt in range(arguments.refresh_repeat):
        if attempt:
            ProspectList.objects.filter(name__startswith=BENCH_LIST_PREFIX).delete()
        prospect_list = list_create(
            actor=None,
            name=f"{BENCH_LIST_PREFIX}IT/製造 managers, 100+ employees",
            is_dynamic=True,
            criteria=CRITERIA,
        )
        refresh = functools.partial(dynamic_list_refresh, prospect_list=prospect_list)
        first_seconds, first = _timed(refresh)
        second_seconds, second = _timed(refresh)
        if first.member_count != matching_count or second.added_count or second.removed_count:
            print(f"UNEXPECTED refresh result: first {first.__dict__}, second {second.__dict__}")
            return 1
        first_timings.append(first_seconds)
        second_timings.append(second_seconds)
        added = first.added_count
        scratch_list = ProspectList.objects.create(name=f"{BENCH_LIST_PREFIX}scratch")
        membership_timings.append(_membership_insert_baseline(scratch_list.pk))
        scratch_list.delete()

    print(_row("  baseline: INSERT INTO temp SELECT id", baseline_insert_seconds, None, None))
    print(
        _row(
            f"full refresh, first run (+{added:,})",
            min(first_timings),
            baseline_insert_seconds,
            REFRESH_TARGET_SECONDS,
        )
    )
    print(
        _row(
            "full refresh, second run (no changes)",
            min(second_timings),
            baseline_insert_seconds,
            REFRESH_TARGET_SECONDS,
        )
    )
    print(
        _row(
            "  for scale: INSERT INTO memberships by hand",
            min(membership_timings),
            baseline_insert_seconds,
            None,
        )
    )
    print(
        "  (refresh runs, seconds: first "
        + ", ".join(f"{seconds:.2f}" for seconds in first_timings)
        + "; second "
        + ", ".join(f"{seconds:.2f}" for seconds in second_timings)
        + ")"
    )
    members = ListMembership.objects.filter(prospect_list=prospect_list).count()
    print(f"\nmembers now in {prospect_list.name!r}: {members:,}")

    if not arguments.no_explain:
        print("\nSQL of the preview count:\n    " + preview_sql)
        print("\nEXPLAIN ANALYZE, hand-written baseline count:")
        print(_explain(baseline_sql, []))
        print("\nEXPLAIN ANALYZE, preview count:")
        print(_explain(preview_sql, []))
        print("\nSQL of the selective preview:\n    " + selective_sql)
        print("\nEXPLAIN ANALYZE, selective baseline (lower(email), the unique index):")
        print(_explain(selective_baseline_sql, selective_params))
        print("\nEXPLAIN ANALYZE, selective preview:")
        print(_explain(selective_sql, []))

    if arguments.try_upper_indexes:
        _try_upper_indexes(arguments, preview_sql, selective_sql, table)
    return 0


def _try_upper_indexes(
    arguments: argparse.Namespace, preview_sql: str, selective_sql: str, table: str
) -> None:
    """What expression indexes matching the compiled UPPER(col) = UPPER(value) would change.

    Built, measured and dropped again, so the benchmark database keeps the app's schema."""
    from django.db import connection

    statements = {
        "bench_upper_industry": f"CREATE INDEX bench_upper_industry ON {table} (UPPER(industry))",
        "bench_upper_email": f"CREATE INDEX bench_upper_email ON {table} (UPPER(email))",
    }
    print("\nexperiment: expression indexes on UPPER(industry) and UPPER(email)")
    try:
        with connection.cursor() as cursor:
            for statement in statements.values():
                started = time.perf_counter()
                cursor.execute(statement)
                print(f"  {statement}: {time.perf_counter() - started:.1f} s")
            cursor.execute(f"ANALYZE {table}")
        for label, sql_text in (("preview", preview_sql), ("selective preview", selective_sql)):
            seconds, _count = _best_of(arguments.repeat, functools.partial(_scalar, sql_text))
            print(f"  {label} with the indexes: {seconds:.4f} s")
            print(_explain(sql_text, []))
    finally:
        with connection.cursor() as cursor:
            for name in statements:
                cursor.execute(f"DROP INDEX IF EXISTS {name}")


if __name__ == "__main__":
    sys.exit(main())
