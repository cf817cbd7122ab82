from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask


class Command(BaseCommand):
    help = "Create the periodic tasks mapp ships with (settings.MAPP_PERIODIC_TASKS) if missing."

    def handle(self, *args: Any, **options: Any) -> None:
        for definition in settings.MAPP_PERIODIC_TASKS:
            if PeriodicTask.objects.filter(name=definition["name"]).exists():
                continue  # once created, the schedule belongs to the administrators (Django admin)
            every_seconds = cast(int, definition["every_seconds"])
            interval, _ = IntervalSchedule.objects.get_or_create(
                every=every_seconds, period=IntervalSchedule.SECONDS
            )
            PeriodicTask.objects.create(
                name=definition["name"],
                task=definition["task"],
                interval=interval,
                description=definition.get("description", ""),
                # Due at once on beat's first start, instead of one interval later.
                last_run_at=timezone.now() - timedelta(seconds=every_seconds),
            )
            self.stdout.write(f"Created periodic task {definition['name']!r}")
