"""/healthz and the heartbeat against the real database and Redis (no worker in this layer)."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.test import Client
from django_celery_beat.models import PeriodicTask

from mapp.health import HEARTBEAT_KEY, redis_client
from mapp.models import User
from mapp.tasks import heartbeat
from tests.conftest import client_for


@pytest.fixture
def no_heartbeat() -> None:
    redis_client().delete(HEARTBEAT_KEY)


def test_healthz_reports_each_part_and_503_while_anything_is_down(
    db: None, no_heartbeat: None
) -> None:
    response = Client().get("/healthz")
    body = json.loads(response.content)

    assert response.status_code == 503  # no worker runs in this test layer, no heartbeat yet
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True
    assert body["checks"]["worker"]["ok"] is False
    assert body["checks"]["beat"] == {"ok": False, "error": "no heartbeat yet"}
    assert body["ok"] is False


def test_a_heartbeat_makes_beat_healthy(db: None, no_heartbeat: None) -> None:
    heartbeat()
    body = json.loads(Client().get("/healthz").content)
    assert body["checks"]["beat"]["ok"] is True
    assert body["checks"]["beat"]["last_heartbeat_seconds_ago"] < 5


def test_a_stale_heartbeat_is_not_healthy(db: None, settings) -> None:
    redis_client().set(HEARTBEAT_KEY, "1000.0")  # 1970
    body = json.loads(Client().get("/healthz").content)
    assert body["checks"]["beat"]["ok"] is False


def test_the_heartbeat_schedule_lives_in_the_database_and_is_not_overwritten(db: None) -> None:
    call_command("sync_periodic_tasks")
    task = PeriodicTask.objects.get(name="mapp heartbeat")
    assert task.task == "mapp.tasks.heartbeat"
    assert task.interval is not None and task.interval.every == 30

    # An administrator changes it in Django admin; syncing again keeps their change.
    task.enabled = False
    task.save(update_fields=["enabled"])
    call_command("sync_periodic_tasks")
    assert PeriodicTask.objects.get(name="mapp heartbeat").enabled is False


def test_system_status_page_is_for_settings_roles(administrator: User, marketer: User) -> None:
    assert client_for(administrator).get("/settings/status/").status_code == 200
    assert client_for(marketer).get("/settings/status/").status_code == 403


def test_tasks_are_routed_to_their_apps_queues() -> None:
    from mapp.celery import app

    router = app.amqp.router
    assert router.route({}, "tracking.deliver_pending_activities")["queue"].name == "tracking"
    assert router.route({}, "prospects.refresh_dynamic_list")["queue"].name == "default"
    assert router.route({}, "mapp.tasks.heartbeat")["queue"].name == "default"
