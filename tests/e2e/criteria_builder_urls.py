"""A throwaway page for the criteria builder's browser tests (tests/e2e/test_criteria_builder.py).

It hosts templates/includes/criteria_builder.html on its own, with a preview endpoint that counts
the real prospects matching through the criteria engine, so the builder is tested without the
lists views. Used only through ``settings.ROOT_URLCONF`` in those tests.
"""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import engines
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from mapp.access import public
from prospects.criteria import (
    CriteriaError,
    criteria_catalogue,
    prospects_matching,
    validate_criteria,
)

PAGE = """{% load static %}<!doctype html>
<html lang="{{ LANGUAGE_CODE }}">
<head>
  <meta charset="utf-8">
  <title>Criteria builder</title>
  <link rel="stylesheet" href="{% static 'css/app.css' %}">
</head>
<body class="app" hx-headers='{"X-CSRFToken": "{{ csrf_token }}"}'>
  <main class="content">
    <div class="page-header"><h1>動的リスト: 条件</h1></div>
    <form method="post" action="{{ submit_url }}" id="criteria-form">{% csrf_token %}
      {% include "includes/criteria_builder.html" with name="criteria" criteria=criteria catalogue=criteria_catalogue preview_url=preview_url %}
      <div class="form-actions"><button type="submit" class="button primary">Save</button></div>
    </form>
  </main>
</body>
</html>
"""  # noqa: E501 - a template tag cannot be split over lines


@public
def builder_page(request: HttpRequest) -> HttpResponse:
    """The builder; ``?criteria=<json>`` starts it from that document (validated first)."""
    raw = request.GET.get("criteria")
    criteria = validate_criteria(json.loads(raw)) if raw else None
    template = engines["django"].from_string(PAGE)
    context = {
        "criteria": criteria,
        "criteria_catalogue": criteria_catalogue(),
        "preview_url": reverse("criteria_builder_preview"),
        "submit_url": reverse("criteria_builder_submit"),
    }
    return HttpResponse(template.render(context, request))


@public
@require_POST
def builder_preview(request: HttpRequest) -> JsonResponse:
    """What lists:criteria_preview answers: the count, or the error and where it is."""
    try:
        payload = json.loads(request.body)
    except ValueError:
        return JsonResponse({"error": "invalid JSON", "path": ""}, status=400)
    try:
        criteria = validate_criteria(payload.get("criteria") if isinstance(payload, dict) else None)
    except CriteriaError as error:
        return JsonResponse({"error": error.message, "path": error.path}, status=400)
    return JsonResponse({"count": prospects_matching(criteria).count()})


@public
@require_POST
def builder_submit(request: HttpRequest) -> JsonResponse:
    """Echo what a plain form POST carried in the builder's textarea."""
    return JsonResponse({"criteria": json.loads(request.POST["criteria"])})


urlpatterns = [
    path("criteria-builder/", builder_page, name="criteria_builder_page"),
    path("criteria-builder/preview/", builder_preview, name="criteria_builder_preview"),
    path("criteria-builder/submit/", builder_submit, name="criteria_builder_submit"),
]
