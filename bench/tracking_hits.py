"""Benchmark: tracking-hit throughput on loopback, against a no-op Django view in the same run.

    .venv/bin/python bench/tracking_hits.py [--hits N] [--connections C] [--seconds S]
                                            [--rounds R] [--pages-per-visitor P]
                                            [--workers W] [--threads T]

The web server is gunicorn exactly as ``mapp run`` starts it (``mapp.cli.stack_commands``:
2 workers × 4 threads, access log on), with ``DJANGO_SETTINGS_MODULE=bench.bench_settings``:
the app's URLs plus ``/bench/noop``, a public no-op view behind the same middleware that answers
the same 1×1 GIF. A pure-Python load generator (asyncio, raw HTTP/1.1 keep-alive sockets, no
dependency) sends the same number of hits to:

  * the baseline: ``GET /bench/noop``;
  * the same no-op on the tracking fast path (``/t/bench-noop``), for information;
  * the page-view beacon: ``GET /t/pv?url=…&title=…&ref=…&pvid=…`` as the tracking script sends
    it. Each connection plays visitors one after another: a visitor's first hit has no cookie
    (a new visitor and a new visit), the next ones send the ``mapp_vid`` cookie it got back
    (same visitor, same visit) — ``--pages-per-visitor`` pages each;
  * the email open pixel and click redirect (below).

Each phase opens its connections spread evenly over gunicorn's workers: a worker keeps every
connection it accepts, which worker accepts is a race, and a phase whose 16 connections all
landed on one worker ran on one core — at about 1,000 hits/s whatever the endpoint, which made
any kind's rate a matter of luck. The load generator asks each new connection which worker
holds it (``/bench/worker``) and closes and reopens those over their worker's share, before the
phase's clock starts.

Fair to every phase on a shared 2-core machine, where the load generator takes CPU from the
server: every request is built before its phase starts (signing an email token or encoding a
beacon's query during the phase cost the generator 2–5× a no-op request's CPU), the generator's
own CPU per hit is printed for each phase, and the phases take turns in ``--rounds`` rounds
(each kind sends its share of ``--hits`` per round), so a busier minute of the machine slows
every kind rather than whichever phase it fell on. Rates are hits over the summed phase times.

Printed: hits/s of both, their ratio, p50/p99 latency, and — counted in the database after the
run — how many page views were stored against how many got a success (200) response. The
endpoints queue hits in Redis (tracking.ingest); no worker runs during the phases, and after
them the benchmark drains the queue in-process, timing it as the drain task's throughput.
Targets: ≥ 2,000 page views/s on 2 cores, ≥ 60 % of the no-op rate, p99 < 50 ms, every
successful hit stored.

Then the email open pixel (``/t/o/<token>.gif``) and click redirect (``/t/c/<token>``), each
hit a different email to one prospect, an hour after sending, from a browser without a cookie:
the same figures, against the same no-op rate; every 200 (open) or 302 (click) stored as a person.

Bounded and local: at most ``--hits`` per kind and ``--seconds`` per kind, 127.0.0.1 only.
It runs against its own database ``mapp_bench_tracking`` on the server the app uses
(DATABASE_URL, or the embedded PostgreSQL, started if needed), whose tracking tables it empties
first, and its own Redis database number 9 (rate-limit counters, replay ids, the delivery queue
and Celery messages no worker reads), flushed before and after. The development data is never
touched. One run at a time (a lock in var/bench/): a second run waits for the first.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from benchdb import ensure_database, one_run_at_a_time, url_with_path  # noqa: E402

BENCH_DATABASE = "mapp_bench_tracking"
BENCH_REDIS_DB = 9
TARGET_HITS_PER_SECOND = 2000
TARGET_RATIO = 0.60
TARGET_P99_MS = 50.0
WARM_UP_HITS = 1000
SERVER_START_TIMEOUT_SECONDS = 60
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


# --- set-up (before Django) ---------------------------------------------------------------------


def _bench_redis_url(server_url: str) -> str:
    return url_with_path(server_url, str(BENCH_REDIS_DB))


def _setup_django(database_url: str, redis_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = redis_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.bench_settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from django.db import connection

    from tracking.models import Activity, ActivityDelivery, HitQueueCursor, Visit, Visitor
    from tracking.partitions import ensure_partitions

    ensure_partitions()
    tables = ", ".join(
        model._meta.db_table
        for model in (Activity, ActivityDelivery, HitQueueCursor, Visit, Visitor)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables}")  # the benchmark's own database only
    _flush_bench_redis()


def _redis_server_pids() -> list[int]:
    """The Redis server's process, if it runs on this machine (its CPU is part of a hit's)."""
    from mapp.health import redis_client

    pid = int(redis_client().info("server").get("process_id", 0))
    return [pid] if pid and Path(f"/proc/{pid}/stat").exists() else []


def _flush_bench_redis() -> None:
    from mapp.health import redis_client

    redis_client().flushdb()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_web(port: int, workers: int | None, threads: int | None) -> subprocess.Popen[bytes]:
    from mapp.cli import stack_commands

    command = stack_commands(host="127.0.0.1", port=port)["web"]
    if workers is not None:
        command[command.index("--workers") + 1] = str(workers)
    if threads is not None:
        command[command.index("--threads") + 1] = str(threads)
    environment = dict(os.environ)
    environment.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.bench_settings",
            "PYTHONPATH": str(PROJECT_ROOT),
            "PYTHONUNBUFFERED": "1",
        }
    )
    log_dir = PROJECT_ROOT / "var" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = (log_dir / "tracking_hits_web.log").open("wb")  # one run at a time: see main()
    process = subprocess.Popen(  # noqa: S603 - our own gunicorn, fixed arguments
        command, env=environment, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT
    )
    deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}; see {log.name}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/bench/noop", timeout=2)
            return process
        except urllib.error.HTTPError:
            return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("gunicorn did not answer")


# --- the load generator -------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    unspread_rounds: int = 0  # rounds whose connections could not be spread over the workers
    client_cpu_seconds: float = 0.0  # the load generator's own CPU during the phase
    web_cpu_seconds: float = 0.0  # gunicorn's (master and workers)
    redis_cpu_seconds: float = 0.0  # the Redis server's, when it runs on this machine

    def _per_hit(self, seconds: float) -> float:
        return seconds / self.hits * 1e6 if self.hits else 0.0

    @property
    def client_micros_per_hit(self) -> float:
        return self._per_hit(self.client_cpu_seconds)

    @property
    def web_micros_per_hit(self) -> float:
        return self._per_hit(self.web_cpu_seconds)

    @property
    def redis_micros_per_hit(self) -> float:
        return self._per_hit(self.redis_cpu_seconds)

    @property
    def cpu_micros_per_hit(self) -> float:
        """The CPU a hit costs on this machine: server, Redis and load generator."""
        return self.web_micros_per_hit + self.redis_micros_per_hit + self.client_micros_per_hit

    def absorb(self, part: Phase) -> None:
        """Add one round's figures (see ``--rounds``)."""
        self.seconds += part.seconds
        self.statuses.update(part.statuses)
        self.latencies.extend(part.latencies)
        self.errors += part.errors
        self.unspread_rounds += part.unspread_rounds
        self.client_cpu_seconds += part.client_cpu_seconds
        self.web_cpu_seconds += part.web_cpu_seconds
        self.redis_cpu_seconds += part.redis_cpu_seconds

    @property
    def hits(self) -> int:
        return sum(self.statuses.values())

    @property
    def rate(self) -> float:
        return self.hits / self.seconds if self.seconds else 0.0

    def percentile_ms(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, str | None, bool]:
    """(status, the mapp_vid cookie if set, whether the server closes the connection)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    lines = head.split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    cookie = None
    closing = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        value = value.strip()
        if name == "content-length":
            length = int(value)
        elif name == "set-cookie" and value.startswith("mapp_vid="):
            cookie = value.split(";", 1)[0]
        elif name == "connection" and value.lower() == "close":
            closing = True
    if length:
        await reader.readexactly(length)
    return status, cookie, closing


class Player(ABC):
    """One connection's requests. Every phase's requests are built before the phase starts
    (:meth:`prepare`), so the load generator — on the same cores as the server — spends the
    same CPU per hit in every phase; building a beacon's query or signing an email token
    during the phase took 2–5× a no-op request's CPU from the server."""

    def __init__(self) -> None:
        self.prepared: deque[bytes] = deque()

    @abstractmethod
    def build(self, host: str) -> bytes:
        """The next request of this connection, as bytes on the wire."""

    def prepare(self, host: str, count: int) -> None:
        self.prepared.extend(self.build(host) for _ in range(count))

    def request(self, host: str) -> bytes:
        # Past the prepared ones (a connection faster than its share) it builds on the fly.
        return self.prepared.popleft() if self.prepared else self.build(host)

    def remember(self, cookie: str | None) -> None:  # noqa: B027 (most players keep no cookie)
        """Told the visitor cookie a response set; only page-view players keep it."""


class PageViewPlayer(Player):
    """One connection's visitors: each sends ``pages`` page views, keeping its cookie."""

    NEW_VISITOR = b"N"  # first byte of a prepared request whose visitor has no cookie yet
    SAME_VISITOR = b"S"

    def __init__(self, run_id: str, connection_number: int, pages: int) -> None:
        super().__init__()
        self.prefix = f"https://bench.example.jp/{run_id}/c{connection_number}"
        self.pages = pages
        self.visitor = 0
        self.page = 0
        self.cookie: bytes | None = None

    def build(self, host: str) -> bytes:
        """A marker byte, then the request up to its headers' end (the cookie is added when
        it is sent: it comes from the previous answer)."""
        marker = self.SAME_VISITOR
        if self.page == self.pages:
            self.visitor, self.page, marker = self.visitor + 1, 0, self.NEW_VISITOR
        elif self.visitor == 0 and self.page == 0:
            marker = self.NEW_VISITOR
        url = f"{self.prefix}/v{self.visitor}/p{self.page}?utm_source=bench&utm_medium=load"
        referrer = (
            f"{self.prefix}/v{self.visitor}/p{self.page - 1}"
            if self.page
            else "https://www.google.co.jp/"
        )
        self.page += 1
        query = (
            f"url={quote(url, safe='')}&title={quote(f'製品紹介 {self.page}', safe='')}"
            f"&ref={quote(referrer, safe='')}&pvid={secrets.token_hex(16)}"
        )
        return (
            marker
            + (
                f"GET /t/pv?{query} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n"
                "Accept: image/*\r\n"
            ).encode()
        )

    def request(self, host: str) -> bytes:
        prepared = super().request(host)
        if prepared[:1] == self.NEW_VISITOR:
            self.cookie = None
        if self.cookie:
            return b"%sCookie: %s\r\n\r\n" % (prepared[1:], self.cookie)
        return prepared[1:] + b"\r\n"

    def remember(self, cookie: str | None) -> None:
        if cookie:
            self.cookie = cookie.encode("latin-1")


class NoopPlayer(Player):
    def __init__(self, path: str = "/bench/noop") -> None:
        super().__init__()
        self.path = path

    def build(self, host: str) -> bytes:
        return (
            f"GET {self.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n"
            "Accept: image/*\r\n\r\n"
        ).encode()


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]

WORKER_PATH = "/bench/worker"
# Connections opened (and closed again) at most this many times the number wanted.
MAX_SPREAD_ATTEMPTS = 50


async def _worker_of(stream: Stream, port: int) -> str:
    """The gunicorn worker holding this connection (bench_urls answers its pid)."""
    reader, writer = stream
    writer.write(f"GET {WORKER_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return (await reader.readexactly(length)).decode()


async def _spread_connections(port: int, count: int, workers: int) -> tuple[list[Stream], bool]:
    """``count`` keep-alive connections, as evenly spread over the server's workers as their
    number allows, and whether that worked out.

    A gunicorn worker keeps a connection it accepted for the connection's life, and which
    worker accepts is a race: left to it, all 16 connections of a phase sometimes land on one
    worker, and that phase runs on one core at half the rate for reasons that have nothing to
    do with the endpoint. A new connection whose worker already has its share is closed and
    another one opened; real traffic — many short connections — spreads the same way."""
    share = math.ceil(count / workers)
    kept: list[Stream] = []
    held: Counter[str] = Counter()
    for _attempt in range(count * MAX_SPREAD_ATTEMPTS):
        if len(kept) == count:
            break
        stream = await asyncio.open_connection("127.0.0.1", port)
        worker = await _worker_of(stream, port)
        if held[worker] < share:
            held[worker] += 1
            kept.append(stream)
        else:
            stream[1].close()
    spread = len(kept) == count
    while len(kept) < count:  # the rare run where the race never turns: as it falls
        kept.append(await asyncio.open_connection("127.0.0.1", port))
    return kept, spread


async def _connection(
    port: int,
    stream: Stream,
    player: Player,
    phase: Phase,
    budget: list[int],
    deadline: float,
) -> None:
    host = f"127.0.0.1:{port}"
    reader, writer = stream
    try:
        while budget[0] > 0 and time.monotonic() < deadline:
            budget[0] -= 1
            started = time.perf_counter()
            try:
                writer.write(player.request(host))
                await writer.drain()
                status, cookie, closing = await _read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                phase.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            phase.latencies.append(time.perf_counter() - started)
            phase.statuses[status] += 1
            player.remember(cookie)
            if closing:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


# Each connection's share of a phase is built beforehand, with this much to spare.
PREPARED_SHARE = 1.25


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pids: Iterable[int]) -> float:
    """CPU time (user + system) the processes used so far; 0 for one that is gone (Linux)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return total


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


@dataclass
class Processes:
    """Whose CPU each phase counts: gunicorn's master and workers, and the Redis server."""

    web: list[int]
    redis: list[int]


async def _run_phase(
    name: str,
    port: int,
    players: Sequence[Player],
    hits: int,
    seconds: float,
    workers: int,
    processes: Processes | None = None,
) -> Phase:
    phase = Phase(name)
    host = f"127.0.0.1:{port}"
    for player in players:
        player.prepare(host, math.ceil(hits / len(players) * PREPARED_SHARE))
    streams, spread = await _spread_connections(port, len(players), workers)
    phase.unspread_rounds = 0 if spread else 1
    budget = [hits]
    web, redis = (processes.web, processes.redis) if processes else ([], [])
    web_started, redis_started = _cpu_seconds(web), _cpu_seconds(redis)
    cpu_started = time.process_time()
    started = time.perf_counter()
    deadline = time.monotonic() + seconds
    await asyncio.gather(
        *(
            _connection(port, stream, player, phase, budget, deadline)
            for stream, player in zip(streams, players, strict=True)
        )
    )
    phase.seconds = time.perf_counter() - started
    phase.client_cpu_seconds = time.process_time() - cpu_started
    phase.web_cpu_seconds = _cpu_seconds(web) - web_started
    phase.redis_cpu_seconds = _cpu_seconds(redis) - redis_started
    return phase


# --- email open pixel and click redirect (tracking/links.py) ------------------------------------


class EmailLinkPlayer(Player):
    """One connection's recipients: every hit is another email, opened or clicked an hour after
    sending by a browser without a cookie — a person, never a scanner (no burst, no fast click).
    """

    def __init__(self, run_id: str, connection_number: int, prospect_id: int, kind: str) -> None:
        import datetime

        from django.utils import timezone

        super().__init__()
        self.kind = kind
        self.prefix = f"b{run_id}{kind[0]}{connection_number}-"
        self.prospect_id = prospect_id
        self.sent_at = timezone.now() - datetime.timedelta(hours=1)
        self.number = 0

    def build(self, host: str) -> bytes:
        from tracking import links

        email_id = f"{self.prefix}{self.number}"
        self.number += 1
        if self.kind == "open":
            url = links.open_pixel_url(
                prospect_id=self.prospect_id, email_id=email_id, sent_at=self.sent_at
            )
        else:
            url = links.tracked_link_url(
                prospect_id=self.prospect_id,
                email_id=email_id,
                url=f"{EMAIL_LINK_DESTINATION}{email_id}",
                sent_at=self.sent_at,
            )
        return (
            f"GET {urlsplit(url).path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n"
            "Accept: */*\r\n\r\n"
        ).encode()


EMAIL_LINK_DESTINATION = "https://bench.example.jp/lp/"


def _email_link_players(
    run_id: str, connections: int
) -> tuple[int, Callable[[str, str], list[Player]]]:
    """The bench recipient's id, and a maker of one player per connection for opens or clicks."""
    from prospects.models import Prospect

    prospect, _created = Prospect.objects.get_or_create(
        email="bench-recipient@example.jp", defaults={"last_name": "負荷", "first_name": "試験"}
    )

    def players(kind: str, label: str) -> list[Player]:
        return [
            EmailLinkPlayer(f"{run_id}{label}", number, prospect.pk, kind)
            for number in range(connections)
        ]

    return prospect.pk, players


def _print_email_link_phases(
    run_id: str, prospect_id: int, noop: Phase, email_open: Phase, email_click: Phase
) -> None:
    from tracking.models import Activity, ActivityType

    opens = Activity.objects.filter(
        type=ActivityType.EMAIL_OPENED,
        prospect_id=prospect_id,
        object_id__startswith=f"b{run_id}ro",
    )
    clicks = Activity.objects.filter(
        type=ActivityType.EMAIL_CLICKED,
        prospect_id=prospect_id,
        object_label__startswith=f"{EMAIL_LINK_DESTINATION}b{run_id}rc",
    )
    stored_opens, human_opens = opens.count(), opens.filter(is_bot=False).count()
    stored_clicks, human_clicks = clicks.count(), clicks.filter(is_bot=False).count()
    print(f"\n{_header('200/302')}")
    print(_phase_row(email_open, 200))
    print(_phase_row(email_click, 302))
    print()
    for phase in (email_open, email_click):
        ratio = phase.rate / noop.rate if noop.rate else 0.0
        p99 = phase.percentile_ms(0.99)
        print(
            f"  {phase.name:<22} {phase.rate:7,.0f}/s (target ≥ {TARGET_HITS_PER_SECOND:,}) "
            f"{_verdict(phase.rate >= TARGET_HITS_PER_SECOND)};  {ratio:4.0%} of no-op "
            f"(target ≥ {TARGET_RATIO:.0%}) {_verdict(ratio >= TARGET_RATIO)};  "
            f"p99 {p99:.1f} ms (target < {TARGET_P99_MS:g} ms) {_verdict(p99 < TARGET_P99_MS)}"
        )
    answered_opens, answered_clicks = email_open.statuses[200], email_click.statuses[302]
    opens_kept = 0 < stored_opens == human_opens == answered_opens
    clicks_kept = 0 < stored_clicks == human_clicks == answered_clicks
    print(
        f"  stored opens            {stored_opens:9,}   of {answered_opens:,} answered 200"
        f" ({human_opens:,} as people)   {_verdict(opens_kept)}"
    )
    print(
        f"  stored clicks           {stored_clicks:9,}   of {answered_clicks:,} answered 302"
        f" ({human_clicks:,} as people)   {_verdict(clicks_kept)}"
    )


# --- the run ------------------------------------------------------------------------------------


def _print_cpu_bound(phases: Sequence[Phase]) -> None:
    """What the measured CPU per hit allows: the server, Redis and the load generator share
    the machine's cores, and other processes on a shared machine take some of them too."""
    cores = os.cpu_count() or 1
    if not any(phase.web_cpu_seconds for phase in phases):
        return
    print(
        f"\n  CPU per hit on this machine (web + Redis + load generator), and the rate it allows "
        f"when the {cores} cores run nothing else — for information: the rates above are "
        "measured, and a shared machine gives less"
    )
    for phase in phases:
        total = phase.cpu_micros_per_hit
        bound = cores * 1e6 / total if total else 0.0
        print(
            f"  {phase.name:<24} {phase.web_micros_per_hit:5,.0f} + "
            f"{phase.redis_micros_per_hit:3,.0f} + {phase.client_micros_per_hit:3,.0f} = "
            f"{total:5,.0f} µs  → ≤ {bound:6,.0f} hits/s"
        )


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def _header(success: str) -> str:
    return (
        f"  {'':<24} {'hits/s':>9} {'p50 ms':>9} {'p99 ms':>9} {success:>9} {'other':>7}"
        f"   CPU µs/hit: {'web':>5} {'Redis':>5} {'client':>6}"
    )


def _phase_row(phase: Phase, success: int = 200) -> str:
    others = sum(count for status, count in phase.statuses.items() if status != success)
    return (
        f"  {phase.name:<24} {phase.rate:9,.0f} {phase.percentile_ms(0.50):9.1f} "
        f"{phase.percentile_ms(0.99):9.1f} {phase.statuses[success]:9,} "
        f"{others + phase.errors:7,}               {phase.web_micros_per_hit:5,.0f} "
        f"{phase.redis_micros_per_hit:5,.0f} {phase.client_micros_per_hit:6,.0f}"
    )


def _run(arguments: argparse.Namespace) -> int:
    from tracking.models import Activity, ActivityType, Visit, Visitor

    run_id = secrets.token_hex(4)
    port = _free_port()
    connections = arguments.connections
    workers = arguments.workers or 2

    def page_view_players(label: str) -> list[PageViewPlayer]:
        return [
            PageViewPlayer(f"{run_id}-{label}", number, arguments.pages_per_visitor)
            for number in range(connections)
        ]

    processes = Processes(web=[], redis=_redis_server_pids())

    def run(name: str, players: Sequence[Player], hits: int) -> Phase:
        return asyncio.run(
            _run_phase(name, port, players, hits, arguments.seconds / rounds, workers, processes)
        )

    rounds = max(1, arguments.rounds)
    link_prospect_id, email_link_players = _email_link_players(run_id, connections)
    measured: dict[str, tuple[Phase, Sequence[Player]]] = {
        "noop": (Phase("no-op Django view"), [NoopPlayer() for _ in range(connections)]),
        # The same no-op, routed like the tracking endpoints (tracking/fastpath.py).
        "fast_noop": (
            Phase("no-op on the fast path"),
            [NoopPlayer("/t/bench-noop") for _ in range(connections)],
        ),
        "page_view": (Phase("page-view beacon"), page_view_players("run")),
        "email_open": (Phase("email open pixel"), email_link_players("open", "r")),
        "email_click": (Phase("email click redirect"), email_link_players("click", "r")),
    }
    web = _start_web(port, arguments.workers, arguments.threads)
    processes.web = [web.pid, *_children(web.pid)]
    try:
        # Warm-up: imports, database connections, the first partition insert, caches.
        run("warm-up no-op", [NoopPlayer() for _ in range(connections)], WARM_UP_HITS)
        warm_pv = run("warm-up page view", page_view_players("warm"), WARM_UP_HITS)
        run("warm-up email open", email_link_players("open", "w"), WARM_UP_HITS // 2)
        run("warm-up email click", email_link_players("click", "w"), WARM_UP_HITS // 2)
        # Round after round, each kind gets its share: a slower minute of a shared machine
        # then slows every kind alike instead of whichever phase it fell on.
        for round_number in range(rounds):
            share = arguments.hits // rounds + (round_number < arguments.hits % rounds)
            for phase, players in measured.values():
                phase.absorb(run(phase.name, players, share))
    finally:
        web.terminate()
        try:
            web.wait(15)
        except subprocess.TimeoutExpired:
            web.kill()
    noop, fast_noop, page_view, email_open, email_click = (
        phase for phase, _players in measured.values()
    )

    # The endpoints queued the hits (tracking.ingest); no worker ran during the phases, so
    # their rates are the web side alone. The drain is timed here, on the same machine.
    from tracking import ingest

    queued = ingest.hits_pending()
    drain_started = time.perf_counter()
    drained = ingest.hits_drain(max_seconds=3600)
    drain_seconds = time.perf_counter() - drain_started

    successes = warm_pv.statuses[200] + page_view.statuses[200]
    prefix = f"https://bench.example.jp/{run_id}-"
    stored_rows = Activity.objects.filter(
        type=ActivityType.PAGE_VIEW, object_label__startswith=prefix
    )
    stored = stored_rows.count()
    distinct = stored_rows.values("object_label").distinct().count()
    # The email click phase's visitors are the bench recipient's; these are the beacon's.
    visitors = Visitor.objects.exclude(prospect_id=link_prospect_id).count()
    visits = Visit.objects.count()
    _flush_bench_redis()

    ratio = page_view.rate / noop.rate if noop.rate else 0.0
    p99 = page_view.percentile_ms(0.99)
    threads = arguments.threads or 4
    print(
        f"\nTracking hits on loopback: gunicorn {workers} workers × {threads} threads "
        f"(as `mapp run`), {connections} keep-alive connections spread evenly over the "
        f"workers, {os.cpu_count()} cores, {arguments.hits:,} hits per kind in {rounds} rounds "
        f"after {WARM_UP_HITS:,} warm-up hits, {arguments.pages_per_visitor} page views per "
        "visitor\n"
    )
    measured_phases = (noop, fast_noop, page_view, email_open, email_click)
    unspread = [phase for phase in measured_phases if phase.unspread_rounds]
    if unspread:
        print(
            "  connections not spread evenly in: "
            + ", ".join(f"{phase.name} ({phase.unspread_rounds} rounds)" for phase in unspread)
            + "\n"
        )
    print(_header("200"))
    print(_phase_row(noop))
    print(_phase_row(fast_noop))
    print(_phase_row(page_view))
    print()
    print(
        f"  page views/s            {page_view.rate:9,.0f}   target ≥ {TARGET_HITS_PER_SECOND:,}"
        f"   {_verdict(page_view.rate >= TARGET_HITS_PER_SECOND)}"
    )
    print(
        f"  page view / no-op       {ratio:9.0%}   target ≥ {TARGET_RATIO:.0%}"
        f"      {_verdict(ratio >= TARGET_RATIO)}"
    )
    fast_ratio = page_view.rate / fast_noop.rate if fast_noop.rate else 0.0
    print(
        f"  page view / fast no-op  {fast_ratio:9.0%}   (what the beacon's own work costs; "
        "for information)"
    )
    print(
        f"  page view p99           {p99:7.1f} ms   target < {TARGET_P99_MS:g} ms"
        f"     {_verdict(p99 < TARGET_P99_MS)}"
    )
    print(
        f"  stored page views       {stored:9,}   of {successes:,} answered 200 "
        f"(distinct URLs {distinct:,})   {_verdict(stored == successes == distinct)}"
    )
    print(f"  visitors {visitors:,}, visits {visits:,} (one visit per visitor expected)")
    if noop.errors or page_view.errors:
        print(f"  connection errors: no-op {noop.errors}, page view {page_view.errors}")
    _print_email_link_phases(run_id, link_prospect_id, noop, email_open, email_click)
    _print_cpu_bound(measured_phases)
    drain_rate = drained.hits / drain_seconds if drain_seconds else 0.0
    print(
        f"\n  drain (Celery task's work, in this process): {drained.hits:,} of {queued:,} queued "
        f"hits in {drain_seconds:.1f} s = {drain_rate:,.0f} hits/s, {drained.batches} batches, "
        f"{drained.dead} set aside"
    )
    if drain_rate and page_view.rate:
        combined = 1 / (1 / page_view.rate + 1 / drain_rate)
        print(
            f"  page views answered and stored on the same cores, sustained: ≈ {combined:,.0f}/s "
            "(both sides CPU-bound: 1 / (1/web + 1/drain))"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--hits", type=int, default=20_000, help="hits per measured phase")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0, help="time bound per phase")
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="each phase's hits are sent in this many rounds, the phases taking turns",
    )
    parser.add_argument("--pages-per-visitor", type=int, default=5)
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=None, help="threads per worker (4)")
    arguments = parser.parse_args()

    from mapp.devservices import services

    with one_run_at_a_time("tracking_hits"), services() as service_environment:
        for key, value in service_environment.items():
            if key not in {"DATABASE_URL", "REDIS_URL"}:
                os.environ.setdefault(key, value)
        database_url = ensure_database(service_environment["DATABASE_URL"], BENCH_DATABASE)
        redis_url = _bench_redis_url(service_environment["REDIS_URL"])
        _setup_django(database_url, redis_url)
        return _run(arguments)


if __name__ == "__main__":
    sys.exit(main())
