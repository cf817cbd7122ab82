"""The Celery application: one for web, worker and beat, configured from Django settings."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mapp.settings")

app = Celery("mapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
