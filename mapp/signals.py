"""Sign-in events into the audit log. Django's auth views only announce them by signal."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed


def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    from mapp.services import audit_log_record

    audit_log_record(actor=user, action="auth.login", target=user, request=request)


def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    from mapp.services import audit_log_record

    if user is not None:
        audit_log_record(actor=user, action="auth.logout", target=user, request=request)


def _login_failed(sender: Any, credentials: Any, request: Any = None, **kwargs: Any) -> None:
    from mapp.services import audit_log_record

    attempted = str((credentials or {}).get("username") or (credentials or {}).get("email") or "")
    audit_log_record(
        actor=None,
        actor_email=attempted[:254],
        action="auth.login_failed",
        request=request,
    )


def connect() -> None:
    user_logged_in.connect(_logged_in, dispatch_uid="mapp.audit.login")
    user_logged_out.connect(_logged_out, dispatch_uid="mapp.audit.logout")
    user_login_failed.connect(_login_failed, dispatch_uid="mapp.audit.login_failed")
