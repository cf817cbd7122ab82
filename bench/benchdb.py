"""What every benchmark needs before Django starts: its own database on the server in use.

Benchmarks run as scripts (``.venv/bin/python bench/<name>.py``); Python puts the script's
directory first on ``sys.path``, so they import this as ``benchdb``.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


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
