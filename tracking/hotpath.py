"""Helpers of the tracking hot path's views (tracking/fastpath.py): the same answers as the
shared helpers they stand in for, without the per-hit work that is the same every time.

* The visitor cookie. ``tracking.visitor_cookie.set_visitor_cookie_uuid`` is its one definition
  (name, two years, HttpOnly, SameSite=Lax, Secure on https). Setting it through
  ``HttpResponse.set_cookie`` and formatting the ``Set-Cookie`` header costs ≈ 15 µs, as much as
  parsing the beacon, and every page view refreshes it: :func:`set_visitor_cookie_quick` sets
  the very same cookie from a template made by that function once per second (its ``expires``
  is to the second) and scheme.
* The client address. ``tracking.visitor_cookie.request_ip`` parses it on every hit;
  :func:`client_address` keeps its answers for the addresses it has seen.
* A new visitor's uuid. ``uuid.uuid4()`` asks the kernel for 16 random bytes each time, and
  in a threaded web worker every system call may hand the interpreter to another thread:
  :func:`new_visitor_uuid` makes the same version-4 uuids from the same source, 4 KB at a time.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from http.cookies import Morsel, SimpleCookie
from typing import Any

from django.core import signing
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from tracking.visitor_cookie import COOKIE_NAME, COOKIE_SALT, request_ip, set_visitor_cookie_uuid


class PreparedMorsel(Morsel):
    """A cookie with the attributes of a template cookie (``expires`` to the second included):
    its ``Set-Cookie`` text is the template's attribute text after this cookie's own
    ``name=value``, formatted once per template rather than once per hit. Changing an
    attribute afterwards formats it the ordinary way."""

    _attribute_text: str | None = None

    @classmethod
    def like(cls, template: Morsel, attribute_text: str, value: str, coded_value: str) -> Morsel:
        morsel = cls()
        dict.update(morsel, template)
        morsel.__dict__.update(template.__dict__)
        morsel._value = value  # type: ignore[attr-defined]
        morsel._coded_value = coded_value  # type: ignore[attr-defined]
        morsel._attribute_text = attribute_text
        return morsel

    def __setitem__(self, key: str, value: Any) -> None:
        self._attribute_text = None
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._attribute_text = None
        super().update(*args, **kwargs)

    def setdefault(self, key: str, value: Any = None) -> Any:
        self._attribute_text = None
        return super().setdefault(key, value)

    def OutputString(self, attrs: Any = None) -> str:
        if attrs is None and self._attribute_text is not None:
            return f"{self.key}={self.coded_value}{self._attribute_text}"
        return super().OutputString(attrs)


_PLACEHOLDER = "placeholder"
_PLACEHOLDER_UUID = uuid.UUID(int=0)
_encoder = SimpleCookie()
# secure → (the second it is valid for, the template cookie, its attribute text)
_templates: dict[bool, tuple[int, Morsel, str]] = {}


def _template(secure: bool) -> tuple[Morsel, str]:
    second = int(time.time())
    cached = _templates.get(secure)
    if cached is not None and cached[0] == second:
        return cached[1], cached[2]
    scratch = HttpResponse()
    set_visitor_cookie_uuid(scratch, _PLACEHOLDER_UUID, secure=secure, signed_value=_PLACEHOLDER)
    morsel = scratch.cookies[COOKIE_NAME]
    text = morsel.OutputString()
    own = f"{COOKIE_NAME}={_PLACEHOLDER}"
    if not text.startswith(own):
        raise AssertionError(f"unexpected cookie text {text!r}")
    attribute_text = text[len(own) :]
    if int(time.time()) == second:  # else made across a second boundary: made again next time
        _templates[secure] = (second, morsel, attribute_text)
    return morsel, attribute_text


def set_visitor_cookie_quick(
    response: HttpResponseBase,
    visitor_uuid: uuid.UUID,
    *,
    secure: bool,
    signed_value: str | None = None,
) -> None:
    """Exactly ``set_visitor_cookie_uuid(response, visitor_uuid, secure=…, signed_value=…)``."""
    value = signed_value or signing.dumps(str(visitor_uuid), salt=COOKIE_SALT)
    template, attribute_text = _template(secure)
    plain, coded = _encoder.value_encode(value)
    response.cookies[COOKIE_NAME] = PreparedMorsel.like(template, attribute_text, plain, coded)


# --- the client address --------------------------------------------------------------------------

MAX_ADDRESSES = 4096
# (REMOTE_ADDR, X-Forwarded-For) → request_ip's answer; emptied when a setting changes
# (TRUSTED_PROXY_COUNT decides which one counts) or when full.
_addresses: dict[tuple[str | None, str | None], str | None] = {}


def client_address(request: HttpRequest) -> str | None:
    """Exactly ``request_ip(request)``."""
    meta = request.META
    key = (meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"))
    try:
        return _addresses[key]
    except KeyError:
        pass
    address = request_ip(request)
    if len(_addresses) >= MAX_ADDRESSES:
        _addresses.clear()
    _addresses[key] = address
    return address


def _forget_addresses(**_kwargs: object) -> None:
    _addresses.clear()


setting_changed.connect(_forget_addresses, dispatch_uid="tracking.hotpath.addresses")


# --- new visitors' uuids -----------------------------------------------------------------------

UUID_BYTES_PER_READ = 4096


class _RandomBytes(threading.local):
    """This thread's unused bytes from ``os.urandom`` (and the process they were read in: a
    forked worker must not hand out its parent's)."""

    pool = b""
    offset = 0
    pid = 0


_random = _RandomBytes()


def new_visitor_uuid() -> uuid.UUID:
    """A random (version 4) uuid, as ``uuid.uuid4()`` makes it, from ``os.urandom``."""
    state = _random
    if state.offset + 16 > len(state.pool) or state.pid != os.getpid():
        state.pool, state.offset, state.pid = os.urandom(UUID_BYTES_PER_READ), 0, os.getpid()
    start = state.offset
    state.offset = start + 16
    return uuid.UUID(bytes=state.pool[start : start + 16], version=4)
