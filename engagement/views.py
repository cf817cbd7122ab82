"""Automation rule pages: list, create / edit, the rule page (criteria, actions, preview count,
history), pause, resume, delete. Thin: the work is in engagement.rules."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from engagement import rules
from engagement.forms import AutomationRuleForm
from engagement.models import AutomationRule, RuleStatus
from mapp.access import access_required, has_access, request_user
from mapp.models import Level, Module
from prospects.criteria import CriteriaError, criteria_catalogue

HISTORY_PAGE_SIZE = 50


def _builder_context(criteria: Any) -> dict[str, Any]:
    return {
        "criteria": criteria or {"match": "all", "conditions": []},
        "criteria_catalogue": criteria_catalogue(),
        "preview_url": reverse("lists:criteria_preview"),
    }


def _add_service_errors(form: AutomationRuleForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for name, messages_of_field in error.message_dict.items():
            form.add_error(name if name in form.fields else None, messages_of_field)
    else:
        form.add_error(None, error.messages)


def _render_form(
    request: HttpRequest, form: AutomationRuleForm, rule: AutomationRule | None
) -> HttpResponse:
    if form.is_bound:
        criteria: Any = form.data.get("criteria") or None
    else:
        criteria = rule.criteria if rule is not None else None
    return render(
        request,
        "engagement/rule_form.html",
        {"form": form, "rule": rule, **_builder_context(criteria)},
    )


def _rule_input(form: AutomationRuleForm) -> dict[str, Any]:
    data = form.cleaned_data
    return {
        "name": data["name"],
        "description": data["description"],
        "criteria": data["criteria"],
        "actions": data["actions"],
        "repeat": data["repeat"],
        "repeat_after_days": data["repeat_after_days"],
    }


@access_required(Module.AUTOMATION)
def rule_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "engagement/rule_list.html",
        {
            "rules": rules.automation_rules_for_list(),
            "can_edit": has_access(request.user, Module.AUTOMATION, Level.EDIT),
        },
    )


@access_required(Module.AUTOMATION, read_level=Level.EDIT)
def rule_create(request: HttpRequest) -> HttpResponse:
    user = request_user(request)
    form = AutomationRuleForm(request.POST or None, actor=user)
    if request.method == "POST" and form.is_valid():
        run = "run" in request.POST
        try:
            rule = rules.automation_rule_create(actor=user, run=run, **_rule_input(form))
        except ValidationError as error:
            _add_service_errors(form, error)
        else:
            if run:
                messages.success(
                    request, _("Rule saved and running: every prospect is being evaluated.")
                )
            else:
                messages.success(request, _("Rule saved, paused. Resume it to run it."))
            return redirect("automation:detail", rule_id=rule.pk)
    return _render_form(request, form, None)


@access_required(Module.AUTOMATION, read_level=Level.EDIT)
def rule_edit(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = get_object_or_404(AutomationRule, pk=rule_id)
    user = request_user(request)
    form = AutomationRuleForm(
        request.POST or None,
        actor=user,
        initial={
            "name": rule.name,
            "description": rule.description,
            "actions": rule.actions,
            "repeat": rule.repeat,
            "repeat_after_days": rule.repeat_after_days,
        },
    )
    if request.method == "POST" and form.is_valid():
        run = "run" in request.POST
        try:
            rules.automation_rule_update(actor=user, rule=rule, run=run, **_rule_input(form))
        except ValidationError as error:
            _add_service_errors(form, error)
        else:
            if rule.status == RuleStatus.RUNNING:
                messages.success(
                    request, _("Rule saved and running: every prospect is being evaluated.")
                )
            else:
                messages.success(request, _("Rule saved, paused. Resume it to run it."))
            return redirect("automation:detail", rule_id=rule.pk)
    return _render_form(request, form, rule)


@access_required(Module.AUTOMATION)
def rule_detail(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = get_object_or_404(AutomationRule, pk=rule_id)
    user = request_user(request)
    history = Paginator(rules.automation_rule_history(rule=rule, user=user), HISTORY_PAGE_SIZE)
    return render(
        request,
        "engagement/rule_detail.html",
        {
            "rule": rule,
            "preview": rules.automation_rule_preview(rule=rule),
            "criteria_summary": rules.criteria_summary(rule.criteria),
            "actions_summary": rules.actions_summary(rule.actions),
            "page": history.get_page(request.GET.get("page")),
            "can_edit": has_access(user, Module.AUTOMATION, Level.EDIT),
        },
    )


@access_required(Module.AUTOMATION, read_level=Level.EDIT)
@require_POST
def rule_resume(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = get_object_or_404(AutomationRule, pk=rule_id)
    try:
        rules.automation_rule_resume(actor=request_user(request), rule=rule)
    except CriteriaError as error:
        messages.error(
            request,
            _("The rule cannot run: %(error)s Edit its criteria first.") % {"error": error},
        )
    else:
        messages.success(request, _("Rule running: every prospect is being evaluated."))
    return redirect("automation:detail", rule_id=rule.pk)


@access_required(Module.AUTOMATION, read_level=Level.EDIT)
@require_POST
def rule_pause(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = get_object_or_404(AutomationRule, pk=rule_id)
    rules.automation_rule_pause(actor=request_user(request), rule=rule)
    messages.success(request, _("Rule paused."))
    return redirect("automation:detail", rule_id=rule.pk)


@access_required(Module.AUTOMATION, read_level=Level.EDIT)
@require_POST
def rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = get_object_or_404(AutomationRule, pk=rule_id)
    name = rule.name
    rules.automation_rule_delete(actor=request_user(request), rule=rule)
    messages.success(request, _("Rule %(name)s deleted.") % {"name": name})
    return redirect("automation:list")
