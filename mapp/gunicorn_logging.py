"""gunicorn's logger with an access line that costs only what its format uses.

gunicorn's own ``Logger.access`` builds, for every request, every field any access-log format
could name — about twenty atoms, then one per request header, response header and WSGI environ
entry (``{name}i``, ``{name}o``, ``{name}e``) — and copies them all once more to escape quotes:
≈ 20 µs of a request's CPU, more than the whole tracking fast path's routing
(tracking/fastpath.py), to print nine of them. :class:`AccessLogger` computes the nine fields of
gunicorn's default format (``h l u t r s b f a``) when the line asks for them, exactly as gunicorn
does; any other field — a custom ``--access-logformat`` — is answered from gunicorn's own atoms,
so every format prints what it printed before.

Used by ``mapp run`` (mapp/cli.py) and the image (Dockerfile): ``--logger-class
mapp.gunicorn_logging.AccessLogger``.
"""

from __future__ import annotations

import datetime
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from gunicorn import glogging


def _escaped(value: Any) -> Any:
    """As gunicorn's SafeAtoms stores every atom."""
    return value.replace('"', '\\"') if isinstance(value, str) else value


class _Line:
    """What one access line is made of."""

    __slots__ = ("environ", "logger", "request", "request_time", "response")

    def __init__(
        self,
        logger: AccessLogger,
        response: Any,
        request: Any,
        environ: dict[str, Any],
        request_time: datetime.timedelta,
    ) -> None:
        self.logger = logger
        self.response = response
        self.request = request
        self.environ = environ
        self.request_time = request_time


def _status(line: _Line) -> Any:
    status = line.response.status
    return status.split(None, 1)[0] if isinstance(status, str) else status


def _sent(line: _Line) -> str:
    sent = getattr(line.response, "sent", None)
    return (sent is not None and str(sent)) or "-"


def _request_line(line: _Line) -> str:
    environ = line.environ
    return f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}"


# gunicorn's Logger.atoms, field by field, for the fields of its default access_log_format.
_QUICK_ATOMS: dict[str, Callable[[_Line], Any]] = {
    "h": lambda line: line.environ.get("REMOTE_ADDR", "-"),
    "l": lambda line: "-",
    "u": lambda line: line.logger._get_user(line.environ) or "-",
    "t": lambda line: line.logger.now(),
    "r": _request_line,
    "s": _status,
    "b": _sent,
    "f": lambda line: line.environ.get("HTTP_REFERER", "-"),
    "a": lambda line: line.environ.get("HTTP_USER_AGENT", "-"),
}


class LazyAtoms(Mapping[str, Any]):
    """The atoms of one access line, each computed when the format asks for it; an atom
    outside :data:`_QUICK_ATOMS` comes from gunicorn's own ``atoms`` and ``SafeAtoms``."""

    def __init__(self, line: _Line) -> None:
        self._line = line
        self._full: glogging.SafeAtoms | None = None

    def _gunicorn_atoms(self) -> glogging.SafeAtoms:
        if self._full is None:
            line = self._line
            self._full = glogging.SafeAtoms(
                glogging.Logger.atoms(
                    line.logger, line.response, line.request, line.environ, line.request_time
                )
            )
        return self._full

    def __getitem__(self, key: str) -> Any:
        quick = _QUICK_ATOMS.get(key)
        if quick is not None:
            return _escaped(quick(self._line))
        return self._gunicorn_atoms()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._gunicorn_atoms())

    def __len__(self) -> int:
        # Never empty: logging only treats a non-empty mapping as the format's arguments.
        return max(1, len(self._gunicorn_atoms()))

    def __bool__(self) -> bool:
        return True


class AccessLogger(glogging.Logger):
    """gunicorn's logger; only its access line is computed lazily (see the module docstring)."""

    def access(
        self, resp: Any, req: Any, environ: dict[str, Any], request_time: datetime.timedelta
    ) -> None:
        if not self.access_log_enabled:
            return
        try:
            self.access_log.info(
                self.cfg.access_log_format,
                LazyAtoms(_Line(self, resp, req, environ, request_time)),
            )
        except Exception:  # noqa: BLE001 - as gunicorn: a bad format never fails a request
            self.error(traceback.format_exc())
