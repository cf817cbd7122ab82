"""Task (ToDo) pages (prospects/views_tasks.py)."""

from django.urls import URLPattern

app_name = "tasks"

urlpatterns: list[URLPattern] = []
