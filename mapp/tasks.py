from __future__ import annotations

from celery import shared_task

from mapp.health import record_heartbeat


@shared_task(name="mapp.tasks.heartbeat", ignore_result=True, expires=60)
def heartbeat() -> None:
    """Scheduled by beat, run by a worker: its timestamp proves both are alive (/healthz)."""
    record_heartbeat()


@shared_task(name="mapp.tasks.echo")
def echo(value: str) -> str:
    """A round trip through the broker and a worker, used by the end-to-end test and ops checks."""
    return value
