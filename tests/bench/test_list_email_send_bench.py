"""The list-email send benchmark (bench/list_email_send.py) still runs end to end, and its sink
still notices a second copy (the benchmark's "exactly once" check rests on it).

A few dozen messages through both paths — the bare loop and the real pipeline with its Celery
worker — to the benchmark's own SMTP sink, in a database of this test run's own. Only what the
script checks about correctness is asserted (every address exactly once, signatures verify,
rows marked sent); its rates and ratio are for people to read (bench/README.md), never for a
test to judge.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = PROJECT_ROOT / "bench" / "list_email_send.py"
MESSAGES = 30


class SinkProcess:
    """The benchmark's sink (``list_email_send.py --sink``), driven as the benchmark does."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--sink"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=PROJECT_ROOT,
        )
        self.port = int(self.ask(None)["port"])

    def ask(self, command: str | None) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        if command is not None:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def send(self, address: str) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as smtp:
            smtp.sendmail("news@example.jp", [address], b"Subject: test\r\n\r\nbody\r\n")


@pytest.fixture
def sink() -> Iterator[SinkProcess]:
    sink = SinkProcess()
    yield sink
    assert sink.process.stdin is not None
    sink.process.stdin.close()  # end of commands: the sink stops
    sink.process.wait(10)


def test_the_benchmark_sink_counts_a_second_copy_to_the_same_address(sink: SinkProcess) -> None:
    # given one message each to two addresses, one of them twice in another case
    for address in ("Taro@Example.jp", "hanako@example.jp", "taro@example.jp"):
        sink.send(address)
    # then the sink reports the repeat and the set of addresses
    stats = sink.ask("stats full")
    assert (stats["messages"], stats["distinct"], stats["extra_copies"]) == (3, 2, 1)
    expected = hashlib.sha256(b"hanako@example.jp\ntaro@example.jp").hexdigest()
    assert stats["digest"] == expected
    assert len(sink.ask("samples")) == 2
    # and a reset starts the next phase from nothing
    assert sink.ask("reset") == {"ok": True}
    assert sink.ask("stats")["messages"] == 0


@pytest.mark.e2e
def test_the_send_benchmark_delivers_each_message_once_by_both_paths() -> None:
    database = f"{os.environ.get('TEST_DATABASE_NAME', 'test_mapp')}_bench_send"
    # when the benchmark runs with a few dozen messages
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--messages",
            str(MESSAGES),
            "--warm-up",
            "10",
            "--stall-seconds",
            "30",
            "--database",
            database,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
        check=False,
    )
    output = result.stdout + result.stderr
    # then it passes its own checks and reports both paths over every message
    assert result.returncode == 0, output
    assert re.search(rf"bare loop \(1 process\)\s+{MESSAGES}\s", output), output
    assert re.search(rf"pipeline \(Celery, 2 processes\)\s+{MESSAGES}\s", output), output
    assert "pipeline / bare loop" in output
    assert "PROBLEM" not in output
    assert re.search(r"every address exactly once, DKIM verifies, .* PASS", output), output
