"""Import and export pages (prospects/views_import.py)."""

from django.urls import URLPattern

app_name = "prospects_import"

urlpatterns: list[URLPattern] = []
