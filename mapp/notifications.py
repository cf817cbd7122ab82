"""Notifying users: an in-app notice and, by default, an email. Idempotent per dedup key."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import translation

from mapp.models import Level, Module, Notification, User


def notify_user(
    *,
    user: User,
    title: str,
    body: str = "",
    url: str = "",
    dedup_key: str = "",
    send_email: bool = True,
) -> Notification | None:
    """Notify ``user``; with a ``dedup_key``, a second call with the same key does nothing.

    Returns the notification, or None when it had been sent already or the user is inactive.
    The mail goes out after the surrounding transaction commits.
    """
    if not user.is_active:
        return None
    try:
        with transaction.atomic():
            notification = Notification.objects.create(
                user=user, title=title[:200], body=body, url=url[:500], dedup_key=dedup_key[:200]
            )
    except IntegrityError:
        return None  # this dedup key was notified already (a retried job)
    if send_email:
        link = f"{settings.SITE_URL}{url}" if url.startswith("/") else url
        message = f"{body}\n\n{link}".strip()
        transaction.on_commit(
            lambda: send_mail(
                subject=f"[mapp] {title}",
                message=message,
                from_email=None,
                recipient_list=[user.email],
                fail_silently=False,
            )
        )
    return notification


def administrators() -> Iterable[User]:
    """Users whose role manages the account's settings."""
    for user in User.objects.filter(is_active=True).select_related("role"):
        if user.role.level_for(Module.SETTINGS) >= Level.EDIT:
            yield user


def notify_administrators(*, title: str, body: str, url: str = "", dedup_key: str = "") -> int:
    sent = 0
    for user in administrators():
        language = user.language or settings.LANGUAGE_CODE
        with translation.override(language):
            if notify_user(user=user, title=title, body=body, url=url, dedup_key=dedup_key):
                sent += 1
    return sent
