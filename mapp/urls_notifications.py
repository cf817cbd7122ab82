"""In-app notifications (mapp/views_notifications.py)."""

from django.urls import URLPattern

app_name = "notifications"

urlpatterns: list[URLPattern] = []
