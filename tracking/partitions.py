"""Monthly partitions of the activity table.

Partitions exist from last month to MONTHS_AHEAD months ahead, created by the migration and then
daily by Celery beat (``tracking.ensure_activity_partitions``). A DEFAULT partition catches rows
outside them (a clock far off), so an insert never fails; old months can be detached or dropped
as a whole, and the table can move to a distributed Postgres (Citus) by partition.
"""

from __future__ import annotations

import datetime

from django.db import connection

TABLE = "tracking_activity"
MONTHS_AHEAD = 3


def _month_start(day: datetime.date, offset: int) -> datetime.date:
    month_index = day.year * 12 + day.month - 1 + offset
    return datetime.date(month_index // 12, month_index % 12 + 1, 1)


def partition_name(month: datetime.date) -> str:
    return f"{TABLE}_{month:%Y%m}"


def ensure_partitions(
    today: datetime.date | None = None, *, schema_editor: object = None
) -> list[str]:
    """Create the missing monthly partitions around ``today``; returns the names created."""
    today = today or datetime.datetime.now(datetime.UTC).date()
    created = []
    with connection.cursor() as cursor:
        for offset in range(-1, MONTHS_AHEAD + 1):
            start, end = _month_start(today, offset), _month_start(today, offset + 1)
            name = partition_name(start)
            cursor.execute("SELECT to_regclass(%s)", [name])
            if cursor.fetchone()[0] is not None:
                continue
            cursor.execute(
                f"CREATE TABLE {name} PARTITION OF {TABLE} "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
            created.append(name)
    return created


def existing_partitions() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT child.relname FROM pg_inherits "
            "JOIN pg_class parent ON parent.oid = pg_inherits.inhparent "
            "JOIN pg_class child ON child.oid = pg_inherits.inhrelid "
            "WHERE parent.relname = %s ORDER BY child.relname",
            [TABLE],
        )
        return [row[0] for row in cursor.fetchall()]
