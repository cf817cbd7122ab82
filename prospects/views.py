"""Prospect pages: the list (search, criteria filter, sort, keyset pages, bulk actions), the
prospect page, create/edit, and the duplicate merge screen."""

from __future__ import annotations

import base64
import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from mapp.access import access_required, has_access, request_user, sees_all_prospects
from mapp.models import Level, Module
from prospects import services
from prospects.criteria import CriteriaError, criteria_catalogue, validate_criteria
from prospects.forms import BulkActionForm, ProspectForm, parse_criteria
from prospects.models import CustomFieldValue, HotStatus, Prospect, ProspectList
from prospects.panels import panels_for
from prospects.selectors import prospect_get_for_user, prospects_visible_to

PAGE_SIZE = 50

# Sort keys → (column, descending). Every order ends with id so keyset pages are stable.
SORTS: dict[str, tuple[str, bool, Any]] = {
    "newest": ("created_at", True, gettext_lazy("Newest first")),
    "oldest": ("created_at", False, gettext_lazy("Oldest first")),
    "updated": ("updated_at", True, gettext_lazy("Recently updated")),
    "score": ("score", True, gettext_lazy("Highest score")),
    "email": ("email", False, gettext_lazy("Email address")),
    "company": ("company_name_normalized", False, gettext_lazy("Company")),
}


def _encode_cursor(value: Any, pk: int) -> str:
    raw = json.dumps([value.isoformat() if hasattr(value, "isoformat") else value, pk])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[Any, int] | None:
    try:
        value, pk = json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    if not isinstance(pk, int) or not isinstance(value, str | int | float):
        return None
    return value, pk


def _filtered(request: HttpRequest) -> tuple[QuerySet[Prospect], dict[str, Any]]:
    """The user's visible prospects narrowed by search, list and criteria from the query string.

    All three become one criteria document (``state["effective_criteria"]``), so an export or a
    bulk action on "all matching" selects exactly what the page showed.
    """
    user = request_user(request)
    state: dict[str, Any] = {
        "query": request.GET.get("q", "").strip()[:200],
        "criteria_error": None,
    }
    parts: list[dict[str, Any]] = []
    if state["query"]:
        parts.append(
            {
                "match": "any",
                "conditions": [
                    {
                        "subject": "field",
                        "field": name,
                        "operator": "contains",
                        "value": state["query"],
                    }
                    for name in ("email", "last_name", "first_name", "company_name")
                ],
            }
        )
    list_id = request.GET.get("list", "")
    state["list"] = (
        ProspectList.objects.filter(pk=int(list_id)).first() if list_id.isdigit() else None
    )
    if state["list"] is not None:
        parts.append({"subject": "list", "operator": "member_of", "value": state["list"].pk})
    status = request.GET.get("status", "")
    state["status"] = status if status in HotStatus.values else ""
    if state["status"]:
        parts.append(
            {"subject": "field", "field": "hot_status", "operator": "equals", "value": status}
        )
    state["criteria"] = {"match": "all", "conditions": []}
    raw_criteria = request.GET.get("criteria", "")
    if raw_criteria:
        try:
            state["criteria"] = parse_criteria(raw_criteria)
        except CriteriaError as error:
            state["criteria_error"] = str(error)
    if state["criteria"]["conditions"]:
        parts.append(state["criteria"])
    try:
        state["effective_criteria"] = validate_criteria({"match": "all", "conditions": parts})
    except CriteriaError as error:  # e.g. a search text longer than criteria allow
        state["criteria_error"] = str(error)
        state["effective_criteria"] = {"match": "all", "conditions": []}
    queryset = prospects_visible_to(user).filter(
        services.compile_criteria(state["effective_criteria"], validated=True)
    )
    return queryset, state


@access_required(Module.PROSPECTS)
def prospect_list(request: HttpRequest) -> HttpResponse:
    queryset, state = _filtered(request)
    sort = request.GET.get("sort", "newest")
    if sort not in SORTS:
        sort = "newest"
    column, descending, _label = SORTS[sort]
    direction = "-" if descending else ""
    total = queryset.count()
    cursor = _decode_cursor(request.GET.get("after", ""))
    page_queryset = queryset.order_by(f"{direction}{column}", f"{direction}id")
    if cursor is not None:
        value, pk = cursor
        comparison = "lt" if descending else "gt"
        page_queryset = page_queryset.filter(
            Q(**{f"{column}__{comparison}": value}) | Q(**{column: value, f"id__{comparison}": pk})
        )
    rows = list(page_queryset.select_related("assigned_user")[: PAGE_SIZE + 1])
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    next_query = None
    if has_next:
        params = request.GET.copy()
        params["after"] = _encode_cursor(getattr(rows[-1], column), rows[-1].pk)
        next_query = params.urlencode()
    first_params = request.GET.copy()
    first_params.pop("after", None)
    user = request_user(request)
    return render(
        request,
        "prospects/prospect_list.html",
        {
            "prospects": rows,
            "total": total,
            "next_query": next_query,
            "first_query": first_params.urlencode() if cursor else None,
            "sort": sort,
            "sorts": [(key, label) for key, (_c, _d, label) in SORTS.items()],
            "statuses": HotStatus.choices,
            "bulk_form": BulkActionForm(),
            "can_edit": has_access(user, Module.PROSPECTS, Level.EDIT),
            "can_manage": has_access(user, Module.PROSPECTS, Level.EDIT)
            and sees_all_prospects(user),
            "criteria_json": json.dumps(state["criteria"], ensure_ascii=False),
            "criteria": state["criteria"],
            "criteria_catalogue": criteria_catalogue(),
            "preview_url": reverse("lists:criteria_preview"),
            "query_string": request.GET.urlencode(),
            "export_criteria_json": json.dumps(state["effective_criteria"], ensure_ascii=False),
            **state,
        },
    )


@access_required(Module.PROSPECTS, write_level=Level.EDIT)
def prospect_bulk(request: HttpRequest) -> HttpResponse:
    """Apply one action to the selected prospects (or every prospect matching the filter)."""
    if request.method != "POST":
        return redirect("prospects:list")
    user = request_user(request)
    form = BulkActionForm(request.POST)
    query_string = request.POST.get("query_string", "")
    back = reverse("prospects:list") + (f"?{query_string}" if query_string else "")
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return redirect(back)
    data = form.cleaned_data
    if data.get("select_all_matching"):
        # "All N matching": the same filter the list showed, re-applied within the user's scope.
        request.GET = QueryDict(request.POST.get("query_string", ""))
        queryset, _state = _filtered(request)
    else:
        queryset = prospects_visible_to(user).filter(pk__in=data["ids"])
    ids = list(queryset.values_list("pk", flat=True))
    action = data["action"]
    if action in {"assign_user", "assign_group", "delete"} and not sees_all_prospects(user):
        raise PermissionDenied
    try:
        if action == "add_to_list":
            count = services.list_add_prospects(
                prospect_list=data["prospect_list"], prospect_ids=ids
            )
        elif action == "remove_from_list":
            count = services.list_remove_prospects(
                prospect_list=data["prospect_list"], prospect_ids=ids
            )
        elif action == "add_tag":
            services.prospect_tags_add(prospect_ids=ids, names=[data["tag"]])
            count = len(ids)
        elif action == "remove_tag":
            services.prospect_tags_remove(prospect_ids=ids, names=[data["tag"]])
            count = len(ids)
        elif action == "assign_user":
            count = services.prospects_assign(actor=user, prospect_ids=ids, user=data["user"])
        elif action == "assign_group":
            count = services.prospects_assign_round_robin(
                actor=user, prospect_ids=ids, group=data["group"]
            )
        elif action == "do_not_email":
            count = services.prospects_set_do_not_email(actor=user, prospect_ids=ids, value=True)
        else:
            count = services.prospects_delete(actor=user, prospect_ids=ids)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return redirect(back)
    messages.success(
        request,
        _("%(action)s: %(count)d prospects.")
        % {"action": dict(form.ACTIONS)[action], "count": count},
    )
    return redirect(back)


@access_required(Module.PROSPECTS)
def prospect_detail(request: HttpRequest, prospect_id: int) -> HttpResponse:
    user = request_user(request)
    prospect = prospect_get_for_user(user=user, prospect_id=prospect_id)
    custom_values = (
        CustomFieldValue.objects.filter(prospect=prospect)
        .select_related("field")
        .order_by("field__label")
    )
    grouped: dict[str, dict[str, Any]] = {}
    for row in custom_values:
        entry = grouped.setdefault(row.field.key, {"label": row.field.label, "values": []})
        entry["values"].append(row.value)
    duplicates = (
        services.prospect_duplicates_of(prospect)
        if sees_all_prospects(user)
        else Prospect.objects.none()
    )
    return render(
        request,
        "prospects/prospect_detail.html",
        {
            "prospect": prospect,
            "tags": prospect.tags.all(),
            "lists": ProspectList.objects.filter(memberships__prospect=prospect).order_by("name"),
            "custom_values": list(grouped.values()),
            "tasks": prospect.tasks.select_related("assignee").order_by("status", "due_date")[:20],
            "duplicates": list(duplicates[:10]),
            "panels": panels_for(prospect, user, request),
            "can_edit": has_access(user, Module.PROSPECTS, Level.EDIT),
        },
    )


def _form_initial(prospect: Prospect) -> dict[str, Any]:
    initial: dict[str, Any] = {name: getattr(prospect, name) for name in services.EDITABLE_FIELDS}
    initial["tags"] = ", ".join(prospect.tags.values_list("name", flat=True))
    for row in CustomFieldValue.objects.filter(prospect=prospect).select_related("field"):
        key = f"custom_{row.field.key}"
        if row.field.field_type == "multi_choice":
            initial.setdefault(key, []).append(row.value_text)
        else:
            initial[key] = row.value
    return initial


def _apply_form_errors(form: ProspectForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, field_errors in error.error_dict.items():
            target = (
                field
                if field in form.fields
                else (f"custom_{field}" if f"custom_{field}" in form.fields else None)
            )
            for field_error in field_errors:
                form.add_error(target, field_error.messages[0])
    else:
        for message in error.messages:
            form.add_error(None, message)


@access_required(Module.PROSPECTS, read_level=Level.EDIT)
def prospect_create(request: HttpRequest) -> HttpResponse:
    user = request_user(request)
    form = ProspectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            prospect = services.prospect_create(
                actor=user,
                data=form.prospect_data(),
                tags=form.tag_names(),
                custom_values={
                    key: value
                    for key, value in form.custom_values().items()
                    if value not in ("", [])
                },
            )
        except ValidationError as error:
            _apply_form_errors(form, error)
        else:
            if not sees_all_prospects(user):
                services.prospects_assign(actor=user, prospect_ids=[prospect.pk], user=user)
            messages.success(request, _("Prospect created."))
            return redirect("prospects:detail", prospect_id=prospect.pk)
    return render(request, "prospects/prospect_form.html", {"form": form, "prospect": None})


@access_required(Module.PROSPECTS, read_level=Level.EDIT)
def prospect_edit(request: HttpRequest, prospect_id: int) -> HttpResponse:
    user = request_user(request)
    prospect = prospect_get_for_user(user=user, prospect_id=prospect_id)
    form = ProspectForm(request.POST or None, initial=_form_initial(prospect))
    if request.method == "POST" and form.is_valid():
        try:
            services.prospect_update(
                actor=user,
                prospect=prospect,
                data=form.prospect_data(),
                custom_values=form.custom_values(),
            )
            current = set(prospect.tags.values_list("name", flat=True))
            wanted = set(form.tag_names())
            services.prospect_tags_remove(prospect_ids=[prospect.pk], names=current - wanted)
            services.prospect_tags_add(prospect_ids=[prospect.pk], names=wanted - current)
        except ValidationError as error:
            _apply_form_errors(form, error)
        else:
            messages.success(request, _("Changes saved."))
            return redirect("prospects:detail", prospect_id=prospect.pk)
    return render(request, "prospects/prospect_form.html", {"form": form, "prospect": prospect})


MERGE_FIELDS = ("email", *[name for name in services.EDITABLE_FIELDS if name != "email"])


@access_required(Module.PROSPECTS, read_level=Level.EDIT)
def prospect_merge(request: HttpRequest, prospect_id: int) -> HttpResponse:
    """Side by side: the survivor and its duplicates, what the merge keeps; POST merges."""
    user = request_user(request)
    if not sees_all_prospects(user):
        raise PermissionDenied
    survivor = prospect_get_for_user(user=user, prospect_id=prospect_id)
    other_ids = [
        int(value)
        for value in request.GET.getlist("with") + request.POST.getlist("with")
        if value.isdigit()
    ]
    if other_ids:
        others = list(prospects_visible_to(user).filter(pk__in=other_ids).exclude(pk=survivor.pk))
    else:
        others = list(services.prospect_duplicates_of(survivor)[:10])
    if not others:
        raise Http404
    if request.method == "POST":
        merged = services.prospects_merge(actor=user, survivor=survivor, others=others)
        messages.success(request, _("%(count)d duplicates merged.") % {"count": len(others)})
        return redirect("prospects:detail", prospect_id=merged.pk)
    records = sorted(
        [survivor, *others], key=lambda record: (record.updated_at, record.pk), reverse=True
    )
    rows = []
    for name in MERGE_FIELDS:
        values = [getattr(record, name) for record in [survivor, *others]]
        if name == "email":
            kept = survivor.email
        else:
            kept = next(
                (
                    getattr(record, name)
                    for record in records
                    if getattr(record, name) not in ("", None)
                ),
                "",
            )
        if any(value not in ("", None) for value in values):
            rows.append(
                {
                    "label": getattr(Prospect._meta.get_field(name), "verbose_name", name),
                    "values": values,
                    "kept": kept,
                }
            )
    return render(
        request,
        "prospects/prospect_merge.html",
        {
            "survivor": survivor,
            "others": others,
            "rows": rows,
            "opted_out": any(r.opted_out for r in records),
        },
    )
