"""The app's URLs plus the benchmark's baseline: a no-op Django view behind the same middleware."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from mapp.access import public
from mapp.urls import urlpatterns as app_urlpatterns
from tracking.views_tracking import TRANSPARENT_GIF


@public
def noop(request: HttpRequest) -> HttpResponse:
    """Answers like the beacon (the same 1×1 GIF), doing nothing else."""
    return HttpResponse(TRANSPARENT_GIF, content_type="image/gif")


urlpatterns = [path("bench/noop", noop, name="bench_noop"), *app_urlpatterns]
