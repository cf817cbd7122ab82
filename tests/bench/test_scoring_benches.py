"""The scoring benchmarks (bench/scoring_activity_rate.py, bench/scoring_rescore.py) still run
end to end and pass their own correctness checks, on a few thousand rows in databases of this
test run's own. Their rates and ratios are for people to read (bench/README.md), never for a
test to judge."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BENCH = PROJECT_ROOT / "bench"


def _run(script: str, *arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCH / script), *arguments],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def _database(suffix: str) -> str:
    return f"{os.environ.get('TEST_DATABASE_NAME', 'test_mapp')}_{suffix}"


def test_every_activity_scoring_path_gives_the_baselines_ledger_and_scores() -> None:
    # when 3,000 activities of 300 prospects are scored by each path, in two rounds
    output = _run(
        "scoring_activity_rate.py",
        *("--activities", "3000", "--prospects", "300", "--rounds", "2"),
        *("--database", _database("bench_scoring_rate")),
    )
    # then each path reports a rate in each round and the same result as the baseline
    for path in ("deliver", "consumer", "baseline"):
        assert len(re.findall(rf"round \d {path}\s+[\d.]+ s\s+[\d,]+/s", output)) == 2, output
    assert re.search(r"deliver\s+[\d,]+ activities/s .* of the baseline's rate", output), output
    assert "PROBLEM" not in output
    assert re.search(r"scores = ledger sums = the baseline's result\s+PASS", output), output


def test_the_rescore_gives_the_baselines_ledger_and_keeps_other_causes() -> None:
    # when 2,000 prospects are rescored in chunks of 500, two at a time
    output = _run(
        "scoring_rescore.py",
        *("--prospects", "2000", "--chunk", "500", "--parallelism", "2"),
        *("--database", _database("bench_scoring")),
    )
    # then it reports both phases and passes its own checks
    assert re.search(r"rescore_run \(chunk 500, 2 sessions\)\s+[\d.]+ s", output), output
    assert "PROBLEM" not in output
    assert re.search(r"same ledger and scores as the baseline, .* untouched\s+PASS", output)
