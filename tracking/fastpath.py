"""The tracking hot path: page-view beacons, open pixels and click redirects without the
middleware chain.

Every page of every customer site and every opened or clicked email reaches these three
endpoints; they are public, cookie-only (no session, no CSRF, no login, no language), and each
answers from one Redis round trip (tracking.ingest). Passing them through the app's twelve
middleware costs more than the view itself, so the WSGI application (mapp/wsgi.py) hands a
``GET`` whose URL resolves to a view marked :func:`fast_path` straight to that view — the way
Matomo's ``matomo.php`` skips its framework. What the skipped middleware does for such a view
is done here, with Django's own code where it matters:

* the host is validated against ``ALLOWED_HOSTS`` (``request.get_host()``; a foreign host goes
  through Django, which answers 400);
* ``SecurityMiddleware`` and ``XFrameOptionsMiddleware`` add their headers to the response,
  and ``Content-Length`` is set as ``CommonMiddleware`` sets it;
* ``request_started`` is sent before the view and the response's ``close()`` sends
  ``request_finished`` as always, so database connections are managed as for any request;
* only views that are also declared ``public`` (mapp.access) may be marked.

Anything else — other methods, other URLs, and any answer that is not one of the view's quick
answers (an error page that needs the visitor's language, say) — goes through the full Django
stack, exactly as without this module. The views themselves are unchanged and are also reachable
through Django (the test client uses that route).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.conf import settings
from django.core import signals
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, get_urlconf, path
from django.urls.resolvers import RegexPattern, RoutePattern

from mapp.access import ACCESS_ATTRIBUTE, PUBLIC

logger = logging.getLogger(__name__)

FAST_PATH_ATTRIBUTE = "tracking_fast_statuses"
URL_PREFIX = "/t/"

View = TypeVar("View", bound=Callable[..., Any])


def fast_path(*statuses: int) -> Callable[[View], View]:
    """Mark a public GET view for the hot path; ``statuses`` are the answers it may give there."""

    def mark(view: View) -> View:
        setattr(view, FAST_PATH_ATTRIBUTE, frozenset(statuses))
        return view

    return mark


def _no_response(request: Any) -> HttpResponseBase:  # middleware need a get_response
    raise AssertionError("not called: only process_response is used")


def _marked_routes(resolver: URLResolver, prefix: str = "") -> Iterable[URLPattern]:
    """The marked views of the URLconf as flat ``path()`` routes (route patterns only)."""
    for pattern in resolver.url_patterns:
        if not isinstance(pattern.pattern, RoutePattern):
            continue  # a regex route stays on the full stack
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _marked_routes(pattern, route)
        elif getattr(pattern.callback, FAST_PATH_ATTRIBUTE, None):
            yield path(route, pattern.callback)


def fast_resolver(urlconf: str) -> URLResolver:
    """A resolver of only the marked views: resolving ``/t/pv`` through the whole URLconf
    costs more than the rest of the hot path."""
    resolver = _fast_resolvers.get(urlconf)
    if resolver is None:
        routes = list(_marked_routes(get_resolver(urlconf)))
        resolver = _fast_resolvers[urlconf] = URLResolver(RegexPattern(r"^/"), routes)
    return resolver


_fast_resolvers: dict[str, URLResolver] = {}


class TrackingFastPath:
    """WSGI application: the hot tracking endpoints directly, everything else through Django."""

    def __init__(self, django_application: Callable[..., Iterable[bytes]]) -> None:
        self.django_application = django_application
        self.security = SecurityMiddleware(_no_response)
        self.frame_options = XFrameOptionsMiddleware(_no_response)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "GET" or not path.startswith(URL_PREFIX):
            return self.django_application(environ, start_response)
        urlconf = get_urlconf() or settings.ROOT_URLCONF
        try:
            match = fast_resolver(urlconf).resolve(path)
        except Resolver404:
            return self.django_application(environ, start_response)
        statuses = getattr(match.func, FAST_PATH_ATTRIBUTE, None)
        if not statuses:
            return self.django_application(environ, start_response)

        signals.request_started.send(sender=self.__class__, environ=environ)
        request = WSGIRequest(environ)
        try:
            request.get_host()
            if getattr(match.func, ACCESS_ATTRIBUTE, None) is not PUBLIC:
                raise PermissionError(f"{match.func!r} is marked fast but is not public")
            request.resolver_match = match
            response = match.func(request, *match.args, **match.kwargs)
        except DisallowedHost:
            return self.django_application(environ, start_response)
        except Exception:
            # Django answers instead (and reports the error the way it reports any other).
            logger.exception("tracking fast path failed; handing the request to Django")
            return self.django_application(environ, start_response)
        if response.status_code not in statuses:
            return self.django_application(environ, start_response)

        if not response.streaming and not response.has_header("Content-Length"):
            # As CommonMiddleware does: keep-alive clients need the length, not chunks.
            response.headers["Content-Length"] = str(len(response.content))
        response = self.security.process_response(request, response)
        response = self.frame_options.process_response(request, response)
        # The server's close() of the response closes the request and, as for any response,
        # sends request_finished (database connections are checked again).
        getattr(response, "_resource_closers").append(request.close)  # noqa: B009 - as WSGIHandler
        headers = [
            *response.items(),
            *(("Set-Cookie", cookie.output(header="")) for cookie in response.cookies.values()),
        ]
        start_response(f"{response.status_code} {response.reason_phrase}", headers)
        return response
