"""Running jobs at the same moment in threads, for the race tests (transactional databases)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connection


def in_parallel(work: list[Callable[[], object]]) -> None:
    """Start every job at once (one thread each, a barrier between) and fail on any error.

    Each thread closes its own database connection when done.
    """
    start = threading.Barrier(len(work))
    errors: list[Exception] = []

    def run(job: Callable[[], object]) -> None:
        try:
            start.wait(timeout=10)
            job()
        except Exception as error:  # noqa: BLE001 - a thread's failure fails the test below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(job,)) for job in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
