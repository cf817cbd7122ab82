"""What every benchmark needs before Django starts: its own database on the server in use, and
one run at a time.

Benchmarks run as scripts (``.venv/bin/python bench/<name>.py``); Python puts the script's
directory first on ``sys.path``, so they import this as ``benchdb``.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

LOCK_DIR = Path(__file__).resolve().parent.parent / "var" / "bench"


@contextlib.contextmanager
def one_run_at_a_time(name: str) -> Iterator[None]:
    """Two runs holding the same ``name`` would share the cores and reset each other's tables:
    the second one waits for the first (a lock file in var/bench/)."""
    lock_path = LOCK_DIR / f"{name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("Another run of this benchmark is in progress; waiting for it…", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def url_with_path(url: str, path: str) -> str:
    """``url`` with its path replaced: a database name (Postgres) or number (Redis)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{path}", parts.query, parts.fragment))


def ensure_database(server_url: str, name: str) -> str:
    """CREATE DATABASE ``name`` on the server of ``server_url`` if missing; return its URL."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url_with_path(server_url, "postgres"), autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url_with_path(server_url, name)
