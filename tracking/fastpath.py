"""The tracking hot path: page-view beacons, open pixels and click redirects without the
middleware chain.

Every page of every customer site and every opened or clicked email reaches these three
endpoints; they are public, cookie-only (no session, no CSRF, no login, no language), and each
answers from one Redis round trip (tracking.ingest). Passing them through the app's twelve
middleware costs more than the view itself, so the WSGI application (mapp/wsgi.py) hands a
``GET`` whose URL matches a view marked :func:`fast_path` straight to that view — the way
Matomo's ``matomo.php`` skips its framework. What the skipped middleware does for such a view
is done here, with Django's own code where it matters:

* the host is validated against ``ALLOWED_HOSTS`` (``request.get_host()``, a verdict kept for a
  second per Host header; a foreign host goes through Django, which answers 400);
* the headers ``SecurityMiddleware`` and ``XFrameOptionsMiddleware`` add are added (computed by
  those middleware once per setting change and scheme), and ``Content-Length`` is set as
  ``CommonMiddleware`` sets it;
* database connections are checked after every hit as ``request_finished`` checks them
  (``close_old_connections``); the signals themselves are not sent — their other receivers
  (the cache, the per-request URLconf, the debug query log) have nothing to do for these
  views, and dispatching them cost more than some of the views;
* only views that are also declared ``public`` (mapp.access) are served here.

Anything else — other methods, other URLs, and any answer that is not one of the view's quick
answers (an error page that needs the visitor's language, say) — goes through the full Django
stack, exactly as without this module. The views themselves are ordinary Django views, also
reachable through Django (the test client uses that route); on the hot path they get a plain
``WSGIRequest`` without ``resolver_match``, and their response object is answered as a list of
bytes (so its ``close()`` — and with it ``request_finished`` — is not called).

Measured in one process, no server around it (bench/README.md): a no-op view costs ≈ 20 µs of
CPU here against ≈ 150–250 µs through the middleware; before this module skipped the signals,
the ResolverMatch, the middleware instances and the header re-formatting it cost ≈ 60 µs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import setting_changed
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern

from mapp.access import ACCESS_ATTRIBUTE, PUBLIC

logger = logging.getLogger(__name__)

FAST_PATH_ATTRIBUTE = "tracking_fast_statuses"
URL_PREFIX = "/t/"
# A Host header found valid is trusted this long without asking ALLOWED_HOSTS again (tracker
# domains added or removed in the app are themselves re-read every few seconds, tracking.domains).
HOST_VERDICT_SECONDS = 1.0
MAX_HOST_VERDICTS = 1024

View = TypeVar("View", bound=Callable[..., Any])


def fast_path(*statuses: int) -> Callable[[View], View]:
    """Mark a public GET view for the hot path; ``statuses`` are the answers it may give there."""

    def mark(view: View) -> View:
        setattr(view, FAST_PATH_ATTRIBUTE, frozenset(statuses))
        return view

    return mark


def _no_response(request: Any) -> HttpResponseBase:  # middleware need a get_response
    raise AssertionError("not called: only process_response is used")


# --- routes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    pattern: RoutePattern
    view: Callable[..., HttpResponseBase]
    statuses: frozenset[int]


class FastRoutes:
    """The marked views of a URLconf: exact paths in a dict, the others matched in order."""

    def __init__(self, routes: Iterable[_Route]) -> None:
        self.exact: dict[str, _Route] = {}
        self.patterned: list[_Route] = []
        for route in routes:
            if route.pattern.converters:
                self.patterned.append(route)
            else:
                self.exact.setdefault("/" + str(route.pattern), route)

    def match(self, path: str) -> tuple[_Route, dict[str, Any]] | None:
        route = self.exact.get(path)
        if route is not None:
            return route, {}
        relative = path[1:]
        for route in self.patterned:
            found = route.pattern.match(relative)
            if found is not None and not found[0]:
                return route, found[2]
        return None


def _marked_routes(resolver: URLResolver, prefix: str = "") -> Iterable[_Route]:
    """The marked views of the URLconf as flat ``path()`` routes (route patterns only)."""
    for pattern in resolver.url_patterns:
        if not isinstance(pattern.pattern, RoutePattern):
            continue  # a regex route stays on the full stack
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _marked_routes(pattern, route)
        elif isinstance(pattern, URLPattern):
            statuses = getattr(pattern.callback, FAST_PATH_ATTRIBUTE, None)
            if statuses:
                yield _Route(RoutePattern(route, is_endpoint=True), pattern.callback, statuses)


def fast_routes(urlconf: str) -> FastRoutes:
    """The marked views only: matching ``/t/pv`` through the whole URLconf costs more than the
    rest of the hot path."""
    routes = _fast_routes.get(urlconf)
    if routes is None:
        routes = _fast_routes[urlconf] = FastRoutes(_marked_routes(get_resolver(urlconf)))
    return routes


_fast_routes: dict[str, FastRoutes] = {}


# --- the middleware's headers --------------------------------------------------------------------


class _SchemeRequest(HttpRequest):
    """A request that is only http or https: all the two middleware ask of one."""

    def __init__(self, secure: bool) -> None:
        super().__init__()
        self.secure = secure

    def is_secure(self) -> bool:
        return self.secure


class TrackingFastPath:
    """WSGI application: the hot tracking endpoints directly, everything else through Django."""

    def __init__(self, django_application: Callable[..., Iterable[bytes]]) -> None:
        self.django_application = django_application
        self._middleware_headers: dict[bool, tuple[tuple[str, str, str], ...]] = {}
        self._host_verdicts: dict[tuple[str | None, ...], float] = {}
        setting_changed.connect(self._forget, weak=False)

    def _forget(self, **_kwargs: Any) -> None:
        self._middleware_headers = {}
        self._host_verdicts = {}

    def middleware_headers(self, secure: bool) -> tuple[tuple[str, str, str], ...]:
        """(lower-case name, name, value) of what SecurityMiddleware and XFrameOptionsMiddleware
        add to a response that has none of their headers (they only add a missing header)."""
        headers = self._middleware_headers.get(secure)
        if headers is None:
            scratch = HttpResponse()
            before = set(scratch.headers)
            request = _SchemeRequest(secure)
            SecurityMiddleware(_no_response).process_response(request, scratch)
            XFrameOptionsMiddleware(_no_response).process_response(request, scratch)
            headers = tuple(
                (name.lower(), name, value) for name, value in scratch.items() if name not in before
            )
            self._middleware_headers[secure] = headers
        return headers

    def _host_is_valid(self, request: WSGIRequest) -> bool:
        environ = request.META
        host_key = (
            environ.get("HTTP_HOST"),
            environ.get("HTTP_X_FORWARDED_HOST"),
            environ.get("SERVER_NAME"),
            environ.get("SERVER_PORT"),
        )
        now = time.monotonic()
        valid_until = self._host_verdicts.get(host_key)
        if valid_until is not None and now < valid_until:
            return True
        try:
            request.get_host()
        except DisallowedHost:
            return False  # not kept: Django answers, and logs it, every time
        verdicts = self._host_verdicts
        if len(verdicts) >= MAX_HOST_VERDICTS:
            verdicts.clear()
        verdicts[host_key] = now + HOST_VERDICT_SECONDS
        return True

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "GET" or not path.startswith(URL_PREFIX):
            return self.django_application(environ, start_response)
        # Django starts every request from ROOT_URLCONF too (a middleware may change it).
        found = fast_routes(settings.ROOT_URLCONF).match(path)
        if found is None:
            return self.django_application(environ, start_response)
        route, kwargs = found
        if getattr(route.view, ACCESS_ATTRIBUTE, None) is not PUBLIC:
            logger.error("%r is marked for the tracking fast path but is not public", route.view)
            return self.django_application(environ, start_response)

        request = WSGIRequest(environ)
        try:
            if not self._host_is_valid(request):
                return self.django_application(environ, start_response)
            response = route.view(request, **kwargs)
        except Exception:
            # Django answers instead (and reports the error the way it reports any other).
            logger.exception("tracking fast path failed; handing the request to Django")
            return self.django_application(environ, start_response)
        finally:
            # What request_finished does for the database (see the module docstring).
            close_old_connections()
        if response.status_code not in route.statuses or response.streaming:
            return self.django_application(environ, start_response)
        return self._answer(request, response, start_response)

    def _answer(
        self, request: WSGIRequest, response: HttpResponseBase, start_response: Callable[..., Any]
    ) -> list[bytes]:
        content: bytes = response.content  # type: ignore[attr-defined]
        if getattr(response, "xframe_options_exempt", False):
            # Not the shape precomputed below: the middleware itself, as before.
            SecurityMiddleware(_no_response).process_response(request, cast(HttpResponse, response))
            headers = list(response.items())
            present = {name.lower() for name, _value in headers}
        else:
            headers = list(response.items())
            present = {name.lower() for name, _value in headers}
            for lower_name, name, value in self.middleware_headers(request.is_secure()):
                if lower_name not in present:
                    headers.append((name, value))
        if "content-length" not in present:
            # As CommonMiddleware does: keep-alive clients need the length, not chunks.
            headers.append(("Content-Length", str(len(content))))
        for cookie in response.cookies.values():
            headers.append(("Set-Cookie", cookie.output(header="")))
        start_response(f"{response.status_code} {response.reason_phrase}", headers)
        return [content]
