"""The criteria subjects prospects owns: fields, company, custom fields, tags, lists,
assignment and mailability. Other apps register theirs the same way (engine.register_subject)."""

from __future__ import annotations

import datetime
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Exists, OuterRef, Q, Value
from django.db.models.functions import Lower
from django.db.models.lookups import Exact
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from prospects.criteria.engine import (
    MAX_IN_VALUES,
    MAX_TEXT_VALUE_LENGTH,
    CriteriaError,
    OperatorSpec,
    Subject,
    register_subject,
)

# --- value types and their operators ----------------------------------------------------------

TEXT, NUMBER, DATE, CHOICE, ORDINAL, BOOLEAN = "text", "number", "date", "choice", "ordinal", "bool"

OPERATORS: dict[str, list[OperatorSpec]] = {
    TEXT: [
        OperatorSpec("equals", _("is")),
        OperatorSpec("not_equals", _("is not")),
        OperatorSpec("contains", _("contains")),
        OperatorSpec("not_contains", _("does not contain")),
        OperatorSpec("starts_with", _("starts with")),
        OperatorSpec("ends_with", _("ends with")),
        OperatorSpec("in", _("is one of"), "many"),
        OperatorSpec("not_in", _("is none of"), "many"),
        OperatorSpec("is_empty", _("is empty"), "none"),
        OperatorSpec("is_not_empty", _("is not empty"), "none"),
    ],
    NUMBER: [
        OperatorSpec("equals", "="),
        OperatorSpec("not_equals", "≠"),
        OperatorSpec("gt", ">"),
        OperatorSpec("gte", "≥"),
        OperatorSpec("lt", "<"),
        OperatorSpec("lte", "≤"),
        OperatorSpec("between", _("between"), "two"),
        OperatorSpec("is_empty", _("is empty"), "none"),
        OperatorSpec("is_not_empty", _("is not empty"), "none"),
    ],
    DATE: [
        OperatorSpec("on", _("on")),
        OperatorSpec("before", _("before")),
        OperatorSpec("after", _("after")),
        OperatorSpec("between", _("between"), "two"),
        OperatorSpec("within_last_days", _("within the last N days"), "days"),
        OperatorSpec("more_than_days_ago", _("more than N days ago"), "days"),
        OperatorSpec("is_empty", _("is empty"), "none"),
        OperatorSpec("is_not_empty", _("is not empty"), "none"),
    ],
    CHOICE: [
        OperatorSpec("equals", _("is")),
        OperatorSpec("not_equals", _("is not")),
        OperatorSpec("in", _("is one of"), "many"),
        OperatorSpec("not_in", _("is none of"), "many"),
        OperatorSpec("is_empty", _("is empty"), "none"),
        OperatorSpec("is_not_empty", _("is not empty"), "none"),
    ],
    ORDINAL: [
        OperatorSpec("equals", _("is")),
        OperatorSpec("not_equals", _("is not")),
        OperatorSpec("gte", _("is at least")),
        OperatorSpec("lte", _("is at most")),
        OperatorSpec("in", _("is one of"), "many"),
        OperatorSpec("is_empty", _("is unknown"), "none"),
        OperatorSpec("is_not_empty", _("is known"), "none"),
    ],
    BOOLEAN: [
        OperatorSpec("is_true", _("is yes"), "none"),
        OperatorSpec("is_false", _("is no"), "none"),
    ],
}


def _operator(value_type: str, key: Any, path: str) -> OperatorSpec:
    for spec in OPERATORS[value_type]:
        if spec.key == key:
            return spec
    raise CriteriaError(
        gettext("The operator %(name)r does not apply here.") % {"name": key}, f"{path}.operator"
    )


def _text(raw: Any, path: str) -> str:
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        raise CriteriaError(gettext("Expected text."), path)
    text = unicodedata.normalize("NFKC", str(raw)).strip()
    if len(text) > MAX_TEXT_VALUE_LENGTH:
        raise CriteriaError(
            gettext("At most %(count)d characters.") % {"count": MAX_TEXT_VALUE_LENGTH}, path
        )
    return text


def _number(raw: Any, path: str) -> Decimal:
    if isinstance(raw, bool):
        raise CriteriaError(gettext("Expected a number."), path)
    try:
        # NFKC: a number typed with full-width digits (１００) is still a number.
        value = Decimal(unicodedata.normalize("NFKC", str(raw)).replace(",", "").strip())
    except (InvalidOperation, ValueError) as error:
        raise CriteriaError(gettext("Expected a number."), path) from error
    if not value.is_finite():
        raise CriteriaError(gettext("Expected a finite number."), path)
    return value


def _date(raw: Any, path: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(unicodedata.normalize("NFKC", str(raw)).strip())
    except ValueError as error:
        raise CriteriaError(gettext("Expected a date (YYYY-MM-DD)."), path) from error


def _days(raw: Any, path: str) -> int:
    value = _number(raw, path)
    if value != value.to_integral_value() or not 0 <= value <= 36500:
        raise CriteriaError(gettext("Expected a whole number of days (0–36500)."), path)
    return int(value)


def _clean_single(value_type: str, raw: Any, path: str, choices: list[str] | None) -> Any:
    if value_type == NUMBER:
        number = _number(raw, path)
        # Stored as a JSON number, as the builder and API clients wrote it.
        return int(number) if number == number.to_integral_value() else float(number)
    if value_type == DATE:
        return _date(raw, path).isoformat()
    if value_type == ORDINAL:
        number = _number(raw, path)
        if choices is not None and str(int(number)) not in choices:
            raise CriteriaError(
                gettext("Expected one of %(choices)s.") % {"choices": ", ".join(choices)}, path
            )
        return int(number)
    text = _text(raw, path)
    if value_type == CHOICE and choices is not None and text not in choices:
        raise CriteriaError(
            gettext("Expected one of %(choices)s.") % {"choices": ", ".join(choices)}, path
        )
    return text


def _clean_value(
    value_type: str,
    spec: OperatorSpec,
    raw: Any,
    path: str,
    *,
    choices: list[str] | None = None,
) -> Any:
    """Validate and normalise a condition's value for its type and operator."""
    path = f"{path}.value"
    if spec.arity == "none":
        return None
    if spec.arity == "days":
        return _days(raw, path)
    if spec.arity == "two":
        if not isinstance(raw, list | tuple) or len(raw) != 2:
            raise CriteriaError(gettext("Expected two values [from, to]."), path)
        return [_clean_single(value_type, item, path, choices) for item in raw]
    if spec.arity == "many":
        if not isinstance(raw, list | tuple) or not raw:
            raise CriteriaError(gettext("Expected a non-empty list of values."), path)
        if len(raw) > MAX_IN_VALUES:
            raise CriteriaError(
                gettext("At most %(count)d values.") % {"count": MAX_IN_VALUES}, path
            )
        return [_clean_single(value_type, item, path, choices) for item in raw]
    return _clean_single(value_type, raw, path, choices)


def _day_bounds(day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    start = timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))
    return start, start + datetime.timedelta(days=1)


def lookup_q(column: str, value_type: str, operator: str, value: Any, *, nullable: bool) -> Q:
    """The Q for ``column <operator> value``; shared by fields, company fields and custom values."""
    empty = Q(**{f"{column}__isnull": True})
    if value_type in (TEXT, CHOICE):
        empty |= Q(**{column: ""})
    elif value_type == ORDINAL:
        empty = Q(**{column: 0})
    if not nullable and value_type not in (TEXT, CHOICE, ORDINAL):
        empty = Q(pk__in=[])
    if operator == "is_empty":
        return empty
    if operator == "is_not_empty":
        return ~empty
    if value_type == BOOLEAN:
        return Q(**{column: operator == "is_true"})
    if value_type == DATE:
        now = timezone.now()
        if operator == "within_last_days":
            return Q(**{f"{column}__gte": now - datetime.timedelta(days=value)})
        if operator == "more_than_days_ago":
            return Q(**{f"{column}__lt": now - datetime.timedelta(days=value)})
        is_date_column = column.endswith("value_date")
        if operator == "between":
            start = datetime.date.fromisoformat(value[0])
            end = datetime.date.fromisoformat(value[1])
            if is_date_column:
                return Q(**{f"{column}__gte": start, f"{column}__lte": end})
            return Q(
                **{f"{column}__gte": _day_bounds(start)[0], f"{column}__lt": _day_bounds(end)[1]}
            )
        day = datetime.date.fromisoformat(value)
        if is_date_column:
            suffix = {"on": "", "before": "__lt", "after": "__gt"}[operator]
            return Q(**{f"{column}{suffix}": day})
        start, end = _day_bounds(day)
        if operator == "on":
            return Q(**{f"{column}__gte": start, f"{column}__lt": end})
        if operator == "before":
            return Q(**{f"{column}__lt": start})
        return Q(**{f"{column}__gte": end})
    if value_type in (TEXT, CHOICE):
        if operator in ("equals", "not_equals", "in", "not_in"):
            # LOWER(column) = LOWER(value) rather than Django's UPPER(…) iexact: the
            # case-insensitive indexes (the unique email index) are on LOWER(…).
            values = value if isinstance(value, list) else [value]
            matched = Q()
            for item in values:
                matched |= Q(Exact(Lower(column), Lower(Value(item))))
            if operator in ("equals", "in"):
                return matched
            return ~matched | empty
        text_lookups = {
            "contains": "icontains",
            "starts_with": "istartswith",
            "ends_with": "iendswith",
        }
        if operator in text_lookups:
            return Q(**{f"{column}__{text_lookups[operator]}": value})
        if operator == "not_contains":
            return ~Q(**{f"{column}__icontains": value}) | empty
    # numbers and ordinals
    if operator == "between":
        low, high = sorted([Decimal(str(value[0])), Decimal(str(value[1]))])
        return Q(**{f"{column}__gte": low, f"{column}__lte": high})
    if operator == "in":
        return Q(**{f"{column}__in": value})
    if operator == "not_equals":
        return ~Q(**{column: value}) | empty
    comparisons = {"equals": "exact", "gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte"}
    return Q(**{f"{column}__{comparisons[operator]}": value})


# --- default prospect fields and company fields -------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    column: str
    label: Any
    value_type: str
    nullable: bool = False
    choices: Callable[[], list[tuple[str, str]]] | None = None


def _department_choices() -> list[tuple[str, str]]:
    from prospects.models import DepartmentCategory

    return [(value, str(label)) for value, label in DepartmentCategory.choices if value]


def _hot_status_choices() -> list[tuple[str, str]]:
    from prospects.models import HotStatus

    return [(value, str(label)) for value, label in HotStatus.choices]


def _job_level_choices() -> list[tuple[str, str]]:
    from prospects.models import JobLevel

    return [(str(value), str(label)) for value, label in JobLevel.choices if value]


PROSPECT_FIELDS: dict[str, FieldSpec] = {
    "email": FieldSpec("email", _("Email address"), TEXT),
    "last_name": FieldSpec("last_name", _("Last name"), TEXT),
    "first_name": FieldSpec("first_name", _("First name"), TEXT),
    "last_name_kana": FieldSpec("last_name_kana", _("Last name (kana)"), TEXT),
    "first_name_kana": FieldSpec("first_name_kana", _("First name (kana)"), TEXT),
    "company_name": FieldSpec("company_name", _("Company"), TEXT),
    "department": FieldSpec("department", _("Department"), TEXT),
    "department_category": FieldSpec(
        "department_category", _("Department category"), CHOICE, choices=_department_choices
    ),
    "job_title": FieldSpec("job_title", _("Job title"), TEXT),
    "job_level": FieldSpec("job_level", _("Job level"), ORDINAL, choices=_job_level_choices),
    "industry": FieldSpec("industry", _("Industry"), TEXT),
    "employee_count": FieldSpec("employee_count", _("Employees"), NUMBER, nullable=True),
    "phone": FieldSpec("phone", _("Phone"), TEXT),
    "website": FieldSpec("website", _("Website"), TEXT),
    "postal_code": FieldSpec("postal_code", _("Postal code"), TEXT),
    "prefecture": FieldSpec("prefecture", _("Prefecture / state"), TEXT),
    "city": FieldSpec("city", _("City"), TEXT),
    "country": FieldSpec("country", _("Country"), TEXT),
    "source": FieldSpec("source", _("Source"), TEXT),
    "score": FieldSpec("score", _("Score"), NUMBER),
    "grade": FieldSpec("grade", _("Grade"), TEXT),
    "hot_status": FieldSpec("hot_status", _("HOT status"), CHOICE, choices=_hot_status_choices),
    "created_at": FieldSpec("created_at", _("Created"), DATE),
    "updated_at": FieldSpec("updated_at", _("Updated"), DATE),
    "last_activity_at": FieldSpec("last_activity_at", _("Last activity"), DATE, nullable=True),
}

COMPANY_FIELDS: dict[str, FieldSpec] = {
    "name": FieldSpec("company__name", _("Company name"), TEXT, nullable=True),
    "industry": FieldSpec("company__industry", _("Industry"), TEXT, nullable=True),
    "employee_count": FieldSpec("company__employee_count", _("Employees"), NUMBER, nullable=True),
    "domain": FieldSpec("company__domain", _("Domain"), TEXT, nullable=True),
    "prefecture": FieldSpec("company__prefecture", _("Prefecture / state"), TEXT, nullable=True),
    "country": FieldSpec("company__country", _("Country"), TEXT, nullable=True),
}


def _field_subject(key: str, label: Any, fields: dict[str, FieldSpec]) -> Subject:
    def validate(condition: dict[str, Any], path: str) -> dict[str, Any]:
        spec = fields.get(str(condition.get("field", "")))
        if spec is None:
            raise CriteriaError(
                gettext("Unknown field %(name)r.") % {"name": condition.get("field")},
                f"{path}.field",
            )
        operator = _operator(spec.value_type, condition.get("operator"), path)
        choices = [value for value, _label in spec.choices()] if spec.choices else None
        value = _clean_value(
            spec.value_type, operator, condition.get("value"), path, choices=choices
        )
        return {"field": condition["field"], "operator": operator.key, "value": value}

    def compile_condition(condition: dict[str, Any]) -> Q:
        spec = fields[condition["field"]]
        return lookup_q(
            spec.column,
            spec.value_type,
            condition["operator"],
            condition["value"],
            nullable=spec.nullable,
        )

    def describe() -> dict[str, Any]:
        return {
            "fields": [
                {
                    "key": name,
                    "label": str(spec.label),
                    "type": spec.value_type,
                    "choices": spec.choices() if spec.choices else None,
                }
                for name, spec in fields.items()
            ]
        }

    return Subject(
        key=key, label=label, validate=validate, compile=compile_condition, describe=describe
    )


# --- custom fields ------------------------------------------------------------------------------

_CUSTOM_TYPES = {
    "text": (TEXT, "value_text"),
    "number": (NUMBER, "value_number"),
    "date": (DATE, "value_date"),
    "choice": (CHOICE, "value_text"),
    "multi_choice": (CHOICE, "value_text"),
    "boolean": (BOOLEAN, "value_bool"),
}
# Operators that hold when a prospect has *no* matching value row: compiled as NOT EXISTS.
_NEGATED = {"not_equals": "equals", "not_contains": "contains", "not_in": "in"}


def _custom_validate(condition: dict[str, Any], path: str) -> dict[str, Any]:
    from prospects.models import CustomField

    custom_field = CustomField.objects.filter(key=str(condition.get("field", ""))).first()
    if custom_field is None:
        raise CriteriaError(
            gettext("Unknown custom field %(name)r.") % {"name": condition.get("field")},
            f"{path}.field",
        )
    value_type, _column = _CUSTOM_TYPES[custom_field.field_type]
    operator = _operator(value_type, condition.get("operator"), path)
    choices = [str(choice) for choice in custom_field.choices] if value_type == CHOICE else None
    value = _clean_value(value_type, operator, condition.get("value"), path, choices=choices)
    return {
        "field": custom_field.key,
        "field_id": custom_field.pk,
        "field_type": custom_field.field_type,
        "operator": operator.key,
        "value": value,
    }


def _custom_compile(condition: dict[str, Any]) -> Q:
    from prospects.models import CustomFieldValue

    value_type, column = _CUSTOM_TYPES[condition["field_type"]]
    operator = condition["operator"]
    rows = CustomFieldValue.objects.filter(prospect=OuterRef("pk"), field_id=condition["field_id"])
    if operator == "is_empty":
        return ~Q(Exists(rows))
    if operator == "is_not_empty":
        return Q(Exists(rows))
    positive = _NEGATED.get(operator, operator)
    matching = rows.filter(
        lookup_q(column, value_type, positive, condition["value"], nullable=True)
    )
    return ~Q(Exists(matching)) if operator in _NEGATED else Q(Exists(matching))


def _custom_describe() -> dict[str, Any]:
    from prospects.models import CustomField

    return {
        "fields": [
            {
                "key": custom_field.key,
                "label": custom_field.label,
                "type": _CUSTOM_TYPES[custom_field.field_type][0],
                "choices": [[str(choice), str(choice)] for choice in custom_field.choices] or None,
            }
            for custom_field in CustomField.objects.all()
        ]
    }


# --- tags, lists, assignment, mailability --------------------------------------------------------


def _simple_subject(
    key: str,
    label: Any,
    operators: list[OperatorSpec],
    clean: Callable[[str, Any, str], Any],
    compile_condition: Callable[[str, Any], Q],
    describe: Callable[[], dict[str, Any]] | None = None,
) -> Subject:
    by_key = {spec.key: spec for spec in operators}

    def validate(condition: dict[str, Any], path: str) -> dict[str, Any]:
        spec = by_key.get(condition.get("operator"))  # type: ignore[arg-type]
        if spec is None:
            raise CriteriaError(
                gettext("The operator %(name)r does not apply here.")
                % {"name": condition.get("operator")},
                f"{path}.operator",
            )
        value = (
            None
            if spec.arity == "none"
            else clean(spec.key, condition.get("value"), f"{path}.value")
        )
        return {"operator": spec.key, "value": value}

    def describe_with_operators() -> dict[str, Any]:
        extra = describe() if describe else {}
        return {
            "operators": [
                {"key": spec.key, "label": str(spec.label), "arity": spec.arity}
                for spec in operators
            ],
            **extra,
        }

    return Subject(
        key=key,
        label=label,
        validate=validate,
        compile=lambda condition: compile_condition(condition["operator"], condition["value"]),
        describe=describe_with_operators,
    )


def _tag_clean(operator: str, raw: Any, path: str) -> Any:
    if operator in ("has_any", "has_none"):
        if not isinstance(raw, list) or not raw or len(raw) > MAX_IN_VALUES:
            raise CriteriaError(gettext("Expected a non-empty list of tags."), path)
        return [_text(item, path) for item in raw]
    return _text(raw, path)


def _tag_compile(operator: str, value: Any) -> Q:
    from prospects.models import Prospect

    through = Prospect.tags.through.objects.filter(prospect_id=OuterRef("pk"))
    names = value if isinstance(value, list) else [value]
    name_q = Q()
    for name in names:
        name_q |= Q(tag__name__iexact=name)
    exists = Q(Exists(through.filter(name_q)))
    return exists if operator in ("has", "has_any") else ~exists


def _id(raw: Any, path: str) -> int:
    try:
        value = int(str(raw))
    except ValueError as error:
        raise CriteriaError(gettext("Expected an id."), path) from error
    if value <= 0:
        raise CriteriaError(gettext("Expected an id."), path)
    return value


def _list_clean(operator: str, raw: Any, path: str) -> int:
    from prospects.models import ProspectList

    list_id = _id(raw, path)
    if not ProspectList.objects.filter(pk=list_id).exists():
        raise CriteriaError(gettext("No such list."), path)
    return list_id


def _list_compile(operator: str, value: Any) -> Q:
    from prospects.models import ListMembership

    exists = Q(
        Exists(ListMembership.objects.filter(prospect=OuterRef("pk"), prospect_list_id=value))
    )
    return exists if operator == "member_of" else ~exists


def _list_describe() -> dict[str, Any]:
    from prospects.models import ProspectList

    return {
        "values": [[str(item.pk), item.name] for item in ProspectList.objects.only("pk", "name")]
    }


def _user_clean(operator: str, raw: Any, path: str) -> Any:
    from mapp.models import User

    if operator == "in":
        if not isinstance(raw, list) or not raw or len(raw) > MAX_IN_VALUES:
            raise CriteriaError(gettext("Expected a non-empty list of users."), path)
        ids = [_id(item, path) for item in raw]
    else:
        ids = [_id(raw, path)]
    if User.objects.filter(pk__in=ids).count() != len(set(ids)):
        raise CriteriaError(gettext("No such user."), path)
    return ids if operator == "in" else ids[0]


def _user_compile(operator: str, value: Any) -> Q:
    if operator == "is":
        return Q(assigned_user_id=value)
    if operator == "is_not":
        return ~Q(assigned_user_id=value) | Q(assigned_user__isnull=True)
    if operator == "in":
        return Q(assigned_user_id__in=value)
    return Q(assigned_user__isnull=operator == "is_unassigned")


def _user_describe() -> dict[str, Any]:
    from mapp.models import User

    return {
        "values": [
            [str(user.pk), user.display_name] for user in User.objects.filter(is_active=True)
        ]
    }


def _mailability_compile(operator: str, value: Any) -> Q:
    from prospects.models import MAILABLE_Q, SOFT_BOUNCE_LIMIT

    return {
        "is_mailable": MAILABLE_Q,
        "is_not_mailable": ~MAILABLE_Q,
        "opted_out": Q(opted_out=True),
        "not_opted_out": Q(opted_out=False),
        "do_not_email": Q(do_not_email=True),
        "hard_bounced": Q(hard_bounced_at__isnull=False),
        "undeliverable": Q(hard_bounced_at__isnull=False)
        | Q(soft_bounce_count__gte=SOFT_BOUNCE_LIMIT),
    }[operator]


def register_default_subjects() -> None:
    register_subject(_field_subject("field", _("Prospect field"), PROSPECT_FIELDS))
    register_subject(_field_subject("company", _("Company field"), COMPANY_FIELDS))
    register_subject(
        Subject(
            key="custom_field",
            label=_("Custom field"),
            validate=_custom_validate,
            compile=_custom_compile,
            describe=_custom_describe,
        )
    )
    register_subject(
        _simple_subject(
            "tag",
            _("Tag"),
            [
                OperatorSpec("has", _("has tag")),
                OperatorSpec("has_not", _("does not have tag")),
                OperatorSpec("has_any", _("has any of"), "many"),
                OperatorSpec("has_none", _("has none of"), "many"),
            ],
            _tag_clean,
            _tag_compile,
        )
    )
    register_subject(
        _simple_subject(
            "list",
            _("List membership"),
            [
                OperatorSpec("member_of", _("is a member of")),
                OperatorSpec("not_member_of", _("is not a member of")),
            ],
            _list_clean,
            _list_compile,
            _list_describe,
        )
    )
    register_subject(
        _simple_subject(
            "assigned_user",
            _("Assigned user"),
            [
                OperatorSpec("is", _("is")),
                OperatorSpec("is_not", _("is not")),
                OperatorSpec("in", _("is one of"), "many"),
                OperatorSpec("is_assigned", _("is assigned"), "none"),
                OperatorSpec("is_unassigned", _("is unassigned"), "none"),
            ],
            _user_clean,
            _user_compile,
            _user_describe,
        )
    )
    register_subject(
        _simple_subject(
            "mailability",
            _("Mailability"),
            [
                OperatorSpec("is_mailable", _("is mailable"), "none"),
                OperatorSpec("is_not_mailable", _("is not mailable"), "none"),
                OperatorSpec("opted_out", _("has opted out"), "none"),
                OperatorSpec("not_opted_out", _("has not opted out"), "none"),
                OperatorSpec("do_not_email", _("is marked do not email"), "none"),
                OperatorSpec("hard_bounced", _("has hard bounced"), "none"),
                OperatorSpec("undeliverable", _("is undeliverable (bounced)"), "none"),
            ],
            lambda operator, raw, path: None,
            _mailability_compile,
        )
    )
