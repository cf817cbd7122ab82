"""Fixtures of the scoring tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mapp.celery import app as celery_app


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Run queued tasks at once. The Celery app read its settings when first used, so this is
    set on the app itself (changing CELERY_TASK_ALWAYS_EAGER later does nothing)."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous
