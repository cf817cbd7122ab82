"""The HOT rule page: the threshold, further criteria, what happens when a prospect becomes HOT,
the daily digest, how many prospects have each status, and the rule's error if it broke."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _

from mapp.access import access_required, has_access, request_user
from mapp.models import Level, Module
from prospects.actions import action_label
from prospects.criteria import CriteriaError, criteria_catalogue
from prospects.selectors import prospects_visible_to
from scoring.forms_hot import HotRuleForm
from scoring.hot import hot_rule_get, hot_rule_save, hot_status_counts


def _posted_criteria(form: HotRuleForm) -> Any:
    """The criteria to draw in the builder: as posted (even invalid), else as stored."""
    if form.is_bound:
        return form.data.get("criteria") or None
    return form.initial.get("criteria")


@access_required(Module.AUTOMATION)
def hot_settings(request: HttpRequest) -> HttpResponse:
    """GET: the rule (everyone with Automation); POST: change it (Automation edit)."""
    user = request_user(request)
    rule = hot_rule_get()
    can_edit = has_access(user, Module.AUTOMATION, Level.EDIT)
    form = HotRuleForm(
        request.POST if request.method == "POST" else None,
        initial={
            "threshold": rule.threshold,
            "criteria": rule.criteria or {"match": "all", "conditions": []},
            "actions": rule.actions,
            "digest_enabled": rule.digest_enabled,
            "digest_hour": rule.digest_hour,
        },
        actor=user,
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            hot_rule_save(
                actor=user,
                threshold=data["threshold"],
                criteria=data["criteria"],
                actions=data["actions"],
                digest_enabled=data["digest_enabled"],
                digest_hour=data["digest_hour"],
            )
        except (CriteriaError, ValidationError) as error:
            form.add_error(None, str(error) if isinstance(error, CriteriaError) else error)
        else:
            messages.success(request, _("HOT rule saved. Every prospect is being evaluated again."))
            return redirect("hot:settings")
    criteria = _posted_criteria(form)
    return render(
        request,
        "scoring/hot/settings.html",
        {
            "rule": rule,
            "form": form,
            "can_edit": can_edit,
            "counts": hot_status_counts(prospects_visible_to(user)),
            "criteria": criteria,
            "criteria_json": json.dumps(rule.criteria, ensure_ascii=False, indent=2),
            "action_labels": [
                action_label(str(item.get("action", "")))
                for item in rule.actions
                if isinstance(item, dict)
            ],
            "criteria_catalogue": criteria_catalogue(),
            "preview_url": reverse("lists:criteria_preview"),
            "prospect_list_url": reverse("prospects:list"),
        },
    )
