"""Grading pages: the profiles (their criteria, prospect counts and regrade progress), and the
prospect page's controls (change the profile, mark a criterion by hand)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from mapp.access import access_required, has_access, request_user
from mapp.models import Level, Module
from prospects.criteria import criteria_catalogue
from prospects.selectors import prospect_get_for_user
from scoring.forms_grading import (
    MARK_RESET,
    CriterionFormSet,
    CriterionMarkForm,
    GradingProfileForm,
    ProspectProfileForm,
)
from scoring.grading import (
    criterion_mark_reset,
    criterion_mark_set,
    grading_profile_delete,
    grading_profile_save,
    prospect_profile_set,
)
from scoring.grading_selectors import grading_profiles_overview, regrade_latest
from scoring.models import GradingCriterion, GradingProfile


@access_required(Module.AUTOMATION)
def profile_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "scoring/grading/profile_list.html",
        {
            "rows": grading_profiles_overview(),
            "regrade": regrade_latest(),
            "can_edit": has_access(request.user, Module.AUTOMATION, Level.EDIT),
        },
    )


@access_required(Module.AUTOMATION, read_level=Level.EDIT)
def profile_edit(request: HttpRequest, profile_id: int | None = None) -> HttpResponse:
    profile = get_object_or_404(GradingProfile, pk=profile_id) if profile_id else GradingProfile()
    data = request.POST if request.method == "POST" else None
    form = GradingProfileForm(data, instance=profile)
    formset = CriterionFormSet(data, instance=profile, prefix="criteria")
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        try:
            grading_profile_save(
                profile=form.save(commit=False),
                criteria=[item.save(commit=False) for item in formset.ordered_forms],
                removed=[item.instance for item in formset.deleted_forms if item.instance.pk],
                actor=request_user(request),
            )
        except ValidationError as error:
            for message in error.messages:
                form.add_error(None, message)
        else:
            messages.success(
                request, _("Profile saved. Its prospects are being regraded in the background.")
            )
            return redirect("grading:profiles")
    return render(
        request,
        "scoring/grading/profile_form.html",
        {
            "form": form,
            "formset": formset,
            "profile": profile if profile.pk else None,
            "criteria_catalogue": criteria_catalogue(),
            "preview_url": reverse("lists:criteria_preview"),
        },
    )


@access_required(Module.AUTOMATION, read_level=Level.EDIT)
@require_POST
def profile_delete(request: HttpRequest, profile_id: int) -> HttpResponse:
    profile = get_object_or_404(GradingProfile, pk=profile_id)
    if profile.is_default:
        raise PermissionDenied(_("The Default profile cannot be deleted."))
    grading_profile_delete(profile=profile, actor=request_user(request))
    messages.success(
        request,
        _("Profile deleted. Its prospects are back on the Default profile and being regraded."),
    )
    return redirect("grading:profiles")


# --- the prospect page ---------------------------------------------------------------------------


def _prospect_page(prospect_id: int) -> str:
    return reverse("prospects:detail", args=[prospect_id]) + "#panel-grade"


@access_required(Module.PROSPECTS, read_level=Level.EDIT)
@require_POST
def prospect_profile_change(request: HttpRequest, prospect_id: int) -> HttpResponse:
    prospect = prospect_get_for_user(user=request_user(request), prospect_id=prospect_id)
    form = ProspectProfileForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return redirect(_prospect_page(prospect.pk))
    profile = form.cleaned_data["profile"]
    prospect_profile_set(prospect=prospect, profile=profile)
    messages.success(
        request,
        _("Grading profile set to “%(profile)s”; grade %(grade)s.")
        % {"profile": profile.name, "grade": prospect.grade},
    )
    return redirect(_prospect_page(prospect.pk))


@access_required(Module.PROSPECTS, read_level=Level.EDIT)
@require_POST
def prospect_criterion_mark(
    request: HttpRequest, prospect_id: int, criterion_id: int
) -> HttpResponse:
    user = request_user(request)
    prospect = prospect_get_for_user(user=user, prospect_id=prospect_id)
    criterion = get_object_or_404(GradingCriterion, pk=criterion_id)
    form = CriterionMarkForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose matches, does not match or back to the data."))
        return redirect(_prospect_page(prospect.pk))
    state: Any = form.cleaned_data["state"]
    if state == MARK_RESET:
        grade = criterion_mark_reset(prospect=prospect, criterion=criterion)
        message = _("“%(criterion)s” follows the data again; grade %(grade)s.")
    else:
        grade = criterion_mark_set(prospect=prospect, criterion=criterion, state=state, actor=user)
        message = _("“%(criterion)s” marked by hand; grade %(grade)s.")
    messages.success(request, message % {"criterion": criterion.name, "grade": grade})
    return redirect(_prospect_page(prospect.pk))
