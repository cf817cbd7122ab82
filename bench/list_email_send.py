"""Benchmark: a list email to 20,000 prospects through the whole send pipeline, against a bare loop.

    .venv/bin/python bench/list_email_send.py [--messages N] [--rounds R] [--workers W]
                                              [--parallelism P] [--warm-up N]
                                              [--profile-batches B] [--database NAME]

Both sides send the same personalised, tracked, DKIM-signed list email (Japanese newsletter,
≈ 8 KB of HTML with a <style> block and seven links, a written plain-text part, merge fields
with defaults, the preheader, the open pixel, RFC 8058 headers; RSA-2048, relaxed/relaxed) to
the same prospects, over SMTP to the same sink:

  * the sink: an aiosmtpd server in a process of its own (this file with ``--sink``) that keeps
    nothing but a count per recipient address, the bytes, the first and last arrival times and
    the first two messages of a phase (checked with dkimpy's verifier afterwards);
  * the baseline, a bare loop in this process: the prospects read in one query, then for each
    one the subject, preheader, HTML and text rendered with ``mapp.templating``, the CSS inlined
    (css-inline), every trackable link and the pixel rewritten with ``tracking.links``, the
    message built with the stdlib (``EmailMessage``), signed by ``emails.dkim.DkimSigner`` (key
    parsed once) and handed to one persistent ``smtplib`` connection; nothing is written to the
    database;
  * the app: the real pipeline as ``mapp run`` runs it. A ``ListEmail`` is created on a list of
    N prospects and scheduled for now with ``list_email_schedule`` (its checks: verified domain,
    unsubscribe link, 特定電子メール法 particulars); its on-commit hook queues
    ``emails.start_list_email``, which a real Celery worker process (``mapp.cli.stack_commands``,
    ``--concurrency W``, every queue) runs: the recipient snapshot, then
    ``EMAIL_SEND_PARALLELISM`` send tasks that claim batches with SKIP LOCKED, build, sign,
    deliver, mark each row and record EMAIL_SENT activities (delivered to the activity
    consumers by the same worker). Beat is not started (nothing here waits on the dispatcher).

Each side is timed from its start (the schedule call; the query) to the sink's arrival time of
the N-th message; the ratio pipeline / bare loop is printed with PASS / MISS against 70 %, and
the pipeline's rate against the issue's bar (well over 100 messages/s on 2 cores with the sink
beside them). Correctness is checked on every phase: each address received exactly one message
(the set of addresses is compared with the expected one), a sample of messages verifies with
dkimpy against the published key, and after the pipeline every recipient row is "sent" and the
list email "sent". The exit status is 1 when a check fails; a missed speed target is printed,
never an error (ratios are judged by people; tests never assert timings). CPU seconds per
message of each process group (this process, the sink, the worker with its pool, the rest of
the machine: PostgreSQL, Redis and anything else running) are printed for each phase.

Both sides are warmed up first (a send of ``--warm-up`` messages to other prospects, and as
many bare-loop messages). ``--rounds R`` runs bare loop + pipeline R times (the ratio of each
round and their median are printed). ``--profile-batches B`` then stops the worker and runs B
batches of ``emails.sending.list_email_send_batch`` in this process under cProfile (after one
batch unprofiled): the top functions are printed and the profile saved under var/bench/.

It runs in its own database, ``mapp_bench_send`` (``--database``), on the server the app uses
(DATABASE_URL, or the embedded PostgreSQL, started if needed), migrated on every run; list
emails, recipients and activities there are emptied at the start, the prospects are kept (a
second run skips generating them). Redis: a database of its own, claimed with the e2e stacks'
claim key (so no test stack takes it meanwhile), flushed before and after. The DKIM key lives
in var/bench/dkim/. The worker's log: var/bench/list_email_send_worker.<database>.log. One run
per database at a time (a lock in var/bench/).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import cProfile
import hashlib
import html
import json
import os
import pstats
import re
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from benchdb import ensure_database, one_run_at_a_time, url_with_path  # noqa: E402

if TYPE_CHECKING:
    from emails.models import ListEmail, SendingDomain
    from prospects.models import Prospect, ProspectList

BENCH_DATABASE = "mapp_bench_send"
BENCH_DIR = PROJECT_ROOT / "var" / "bench"
DEFAULT_MESSAGES = 20_000
DEFAULT_WARM_UP = 200
TARGET_RATIO = 0.70
TARGET_RATE = 100.0  # messages/s on 2 cores with the sink beside them (the issue's bar)
STALL_SECONDS = 60.0  # no new message at the sink for this long: the phase has failed
SINK_SAMPLES = 2
WORKER_START_TIMEOUT_SECONDS = 60.0
IDLE_TIMEOUT_SECONDS = 180.0
# Other processes using more than this many cores during a phase make its wall-clock rate moot.
SHARED_MACHINE_CORES = 0.25

# The e2e stacks' Redis claim (tests/e2e/conftest.py): a database holding this key is in use.
REDIS_CLAIM_KEY = "mapp:e2e:stack"
REDIS_CLAIM_SECONDS = 6 * 60 * 60
# From the top down (the e2e stacks claim from 2 up); 9 is bench/tracking_hits.py's.
REDIS_DATABASES = [number for number in range(15, 1, -1) if number != 9]

DOMAIN = "news.bench-mapp.example.jp"
SELECTOR = "bench2048"
SITE_URL = "https://go.bench-mapp.example.jp"
SENDER_NAME = "株式会社マップ ウェビナー事務局"
SENDER_ADDRESS = f"webinar@{DOMAIN}"
REPLY_TO = f"support@{DOMAIN}"
MAIN_PREFIX = "send"
WARM_PREFIX = "warm"
CUSTOMER_DOMAIN = "customer.bench-mapp.example.com"

SUBJECT = "{{ prospect.last_name }}様 【12月開催】データ活用ウェビナーのご案内"
PREHEADER = (
    "{{ prospect.company|default('貴社') }}のマーケティング部門の皆さまへ、席数限定のご案内です"
)
HTML = """<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><title>ウェビナーのご案内</title>
<style>
body { margin: 0; padding: 0; background: #f4f5f7;
  font-family: "Hiragino Sans", Meiryo, sans-serif; }
.wrapper { max-width: 640px; margin: 0 auto; background: #ffffff; padding: 24px; }
h1 { font-size: 22px; color: #1a2b4c; margin: 0 0 16px; }
h2 { font-size: 17px; color: #1a2b4c; border-left: 4px solid #0b5cff; padding-left: 8px; }
p { font-size: 15px; line-height: 1.7; color: #333333; margin: 0 0 14px; }
ul { padding-left: 20px; } li { font-size: 15px; line-height: 1.7; color: #333333; }
.button { display: inline-block; padding: 12px 28px; background: #0b5cff; color: #ffffff;
  text-decoration: none; border-radius: 4px; font-weight: bold; }
.note { font-size: 13px; color: #666666; }
.footer { border-top: 1px solid #dddddd; margin-top: 24px; padding-top: 16px; }
.footer p { font-size: 12px; color: #888888; }
</style></head>
<body>
<div class="wrapper">
<p>{{ prospect.company|default("貴社") }}<br>
{{ prospect.department }} {{ prospect.job_title|default("ご担当者") }}<br>
{{ prospect.last_name }} {{ prospect.first_name }} 様</p>
<p>いつもお世話になっております。{{ account.name }}の{{ sender.name }}でございます。</p>
<h1>【12月開催】データ活用ウェビナーのご案内</h1>
<p>このたび、マーケティングと営業の連携を強化するためのデータ活用をテーマに、
オンラインセミナーを開催いたします。見込み客の行動データをスコアリングに活かし、
商談化率を高めた事例を中心に、明日から実践できるノウハウをお届けします。</p>
<h2>開催概要</h2>
<ul>
<li>日時：2025年12月10日（水）15:00〜16:00</li>
<li>形式：オンライン（Zoom ウェビナー）</li>
<li>参加費：無料（事前登録制）</li>
<li>対象：マーケティング部門、営業企画部門のご担当者さま</li>
</ul>
<p><a class="button"
href="https://www.bench-mapp.example.jp/webinar/2025-12?utm_source=mapp&amp;utm_medium=email"
>お申し込みはこちら</a></p>
<h2>プログラム</h2>
<p>第1部：スコアリングとグレーディングの基本（20分）<br>
第2部：導入企業さまの事例紹介 ― 商談化率 1.8 倍までの道のり（25分）<br>
第3部：質疑応答（15分）</p>
<p>当日の資料は、
<a href="https://www.bench-mapp.example.jp/download/whitepaper-2025.pdf">ホワイトペーパー</a>
としてもダウンロードいただけます。製品の詳細は
<a href="https://www.bench-mapp.example.jp/products/analytics">製品紹介ページ</a>、
導入企業さまの声は
<a href="https://www.bench-mapp.example.jp/case-studies?industry=manufacturing">導入事例</a>
をご覧ください。</p>
<p class="note">※ 競合企業さまのお申し込みはお断りする場合がございます。
あらかじめご了承ください。<br>
※ 個人情報の取り扱いについては
<a href="https://www.bench-mapp.example.jp/privacy" data-mapp-notrack>プライバシーポリシー</a>
をご確認ください。</p>
<p>ご不明な点は、<a href="mailto:support@news.bench-mapp.example.jp"
>support@news.bench-mapp.example.jp</a>
までお気軽にお問い合わせください。皆さまのご参加を心よりお待ちしております。</p>
<div class="footer">
<p>{{ account.name }}<br>{{ account.postal_address }}<br>
お問い合わせ：{{ account.contact }}</p>
<p>今後このようなご案内が不要な場合は、<a href="{{ unsubscribe_url }}">配信停止</a>
のお手続きをお願いいたします。</p>
</div>
</div>
</body></html>
"""
TEXT = """{{ prospect.company|default("貴社") }}
{{ prospect.department }} {{ prospect.job_title|default("ご担当者") }}
{{ prospect.last_name }} {{ prospect.first_name }} 様

いつもお世話になっております。{{ account.name }}の{{ sender.name }}でございます。

【12月開催】データ活用ウェビナーのご案内

このたび、マーケティングと営業の連携を強化するためのデータ活用をテーマに、
オンラインセミナーを開催いたします。見込み客の行動データをスコアリングに活かし、
商談化率を高めた事例を中心に、明日から実践できるノウハウをお届けします。

■ 開催概要
日時：2025年12月10日（水）15:00〜16:00
形式：オンライン（Zoom ウェビナー）
参加費：無料（事前登録制）

お申し込み：https://www.bench-mapp.example.jp/webinar/2025-12
資料ダウンロード：https://www.bench-mapp.example.jp/download/whitepaper-2025.pdf

--
{{ account.name }}
{{ account.postal_address }}
お問い合わせ：{{ account.contact }}
配信停止：{{ unsubscribe_url }}
"""

LAST_NAMES = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤"]
FIRST_NAMES = ["太郎", "花子", "一郎", "美咲", "健", "陽子", "翔太", "さくら", "大輔", "真由美"]
COMPANIES = ["株式会社サンプル商事", "テクノ工業株式会社", "みらい電機株式会社", "日本データ", ""]
DEPARTMENTS = ["営業部", "マーケティング部", "情報システム部", "経営企画室", ""]
JOB_TITLES = ["部長", "課長", "主任", "マネージャー", ""]


# --- the sink (its own process: ``list_email_send.py --sink``) ---------------------------------


class CountingHandler:
    """aiosmtpd handler: a count per recipient address, bytes, times and a few samples."""

    def __init__(self, keep: int = SINK_SAMPLES) -> None:
        self.lock = threading.Lock()
        self.keep = keep
        self.counts: dict[str, int] = {}
        self.messages = 0
        self.bytes = 0
        self.first_at = 0.0
        self.last_at = 0.0
        self.samples: list[bytes] = []

    def reset(self) -> None:
        with self.lock:
            self.counts = {}
            self.messages = self.bytes = 0
            self.first_at = self.last_at = 0.0
            self.samples = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.time()
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode()
        with self.lock:
            for address in envelope.rcpt_tos:
                key = address.lower()
                self.counts[key] = self.counts.get(key, 0) + 1
            self.messages += 1
            self.bytes += len(content)
            self.first_at = self.first_at or now
            self.last_at = now
            if len(self.samples) < self.keep:
                self.samples.append(bytes(content))
        return "250 Message accepted"

    def stats(self, *, full: bool = False) -> dict[str, Any]:
        with self.lock:
            counts = dict(self.counts) if full else None
            result: dict[str, Any] = {
                "messages": self.messages,
                "bytes": self.bytes,
                "first_at": self.first_at,
                "last_at": self.last_at,
                "distinct": len(self.counts),
            }
        if counts is not None:
            result["extra_copies"] = sum(count - 1 for count in counts.values())
            result["digest"] = _addresses_digest(counts)
        return result


def _addresses_digest(addresses: Any) -> str:
    return hashlib.sha256("\n".join(sorted(addresses)).encode()).hexdigest()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sink_main() -> int:
    """Serve SMTP on a free loopback port; answer commands on stdin with JSON lines."""
    from aiosmtpd.controller import Controller

    handler = CountingHandler()
    port = _free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, data_size_limit=32 * 1024 * 1024
    )
    controller.start()
    print(json.dumps({"port": port}), flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                answer: Any = handler.stats()
            elif command == "stats full":
                answer = handler.stats(full=True)
            elif command == "reset":
                handler.reset()
                answer = {"ok": True}
            elif command == "samples":
                with handler.lock:
                    answer = [base64.b64encode(sample).decode() for sample in handler.samples]
            else:
                break
            print(json.dumps(answer), flush=True)
    finally:
        controller.stop()
    return 0


class Sink:
    """The sink process, driven over its stdin/stdout."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - this very file, fixed arguments
            [sys.executable, str(Path(__file__).resolve()), "--sink"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=PROJECT_ROOT,
        )
        self.port = int(self._read()["port"])

    def _read(self) -> Any:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the SMTP sink exited ({self.process.poll()})")
        return json.loads(line)

    def ask(self, command: str) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._read()

    def stop(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()  # end of commands: the sink stops
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- set-up (before Django) ---------------------------------------------------------------------


@contextlib.contextmanager
def _claimed_redis_database(server_url: str) -> Iterator[str]:
    """A Redis database no e2e stack or other run uses, emptied before and after."""
    import redis

    owner = f"bench-list-email-send:{socket.gethostname()}:{os.getpid()}"
    for number in REDIS_DATABASES:
        url = url_with_path(server_url, str(number))
        client = redis.Redis.from_url(url)
        try:
            if client.set(REDIS_CLAIM_KEY, owner, nx=True, ex=REDIS_CLAIM_SECONDS):
                with client.pipeline(transaction=True) as pipeline:
                    pipeline.flushdb()
                    pipeline.set(REDIS_CLAIM_KEY, owner, ex=REDIS_CLAIM_SECONDS)
                    pipeline.execute()
                break
        except redis.ResponseError:
            client.close()
            continue  # the server has fewer databases
        client.close()
    else:
        raise RuntimeError("no free Redis database for the benchmark (all claimed)")
    try:
        yield url
    finally:
        with contextlib.suppress(redis.RedisError):
            client.flushdb()
        client.close()


def _setup_django(database_url: str, redis_url: str, sink_port: int, parallelism: int) -> None:
    """Point this process (and the worker it starts) at the bench database, Redis and sink."""
    key_dir = BENCH_DIR / "dkim"
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    environment = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DJANGO_SETTINGS_MODULE": "mapp.settings",
        "SITE_URL": SITE_URL,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(sink_port),
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
        "EMAIL_USE_TLS": "false",
        "EMAIL_USE_SSL": "false",
        "EMAIL_SEND_PARALLELISM": str(parallelism),
        "EMAIL_SEND_HOURLY_CAP": "0",
        "EMAIL_SEND_DAILY_CAP": "0",
        "DKIM_KEY_DIR": str(key_dir),
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(environment)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from tracking.partitions import ensure_partitions

    ensure_partitions()


# --- data ---------------------------------------------------------------------------------------


def _address(prefix: str, number: int) -> str:
    return f"{prefix}-{number:06d}@{CUSTOMER_DOMAIN}"


def _audience(prefix: str, count: int) -> ProspectList:
    """The list of the first ``count`` bench prospects with this prefix (made once, kept)."""
    from prospects.models import ListMembership, Prospect, ProspectList

    name = f"bench send: {prefix} {count}"
    existing = ProspectList.objects.filter(name=name).first()
    if existing is not None and existing.memberships.count() == count:
        return existing
    if existing is not None:
        existing.delete()
    addresses = [_address(prefix, number) for number in range(count)]
    known = set(
        Prospect.objects.filter(email__startswith=f"{prefix}-", email__endswith=CUSTOMER_DOMAIN)
        .values_list("email", flat=True)
        .iterator()
    )
    missing = [(number, email) for number, email in enumerate(addresses) if email not in known]
    Prospect.objects.bulk_create(
        (
            Prospect(
                email=email,
                last_name=LAST_NAMES[number % len(LAST_NAMES)],
                first_name=FIRST_NAMES[number // len(LAST_NAMES) % len(FIRST_NAMES)],
                company_name=COMPANIES[number % len(COMPANIES)],
                department=DEPARTMENTS[number // 3 % len(DEPARTMENTS)],
                job_title=JOB_TITLES[number // 7 % len(JOB_TITLES)],
            )
            for number, email in missing
        ),
        batch_size=2000,
    )
    # Any earlier run's opt-outs or bounces (there are none by design) would shrink the send.
    Prospect.objects.filter(email__in=addresses).update(
        opted_out=False, do_not_email=False, hard_bounced_at=None, soft_bounce_count=0
    )
    prospect_list = ProspectList.objects.create(name=name)
    ListMembership.objects.bulk_create(
        (
            ListMembership(prospect_list=prospect_list, prospect_id=prospect_id)
            for prospect_id in Prospect.objects.filter(email__in=addresses)
            .values_list("pk", flat=True)
            .iterator()
        ),
        batch_size=5000,
    )
    return prospect_list


def _sending_domain() -> SendingDomain:
    """A verified domain with its RSA-2048 key (kept between runs while the key file exists)."""
    from emails.models import DomainStatus, SendingDomain
    from emails.services import sending_domain_create

    domain = SendingDomain.objects.filter(domain=DOMAIN).first()
    if domain is not None and not domain.private_key_path.exists():
        domain.delete()
        domain = None
    if domain is None:
        domain = sending_domain_create(domain=DOMAIN, selector=SELECTOR)
    # DNS cannot be published from here: verification is the one step taken for granted (as in
    # the e2e tests); sending still refuses an unverified domain.
    SendingDomain.objects.filter(pk=domain.pk).update(status=DomainStatus.VERIFIED)
    domain.refresh_from_db()
    return domain


def _account_identity() -> None:
    from mapp.models import AccountSettings

    account = AccountSettings.load()
    account.name = "株式会社マップ"
    account.postal_address = "〒100-0001 東京都千代田区千代田1-1 マップビル 5F"
    account.contact_email = "info@bench-mapp.example.jp"
    account.contact_phone = "03-1234-5678"
    account.save()


def _empty_sends() -> None:
    """Earlier runs' sends and activities: every run starts from the same table sizes."""
    from django.db import connection

    from emails.models import ListEmail, Recipient
    from tracking.models import Activity, ActivityDelivery

    tables = ", ".join(
        model._meta.db_table for model in (ListEmail, Recipient, Activity, ActivityDelivery)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables} CASCADE")  # the benchmark's own database only


def _list_email(domain: SendingDomain, prospect_list: ProspectList, name: str) -> ListEmail:
    from emails.services import list_email_create

    return list_email_create(
        actor=None,
        name=name,
        recipient_lists=[prospect_list],
        sending_domain=domain,
        subject=SUBJECT,
        preheader=PREHEADER,
        html=HTML,
        text=TEXT,
        sender_type="custom",
        sender_name=SENDER_NAME,
        sender_address=SENDER_ADDRESS,
        reply_to=REPLY_TO,
    )


def _audience_prospects(prospect_list: ProspectList) -> list[Prospect]:
    from prospects.models import ListMembership, Prospect

    return list(
        Prospect.objects.filter(
            pk__in=ListMembership.objects.filter(prospect_list=prospect_list).values("prospect_id")
        ).order_by("pk")
    )


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Cpu:
    """CPU seconds used so far by each of our process groups (per process, so that processes
    started during a phase count from zero), and by the whole machine."""

    processes: dict[str, dict[int, float]]
    machine: float

    @classmethod
    def now(cls, groups: dict[str, tuple[int, bool]], database: str) -> Cpu:
        """``groups``: label → (pid, whether its descendants are counted instead of it);
        "postgres" is added: the server processes serving ``database``."""
        import psutil

        def seconds(process: psutil.Process) -> float:
            times = process.cpu_times()
            return float(times.user + times.system)

        found: dict[str, dict[int, float]] = {}
        for label, (pid, descendants) in groups.items():
            found[label] = {}
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                members = root.children(recursive=True) if descendants else [root]
                for process in members:
                    with contextlib.suppress(psutil.Error):
                        found[label][process.pid] = seconds(process)
        found["postgres"] = {}
        for process in psutil.process_iter(["cmdline"]):
            title = " ".join(process.info["cmdline"] or ())
            if title.startswith("postgres:") and f" {database} " in f"{title} ":
                with contextlib.suppress(psutil.Error):
                    found["postgres"][process.pid] = seconds(process)
        machine = psutil.cpu_times()
        busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        return cls(found, busy)

    def since(self, earlier: Cpu) -> Cpu:
        deltas = {
            label: {
                pid: max(value - earlier.processes.get(label, {}).get(pid, 0.0), 0.0)
                for pid, value in members.items()
            }
            for label, members in self.processes.items()
        }
        return Cpu(deltas, self.machine - earlier.machine)

    @property
    def groups(self) -> dict[str, float]:
        return {label: sum(members.values()) for label, members in self.processes.items()}


@dataclass
class Phase:
    round: int
    name: str
    expected: int
    started_at: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    cpu: Cpu | None = None
    wall: float = 0.0
    senders: int = 1
    problems: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def messages(self) -> int:
        return int(self.stats.get("messages", 0))

    @property
    def seconds(self) -> float:
        return max(float(self.stats.get("last_at", 0.0)) - self.started_at, 1e-9)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.messages else 0.0

    @property
    def steady_rate(self) -> float:
        span = float(self.stats.get("last_at", 0.0)) - float(self.stats.get("first_at", 0.0))
        return (self.messages - 1) / span if self.messages > 1 and span > 0 else 0.0


class Run:
    """Everything one benchmark run holds: the sink, the worker, the data, the phases."""

    def __init__(self, arguments: argparse.Namespace, sink: Sink) -> None:
        self.arguments = arguments
        self.sink = sink
        self.worker: subprocess.Popen[bytes] | None = None
        self.worker_log: Any = None
        self.phases: list[Phase] = []
        _empty_sends()
        _account_identity()
        self.domain = _sending_domain()
        started = time.perf_counter()
        self.main_list = _audience(MAIN_PREFIX, arguments.messages)
        self.warm_list = _audience(WARM_PREFIX, arguments.warm_up)
        self.setup_seconds = time.perf_counter() - started
        self.expected_digest = _addresses_digest(
            _address(MAIN_PREFIX, number) for number in range(arguments.messages)
        )

    # --- the worker ---

    def cpu_groups(self) -> dict[str, tuple[int, bool]]:
        groups = {"this process": (os.getpid(), False), "sink": (self.sink.process.pid, False)}
        if self.worker is not None:
            groups["celery"] = (self.worker.pid, False)  # the worker's main process
            groups["worker"] = (self.worker.pid, True)  # its pool processes
        return groups

    def start_worker(self) -> None:
        from mapp.celery import app as celery_app
        from mapp.cli import stack_commands

        command = stack_commands(
            host="127.0.0.1", port=os.getpid(), concurrency=self.arguments.workers
        )["worker"]
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        log_name = f"list_email_send_worker.{self.arguments.database}.log"
        self.worker_log = (BENCH_DIR / log_name).open("wb")
        self.worker = subprocess.Popen(  # noqa: S603 - our own celery, fixed arguments
            command,
            env=dict(os.environ),
            stdout=self.worker_log,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            start_new_session=True,
        )
        deadline = time.monotonic() + WORKER_START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.worker.poll() is not None:
                raise RuntimeError(f"the Celery worker exited; see {self.worker_log.name}")
            if celery_app.control.ping(timeout=0.5):
                return
        raise RuntimeError(f"the Celery worker did not answer; see {self.worker_log.name}")

    def stop_worker(self) -> None:
        if self.worker is None:
            return
        if self.worker.poll() is None:
            os.killpg(self.worker.pid, signal.SIGTERM)
            try:
                self.worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.worker.pid, signal.SIGKILL)
                self.worker.wait()
        self.worker = None
        if self.worker_log is not None:
            self.worker_log.close()

    def wait_worker_idle(self) -> None:
        """Until the worker has no task queued, reserved, scheduled or running (the activity
        deliveries a send leaves behind), so the next phase does not share the cores."""
        from django.conf import settings

        from mapp.celery import app as celery_app
        from mapp.health import redis_client

        client = redis_client()
        deadline = time.monotonic() + IDLE_TIMEOUT_SECONDS
        quiet = 0
        while time.monotonic() < deadline and quiet < 2:
            queued = sum(int(client.llen(name)) for name in settings.CELERY_QUEUE_NAMES)
            inspect = celery_app.control.inspect(timeout=0.5)
            busy = [
                task
                for answer in (inspect.active(), inspect.reserved(), inspect.scheduled())
                for tasks in (answer or {}).values()
                for task in tasks
            ]
            quiet = quiet + 1 if not queued and not busy else 0
            time.sleep(0.5)

    # --- phases ---

    def _wait_for_sink(
        self, phase: Phase, count: int, cpu_before: Cpu, wall_started: float
    ) -> None:
        """Until the sink has ``count`` messages (or nothing arrives for a while); the phase's
        CPU and wall time are taken right then."""
        last_count, last_change = -1, time.monotonic()
        while True:
            stats = self.sink.ask("stats")
            if stats["messages"] >= count:
                break
            if stats["messages"] != last_count:
                last_count, last_change = stats["messages"], time.monotonic()
            elif time.monotonic() - last_change > self.arguments.stall_seconds:
                phase.problems.append(
                    f"stalled at {stats['messages']:,} of {count:,} messages for "
                    f"{self.arguments.stall_seconds:g} s"
                )
                break
            time.sleep(0.05)
        phase.cpu = Cpu.now(self.cpu_groups(), self.arguments.database).since(cpu_before)
        phase.wall = time.monotonic() - wall_started

    def _finish_phase(self, phase: Phase) -> None:
        phase.stats = self.sink.ask("stats full")
        if phase.stats["messages"] != phase.expected:
            phase.problems.append(
                f"{phase.stats['messages']:,} messages arrived, {phase.expected:,} expected"
            )
        if phase.stats["extra_copies"]:
            phase.problems.append(f"{phase.stats['extra_copies']:,} addresses got a second copy")
        if phase.stats["digest"] != self.expected_digest:
            phase.problems.append("the addresses that received a message are not the expected")
        phase.problems.extend(self._dkim_problems())
        self.phases.append(phase)

    def _dkim_problems(self) -> list[str]:
        import dkim

        from emails.services import sending_domain_dkim_record

        name, value = sending_domain_dkim_record(self.domain)

        def dnsfunc(query: bytes, timeout: int = 5) -> bytes:
            return value.encode() if query.decode().rstrip(".") == name else b""

        problems = []
        samples = self.sink.ask("samples")
        for sample in samples:
            data = base64.b64decode(sample)
            if not dkim.verify(data, dnsfunc=dnsfunc):
                problems.append("a message's DKIM signature does not verify")
            for header in (b"List-Unsubscribe:", b"List-Unsubscribe-Post:", b"DKIM-Signature:"):
                if header not in data:
                    problems.append(f"a message lacks {header.decode()}")
        if not samples:
            problems.append("no sample message to verify")
        return problems

    def bare_loop(self, round_number: int, count: int | None = None, *, warm: bool = False) -> None:
        prospect_list = self.warm_list if warm else self.main_list
        list_email = _list_email(self.domain, prospect_list, f"bench bare loop {round_number}")
        expected = count if count is not None else self.arguments.messages
        phase = Phase(round_number, "bare loop (1 process)", expected)
        self.sink.ask("reset")
        cpu_before = Cpu.now(self.cpu_groups(), self.arguments.database)
        wall_started = time.monotonic()
        phase.started_at = time.time()
        bare_send(list_email, prospect_list, self.sink.port, limit=count)
        if warm:
            return
        self._wait_for_sink(phase, expected, cpu_before, wall_started)
        self._finish_phase(phase)

    def pipeline(self, round_number: int, *, warm: bool = False) -> None:
        from emails.models import ListEmailStatus, Recipient, RecipientStatus
        from emails.services import list_email_schedule

        prospect_list = self.warm_list if warm else self.main_list
        expected = self.arguments.warm_up if warm else self.arguments.messages
        list_email = _list_email(self.domain, prospect_list, f"bench pipeline {round_number}")
        label = f"pipeline (Celery, {self.arguments.workers} processes)"
        phase = Phase(round_number, label, expected, senders=self.arguments.parallelism)
        self.sink.ask("reset")
        cpu_before = Cpu.now(self.cpu_groups(), self.arguments.database)
        wall_started = time.monotonic()
        phase.started_at = time.time()
        list_email_schedule(list_email=list_email)  # on commit (autocommit: now): the task
        self._wait_for_sink(phase, expected, cpu_before, wall_started)
        sent_by = time.monotonic() + 60
        while time.monotonic() < sent_by:
            list_email.refresh_from_db()
            if list_email.status != ListEmailStatus.SENDING:
                break
            time.sleep(0.1)
        finished = time.time()
        if warm:
            self.wait_worker_idle()
            return
        self._finish_phase(phase)
        phase.note = (
            f"list email {list_email.status} {finished - phase.started_at:.1f} s after start"
        )
        if list_email.status != ListEmailStatus.SENT:
            phase.problems.append(
                f"the list email is {list_email.status!r}, not sent "
                f"({list_email.paused_reason or 'no reason given'})"
            )
        rows = Recipient.objects.filter(list_email=list_email)
        sent = rows.filter(status=RecipientStatus.SENT).count()
        if sent != expected:
            phase.problems.append(f"{sent:,} of {expected:,} recipient rows are marked sent")
        self.wait_worker_idle()

    def profile(self, batches: int) -> None:
        """In this process, the worker stopped: ``batches`` batches of
        ``list_email_send_batch`` and as many messages of the bare loop, timed stage by stage
        side by side; then the batches again under cProfile."""
        from emails import sending
        from emails.services import list_email_schedule

        self.stop_worker()
        list_email = _list_email(self.domain, self.main_list, "bench profile")
        list_email_schedule(list_email=list_email)  # queues a start task no worker runs
        sending.list_email_start(list_email_id=list_email.pk)
        sending.list_email_send_batch(list_email_id=list_email.pk)  # warm

        pipeline = StageTimes("list_email_send_batch and the ORM (rest)")
        with pipeline.patched():
            started = time.perf_counter()
            sent = sum(
                pipeline.run(sending.list_email_send_batch, list_email_id=list_email.pk).sent
                for _batch in range(batches)
            )
            pipeline.finish(sent, time.perf_counter() - started)
        bare = StageTimes("bare loop (rest)")
        with bare.patched():
            started = time.perf_counter()
            count = bare.run(bare_send, list_email, self.main_list, self.sink.port, limit=sent)
            bare.finish(count, time.perf_counter() - started)
        print(
            f"\nWhere the time goes, in this process (no worker running): {batches} batches of "
            f"list_email_send_batch ({pipeline.messages:,} messages, "
            f"{pipeline.messages / pipeline.wall:,.0f}/s) and the bare loop over as many "
            f"({bare.messages / bare.wall:,.0f}/s). Each stage without the stages it calls; this "
            "process's CPU time per message, and wall time (SQL and SMTP include waiting for "
            "PostgreSQL and the sink).\n"
        )
        StageTimes.print_side_by_side(bare, pipeline)

        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        sent = sum(
            sending.list_email_send_batch(list_email_id=list_email.pk).sent
            for _batch in range(batches)
        )
        profiler.disable()
        seconds = time.perf_counter() - started
        path = BENCH_DIR / f"list_email_send.{self.arguments.database}.prof"
        profiler.dump_stats(path)
        print(
            f"\ncProfile of {batches} more batches: {sent:,} messages in {seconds:.1f} s "
            f"(cProfile slows Python code several times); saved to "
            f"{path.relative_to(PROJECT_ROOT)}\n"
        )
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(20)
        stats.sort_stats("cumulative").print_stats(35)


class StageTimes:
    """Time per stage of a send, exclusive of the stages each one calls, measured by wrapping
    the functions the pipeline and the bare loop call by name (only inside ``patched()``)."""

    def __init__(self, rest: str) -> None:
        self.rest = rest
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[list[float]] = []
        self.messages = 0
        self.wall = 0.0

    def timed(self, label: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started, cpu_started = time.perf_counter(), time.thread_time()
            self._stack.append([0.0, 0.0])
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                cpu = time.thread_time() - cpu_started
                inner, inner_cpu = self._stack.pop()
                self.seconds[label] = self.seconds.get(label, 0.0) + elapsed - inner
                self.cpu[label] = self.cpu.get(label, 0.0) + cpu - inner_cpu
                self.calls[label] = self.calls.get(label, 0) + 1
                if self._stack:
                    self._stack[-1][0] += elapsed
                    self._stack[-1][1] += cpu

        return wrapper

    def run(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        return self.timed(self.rest, function)(*args, **kwargs)

    def finish(self, messages: int, wall: float) -> None:
        self.messages, self.wall = messages, wall

    @contextlib.contextmanager
    def patched(self) -> Iterator[None]:
        """Wrap the stages where the pipeline (emails.rendering, emails.sending) and the bare
        loop (which imports from the defining modules when it starts) look them up."""
        import email.headerregistry
        import email.message
        import smtplib as smtplib_module

        import css_inline
        import django.urls
        from django.db import connection

        import mapp.templating
        import tracking.links
        from emails import dkim as emails_dkim
        from emails import rendering, sending, unsubscribe

        original_message = email.message.EmailMessage

        class TimedEmailMessage(original_message):  # type: ignore[valid-type, misc]
            pass

        for method, label in (
            ("__setitem__", "MIME: set headers"),
            ("set_content", "MIME: set parts"),
            ("add_alternative", "MIME: set parts"),
            ("as_bytes", "MIME: as_bytes (folding, encoding)"),
        ):
            function = getattr(original_message, method)
            setattr(TimedEmailMessage, method, self.timed(label, function))

        times = self
        original_inliner = css_inline.CSSInliner

        class TimedInliner:
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                inline = original_inliner(*args, **kwargs).inline
                self.inline = times.timed("CSS inlining (css-inline)", inline)

        build = "message_build (rest)"
        patches: list[tuple[Any, str, Any]] = [
            (rendering, "message_build", build),
            (sending, "message_build", build),
            (mapp.templating, "render_marketer_template", "templates: render (Jinja sandbox)"),
            (rendering, "render_marketer_template", "templates: render (Jinja sandbox)"),
            (rendering, "links_rewrite", "links: find and rewrite (regex, checks)"),
            (rendering, "tracked_link_url", "links: click tokens (tracked_link_url)"),
            (tracking.links, "tracked_link_url", "links: click tokens (tracked_link_url)"),
            (rendering, "open_pixel_url", "open pixel token"),
            (tracking.links, "open_pixel_url", "open pixel token"),
            (rendering, "unsubscribe_token", "unsubscribe token"),
            (unsubscribe, "unsubscribe_token", "unsubscribe token"),
            (rendering, "recipient_header_value", "X-Mapp-Recipient signature"),
            (rendering, "reverse", "reverse()"),
            (tracking.links, "reverse", "reverse()"),
            (django.urls, "reverse", "reverse()"),
            (rendering, "sender_for", "sender_for"),
            (rendering, "_html_to_text", "text part from HTML (html2text)"),
            (rendering, "Address", "MIME: set headers"),
            (email.headerregistry, "Address", "MIME: set headers"),
            (emails_dkim.DkimSigner, "sign", "DKIM: sign (dkimpy parse + canon + OpenSSL)"),
            (rendering.SendSetup, "_make", "SendSetup (key file read + PEM parse)"),
            (sending, "smtp_connect", "SMTP: connect (one per batch)"),
            (sending, "smtp_close", "SMTP: QUIT"),
            (sending, "_close", "SMTP: QUIT"),
            (sending, "_record_outcome", "counters + EMAIL_SENT activities (Python)"),
            (smtplib_module.SMTP, "sendmail", "SMTP: sendmail (incl. the sink's replies)"),
        ]
        # The pipeline changes: a stage whose function is gone is left out (and named).
        missing = [f"{name}" for owner, name, _label in patches if name not in owner.__dict__]
        if missing:
            print(f"  (not timed separately, no such function now: {', '.join(missing)})")
        patches = [patch for patch in patches if patch[1] in patch[0].__dict__]
        originals = [(owner, name, owner.__dict__[name]) for owner, name, _label in patches]
        wrappers: dict[tuple[str, str], Any] = {}
        for owner, name, label in patches:
            # One wrapper per function: a module that imported another's name shares it.
            function = getattr(owner, name)
            key = (label, getattr(function, "__qualname__", name))
            if key not in wrappers:
                wrappers[key] = self.timed(label, function)
            setattr(owner, name, wrappers[key])
        originals.append((rendering, "EmailMessage", rendering.EmailMessage))
        originals.append((email.message, "EmailMessage", original_message))
        originals.append((css_inline, "CSSInliner", original_inliner))
        rendering.EmailMessage = TimedEmailMessage  # type: ignore[misc]
        email.message.EmailMessage = TimedEmailMessage  # type: ignore[misc]
        css_inline.CSSInliner = TimedInliner  # type: ignore[misc, assignment]

        def sql(execute: Any, query: str, params: Any, many: bool, context: Any) -> Any:
            return self.timed("SQL (incl. waiting for PostgreSQL)", execute)(
                query, params, many, context
            )

        try:
            with connection.execute_wrapper(sql):
                yield
        finally:
            for owner, name, value in reversed(originals):
                setattr(owner, name, value)

    @staticmethod
    def print_side_by_side(bare: StageTimes, pipeline: StageTimes) -> None:
        def per_message(times: StageTimes, values: dict[str, float], label: str) -> float:
            return values.get(label, 0.0) * 1000 / max(times.messages, 1)

        labels = sorted(
            set(bare.cpu) | set(pipeline.cpu),
            key=lambda label: -per_message(pipeline, pipeline.cpu, label),
        )
        print(
            f"  {'':<46} {'CPU ms/msg':^25}   {'wall ms/msg':^17}   {'calls/msg':^13}\n"
            f"  {'stage':<46} {'bare':>7} {'pipeline':>8} {'diff':>8}   {'bare':>7} "
            f"{'pipeline':>9}   {'bare':>5} {'pipeline':>8}"
        )
        for label in labels:
            bare_cpu = per_message(bare, bare.cpu, label)
            pipeline_cpu = per_message(pipeline, pipeline.cpu, label)
            print(
                f"  {label:<46} {bare_cpu:7.2f} {pipeline_cpu:8.2f} "
                f"{pipeline_cpu - bare_cpu:+8.2f}   {per_message(bare, bare.seconds, label):7.2f} "
                f"{per_message(pipeline, pipeline.seconds, label):9.2f}   "
                f"{bare.calls.get(label, 0) / max(bare.messages, 1):5.2f} "
                f"{pipeline.calls.get(label, 0) / max(pipeline.messages, 1):8.2f}"
            )
        bare_total = sum(bare.cpu.values()) * 1000 / max(bare.messages, 1)
        pipeline_total = sum(pipeline.cpu.values()) * 1000 / max(pipeline.messages, 1)
        bare_wall = bare.wall * 1000 / max(bare.messages, 1)
        pipeline_wall = pipeline.wall * 1000 / max(pipeline.messages, 1)
        print(
            f"  {'total':<46} {bare_total:7.2f} {pipeline_total:8.2f} "
            f"{pipeline_total - bare_total:+8.2f}   {bare_wall:7.2f} {pipeline_wall:9.2f}"
        )


# --- the baseline: a bare loop ------------------------------------------------------------------

_ANCHOR_HREF = re.compile(r"<a\b[^>]*?\bhref=\"([^\"]*)\"[^>]*>", re.IGNORECASE)


def bare_send(
    list_email: ListEmail, prospect_list: ProspectList, port: int, *, limit: int | None = None
) -> int:
    """The least the work needs, written out by hand: render, inline, rewrite, build, sign,
    send over one connection. No database writes, no claims, no checks."""
    from email.headerregistry import Address
    from email.message import EmailMessage
    from email.policy import SMTP
    from email.utils import format_datetime

    import css_inline
    from django.core import signing
    from django.urls import reverse
    from django.utils import timezone

    from emails.dkim import DEFAULT_SIGNED_HEADERS, DkimSigner
    from emails.rendering import RECIPIENT_HEADER_SALT, account_merge_values
    from emails.unsubscribe import unsubscribe_token
    from mapp.templating import MergeContext, render_marketer_template
    from tracking.links import open_pixel_url, tracked_link_url

    domain = list_email.sending_domain
    assert domain is not None
    signer = DkimSigner(
        domain=domain.domain,
        selector=domain.dkim_selector,
        private_key_pem=domain.private_key_path.read_bytes(),
    )
    inliner = css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False)
    recipient_signer = signing.Signer(salt=RECIPIENT_HEADER_SALT)
    account = account_merge_values()
    base_url = SITE_URL
    marker = "TOKEN"
    unsubscribe_path = reverse("emails_public:unsubscribe", kwargs={"token": marker})
    path_before, _marker, unsubscribe_suffix = unsubscribe_path.partition(marker)
    unsubscribe_prefix = base_url + path_before
    mailbox = f"unsubscribe@{domain.domain}"
    email_id = list_email.tracking_id
    sent_at = timezone.now()
    date = format_datetime(sent_at)
    feedback_id = f"{list_email.pk}:list-email:mapp"
    sender = Address(display_name=SENDER_NAME, addr_spec=SENDER_ADDRESS)

    prospects = _audience_prospects(prospect_list)[:limit]
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=30)
    try:
        for prospect in prospects:
            token = unsubscribe_token(prospect_id=prospect.pk, list_email_id=list_email.pk)
            unsubscribe = unsubscribe_prefix + token + unsubscribe_suffix
            context = MergeContext(
                prospect=prospect,
                extra={
                    **account,
                    "unsubscribe_url": unsubscribe,
                    "sender.name": SENDER_NAME,
                    "sender.email": SENDER_ADDRESS,
                },
            )
            subject = " ".join(html.unescape(render_marketer_template(SUBJECT, context)).split())
            preheader = render_marketer_template(PREHEADER, context)
            body = render_marketer_template(HTML, context)
            opening = body.index(">", body.index("<body")) + 1
            body = (
                f'{body[:opening]}<div style="display:none;max-height:0;overflow:hidden;'
                f'mso-hide:all">{preheader}</div>{body[opening:]}'
            )
            body = inliner.inline(body)
            links = 0

            def rewrite(match: re.Match[str]) -> str:
                nonlocal links
                links += 1
                tag, url = match.group(0), html.unescape(match.group(1))
                if (
                    "data-mapp-notrack" in tag
                    or not url.startswith(("https://", "http://"))
                    or url.startswith(unsubscribe_prefix)
                ):
                    return tag
                tracked = tracked_link_url(
                    prospect_id=prospect.pk,  # noqa: B023 - called within this iteration
                    email_id=email_id,
                    url=url,
                    link_id=str(links),
                    sent_at=sent_at,
                    base_url=base_url,
                )
                start, end = match.start(1) - match.start(0), match.end(1) - match.start(0)
                return tag[:start] + html.escape(tracked) + tag[end:]

            body = _ANCHOR_HREF.sub(rewrite, body)
            pixel = open_pixel_url(
                prospect_id=prospect.pk, email_id=email_id, sent_at=sent_at, base_url=base_url
            )
            closing = body.rindex("</body>")
            body = (
                f'{body[:closing]}<img src="{html.escape(pixel)}" width="1" height="1" alt="" '
                f'style="display:block;border:0;width:1px;height:1px">{body[closing:]}'
            )
            text = html.unescape(render_marketer_template(TEXT, context))

            message = EmailMessage(policy=SMTP)
            message["From"] = sender
            message["To"] = Address(display_name=prospect.full_name, addr_spec=prospect.email)
            message["Reply-To"] = REPLY_TO
            message["Subject"] = subject
            message["Date"] = date
            message["Message-ID"] = f"<bench.{list_email.pk}.{prospect.pk}@{domain.domain}>"
            message["List-Unsubscribe"] = f"<{unsubscribe}>, <mailto:{mailbox}?subject={token}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            message["Feedback-ID"] = feedback_id
            message["X-Mapp-Recipient"] = recipient_signer.sign(str(prospect.pk))
            message.set_content(text)
            message.add_alternative(body, subtype="html")
            data = message.as_bytes()
            signature = signer.sign(data, include_headers=DEFAULT_SIGNED_HEADERS)
            smtp.sendmail(SENDER_ADDRESS, [prospect.email], signature + data)
    finally:
        smtp.quit()
    return len(prospects)


# --- the report ---------------------------------------------------------------------------------


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def _cpu_figures(phase: Phase) -> tuple[dict[str, float], float, float]:
    """(CPU ms per message by group, their total, cores used by other processes meanwhile)."""
    assert phase.cpu is not None
    per_message = 1000 / max(phase.messages, 1)
    groups = phase.cpu.groups
    figures = {label: seconds * per_message for label, seconds in groups.items()}
    ours = sum(groups.values())
    others_cores = max(phase.cpu.machine - ours, 0.0) / max(phase.wall, 1e-9)
    return figures, sum(figures.values()), others_cores


def _estimate(phase: Phase, total_ms: float) -> float:
    """Messages/s if the phase had the machine to itself and were CPU-bound: each sender waits
    for its own work and the sink's reply, so at most min(senders, cores) messages are in
    progress at once."""
    cores = os.cpu_count() or 1
    return min(phase.senders, cores) * 1000 / total_ms if total_ms else 0.0


def report(run: Run, arguments: argparse.Namespace) -> int:
    print(
        f"\nList email send: {arguments.messages:,} recipients, {len(HTML.encode()) / 1024:.1f} KB "
        "HTML template (CSS, 7 links, pixel) + text part, RSA-2048 DKIM (relaxed/relaxed), "
        f"aiosmtpd sink in its own process; {os.cpu_count()} cores; Celery worker --concurrency "
        f"{arguments.workers}, EMAIL_SEND_PARALLELISM {arguments.parallelism}; warm-up "
        f"{arguments.warm_up:,}; load average at the end {os.getloadavg()[0]:.2f}\n"
    )
    print(
        f"  {'':<2} {'':<32} {'messages':>8} {'seconds':>7} {'msg/s':>6} {'steady':>6} "
        f"{'KB':>5} | CPU ms/msg: {'here':>5} {'sink':>5} {'pool':>6} {'celery':>6} {'pg':>5} "
        f"{'total':>6}"
        f" | {'others':>6} | {'alone':>6}"
    )
    failed = False
    shared = False
    rounds: dict[int, dict[str, tuple[float, float]]] = {}
    for phase in run.phases:
        kilobytes = phase.stats.get("bytes", 0) / max(phase.messages, 1) / 1024
        figures, total, others_cores = _cpu_figures(phase)
        alone = _estimate(phase, total)
        print(
            f"  {phase.round:<2} {phase.name:<32} {phase.messages:8,} {phase.seconds:7.1f} "
            f"{phase.rate:6.1f} {phase.steady_rate:6.1f} {kilobytes:5.1f} | {'':11} "
            f"{figures.get('this process', 0.0):5.2f} {figures.get('sink', 0.0):5.2f} "
            f"{figures.get('worker', 0.0):6.2f} {figures.get('celery', 0.0):6.2f} "
            f"{figures.get('postgres', 0.0):5.2f} "
            f"{total:6.2f} | {others_cores:6.2f} | {alone:6.1f}"
        )
        kind = "bare" if phase.name.startswith("bare") else "pipeline"
        rounds.setdefault(phase.round, {})[kind] = (phase.rate, alone)
        shared = shared or others_cores > SHARED_MACHINE_CORES
        if phase.note:
            print(f"  {'':<2} {'':<32} ({phase.note})")
        for problem in phase.problems:
            print(f"  {'':<2} {'':<32} PROBLEM: {problem}")
            failed = True
    pairs = [kinds for kinds in rounds.values() if "bare" in kinds and "pipeline" in kinds]
    print()
    if pairs:
        ratios = [kinds["pipeline"][0] / kinds["bare"][0] for kinds in pairs if kinds["bare"][0]]
        ratio = statistics.median(ratios)
        each = ", ".join(f"{value:.0%}" for value in ratios)
        label = f"median of {len(ratios)} rounds: {each}" if len(ratios) > 1 else "one round"
        print(
            f"  pipeline / bare loop      {ratio:6.0%}   target ≥ {TARGET_RATIO:.0%}   "
            f"{_verdict(ratio >= TARGET_RATIO)}   ({label})"
        )
        rate = statistics.median(kinds["pipeline"][0] for kinds in pairs)
        print(
            f"  pipeline rate          {rate:7.1f}/s   bar: well over {TARGET_RATE:.0f}/s on 2 "
            f"cores   {_verdict(rate >= TARGET_RATE)}"
        )
        alone_ratio = statistics.median(
            kinds["pipeline"][1] / kinds["bare"][1] for kinds in pairs if kinds["bare"][1]
        )
        print(
            f"  the same from CPU time    {alone_ratio:6.0%}   (the 'alone' column: what the "
            "rates would be on an idle machine; for information)"
        )
    if shared:
        print(
            f"  NOTE: other processes used more than {SHARED_MACHINE_CORES:g} core during a phase "
            "('others'): the wall-clock rates of that run are not comparable; run again on a "
            "quiet machine, or read the CPU figures"
        )
    print(
        "  every address exactly once, DKIM verifies, rows and list email sent   "
        f"{'FAILED' if failed else 'PASS'}"
    )
    print(
        "\n  seconds: start (schedule call / prospects query) to the last message at the sink; "
        "steady: first to last message; KB: average message at the sink.\n  CPU ms per "
        "message: here = this process (the bare loop itself), sink, pool = the Celery worker's "
        "pool processes (the pipeline), celery = its main process, pg = PostgreSQL backends of "
        "the bench database; others = cores used meanwhile by "
        "every other process of the machine (Redis included); alone = min(senders, cores) / "
        "total."
    )
    return 1 if failed else 0


# --- main ---------------------------------------------------------------------------------------


def _run(arguments: argparse.Namespace, sink: Sink) -> int:
    run = Run(arguments, sink)
    print(
        f"Data ready in {run.setup_seconds:.1f} s: {arguments.messages:,} + {arguments.warm_up:,} "
        f"prospects, domain {DOMAIN} (selector {SELECTOR}); sink on port {sink.port}",
        flush=True,
    )
    try:
        run.start_worker()
        run.bare_loop(0, min(arguments.warm_up, arguments.messages), warm=True)
        run.pipeline(0, warm=True)
        for round_number in range(1, arguments.rounds + 1):
            print(f"Round {round_number}: bare loop…", flush=True)
            run.bare_loop(round_number)
            print(f"Round {round_number}: pipeline…", flush=True)
            run.pipeline(round_number)
        status = report(run, arguments) if arguments.rounds else 0
        if arguments.profile_batches:
            run.profile(arguments.profile_batches)
        return status
    finally:
        run.stop_worker()


def main() -> int:
    if sys.argv[1:] == ["--sink"]:
        return sink_main()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES)
    parser.add_argument(
        "--rounds", type=int, default=1, help="bare loop + pipeline, R times (0: profile only)"
    )
    parser.add_argument("--workers", type=int, default=2, help="Celery --concurrency")
    parser.add_argument(
        "--parallelism", type=int, default=None, help="EMAIL_SEND_PARALLELISM (default: workers)"
    )
    parser.add_argument("--warm-up", type=int, default=DEFAULT_WARM_UP)
    parser.add_argument("--stall-seconds", type=float, default=STALL_SECONDS)
    parser.add_argument("--profile-batches", type=int, default=0)
    parser.add_argument("--database", default=BENCH_DATABASE)
    arguments = parser.parse_args()
    arguments.parallelism = arguments.parallelism or arguments.workers
    if arguments.messages < 1 or arguments.warm_up < 1 or arguments.rounds < 0:
        parser.error("--messages and --warm-up must be at least 1, --rounds at least 0")
    if arguments.rounds == 0 and not arguments.profile_batches:
        parser.error("--rounds 0 (no timed rounds) is for --profile-batches only")

    from mapp.devservices import services

    lock_name = f"list_email_send.{arguments.database}"
    with one_run_at_a_time(lock_name), services() as service_environment:
        for key, value in service_environment.items():
            if key not in {"DATABASE_URL", "REDIS_URL"}:
                os.environ.setdefault(key, value)
        database_url = ensure_database(service_environment["DATABASE_URL"], arguments.database)
        sink = Sink()
        try:
            with _claimed_redis_database(service_environment["REDIS_URL"]) as redis_url:
                _setup_django(database_url, redis_url, sink.port, arguments.parallelism)
                return _run(arguments, sink)
        finally:
            sink.stop()


if __name__ == "__main__":
    sys.exit(main())
