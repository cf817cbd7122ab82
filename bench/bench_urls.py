"""The app's URLs plus the benchmark's baselines: a no-op Django view behind the app's middleware
(``/bench/noop``, the issue's baseline), and the same no-op on the tracking fast path
(``/t/bench-noop``, tracking/fastpath.py), to show what the tracking code itself costs; and
``/bench/worker``, the pid of the worker that answers, with which the load generator spreads its
connections over the workers."""

import os

from django.http import HttpRequest, HttpResponse
from django.urls import path

from mapp.access import public
from mapp.urls import urlpatterns as app_urlpatterns
from tracking.fastpath import fast_path
from tracking.views_tracking import TRANSPARENT_GIF


@public
def noop(request: HttpRequest) -> HttpResponse:
    """Answers like the beacon (the same 1×1 GIF), doing nothing else."""
    return HttpResponse(TRANSPARENT_GIF, content_type="image/gif")


@fast_path(200)
@public
def fast_noop(request: HttpRequest) -> HttpResponse:
    return HttpResponse(TRANSPARENT_GIF, content_type="image/gif")


@public
def worker(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(os.getpid()), content_type="text/plain")


urlpatterns = [
    path("bench/worker", worker, name="bench_worker"),
    path("bench/noop", noop, name="bench_noop"),
    path("t/bench-noop", fast_noop, name="bench_fast_noop"),
    *app_urlpatterns,
]
