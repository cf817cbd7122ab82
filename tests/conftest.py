from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.utils import translation

from mapp.celery import app as celery_app
from mapp.models import Role, User
from tests.factories import make_user


@pytest.fixture
def administrator(db: None) -> User:
    return make_user(Role.ADMINISTRATOR, email="admin@example.jp")


@pytest.fixture
def marketer(db: None) -> User:
    return make_user(Role.MARKETING, email="marketing@example.jp")


@pytest.fixture
def sales_manager(db: None) -> User:
    return make_user(Role.SALES_MANAGER, email="manager@example.jp")


@pytest.fixture
def sales_user(db: None) -> User:
    return make_user(Role.SALES, email="sales@example.jp")


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def english(settings: Any) -> Iterator[None]:
    """For tests that read English messages: the interface defaults to Japanese."""
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def own_tracking_keys(settings: Any) -> None:
    """Tracking's queue, rate-limit counters and replay ids live in Redis: each test gets its
    own key space, so neither earlier tests nor parallel runs on the same Redis interfere."""
    settings.TRACKING_KEY_PREFIX = f"test:{uuid.uuid4().hex}:tracking:"


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One headless Chromium (Debian's, through Playwright) for the whole run: Playwright's sync
    API allows one instance per process, so every browser test shares this one."""
    from playwright.sync_api import sync_playwright

    from mapp.devservices import chromium_path
    from tests.e2e.conftest import CHROMIUM_ARGS

    executable = chromium_path()
    if executable is None:
        pytest.fail("Chromium is missing: `make test` installs it (scripts/ensure-chromium.sh)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Run queued tasks at once. The Celery app read its settings when first used, so this is
    set on the app itself (changing CELERY_TASK_ALWAYS_EAGER later does nothing)."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous
