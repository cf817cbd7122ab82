"""Two workers sending the daily digests at the same moment: each user still gets one mail."""

from __future__ import annotations

import datetime
from functools import partial
from zoneinfo import ZoneInfo

import pytest
from django.core import mail

from mapp.models import Role
from prospects.models import HotStatus, Prospect
from scoring.hot_digest import hot_digests_send
from scoring.models import HotDigest
from tests.concurrency import in_parallel
from tests.factories import ProspectFactory, make_user

pytestmark = pytest.mark.django_db(transaction=True)

MORNING = datetime.datetime(2026, 3, 5, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))


def test_two_workers_at_once_send_each_digest_once() -> None:
    users = [make_user(Role.SALES, email=f"eigyo{n}@example.jp") for n in range(3)]
    for user in users:
        prospect = ProspectFactory.create(assigned_user=user)
        Prospect.objects.filter(pk=prospect.pk).update(
            hot_status=HotStatus.HOT, hot_since=MORNING - datetime.timedelta(hours=1), score=90
        )

    in_parallel([partial(hot_digests_send, now=MORNING) for _ in range(4)])

    assert sorted(message.to[0] for message in mail.outbox) == sorted(u.email for u in users)
    assert HotDigest.objects.filter(sent_at__isnull=False).count() == 3
