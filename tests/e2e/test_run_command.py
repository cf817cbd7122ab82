"""`make run` as a user meets it: embedded servers, first administrator, Ctrl-C, data kept."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mapp.devservices import PROJECT_ROOT

pytestmark = pytest.mark.e2e

START_TIMEOUT_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _health(port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as error:
        return dict(json.loads(error.read()))
    except OSError:
        return None


def _start(var_dir: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    environment["MAPP_VAR_DIR"] = str(var_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "mapp.cli", "run", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _wait_green(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text()
        health = _health(port)
        if health and health["ok"]:
            return
        time.sleep(1)
    raise AssertionError(f"never healthy: {_health(port)}\n{log_path.read_text()[-3000:]}")


def _interrupt(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    return process.wait(60)


def _pid_alive(pid_file: Path) -> bool:
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_make_run_starts_everything_stops_on_ctrl_c_and_keeps_data(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    port = _free_port()
    first_log = tmp_path / "first-run.log"

    process = _start(var_dir, port, first_log)
    try:
        _wait_green(process, port, first_log)
    finally:
        exit_code = _interrupt(process)
    output = first_log.read_text()

    assert exit_code == 0, output[-3000:]
    assert "Created the first administrator: admin@example.com" in output
    assert "password:" in output
    assert f"mapp is running at http://127.0.0.1:{port}/" in output
    assert "mapp: stopped." in output
    # The embedded servers this run started are stopped again.
    assert not _pid_alive(var_dir / "postgres" / "data" / "postmaster.pid")
    assert not _pid_alive(var_dir / "redis" / "redis.pid")

    second_log = tmp_path / "second-run.log"
    process = _start(var_dir, port, second_log)
    try:
        _wait_green(process, port, second_log)
    finally:
        assert _interrupt(process) == 0
    # Same database: the administrator already exists, so no new one and no new password.
    assert "Created the first administrator" not in second_log.read_text()
