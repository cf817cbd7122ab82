"""Public tracking endpoints, mounted at /t/ (see tracking/views_tracking.py)."""

from django.urls import path

from tracking import views_tracking

app_name = "tracking"

urlpatterns = [
    path("mapp.js", views_tracking.script, name="script"),
    path("config.json", views_tracking.config, name="config"),
    path("pv", views_tracking.page_view, name="page_view"),
    path("identify", views_tracking.identify, name="identify"),
]
