"""Two workers sending the daily digests at the same moment: each user still gets one mail."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable
from functools import partial
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.db import connection

from mapp.models import Role
from prospects.models import HotStatus, Prospect
from scoring.hot_digest import hot_digests_send
from scoring.models import HotDigest
from tests.factories import ProspectFactory, make_user

pytestmark = pytest.mark.django_db(transaction=True)

MORNING = datetime.datetime(2026, 3, 5, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))


def _in_parallel(work: list[Callable[[], object]]) -> None:
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


def test_two_workers_at_once_send_each_digest_once() -> None:
    users = [make_user(Role.SALES, email=f"eigyo{n}@example.jp") for n in range(3)]
    for user in users:
        prospect = ProspectFactory.create(assigned_user=user)
        Prospect.objects.filter(pk=prospect.pk).update(
            hot_status=HotStatus.HOT, hot_since=MORNING - datetime.timedelta(hours=1), score=90
        )

    _in_parallel([partial(hot_digests_send, now=MORNING) for _ in range(4)])

    assert sorted(message.to[0] for message in mail.outbox) == sorted(u.email for u in users)
    assert HotDigest.objects.filter(sent_at__isnull=False).count() == 3
