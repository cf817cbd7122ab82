"""The real stack for end-to-end tests: gunicorn, a Celery worker and beat as separate processes
on the test database and Redis, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from mapp.cli import stack_commands
from mapp.devservices import PROJECT_ROOT

# Playwright's sync API runs an event loop in the test thread; the ORM calls the tests make
# between browser steps are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "e2e"
STACK_START_TIMEOUT_SECONDS = 60
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _test_database_url() -> str:
    database = connection.settings_dict
    credentials = quote(database["USER"] or "")
    if database.get("PASSWORD"):
        credentials += ":" + quote(database["PASSWORD"])
    host = database["HOST"] or "127.0.0.1"
    return f"postgres://{credentials}@{host}:{database['PORT'] or 5432}/{database['NAME']}"


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


@pytest.fixture(scope="session")
def live_stack(django_db_setup: None, django_db_blocker) -> Iterator[str]:
    """Start web + worker + beat against the test database; yield the base URL."""
    with django_db_blocker.unblock():
        database_url = _test_database_url()
        # As `mapp run` does before starting beat: django-celery-beat's DatabaseScheduler does
        # not notice the first change if it starts with no periodic tasks at all.
        from django.core.management import call_command

        call_command("sync_periodic_tasks")
    port = _free_port()
    environment = dict(os.environ)
    environment.update(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": str(settings.REDIS_URL),
            "DJANGO_SETTINGS_MODULE": "mapp.settings",
            "PYTHONUNBUFFERED": "1",
            "SITE_URL": f"http://127.0.0.1:{port}",
            # Connections must not outlive a test: each transactional test truncates the tables.
            "DATABASE_CONN_MAX_AGE": "0",
        }
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    logs = []
    try:
        for name, command in stack_commands(host="127.0.0.1", port=port, concurrency=1).items():
            log = (ARTIFACTS / f"{name}.log").open("wb")
            logs.append(log)
            processes[name] = subprocess.Popen(
                command, env=environment, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT
            )
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_serving(base_url + "/healthz", processes)
        yield base_url
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()


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
