"""Shapes of the REST API v1 (prospects/api.py): what a request may say and what a response shows.

Serializers here only validate input and render output; every write goes through
prospects/services.py from the API views. Input serializers refuse keys they do not know (a
misspelt field must not be silently dropped) and keys that are read-only.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mapp.models import User
from prospects.criteria import CriteriaError, validate_criteria
from prospects.models import (
    CustomFieldType,
    JobLevel,
    Prospect,
    ProspectList,
    Task,
    TaskPriority,
    TaskStatus,
)
from prospects.services import EDITABLE_FIELDS

# Bounds on what one request may carry, so a hostile body costs a 400, not a slow query.
MAX_TAGS = 100
MAX_TAG_LENGTH = 100
MAX_CUSTOM_FIELDS = 200
MAX_CUSTOM_VALUES = 100  # values of one multiple-choice field
MAX_CUSTOM_TEXT_LENGTH = 1000  # CustomFieldValue.value_text
MAX_CUSTOM_KEY_LENGTH = 60  # CustomField.key
MAX_NOTES_LENGTH = 10_000
# One membership change touches at most this many prospects (one bulk INSERT or DELETE).
MAX_MEMBERSHIP_IDS = 1000
MAX_ID = 2**63 - 1  # bigint primary keys
MAX_EMPLOYEE_COUNT = 2**31 - 1  # PositiveIntegerField
# Unknown keys named back in an error; a body with thousands of junk keys gets the first few.
MAX_REPORTED_KEYS = 20


class StrictInputSerializer(serializers.Serializer):
    """Refuses keys that are not writable fields of this serializer, naming each one."""

    read_only_names: ClassVar[frozenset[str]] = frozenset()

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            errors: dict[str, list[str]] = {}
            for key in data:
                name = str(key)[:MAX_CUSTOM_KEY_LENGTH]
                if key in writable:
                    continue
                if key in self.read_only_names:
                    errors[name] = [str(_("This field is read-only."))]
                else:
                    errors[name] = [str(_("Unknown field."))]
                if len(errors) >= MAX_REPORTED_KEYS:
                    break
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


def _text_field(name: str) -> serializers.CharField:
    """A prospect text field, bounded by its model column (TextField: MAX_NOTES_LENGTH)."""
    max_length = getattr(Prospect._meta.get_field(name), "max_length", None) or MAX_NOTES_LENGTH
    return serializers.CharField(
        max_length=max_length, required=False, allow_blank=True, allow_null=True
    )


def _custom_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        if len(value) > MAX_CUSTOM_TEXT_LENGTH:
            raise serializers.ValidationError(
                _("At most %(count)d characters.") % {"count": MAX_CUSTOM_TEXT_LENGTH}
            )
        return value
    if isinstance(value, int | float):
        return value
    raise serializers.ValidationError(_("Expected text, a number, yes/no or a list of those."))


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {},
        "description": "Custom field key → value (text, number, date as YYYY-MM-DD, boolean, or "
        "a list of choices for multiple-choice fields). null or an empty value clears the field.",
    }
)
class CustomValuesField(serializers.Field):
    """An object of custom field key → value; values are checked by the service per field type."""

    default_error_messages: ClassVar[dict[str, Any]] = {
        "not_object": _("Expected an object of custom field keys and values."),
        "too_many": _("At most %(count)d custom fields at once."),
    }

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            self.fail("not_object")
        if len(data) > MAX_CUSTOM_FIELDS:
            self.fail("too_many", count=MAX_CUSTOM_FIELDS)
        cleaned: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        for key, raw in data.items():
            name = str(key)
            if not name or len(name) > MAX_CUSTOM_KEY_LENGTH:
                errors[name[:MAX_CUSTOM_KEY_LENGTH]] = [str(_("Unknown custom field."))]
                continue
            try:
                if isinstance(raw, list):
                    if len(raw) > MAX_CUSTOM_VALUES:
                        raise serializers.ValidationError(
                            _("At most %(count)d values.") % {"count": MAX_CUSTOM_VALUES}
                        )
                    cleaned[name] = [_custom_value(item) for item in raw]
                else:
                    cleaned[name] = _custom_value(raw)
            except serializers.ValidationError as error:
                errors[name] = [str(message) for message in error.detail]
        if errors:
            raise serializers.ValidationError(errors)
        return cleaned

    def to_representation(self, value: Any) -> Any:
        return value


class ProspectInputSerializer(StrictInputSerializer):
    """What a client may write on a prospect. ``tags`` replaces the prospect's tags."""

    read_only_names = frozenset(
        {
            "id",
            "score",
            "grade",
            "hot_status",
            "hot_since",
            "job_level",
            "job_level_label",
            "department_category",
            "company",
            "is_mailable",
            "opted_out",
            "created_at",
            "updated_at",
        }
    )

    email = serializers.CharField(max_length=254)
    last_name = _text_field("last_name")
    first_name = _text_field("first_name")
    last_name_kana = _text_field("last_name_kana")
    first_name_kana = _text_field("first_name_kana")
    company_name = _text_field("company_name")
    department = _text_field("department")
    job_title = _text_field("job_title")
    industry = _text_field("industry")
    employee_count = serializers.IntegerField(
        min_value=0, max_value=MAX_EMPLOYEE_COUNT, required=False, allow_null=True
    )
    phone = _text_field("phone")
    website = _text_field("website")
    postal_code = _text_field("postal_code")
    prefecture = _text_field("prefecture")
    city = _text_field("city")
    address_line = _text_field("address_line")
    country = _text_field("country")
    source = _text_field("source")  # type: ignore[assignment]  # Field.source is popped
    notes = _text_field("notes")
    assigned_user = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True),
        required=False,
        allow_null=True,
        help_text="Only roles that see every prospect may assign to someone else.",
    )
    do_not_email = serializers.BooleanField(required=False)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=MAX_TAG_LENGTH),
        max_length=MAX_TAGS,
        required=False,
        help_text="The prospect's tags after this request (replaces the current set).",
    )
    custom_fields = CustomValuesField(required=False)

    def validate_email(self, value: str) -> str:
        return value.strip()


def custom_value_text(value: Any) -> Any:
    """A stored custom value as the API shows it: numbers as exact decimal text, dates ISO."""
    if isinstance(value, Decimal):
        normalized = value.normalize()
        # normalize() writes 100 as 1E+2; quantize back to a plain integer when it is one.
        if normalized == normalized.to_integral_value():
            return str(normalized.quantize(Decimal(1)))
        return format(normalized, "f")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def prospect_custom_values(prospect: Prospect) -> dict[str, Any]:
    """Custom values by field key from the prefetched ``custom_values`` (no query per row)."""
    values: dict[str, Any] = {}
    for row in prospect.custom_values.all():
        custom_field = row.field
        value = custom_value_text(row.value)
        if custom_field.field_type == CustomFieldType.MULTI_CHOICE:
            values.setdefault(custom_field.key, []).append(value)
        else:
            values[custom_field.key] = value
    for key, value in values.items():
        if isinstance(value, list):
            value.sort()
            values[key] = value
    return values


class ProspectOutputSerializer(serializers.ModelSerializer):
    job_level_label = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()
    custom_fields = serializers.SerializerMethodField()
    is_mailable = serializers.BooleanField(read_only=True)

    class Meta:
        model = Prospect
        fields: ClassVar[list[str]] = [
            "id",
            *EDITABLE_FIELDS,
            "score",
            "grade",
            "hot_status",
            "hot_since",
            "job_level",
            "job_level_label",
            "department_category",
            "company",
            "assigned_user",
            "tags",
            "custom_fields",
            "is_mailable",
            "do_not_email",
            "opted_out",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_job_level_label(self, prospect: Prospect) -> str:
        return str(JobLevel(prospect.job_level).label)

    def get_tags(self, prospect: Prospect) -> list[str]:
        return sorted(tag.name for tag in prospect.tags.all())

    @extend_schema_field({"type": "object", "additionalProperties": {}})
    def get_custom_fields(self, prospect: Prospect) -> dict[str, Any]:
        return prospect_custom_values(prospect)


class ListInputSerializer(StrictInputSerializer):
    read_only_names = frozenset(
        {"id", "member_count", "created_by", "created_at", "updated_at", "last_refreshed_at"}
    )

    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    is_dynamic = serializers.BooleanField(required=False, default=False)
    criteria = serializers.JSONField(
        required=False,
        help_text='Dynamic lists only: {"match": "all"|"any", "conditions": [...]}, groups nest.',
    )

    def validate_criteria(self, value: Any) -> dict[str, Any]:
        try:
            return validate_criteria(value)
        except CriteriaError as error:
            raise serializers.ValidationError(str(error)) from error

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        is_dynamic = attrs.get("is_dynamic")
        if self.instance is not None:
            if "is_dynamic" in attrs and attrs["is_dynamic"] != self.instance.is_dynamic:
                raise serializers.ValidationError(
                    {"is_dynamic": [_("A list cannot change between static and dynamic.")]}
                )
            is_dynamic = self.instance.is_dynamic
        if "criteria" in attrs and not is_dynamic:
            raise serializers.ValidationError(
                {"criteria": [_("Only dynamic lists have criteria.")]}
            )
        if self.instance is None and is_dynamic and "criteria" not in attrs:
            raise serializers.ValidationError({"criteria": [_("A dynamic list needs criteria.")]})
        return attrs


class ListOutputSerializer(serializers.ModelSerializer):
    member_count = serializers.IntegerField(
        read_only=True, help_text="Members the caller may see (Sales: their own prospects)."
    )
    criteria = serializers.JSONField(read_only=True)

    class Meta:
        model = ProspectList
        fields: ClassVar[list[str]] = [
            "id",
            "name",
            "description",
            "is_dynamic",
            "criteria",
            "member_count",
            "created_by",
            "created_at",
            "updated_at",
            "last_refreshed_at",
        ]
        read_only_fields = fields


class MembershipInputSerializer(StrictInputSerializer):
    prospect_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        allow_empty=False,
        max_length=MAX_MEMBERSHIP_IDS,
    )

    def validate_prospect_ids(self, value: list[int]) -> list[int]:
        # A repeated id is one prospect: never counted or inserted twice.
        return list(dict.fromkeys(value))


class MembershipAddedSerializer(serializers.Serializer):
    added = serializers.IntegerField(help_text="Prospects that were not members before.")


class MembershipRemovedSerializer(serializers.Serializer):
    removed = serializers.IntegerField(help_text="Prospects that were members and are no more.")


@extend_schema_field({"type": "integer"})
class VisibleProspectField(serializers.PrimaryKeyRelatedField):
    """A prospect id, resolved within the caller's scope (another's prospect: does not exist)."""

    def get_queryset(self) -> Any:
        from prospects.selectors import prospects_visible_to

        return prospects_visible_to(self.context["request"].user)


class TaskInputSerializer(StrictInputSerializer):
    read_only_names = frozenset(
        {"id", "created_by", "created_at", "updated_at", "completed_at", "is_overdue"}
    )

    subject = serializers.CharField(max_length=200)
    prospect = VisibleProspectField(
        required=False, allow_null=True, help_text="Set when the task is created; fixed after."
    )
    assignee = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.all(),
        required=False,
        help_text="Defaults to the caller. Sales-scoped roles may only give tasks to themselves.",
    )
    due_date = serializers.DateField(required=False, allow_null=True)
    status = serializers.ChoiceField(choices=TaskStatus.choices, required=False)
    priority = serializers.ChoiceField(choices=TaskPriority.choices, required=False)
    notes = serializers.CharField(max_length=MAX_NOTES_LENGTH, required=False, allow_blank=True)

    def validate_priority(self, value: Any) -> int:
        return int(value)


class TaskOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Task
        fields: ClassVar[list[str]] = [
            "id",
            "subject",
            "prospect",
            "assignee",
            "created_by",
            "due_date",
            "status",
            "priority",
            "notes",
            "created_at",
            "updated_at",
            "completed_at",
        ]
        read_only_fields = fields


class ErrorSerializer(serializers.Serializer):
    """A refusal: ``detail`` for the whole request, or field name → list of messages."""

    detail = serializers.CharField(required=False)
