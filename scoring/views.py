"""The scoring rules page: administrators and marketers edit the points of each activity.

Every change queues a retroactive rescore of all prospects (shown with its progress here).
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from mapp.access import access_required, has_access, request_user
from mapp.models import Level, Module
from scoring.forms import ScoringRuleForm
from scoring.models import Rescore, ScoringRule
from scoring.services import scoring_rule_delete, scoring_rule_save


@access_required(Module.AUTOMATION)
def rule_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "scoring/rule_list.html",
        {
            "rules": ScoringRule.objects.order_by("activity_type", "-is_default", "id"),
            "rescore": Rescore.objects.order_by("-created_at", "-id").first(),
            "can_edit": has_access(request.user, Module.AUTOMATION, Level.EDIT),
        },
    )


@access_required(Module.AUTOMATION)
def rule_edit(request: HttpRequest, rule_id: int | None = None) -> HttpResponse:
    rule = get_object_or_404(ScoringRule, pk=rule_id) if rule_id else None
    form = ScoringRuleForm(request.POST or None, instance=rule)
    if request.method == "POST" and form.is_valid():
        scoring_rule_save(rule=form.save(commit=False), actor=request_user(request))
        messages.success(request, _("Rule saved. All prospects are being rescored."))
        return redirect("scoring:rules")
    return render(request, "scoring/rule_form.html", {"form": form, "rule": rule})


@access_required(Module.AUTOMATION, read_level=Level.EDIT)
@require_POST
def rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = get_object_or_404(ScoringRule, pk=rule_id)
    if rule.is_default:
        messages.error(request, _("Default rules cannot be deleted; set their points instead."))
    else:
        scoring_rule_delete(rule=rule, actor=request_user(request))
        messages.success(request, _("Rule deleted. All prospects are being rescored."))
    return redirect("scoring:rules")
