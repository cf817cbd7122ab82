"""The list-email send benchmark (bench/list_email_send.py) still runs end to end.

A few dozen messages through both paths — the bare loop and the real pipeline with its Celery
worker — to the benchmark's own SMTP sink, in a database of this test run's own. Only what the
script checks about correctness is asserted (every address exactly once, signatures verify,
rows marked sent); its rates and ratio are for people to read (bench/README.md), never for a
test to judge.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.list_email_send import CountingHandler, _addresses_digest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 30


def _deliver(handler: CountingHandler, address: str) -> None:
    envelope = SimpleNamespace(rcpt_tos=[address], original_content=b"message", content=b"")
    asyncio.run(handler.handle_DATA(None, None, envelope))


def test_the_benchmark_sink_counts_a_second_copy_to_the_same_address() -> None:
    # given a sink that received one message each for two addresses, one of them twice
    handler = CountingHandler()
    for address in ("Taro@Example.jp", "hanako@example.jp", "taro@example.jp"):
        _deliver(handler, address)
    # then the repeat is counted, whatever the case of the address
    stats = handler.stats(full=True)
    assert stats["messages"] == 3
    assert stats["distinct"] == 2
    assert stats["extra_copies"] == 1
    assert stats["digest"] == _addresses_digest(["hanako@example.jp", "taro@example.jp"])
    # and a reset starts the next phase from nothing
    handler.reset()
    assert handler.stats(full=True)["messages"] == 0


@pytest.mark.e2e
def test_the_send_benchmark_delivers_each_message_once_by_both_paths() -> None:
    database = f"{os.environ.get('TEST_DATABASE_NAME', 'test_mapp')}_bench_send"
    # when the benchmark runs with a few dozen messages
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "bench" / "list_email_send.py"),
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
