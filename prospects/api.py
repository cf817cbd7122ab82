"""REST API v1: prospects, lists and their members, tasks; the OpenAPI schema.

Views are thin: they validate with prospects/serializers.py, read through the role-scoped
selectors and write through prospects/services.py. Every view derives from :class:`ScopedApiView`,
whose ``get_queryset`` cannot be overridden: a view states its scope in ``scoped_queryset(user)``,
which starts from ``prospects_visible_to`` / ``tasks_visible_to``, so no view can return rows
outside the caller's role scope by forgetting a filter.

Authentication is whatever ``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]`` says (sessions
now, API tokens later): no view names an authentication class.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any, ClassVar

from django.core.exceptions import ImproperlyConfigured, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Model, OuterRef, Prefetch, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Lower
from django.db.models.lookups import Exact
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework import exceptions, status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.generics import GenericAPIView
from rest_framework.metadata import SimpleMetadata
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler

from mapp.access import (
    SAFE_METHODS,
    ModulePermission,
    has_access,
    request_user,
    sees_all_prospects,
)
from mapp.models import Level, Module, User
from prospects.criteria import CriteriaError
from prospects.models import (
    CustomField,
    CustomFieldValue,
    ListMembership,
    ListMembershipSource,
    Prospect,
    ProspectList,
    Task,
    TaskPriority,
    TaskStatus,
)
from prospects.normalization import nfkc, normalize_email
from prospects.selectors import prospects_visible_to
from prospects.serializers import (
    ErrorSerializer,
    ListInputSerializer,
    ListOutputSerializer,
    MembershipAddedSerializer,
    MembershipInputSerializer,
    MembershipRemovedSerializer,
    ProspectInputSerializer,
    ProspectOutputSerializer,
    TaskInputSerializer,
    TaskOutputSerializer,
    prospect_custom_values,
)
from prospects.services import (
    EDITABLE_FIELDS,
    list_add_prospects,
    list_create,
    list_delete,
    list_remove_prospects,
    list_update,
    list_update_criteria,
    prospect_create,
    prospect_set_custom_values,
    prospect_tags_add,
    prospect_tags_remove,
    prospect_update,
    prospects_assign,
    prospects_delete,
    prospects_set_do_not_email,
    schedule_dynamic_list_refresh,
)
from prospects.task_selectors import task_can_edit, tasks_visible_to
from prospects.task_services import UPDATABLE_FIELDS as TASK_UPDATABLE_FIELDS
from prospects.task_services import (
    task_cancel,
    task_complete,
    task_create,
    task_reopen,
    task_update,
)

# Out-of-scope prospect ids named back in a refusal; the rest are summarised by a count.
MAX_REPORTED_IDS = 50
ORDERINGS = frozenset({"id", "-id", "updated_at", "-updated_at", "created_at", "-created_at"})


# --- request parsing and errors -------------------------------------------------------------


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = gettext_lazy("The request body is too large.")
    default_code = "request_too_large"


def _has_unstorable_text(text: str) -> bool:
    # PostgreSQL stores neither NUL nor unpaired surrogates; refused here they are a 400, not a
    # database error halfway through a write.
    return "\x00" in text or any("\ud800" <= char <= "\udfff" for char in text)


class BoundedJSONParser(JSONParser):
    """JSON bodies only; documents PostgreSQL cannot store or Python cannot nest are a 400.

    The body size is bounded by Django's DATA_UPLOAD_MAX_MEMORY_SIZE (RequestTooLarge, 413).
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as error:
            raise ParseError(_("The JSON document is nested too deeply.")) from error
        pending: list[Any] = [data]
        while pending:
            item = pending.pop()
            if isinstance(item, str):
                texts: Sequence[str] = [item]
            elif isinstance(item, dict):
                texts = list(item.keys())
                pending.extend(item.values())
            elif isinstance(item, list):
                pending.extend(item)
                continue
            else:
                continue
            if any(_has_unstorable_text(text) for text in texts):
                raise ParseError(_("Text may not contain NUL characters or invalid Unicode."))
        return data


def _validation_detail(error: DjangoValidationError) -> dict[str, Any]:
    """A Django ValidationError from a service as DRF's field-keyed error body."""
    if hasattr(error, "error_dict"):
        return {field: list(messages) for field, messages in error.message_dict.items()}
    return {"non_field_errors": list(error.messages)}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus the errors services and Django raise: all become 4xx with a message."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(_validation_detail(exc))
    elif isinstance(exc, CriteriaError):
        exc = exceptions.ValidationError({"criteria": [str(exc)]})
    elif isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    return exception_handler(exc, context)


# --- base view and permissions --------------------------------------------------------------


class ReadWriteModulePermission(ModulePermission):
    """Reads need the view's ``access_module`` at VIEW; writes its ``write_module`` at EDIT."""

    def has_permission(self, request: Any, view: Any) -> bool:
        if request.method in SAFE_METHODS:
            return super().has_permission(request, view)
        write_module = getattr(view, "write_module", None)
        if write_module is None:
            return False
        return has_access(request.user, write_module, Level.EDIT)


class DescriptionOnlyMetadata(SimpleMetadata):
    """OPTIONS names the view and its formats; fields are described by the OpenAPI schema
    (the views pick their serializer per method, so DRF cannot guess one here)."""

    def determine_actions(self, request: Any, view: Any) -> dict[str, Any]:
        return {}


class ScopedApiView(GenericAPIView):
    """Base of every API view: declared module, JSON only, role-scoped queryset.

    Subclasses define ``scoped_queryset(user)``; defining ``get_queryset`` is refused at import
    time, so scoping cannot be bypassed by accident.
    """

    access_module: ClassVar[Module] = Module.PROSPECTS
    permission_classes = [ModulePermission]
    parser_classes = [BoundedJSONParser]
    metadata_class = DescriptionOnlyMetadata  # type: ignore[assignment]  # stubs: an instance
    # The model of scoped_queryset, for schema generation (which runs without a user).
    model: ClassVar[type[Model]] = Prospect

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__:
            raise TypeError(f"{cls.__name__}: define scoped_queryset(user), not get_queryset()")

    def scoped_queryset(self, user: User) -> QuerySet[Any]:
        """Every concrete API view says which rows the user may reach."""
        raise ImproperlyConfigured(f"{type(self).__name__} must define scoped_queryset(user)")

    def get_queryset(self) -> QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False):
            return self.model._default_manager.none()
        return self.scoped_queryset(request_user(self.request))

    def get_exception_handler(self) -> Any:
        return api_exception_handler

    @property
    def user(self) -> User:
        return request_user(self.request)


# --- prospects ------------------------------------------------------------------------------


def _prospects_for_output(queryset: QuerySet[Prospect]) -> QuerySet[Prospect]:
    # Tags and custom values of a whole page in two queries, not two per prospect.
    return queryset.prefetch_related(
        "tags",
        Prefetch(
            "custom_values",
            queryset=CustomFieldValue.objects.select_related("field").order_by(
                "field_id", "value_text"
            ),
        ),
    )


def _with_email(queryset: QuerySet[Prospect], email: str) -> QuerySet[Prospect]:
    # LOWER(email) is what the unique index covers, so the lookup is one index probe.
    return queryset.filter(Exact(Lower("email"), normalize_email(email)))


def _query_text(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if _has_unstorable_text(value):
        raise exceptions.ValidationError({name: [_("Invalid characters.")]})
    return value


def _filter_prospects(request: Request, queryset: QuerySet[Prospect]) -> QuerySet[Prospect]:
    email = _query_text(request, "email")
    if email is not None:
        queryset = _with_email(queryset, email)
    updated_since = _query_text(request, "updated_since")
    if updated_since is not None:
        queryset = queryset.filter(updated_at__gte=_parse_moment(updated_since, "updated_since"))
    list_id = _query_text(request, "list")
    if list_id is not None:
        queryset = queryset.filter(memberships__prospect_list_id=_parse_id(list_id, "list"))
    ordering = _query_text(request, "ordering") or "id"
    if ordering not in ORDERINGS:
        raise exceptions.ValidationError(
            {
                "ordering": [
                    _("Order by one of: %(names)s.") % {"names": ", ".join(sorted(ORDERINGS))}
                ]
            }
        )
    if ordering.lstrip("-") == "id":
        return queryset.order_by(ordering)
    # Equal timestamps are common (bulk imports): the id keeps pages from overlapping.
    return queryset.order_by(ordering, "-id" if ordering.startswith("-") else "id")


def _parse_moment(text: str, name: str) -> datetime.datetime:
    try:
        moment = parse_datetime(text.strip())
    except ValueError:
        moment = None
    if moment is None:
        raise exceptions.ValidationError(
            {name: [_("Enter an ISO 8601 date and time, e.g. 2025-04-01T09:00:00+09:00.")]}
        )
    if timezone.is_naive(moment):
        # A time without an offset means the site's time zone (Asia/Tokyo by default).
        moment = timezone.make_aware(moment)
    return moment


def _parse_id(text: str, name: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if not 0 < number < 2**63:
        raise exceptions.ValidationError({name: [_("Enter an id (a positive whole number).")]})
    return number


def _tags_replace(prospect: Prospect, names: list[str]) -> bool:
    """Make the prospect's tags exactly ``names`` (case-insensitive); True if any changed."""
    current = {nfkc(tag.name).lower(): tag.name for tag in prospect.tags.all()}
    wanted: dict[str, str] = {}
    for name in names:
        key = nfkc(name).lower()
        if key:
            wanted.setdefault(key, name)
    to_add = [name for key, name in wanted.items() if key not in current]
    to_remove = [name for key, name in current.items() if key not in wanted]
    if to_add:
        prospect_tags_add(prospect_ids=[prospect.pk], names=to_add)
    if to_remove:
        prospect_tags_remove(prospect_ids=[prospect.pk], names=to_remove)
    return bool(to_add or to_remove)


def _comparable(value: Any) -> Any:
    """A custom value reduced so that what the API showed compares equal to what is sent back."""
    if value in (None, "", []):
        return None
    if isinstance(value, list):
        return tuple(sorted(_comparable(item) or "" for item in value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return nfkc(str(value))


def _refuse_unknown_custom_fields(values: dict[str, Any]) -> None:
    known = set(CustomField.objects.filter(key__in=list(values)).values_list("key", flat=True))
    unknown = sorted(set(values) - known)
    if unknown:
        raise exceptions.ValidationError(
            {"custom_fields": {key: [_("Unknown custom field.")] for key in unknown}}
        )


def _custom_values_to_write(prospect: Prospect, values: dict[str, Any]) -> dict[str, Any]:
    """The given custom values that differ from the stored ones (resending them is a no-op)."""
    _refuse_unknown_custom_fields(values)
    current = prospect_custom_values(prospect)
    return {
        key: raw for key, raw in values.items() if _comparable(raw) != _comparable(current.get(key))
    }


def _prospect_write(*, actor: User, prospect: Prospect, values: dict[str, Any]) -> list[str]:
    """Apply validated API values to an existing prospect through the services.

    Returns the names of what changed; values equal to the stored ones write nothing.
    """
    data = {name: values[name] for name in EDITABLE_FIELDS if name in values}
    if "email" in data and normalize_email(data["email"]) == prospect.email:
        # The same address in another case or width is not a change (nor a new updated_at).
        del data["email"]
    with transaction.atomic():
        changed = prospect_update(actor=actor, prospect=prospect, data=data, refresh_lists=False)
        if "assigned_user" in values:
            assignee: User | None = values["assigned_user"]
            if (assignee.pk if assignee else None) != prospect.assigned_user_id:
                if not sees_all_prospects(actor):
                    raise exceptions.PermissionDenied(
                        _("Only roles that see every prospect can reassign prospects.")
                    )
                prospects_assign(actor=actor, prospect_ids=[prospect.pk], user=assignee)
                changed.append("assigned_user")
        if "do_not_email" in values and values["do_not_email"] != prospect.do_not_email:
            prospects_set_do_not_email(
                actor=actor, prospect_ids=[prospect.pk], value=values["do_not_email"]
            )
            changed.append("do_not_email")
        if "tags" in values and _tags_replace(prospect, values["tags"]):
            changed.append("tags")
        if "custom_fields" in values:
            to_write = _custom_values_to_write(prospect, values["custom_fields"])
            if to_write:
                try:
                    prospect_set_custom_values(prospect=prospect, values=to_write)
                except DjangoValidationError as error:
                    raise exceptions.ValidationError(
                        {"custom_fields": _validation_detail(error)}
                    ) from error
                changed.append("custom_fields")
        if changed:
            schedule_dynamic_list_refresh([prospect.pk])
    return changed


def _prospect_new(*, actor: User, values: dict[str, Any]) -> Prospect:
    """Create a prospect from validated API values; a Sales-scoped creator becomes its owner."""
    data = {name: values[name] for name in EDITABLE_FIELDS if name in values}
    if sees_all_prospects(actor):
        assignee = values.get("assigned_user")
    else:
        assignee = actor
        given = values.get("assigned_user", actor)
        if given is None or given.pk != actor.pk:
            raise exceptions.PermissionDenied(
                _("Only roles that see every prospect can assign prospects to others.")
            )
    try:
        with transaction.atomic():
            prospect = prospect_create(actor=actor, data=data, tags=values.get("tags", ()))
            if values.get("custom_fields"):
                _refuse_unknown_custom_fields(values["custom_fields"])
                try:
                    prospect_set_custom_values(prospect=prospect, values=values["custom_fields"])
                except DjangoValidationError as error:
                    raise exceptions.ValidationError(
                        {"custom_fields": _validation_detail(error)}
                    ) from error
            if values.get("do_not_email"):
                prospects_set_do_not_email(actor=actor, prospect_ids=[prospect.pk], value=True)
            if assignee is not None:
                prospects_assign(actor=actor, prospect_ids=[prospect.pk], user=assignee)
    except IntegrityError as error:
        # Another request created the same address between the service's check and its insert.
        raise exceptions.ValidationError(
            {"email": [_("A prospect with this email address already exists.")]}
        ) from error
    return prospect


PROSPECT_FILTERS = [
    OpenApiParameter(
        "email", OpenApiTypes.STR, description="Exact address, case- and width-insensitive."
    ),
    OpenApiParameter(
        "updated_since",
        OpenApiTypes.DATETIME,
        description="ISO 8601; without an offset, the site's time zone. Inclusive.",
    ),
    OpenApiParameter("list", OpenApiTypes.INT, description="Members of this list only."),
    OpenApiParameter("ordering", OpenApiTypes.STR, enum=sorted(ORDERINGS), default="id"),
]
ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid input; field → messages."),
    403: OpenApiResponse(ErrorSerializer, description="Not signed in, or the role forbids it."),
}
NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such object within your scope.")
DETAIL_ERRORS = {**ERRORS, 404: NOT_FOUND}


class ProspectApiBase(ScopedApiView):
    def scoped_queryset(self, user: User) -> QuerySet[Prospect]:
        return _prospects_for_output(prospects_visible_to(user))

    def _output(self, prospect: Prospect) -> Any:
        return ProspectOutputSerializer(self.get_queryset().get(pk=prospect.pk)).data


class ProspectCollectionApi(ProspectApiBase):
    @extend_schema(
        operation_id="prospects_list",
        parameters=PROSPECT_FILTERS,
        responses={200: ProspectOutputSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        queryset = _filter_prospects(request, self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(ProspectOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="prospects_create",
        request=ProspectInputSerializer,
        responses={201: ProspectOutputSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        serializer = ProspectInputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        prospect = _prospect_new(actor=self.user, values=serializer.validated_data)
        return Response(self._output(prospect), status=status.HTTP_201_CREATED)


class ProspectUpsertApi(ProspectApiBase):
    @extend_schema(
        operation_id="prospects_upsert",
        description="Create the prospect with this email address, or update it. Sending the "
        "same body again changes nothing and answers 200.",
        request=ProspectInputSerializer,
        responses={
            200: OpenApiResponse(ProspectOutputSerializer, description="Updated (or unchanged)."),
            201: OpenApiResponse(ProspectOutputSerializer, description="Created."),
            **ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        serializer = ProspectInputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        email = values["email"]
        existing = _with_email(self.get_queryset(), email).first()
        if existing is None:
            try:
                created = _prospect_new(actor=self.user, values=values)
            except exceptions.ValidationError:
                # A concurrent upsert of the same address may have won the insert: update it.
                existing = _with_email(self.get_queryset(), email).first()
                if existing is None:
                    raise
            else:
                return Response(self._output(created), status=status.HTTP_201_CREATED)
        _prospect_write(actor=self.user, prospect=existing, values=values)
        return Response(self._output(existing), status=status.HTTP_200_OK)


class ProspectDetailApi(ProspectApiBase):
    lookup_url_kwarg = "prospect_id"

    @extend_schema(
        operation_id="prospects_retrieve",
        responses={200: ProspectOutputSerializer, **DETAIL_ERRORS},
    )
    def get(self, request: Request, prospect_id: int) -> Response:
        return Response(ProspectOutputSerializer(self.get_object()).data)

    @extend_schema(
        operation_id="prospects_partial_update",
        request=ProspectInputSerializer(partial=True),
        responses={200: ProspectOutputSerializer, **DETAIL_ERRORS},
    )
    def patch(self, request: Request, prospect_id: int) -> Response:
        prospect = self.get_object()
        serializer = ProspectInputSerializer(
            data=request.data, partial=True, context={"request": request}
        )
        serializer.is_valid(raise_exception=True)
        _prospect_write(actor=self.user, prospect=prospect, values=serializer.validated_data)
        return Response(ProspectOutputSerializer(self.get_object()).data)

    @extend_schema(operation_id="prospects_destroy", responses={204: None, **DETAIL_ERRORS})
    def delete(self, request: Request, prospect_id: int) -> Response:
        prospect = self.get_object()
        prospects_delete(actor=self.user, prospect_ids=[prospect.pk])
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- lists ----------------------------------------------------------------------------------


def _lists_with_counts(user: User) -> QuerySet[ProspectList]:
    """Lists with the number of members the user may see (Sales: their own prospects)."""
    memberships = ListMembership.objects.filter(prospect_list=OuterRef("pk"))
    if not sees_all_prospects(user):
        memberships = memberships.filter(prospect__in=prospects_visible_to(user).values("pk"))
    counts = memberships.order_by().values("prospect_list").annotate(total=Count("pk"))
    return ProspectList.objects.annotate(
        member_count=Coalesce(Subquery(counts.values("total")), Value(0))
    ).order_by("id")


class ListApiBase(ScopedApiView):
    """Lists are read with Prospects (view) and created, changed, deleted with Marketing (edit)."""

    access_module = Module.PROSPECTS
    write_module = Module.MARKETING
    permission_classes = [ReadWriteModulePermission]
    model = ProspectList

    def scoped_queryset(self, user: User) -> QuerySet[ProspectList]:
        return _lists_with_counts(user)


class ListCollectionApi(ListApiBase):
    @extend_schema(
        operation_id="lists_list", responses={200: ListOutputSerializer(many=True), **ERRORS}
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ListOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="lists_create",
        description="Needs Marketing at edit level. Dynamic lists take criteria.",
        request=ListInputSerializer,
        responses={201: ListOutputSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        serializer = ListInputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        prospect_list = list_create(
            actor=self.user,
            name=values["name"],
            description=values.get("description", ""),
            is_dynamic=values.get("is_dynamic", False),
            criteria=values.get("criteria"),
        )
        fresh = self.get_queryset().get(pk=prospect_list.pk)
        return Response(ListOutputSerializer(fresh).data, status=status.HTTP_201_CREATED)


class ListDetailApi(ListApiBase):
    lookup_url_kwarg = "list_id"

    @extend_schema(
        operation_id="lists_retrieve", responses={200: ListOutputSerializer, **DETAIL_ERRORS}
    )
    def get(self, request: Request, list_id: int) -> Response:
        return Response(ListOutputSerializer(self.get_object()).data)

    @extend_schema(
        operation_id="lists_partial_update",
        request=ListInputSerializer(partial=True),
        responses={200: ListOutputSerializer, **DETAIL_ERRORS},
    )
    def patch(self, request: Request, list_id: int) -> Response:
        prospect_list = self.get_object()
        serializer = ListInputSerializer(
            prospect_list, data=request.data, partial=True, context={"request": request}
        )
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        with transaction.atomic():
            list_update(
                actor=self.user,
                prospect_list=prospect_list,
                name=values.get("name"),
                description=values.get("description"),
            )
            if "criteria" in values and values["criteria"] != prospect_list.criteria:
                list_update_criteria(
                    actor=self.user, prospect_list=prospect_list, criteria=values["criteria"]
                )
        return Response(ListOutputSerializer(self.get_object()).data)

    @extend_schema(operation_id="lists_destroy", responses={204: None, **DETAIL_ERRORS})
    def delete(self, request: Request, list_id: int) -> Response:
        prospect_list = self.get_object()
        list_delete(actor=self.user, prospect_list=prospect_list)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BodyOnDeleteSchema(AutoSchema):
    """drf-spectacular documents request bodies only for POST, PUT and PATCH; membership
    removal takes the same body as addition, so its DELETE is documented like a POST."""

    def _get_request_body(self, direction: str = "request") -> Any:
        if self.method != "DELETE":
            return super()._get_request_body(direction)
        self.method = "POST"
        try:
            return super()._get_request_body(direction)
        finally:
            self.method = "DELETE"


class ListMembersApi(ScopedApiView):
    """Members of a list within the caller's scope. Changing members is prospect editing."""

    schema = BodyOnDeleteSchema()

    def scoped_queryset(self, user: User) -> QuerySet[Prospect]:
        return _prospects_for_output(prospects_visible_to(user))

    def _list(self, list_id: int) -> ProspectList:
        return get_object_or_404(ProspectList, pk=list_id)

    def _validated_ids(self, request: Request) -> list[int]:
        serializer = MembershipInputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        ids: list[int] = serializer.validated_data["prospect_ids"]
        visible = set(self.get_queryset().filter(pk__in=ids).values_list("pk", flat=True))
        outside = [prospect_id for prospect_id in ids if prospect_id not in visible]
        if outside:
            shown = ", ".join(str(prospect_id) for prospect_id in outside[:MAX_REPORTED_IDS])
            if len(outside) > MAX_REPORTED_IDS:
                shown += " " + _("and %(count)d more") % {"count": len(outside) - MAX_REPORTED_IDS}
            raise exceptions.ValidationError(
                {
                    "prospect_ids": [
                        _("These prospects do not exist or are not yours to change: %(ids)s")
                        % {"ids": shown}
                    ]
                }
            )
        return ids

    @extend_schema(
        operation_id="lists_members_list",
        parameters=[OpenApiParameter("ordering", OpenApiTypes.STR, enum=sorted(ORDERINGS))],
        responses={200: ProspectOutputSerializer(many=True), **DETAIL_ERRORS},
    )
    def get(self, request: Request, list_id: int) -> Response:
        prospect_list = self._list(list_id)
        members = self.get_queryset().filter(memberships__prospect_list=prospect_list)
        page = self.paginate_queryset(_filter_prospects(request, members))
        return self.get_paginated_response(ProspectOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="lists_members_add",
        description="Static lists only. Every id must be a prospect the caller may see.",
        request=MembershipInputSerializer,
        responses={200: MembershipAddedSerializer, **DETAIL_ERRORS},
    )
    def post(self, request: Request, list_id: int) -> Response:
        prospect_list = self._list(list_id)
        ids = self._validated_ids(request)
        added = list_add_prospects(
            prospect_list=prospect_list, prospect_ids=ids, source=ListMembershipSource.API
        )
        return Response({"added": added})

    @extend_schema(
        operation_id="lists_members_remove",
        description="Static lists only. Every id must be a prospect the caller may see.",
        request=MembershipInputSerializer,
        responses={200: MembershipRemovedSerializer, **DETAIL_ERRORS},
    )
    def delete(self, request: Request, list_id: int) -> Response:
        prospect_list = self._list(list_id)
        ids = self._validated_ids(request)
        removed = list_remove_prospects(prospect_list=prospect_list, prospect_ids=ids)
        return Response({"removed": removed})


# --- tasks ----------------------------------------------------------------------------------


def _task_set_status(*, actor: User, task: Task, to_status: str) -> None:
    if to_status == task.status:
        return
    if to_status == TaskStatus.DONE:
        task_complete(actor=actor, task=task)
    elif to_status == TaskStatus.OPEN:
        task_reopen(actor=actor, task=task)
    else:
        task_cancel(actor=actor, task=task)
    if task.status != to_status:
        raise exceptions.ValidationError(
            {"status": [_("A finished task cannot be cancelled; reopen it first.")]}
        )


def _task_create(*, actor: User, values: dict[str, Any]) -> Task:
    with transaction.atomic():
        task = task_create(
            actor=actor,
            assignee=values.get("assignee") or actor,
            subject=values["subject"],
            prospect=values.get("prospect"),
            due_date=values.get("due_date"),
            priority=values.get("priority", TaskPriority.NORMAL),
            notes=values.get("notes", ""),
        )
        if "status" in values:
            _task_set_status(actor=actor, task=task, to_status=values["status"])
    return task


def _task_change(*, actor: User, task: Task, values: dict[str, Any]) -> None:
    if "prospect" in values and values["prospect"] != task.prospect:
        raise exceptions.ValidationError(
            {"prospect": [_("A task's prospect cannot be changed; create a new task.")]}
        )
    with transaction.atomic():
        data = {name: values[name] for name in TASK_UPDATABLE_FIELDS if name in values}
        if data:
            task_update(actor=actor, task=task, data=data)
        if "status" in values:
            _task_set_status(actor=actor, task=task, to_status=values["status"])


class TaskApiBase(ScopedApiView):
    model = Task

    def scoped_queryset(self, user: User) -> QuerySet[Task]:
        return tasks_visible_to(user).order_by("id")


class TaskCollectionApi(TaskApiBase):
    @extend_schema(
        operation_id="tasks_list",
        parameters=[
            OpenApiParameter(
                "status", OpenApiTypes.STR, enum=[value for value, _ in TaskStatus.choices]
            ),
        ],
        responses={200: TaskOutputSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        queryset = self.get_queryset()
        task_status = _query_text(request, "status")
        if task_status is not None:
            if task_status not in TaskStatus.values:
                raise exceptions.ValidationError(
                    {
                        "status": [
                            _("Choose one of: %(names)s.") % {"names": ", ".join(TaskStatus.values)}
                        ]
                    }
                )
            queryset = queryset.filter(status=task_status)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(TaskOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="tasks_create",
        request=TaskInputSerializer,
        responses={201: TaskOutputSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        serializer = TaskInputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        task = _task_create(actor=self.user, values=serializer.validated_data)
        return Response(TaskOutputSerializer(task).data, status=status.HTTP_201_CREATED)


class TaskDetailApi(TaskApiBase):
    lookup_url_kwarg = "task_id"

    @extend_schema(
        operation_id="tasks_retrieve", responses={200: TaskOutputSerializer, **DETAIL_ERRORS}
    )
    def get(self, request: Request, task_id: int) -> Response:
        return Response(TaskOutputSerializer(self.get_object()).data)

    @extend_schema(
        operation_id="tasks_partial_update",
        request=TaskInputSerializer(partial=True),
        responses={200: TaskOutputSerializer, **DETAIL_ERRORS},
    )
    def patch(self, request: Request, task_id: int) -> Response:
        task = self.get_object()
        if not task_can_edit(user=self.user, task=task):
            raise exceptions.PermissionDenied(_("Only the assignee can change this task."))
        serializer = TaskInputSerializer(
            data=request.data, partial=True, context={"request": request}
        )
        serializer.is_valid(raise_exception=True)
        _task_change(actor=self.user, task=task, values=serializer.validated_data)
        return Response(TaskOutputSerializer(self.get_object()).data)


# --- OpenAPI schema -------------------------------------------------------------------------


class SchemaApi(SpectacularAPIView):
    """The OpenAPI 3 document of this API, for signed-in users with access to prospects."""

    access_module = Module.PROSPECTS
    permission_classes = [ModulePermission]


class SchemaDocsApi(SpectacularSwaggerView):
    """Swagger UI for the schema above, served from drf-spectacular-sidecar (no CDN)."""

    access_module = Module.PROSPECTS
    permission_classes = [ModulePermission]
    url_name = "api-schema"
