"""Benchmark: importing 100,000 synthetic Japanese prospects from a Shift_JIS CSV.

    .venv/bin/python bench/import_csv.py [--rows N] [--seed S]
    # or, with the services' environment:
    .venv/bin/mapp manage shell -c \
        "import runpy; runpy.run_path('bench/import_csv.py', run_name='__main__')"

The file is what Excel in Japan writes (CP932, CRLF, Japanese headers): 15 columns, 8,000
companies each spelled several ways (株式会社 / (株) / ㈱ / full-width), department and job
titles to classify, and 1 % of rows repeating an earlier person's email address.

Measured against a baseline timed in the same run on the same rows:
  * baseline: a plain ``COPY … FROM STDIN (FORMAT csv)`` of the file into a scratch table with a
    text column per CSV column (no validation, no 名寄せ, no indexes): the floor for moving those
    bytes into PostgreSQL;
  * import: ``import_job_create`` (encoding detection, storing the file) + ``import_job_run`` (the
    whole Celery task body: parsing, validation, normalisation, dedup lookups, bulk writes,
    companies, counters per batch) into an empty prospects table;  target ≥ 2,000 rows/s
  * re-import: the same file again, so every row matches an existing prospect (lookups and
    comparisons, nothing to write);
  * re-import with every row changed (new job title and phone): lookups and an UPDATE per batch.

It runs in its own database, ``mapp_bench``, on the server the app uses (DATABASE_URL, or the
embedded PostgreSQL of ``mapp.devservices``): the development database is never touched. The
file is stored under a temporary MEDIA_ROOT, and Celery messages go to an in-memory broker, so
no worker picks up anything the benchmark does.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from benchdb import ensure_database  # noqa: E402

BENCH_DATABASE = "mapp_bench"
DEFAULT_ROWS = 100_000
TARGET_ROWS_PER_SECOND = 2000

HEADERS = [
    "会社名", "部署", "役職", "姓", "名", "セイ", "メイ", "メールアドレス", "電話番号",
    "郵便番号", "都道府県", "市区町村", "住所", "業種", "従業員数",
]  # fmt: skip
LAST_NAMES = [
    ("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"),
    ("伊藤", "イトウ"), ("渡辺", "ワタナベ"), ("山本", "ヤマモト"), ("中村", "ナカムラ"),
    ("小林", "コバヤシ"), ("加藤", "カトウ"), ("吉田", "ヨシダ"), ("山田", "ヤマダ"),
    ("佐々木", "ササキ"), ("山口", "ヤマグチ"), ("松本", "マツモト"), ("井上", "イノウエ"),
    ("木村", "キムラ"), ("林", "ハヤシ"), ("斎藤", "サイトウ"), ("清水", "シミズ"),
]  # fmt: skip
FIRST_NAMES = [
    ("太郎", "タロウ"), ("花子", "ハナコ"), ("一郎", "イチロウ"), ("美咲", "ミサキ"),
    ("健", "ケン"), ("陽子", "ヨウコ"), ("翔太", "ショウタ"), ("さくら", "サクラ"),
    ("大輔", "ダイスケ"), ("真由美", "マユミ"), ("拓也", "タクヤ"), ("愛", "アイ"),
]  # fmt: skip
COMPANY_STEMS = [
    "サンプル", "テクノ", "みらい", "日本", "東京", "グローバル", "ソリューションズ", "システム",
    "ネクスト", "アーク", "さくら", "富士", "大和", "北斗", "光", "ABC", "データ", "クラウド",
]  # fmt: skip
COMPANY_SUFFIXES = ["商事", "工業", "電機", "製作所", "ホールディングス", "物産", "技研", "情報"]
DEPARTMENTS = [
    "営業部", "第一営業部", "マーケティング部", "情報システム部", "経営企画室", "人事部",
    "経理部", "総務部", "開発本部", "製造部", "カスタマーサポート部", "広報部",
]  # fmt: skip
TITLES = [
    "部長", "課長", "係長", "主任", "担当", "代表取締役", "取締役", "マネージャー", "",
    "営業部長", "課長代理", "スタッフ", "執行役員", "リーダー",
]  # fmt: skip
PREFECTURES = ["東京都", "大阪府", "神奈川県", "愛知県", "福岡県", "北海道", "京都府", "埼玉県"]
INDUSTRIES = ["IT", "製造", "金融", "小売", "不動産", "医療", "建設", "物流", "教育", "サービス"]
DOMAINS = ["example.co.jp", "example.jp", "example.com", "sample.ne.jp"]


# --- synthetic file ------------------------------------------------------------------------------


def _company_spellings(stem: str) -> list[str]:
    """One company, written the ways people write it."""
    full_width = stem.translate(
        {code: code + 0xFEE0 for code in range(ord("!"), ord("~") + 1)}
    )  # ABC → ＡＢＣ
    return [
        f"株式会社{stem}",
        f"(株){stem}",
        f"㈱{stem}",
        f"{stem}株式会社",
        f"株式会社{full_width}",
    ]


def generate_rows(count: int, seed: int) -> list[list[str]]:
    generator = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    companies = [
        f"{generator.choice(COMPANY_STEMS)}{generator.choice(COMPANY_SUFFIXES)}{number}"
        for number in range(8000)
    ]
    rows: list[list[str]] = []
    for number in range(count):
        if rows and generator.random() < 0.01:
            # The same person again (a second business card): same email, newer title.
            earlier = list(generator.choice(rows))
            earlier[2] = generator.choice(TITLES)
            rows.append(earlier)
            continue
        last, last_kana = generator.choice(LAST_NAMES)
        first, first_kana = generator.choice(FIRST_NAMES)
        company = generator.choice(_company_spellings(generator.choice(companies)))
        prefecture = generator.choice(PREFECTURES)
        rows.append(
            [
                company,
                generator.choice(DEPARTMENTS),
                generator.choice(TITLES),
                last,
                first,
                last_kana,
                first_kana,
                f"user{number}.{seed}@{generator.choice(DOMAINS)}",
                f"0{generator.randint(3, 9)}-{generator.randint(1000, 9999)}-"
                f"{generator.randint(1000, 9999)}",
                f"{generator.randint(100, 999)}-{generator.randint(1000, 9999)}",
                prefecture,
                f"{generator.choice(['中央区', '港区', '北区', '西区'])}",
                f"{generator.randint(1, 9)}-{generator.randint(1, 30)}-{generator.randint(1, 20)}",
                generator.choice(INDUSTRIES),
                str(generator.choice([10, 50, 120, 300, 1000, 5000])),
            ]
        )
    return rows


def excel_csv(rows: list[list[str]]) -> tuple[str, bytes]:
    """The text and its CP932 bytes with CRLF line ends, as Excel (Japan) saves a CSV."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADERS)
    writer.writerows(rows)
    text = buffer.getvalue()
    return text, text.encode("cp932")


# --- database set-up -----------------------------------------------------------------------------


def _setup_django(database_url: str) -> None:
    """Point Django at mapp_bench: before django.setup(), or (inside ``mapp manage shell``) by
    switching the already configured connection."""
    os.environ["CELERY_BROKER_URL"] = "memory://"
    os.environ["CELERY_RESULT_BACKEND"] = "cache+memory://"
    from django.apps import apps

    if apps.ready:
        from django.db import connections

        from mapp.celery import app

        app.conf.update(broker_url="memory://", result_backend="cache+memory://")
        connections["default"].close()
        connections["default"].settings_dict["NAME"] = BENCH_DATABASE
    else:
        os.environ["DATABASE_URL"] = database_url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mapp.settings")
        import django

        django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    assert connection.settings_dict["NAME"] == BENCH_DATABASE


def _empty_tables() -> None:
    from django.db import connection

    from prospects.models import Company, ImportJob, Prospect, Tag

    tables = [model._meta.db_table for model in (Prospect, Company, ImportJob, Tag)]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        cursor.execute(f"VACUUM ANALYZE {', '.join(tables)}")


# --- measuring -----------------------------------------------------------------------------------


def copy_baseline(text: str) -> float:
    """COPY the same rows into a scratch table of text columns."""
    from django.db import connection

    columns = ", ".join(f"c{index} text" for index in range(len(HEADERS)))
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_import_scratch")
        cursor.execute(f"CREATE TABLE bench_import_scratch ({columns})")
        started = time.perf_counter()
        with cursor.copy(  # psycopg's cursor, behind Django's wrapper
            "COPY bench_import_scratch FROM STDIN WITH (FORMAT csv, HEADER true)"
        ) as copy:
            copy.write(text)
        elapsed = time.perf_counter() - started
        cursor.execute("SELECT count(*) FROM bench_import_scratch")
        copied = cursor.fetchone()[0]
        cursor.execute("DROP TABLE bench_import_scratch")
    assert copied == text.count("\r\n") - 1, copied
    return elapsed


def timed_import(content: bytes, actor: Any) -> tuple[float, Any]:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from prospects.importing import import_guess_mapping, import_job_create, import_job_run
    from prospects.models import ImportJob

    started = time.perf_counter()
    job = import_job_create(
        actor=actor, uploaded_file=SimpleUploadedFile("bench.csv", content, "text/csv")
    )
    # The mapping page's step, without the on-commit .delay() of import_job_start: the task
    # body runs here, in this process.
    ImportJob.objects.filter(pk=job.pk).update(
        mapping={"columns": import_guess_mapping(HEADERS), "headers": HEADERS}
    )
    finished = import_job_run(job_id=job.pk)
    return time.perf_counter() - started, finished


def _line(label: str, rows: int, seconds: float, baseline: float | None = None) -> str:
    rate = rows / seconds if seconds else float("inf")
    ratio = f"{seconds / baseline:7.1f}x COPY" if baseline else ""
    return f"  {label:<34} {seconds:8.2f} s  {rate:10,.0f} rows/s  {ratio}"


def run(arguments: argparse.Namespace) -> int:
    from django.db import connection
    from django.test import override_settings

    from mapp.models import Role, User
    from mapp.roles import ensure_default_roles
    from prospects.importing import import_guess_mapping
    from prospects.models import Company, JobStatus, Prospect

    _empty_tables()
    ensure_default_roles()
    actor, _created = User.objects.get_or_create(
        email="bench@example.jp", defaults={"role": Role.objects.get(slug=Role.ADMINISTRATOR)}
    )
    rows = generate_rows(arguments.rows, arguments.seed)
    text, content = excel_csv(rows)
    server_version = connection.cursor().connection.info.server_version
    print(
        f"\nmapp bench: CSV import of {len(rows):,} rows "
        f"({len(content) / 1024 / 1024:.1f} MB CP932, {len(HEADERS)} columns; "
        f"database {BENCH_DATABASE}, PostgreSQL {server_version // 10000})"
    )
    print("mapping:", dict(zip(HEADERS, import_guess_mapping(HEADERS), strict=True)))

    copy_seconds = copy_baseline(text)
    with tempfile.TemporaryDirectory() as media_root, override_settings(MEDIA_ROOT=media_root):
        import_seconds, job = timed_import(content, actor)
        if job.status != JobStatus.DONE:
            print(f"import FAILED: {job.failure_reason}")
            return 1
        counts = (
            f"created {job.created_count:,}, updated {job.updated_count:,}, "
            f"skipped {job.skipped_count:,}, rejected {job.error_count:,}; "
            f"{Prospect.objects.count():,} prospects, {Company.objects.count():,} companies"
        )
        again_seconds, again = timed_import(content, actor)
        again_counts = (
            f"created {again.created_count:,}, updated {again.updated_count:,}, "
            f"skipped {again.skipped_count:,}, rejected {again.error_count:,}"
        )
        # Every row changed: a new job title and phone number for everyone.
        changed_rows = [
            [*row[:2], f"{row[2]}（兼務）", *row[3:8], f"{row[8]}-1", *row[9:]] for row in rows
        ]
        changed_seconds, changed = timed_import(excel_csv(changed_rows)[1], actor)
        changed_counts = (
            f"created {changed.created_count:,}, updated {changed.updated_count:,}, "
            f"skipped {changed.skipped_count:,}, rejected {changed.error_count:,}"
        )

    print()
    print(_line("baseline: COPY into scratch table", len(rows), copy_seconds))
    print(_line("import (new prospects)", len(rows), import_seconds, copy_seconds))
    print(f"    {counts}")
    print(_line("re-import (all existing)", len(rows), again_seconds, copy_seconds))
    print(f"    {again_counts}")
    print(_line("re-import (every row changed)", len(rows), changed_seconds, copy_seconds))
    print(f"    {changed_counts}")
    rate = len(rows) / import_seconds
    verdict = "PASS" if rate >= TARGET_ROWS_PER_SECOND else "MISS"
    print(f"\n  target ≥ {TARGET_ROWS_PER_SECOND:,} rows/s: {rate:,.0f} rows/s  {verdict}")
    return 0 if verdict == "PASS" else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--seed", type=int, default=20260101)
    from django.apps import apps

    # Inside ``mapp manage shell -c …`` (Django already set up) sys.argv is the shell's.
    arguments = parser.parse_args([] if apps.ready else sys.argv[1:])

    from mapp.devservices import services

    with services() as service_environment:
        for key, value in service_environment.items():
            if key != "DATABASE_URL":
                os.environ.setdefault(key, value)
        _setup_django(ensure_database(service_environment["DATABASE_URL"], BENCH_DATABASE))
        return run(arguments)


if __name__ == "__main__":
    sys.exit(main())
