"""The score decay pages: rules that take points after days without activity."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from mapp.access import access_required, has_access, request_user
from mapp.models import Level, Module
from scoring.decay import decay_rule_delete, decay_rule_save
from scoring.forms_page_actions import ScoreDecayRuleForm
from scoring.models import ScoreDecayRule


@access_required(Module.AUTOMATION)
def decay_rule_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "scoring/decay/list.html",
        {
            "rules": ScoreDecayRule.objects.order_by("inactive_days", "id"),
            "can_edit": has_access(request.user, Module.AUTOMATION, Level.EDIT),
        },
    )


@access_required(Module.AUTOMATION, read_level=Level.EDIT)
def decay_rule_edit(request: HttpRequest, rule_id: int | None = None) -> HttpResponse:
    rule = get_object_or_404(ScoreDecayRule, pk=rule_id) if rule_id else None
    form = ScoreDecayRuleForm(request.POST or None, instance=rule)
    if request.method == "POST" and form.is_valid():
        decay_rule_save(rule=form.save(commit=False), actor=request_user(request))
        messages.success(request, _("Decay rule saved. It applies from the next hourly run."))
        return redirect("decay:list")
    return render(request, "scoring/decay/form.html", {"form": form, "rule": rule})


@access_required(Module.AUTOMATION, read_level=Level.EDIT)
@require_POST
def decay_rule_remove(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = get_object_or_404(ScoreDecayRule, pk=rule_id)
    decay_rule_delete(rule=rule, actor=request_user(request))
    messages.success(request, _("Decay rule deleted. The points it took stay in the history."))
    return redirect("decay:list")
