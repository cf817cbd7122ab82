"""Reading configuration from the environment: one place, loud failures.

Every setting that differs between machines comes from an environment variable read here.
In production (``MAPP_ENV=production``) a required variable that is missing stops the process
at start-up with its name, instead of running with a development default.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_MISSING: Any = object()


class ImproperlyConfiguredEnv(RuntimeError):
    """A required environment variable is missing or unreadable."""


def is_production() -> bool:
    return os.environ.get("MAPP_ENV", "development").strip().lower() == "production"


def _cast_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {raw!r}")


def _cast_list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def get_from_env(
    key: str,
    default: Any = _MISSING,
    *,
    cast: Callable[[str], T] | None = None,
    dev_default: Any = _MISSING,
) -> Any:
    """Return ``key`` from the environment, cast.

    ``default`` applies everywhere; ``dev_default`` only outside production, so a value that must
    be chosen deliberately in production (a secret, a host name) fails loudly there.
    """
    raw = os.environ.get(key)
    if raw is None or raw == "":
        if default is not _MISSING:
            return default
        if dev_default is not _MISSING and not is_production():
            return dev_default
        raise ImproperlyConfiguredEnv(
            f"The environment variable {key} is required"
            + (" in production (MAPP_ENV=production)." if is_production() else ".")
        )
    if cast is None:
        return raw
    try:
        return cast(raw)
    except ValueError as error:
        raise ImproperlyConfiguredEnv(
            f"The environment variable {key} is invalid: {error}"
        ) from error


def get_bool(key: str, default: bool) -> bool:
    return bool(get_from_env(key, default, cast=_cast_bool))


def get_int(key: str, default: int) -> int:
    return int(get_from_env(key, default, cast=int))


def get_list(key: str, default: list[str] | None = None, **kwargs: Any) -> list[str]:
    if default is not None:
        kwargs["default"] = default
    return list(get_from_env(key, cast=_cast_list, **kwargs))
