"""The real stack for end-to-end tests: gunicorn, a Celery worker and beat as separate processes
on the test database and Redis, an SMTP sink they send to, and Debian's Chromium driven by
Playwright."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlsplit

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test.utils import override_settings

from emails.smtp_sink import SmtpSink
from mapp.celery import app as celery_app
from mapp.cli import stack_commands
from mapp.devservices import PROJECT_ROOT

# Playwright's sync API runs an event loop in the test thread; the ORM calls the tests make
# between browser steps are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "e2e"
STACK_START_TIMEOUT_SECONDS = 60
# Each stack takes a Redis database of its own (2-15; 0 is `mapp run`'s, 1 the other tests'):
# stacks of parallel test runs would otherwise consume each other's Celery tasks (a
# send_list_email for list email 3 run against another run's database) and tracking hits.
REDIS_DATABASES = range(2, 16)
REDIS_CLAIM_KEY = "mapp:e2e:stack"
REDIS_CLAIM_SECONDS = 6 * 60 * 60
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_site(render: Callable[[str], str | None]) -> Iterator[str]:
    """A customer's website on another origin (same host, another port), for the time of the
    block: ``render(path)`` gives a page's HTML, or None for a 404. Yields the site's URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = render(self.path.split("?", 1)[0])
            if page is None:
                self.send_error(404)
                return
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _test_database_url() -> str:
    database = connection.settings_dict
    credentials = quote(database["USER"] or "")
    if database.get("PASSWORD"):
        credentials += ":" + quote(database["PASSWORD"])
    host = database["HOST"] or "127.0.0.1"
    return f"postgres://{credentials}@{host}:{database['PORT'] or 5432}/{database['NAME']}"


def _redis_database_url(base_url: str, number: int) -> str:
    return urlsplit(base_url)._replace(path=f"/{number}").geturl()


def _claim_redis_database() -> str:
    """The URL of a Redis database no other stack uses, emptied of a previous run's leftovers
    (tasks queued for rows that no longer exist)."""
    owner = f"{socket.gethostname()}:{os.getpid()}"
    for number in REDIS_DATABASES:
        url = _redis_database_url(str(settings.REDIS_URL), number)
        client = redis.Redis.from_url(url)
        try:
            if client.set(REDIS_CLAIM_KEY, owner, nx=True, ex=REDIS_CLAIM_SECONDS):
                with client.pipeline(transaction=True) as pipeline:
                    pipeline.flushdb()
                    pipeline.set(REDIS_CLAIM_KEY, owner, ex=REDIS_CLAIM_SECONDS)
                    pipeline.execute()
                return url
        except redis.ResponseError:
            break  # the server has fewer databases
        finally:
            client.close()
    raise RuntimeError("no free Redis database for the e2e stack (all claimed)")


def _release_redis_database(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.delete(REDIS_CLAIM_KEY)
    finally:
        client.close()


def _celery_use(*, broker_url: str, result_backend: str) -> None:
    """Point this process's Celery app at another broker and result store; its connection and
    producer pools and result backend (cached by Celery) are built again on next use."""
    celery_app.conf.update(broker_url=broker_url, result_backend=result_backend)
    celery_app._pool = None  # type: ignore[attr-defined]
    celery_app.amqp._producer_pool = None  # type: ignore[attr-defined]
    celery_app._backend_cache = None  # type: ignore[attr-defined]
    celery_app._local.__dict__.pop("backend", None)  # type: ignore[attr-defined]


def _wait_until_serving(url: str, processes: dict[str, subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + STACK_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {ARTIFACTS}")
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - our own loopback server
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the web server did not answer at {url}")


@dataclass
class StackControl:
    """The running stack, for tests that need more than its URL: the SMTP sink every send goes
    to, the DKIM key directory the worker signs from, and the worker process to kill and
    replace (the fault tests)."""

    base_url: str
    redis_url: str
    environment: dict[str, str]
    commands: dict[str, list[str]]
    sink: SmtpSink
    dkim_key_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: list[IO[bytes]] = field(default_factory=list)
    worker_starts: int = 0

    def start(self, name: str) -> subprocess.Popen[bytes]:
        # The worker gets its own process group: a SIGKILL must take its pool children too,
        # as a crash of the machine or an OOM kill of the container would.
        suffix = f"-{self.worker_starts}" if name == "worker" and self.worker_starts else ""
        log = (ARTIFACTS / f"{name}{suffix}.log").open("wb")
        self.logs.append(log)
        process = subprocess.Popen(
            self.commands[name],
            env=self.environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            start_new_session=name == "worker",
        )
        if name == "worker":
            self.worker_starts += 1
        self.processes[name] = process
        return process

    def kill_worker(self) -> None:
        """SIGKILL the Celery worker and its pool processes: no shutdown code runs."""
        process = self.processes["worker"]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(15)

    def start_worker(self) -> None:
        """A new worker with the same command and environment as the first one."""
        assert self.processes["worker"].poll() is not None, "the worker is still running"
        self.start("worker")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in self.logs:
            log.close()


@pytest.fixture(scope="session")
def stack_control(
    django_db_setup: None, django_db_blocker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackControl]:
    """Start an SMTP sink, then web + worker + beat against the test database and the sink."""
    with django_db_blocker.unblock():
        database_url = _test_database_url()
        # As `mapp run` does before starting beat: django-celery-beat's DatabaseScheduler does
        # not notice the first change if it starts with no periodic tasks at all.
        from django.core.management import call_command

        call_command("sync_periodic_tasks")
    port = free_port()
    redis_url = _claim_redis_database()
    sink = SmtpSink().start()
    dkim_key_dir = tmp_path_factory.mktemp("dkim")
    environment = dict(os.environ)
    environment.update(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "DJANGO_SETTINGS_MODULE": "mapp.settings",
            "PYTHONUNBUFFERED": "1",
            "SITE_URL": f"http://127.0.0.1:{port}",
            # Connections must not outlive a test: each transactional test truncates the tables.
            "DATABASE_CONN_MAX_AGE": "0",
            "EMAIL_HOST": sink.host,
            "EMAIL_PORT": str(sink.port),
            "EMAIL_HOST_USER": "",
            "EMAIL_HOST_PASSWORD": "",
            "EMAIL_USE_TLS": "false",
            "EMAIL_USE_SSL": "false",
            "DKIM_KEY_DIR": str(dkim_key_dir),
        }
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    control = StackControl(
        base_url=f"http://127.0.0.1:{port}",
        redis_url=redis_url,
        environment=environment,
        commands=stack_commands(host="127.0.0.1", port=port, concurrency=1),
        sink=sink,
        dkim_key_dir=dkim_key_dir,
    )
    try:
        for name in control.commands:
            control.start(name)
        _wait_until_serving(control.base_url + "/healthz", control.processes)
        yield control
    finally:
        control.stop()
        sink.stop()
        _release_redis_database(redis_url)


@pytest.fixture(scope="session")
def live_stack(stack_control: StackControl) -> str:
    """The running stack's base URL (what most e2e tests need)."""
    return stack_control.base_url


@pytest.fixture(autouse=True)
def stack_redis(request: pytest.FixtureRequest) -> Iterator[None]:
    """While a test uses the stack, this process queues tasks, reads results and uses the cache
    in the stack's Redis database, as the stack's processes do."""
    if "stack_control" not in request.fixturenames:
        yield
        return
    control: StackControl = request.getfixturevalue("stack_control")
    caches: dict[str, Any] = {
        "default": {**settings.CACHES["default"], "LOCATION": control.redis_url}
    }
    broker_url, result_backend = (
        str(celery_app.conf.broker_url),
        str(celery_app.conf.result_backend),
    )
    with override_settings(
        REDIS_URL=control.redis_url,
        CACHES=caches,
        CELERY_BROKER_URL=control.redis_url,
        CELERY_RESULT_BACKEND=control.redis_url,
    ):
        _celery_use(broker_url=control.redis_url, result_backend=control.redis_url)
        try:
            yield
        finally:
            _celery_use(broker_url=broker_url, result_backend=result_backend)


@pytest.fixture(autouse=True)
def seed_data(request: pytest.FixtureRequest) -> None:
    """Transactional tests truncate every table afterwards, data migrations' rows included:
    put the shipped roles and 名寄せ dictionary back before each test that uses the database."""
    if request.node.get_closest_marker("django_db") is None:
        return
    request.getfixturevalue("transactional_db")
    from mapp.roles import ensure_default_roles
    from prospects.normalization import ensure_default_classification_rules

    ensure_default_roles()
    ensure_default_classification_rules()


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` until it gives something true (returned) or ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)
