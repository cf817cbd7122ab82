from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from mapp.services import ensure_first_administrator


class Command(BaseCommand):
    help = (
        "Create the first administrator if there is no user yet "
        "(MAPP_ADMIN_EMAIL / MAPP_ADMIN_PASSWORD)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        user, generated_password = ensure_first_administrator(
            email=settings.MAPP_ADMIN_EMAIL, password=settings.MAPP_ADMIN_PASSWORD or None
        )
        if user is None:
            return
        self.stdout.write(self.style.SUCCESS(f"Created the first administrator: {user.email}"))
        if generated_password:
            # Shown once: it is stored only as a hash.
            self.stdout.write(
                self.style.WARNING(
                    f"  password: {generated_password}   "
                    "(shown only now; change it after signing in)"
                )
            )
