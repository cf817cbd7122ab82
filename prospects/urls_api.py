"""REST API v1 of prospects (prospects/api.py)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
