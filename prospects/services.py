"""Writes of prospects, companies, tags, custom values, lists and assignment.

Every change to a prospect goes through here so that its normalised columns (名寄せ keys,
department category, job level) stay derived from what was typed, and dynamic lists learn of it.
"""

from __future__ import annotations

import datetime
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from mapp.models import User
from mapp.services import audit_log_record
from prospects.criteria import compile_criteria, validate_criteria
from prospects.models import (
    SOFT_BOUNCE_LIMIT,
    AssignmentGroup,
    ClassificationKind,
    ClassificationRule,
    Company,
    CustomField,
    CustomFieldType,
    CustomFieldValue,
    ListMembership,
    ListMembershipSource,
    ListRefresh,
    Prospect,
    ProspectList,
    Tag,
    Task,
)
from prospects.normalization import (
    Rule,
    classify,
    nfkc,
    normalize_company_name,
    normalize_email,
    normalize_person_name,
)

# The prospect fields people type (forms, imports, API, the edit page); everything else is
# derived or owned by another mechanism (score, mailability, assignment).
EDITABLE_FIELDS: tuple[str, ...] = (
    "email",
    "last_name",
    "first_name",
    "last_name_kana",
    "first_name_kana",
    "company_name",
    "department",
    "job_title",
    "industry",
    "employee_count",
    "phone",
    "website",
    "postal_code",
    "prefecture",
    "city",
    "address_line",
    "country",
    "source",
    "notes",
)
NORMALIZED_FIELDS: tuple[str, ...] = (
    "email",
    "full_name_normalized",
    "company_name_normalized",
    "department_category",
    "job_level",
    "company",
)


# --- classification dictionary ------------------------------------------------------------------


@dataclass(frozen=True)
class Classifier:
    """The department / job-level dictionary, loaded once per batch (an import) or per save."""

    department: tuple[Rule, ...] = ()
    job_level: tuple[Rule, ...] = ()

    @classmethod
    def load(cls) -> Classifier:
        department: list[Rule] = []
        job_level: list[Rule] = []
        for kind, pattern, value, priority in ClassificationRule.objects.filter(
            is_active=True
        ).values_list("kind", "pattern", "value", "priority"):
            rule = Rule(nfkc(pattern).lower(), value, priority)
            (department if kind == ClassificationKind.DEPARTMENT else job_level).append(rule)
        return cls(tuple(department), tuple(job_level))

    def department_category(self, department: str) -> str:
        return classify(department, self.department) or ""

    def job_level_of(self, job_title: str) -> int:
        level = classify(job_title, self.job_level)
        return int(level) if level else 0


@dataclass
class CompanyCache:
    """Companies by normalised name, so a batch finds or creates each company once."""

    by_key: dict[str, Company] = field(default_factory=dict)

    def company_for(self, name: str) -> Company | None:
        key = normalize_company_name(name)
        if not key:
            return None
        if key not in self.by_key:
            company = Company.objects.filter(name_normalized=key).order_by("id").first()
            if company is None:
                company = Company.objects.create(name=nfkc(name), name_normalized=key)
            self.by_key[key] = company
        return self.by_key[key]


# The column is a PostgreSQL integer; larger numbers are typing mistakes, not companies.
MAX_EMPLOYEE_COUNT = 2_147_483_647


def _clean_integer(value: Any) -> int | None:
    if value in (None, ""):
        return None
    text = unicodedata.normalize("NFKC", str(value)).replace(",", "").strip()
    try:
        number = int(Decimal(text))
    except (InvalidOperation, ValueError) as error:
        raise ValidationError({"employee_count": _("Enter a whole number.")}) from error
    if not 0 <= number <= MAX_EMPLOYEE_COUNT:
        raise ValidationError({"employee_count": _("Enter a whole number.")})
    return number


def _apply_data(prospect: Prospect, data: dict[str, Any]) -> list[str]:
    """Copy the editable fields in ``data`` onto ``prospect``; return the names that changed."""
    changed = []
    for name in EDITABLE_FIELDS:
        if name not in data:
            continue
        value = data[name]
        if name == "employee_count":
            value = _clean_integer(value)
        elif value is None:
            value = ""
        else:
            value = str(value).strip()
            max_length = getattr(Prospect._meta.get_field(name), "max_length", None)
            if max_length and len(value) > max_length:
                raise ValidationError(
                    {name: _("At most %(count)d characters.") % {"count": max_length}}
                )
        if getattr(prospect, name) != value:
            setattr(prospect, name, value)
            changed.append(name)
    return changed


def prospect_normalize(
    prospect: Prospect, *, classifier: Classifier, companies: CompanyCache | None = None
) -> None:
    """Derive the normalised columns from what was typed."""
    prospect.email = normalize_email(prospect.email)
    prospect.full_name_normalized = normalize_person_name(prospect.last_name, prospect.first_name)
    prospect.company_name_normalized = normalize_company_name(prospect.company_name)
    prospect.department_category = classifier.department_category(prospect.department)
    prospect.job_level = classifier.job_level_of(prospect.job_title)
    prospect.company = (companies or CompanyCache()).company_for(prospect.company_name)


def _validate_email(email: str) -> str:
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(email, check_deliverability=False)
    except EmailNotValidError as error:
        raise ValidationError({"email": _("Enter a valid email address.")}) from error
    return normalize_email(result.normalized)


def prospect_create(
    *,
    actor: User | None,
    data: dict[str, Any],
    tags: Iterable[str] = (),
    custom_values: dict[str, Any] | None = None,
    classifier: Classifier | None = None,
    companies: CompanyCache | None = None,
    refresh_lists: bool = True,
) -> Prospect:
    prospect = Prospect()
    _apply_data(prospect, data)
    prospect.email = _validate_email(prospect.email)
    if Prospect.objects.filter(email__iexact=prospect.email).exists():
        raise ValidationError({"email": _("A prospect with this email address already exists.")})
    prospect_normalize(prospect, classifier=classifier or Classifier.load(), companies=companies)
    prospect.save()
    if tags:
        prospect_tags_add(prospect_ids=[prospect.pk], names=tags)
    if custom_values:
        prospect_set_custom_values(prospect=prospect, values=custom_values)
    if refresh_lists:
        schedule_dynamic_list_refresh([prospect.pk])
    return prospect


def prospect_update(
    *,
    actor: User | None,
    prospect: Prospect,
    data: dict[str, Any],
    custom_values: dict[str, Any] | None = None,
    classifier: Classifier | None = None,
    companies: CompanyCache | None = None,
    refresh_lists: bool = True,
) -> list[str]:
    """Apply ``data``; returns the changed field names (empty: nothing was written)."""
    changed = _apply_data(prospect, data)
    if "email" in changed:
        prospect.email = _validate_email(prospect.email)
        if Prospect.objects.filter(email__iexact=prospect.email).exclude(pk=prospect.pk).exists():
            raise ValidationError(
                {"email": _("A prospect with this email address already exists.")}
            )
    if changed:
        prospect_normalize(
            prospect, classifier=classifier or Classifier.load(), companies=companies
        )
        prospect.save(update_fields=[*changed, *NORMALIZED_FIELDS, "updated_at"])
    if custom_values and prospect_set_custom_values(prospect=prospect, values=custom_values):
        changed.append("custom_fields")
    if changed and refresh_lists:
        schedule_dynamic_list_refresh([prospect.pk])
    return changed


def prospect_find_duplicate(
    *,
    email: str,
    company_name: str = "",
    last_name: str = "",
    first_name: str = "",
    exclude_id: int | None = None,
) -> Prospect | None:
    """The existing prospect this one duplicates: same email, else same company and full name."""
    candidates = Prospect.objects.all()
    if exclude_id is not None:
        candidates = candidates.exclude(pk=exclude_id)
    if email:
        by_email = candidates.filter(email__iexact=normalize_email(email)).first()
        if by_email is not None:
            return by_email
    company_key = normalize_company_name(company_name)
    person_key = normalize_person_name(last_name, first_name)
    if company_key and person_key:
        return (
            candidates.filter(company_name_normalized=company_key, full_name_normalized=person_key)
            .order_by("created_at", "id")
            .first()
        )
    return None


def prospect_duplicates_of(prospect: Prospect) -> QuerySet[Prospect]:
    """Other prospects that the 名寄せ rules say are the same person."""
    if not prospect.company_name_normalized or not prospect.full_name_normalized:
        return Prospect.objects.none()
    return Prospect.objects.filter(
        company_name_normalized=prospect.company_name_normalized,
        full_name_normalized=prospect.full_name_normalized,
    ).exclude(pk=prospect.pk)


# Moving a merged prospect's history: apps that keep rows about prospects (activities, visitors,
# email sends, scores…) register a function here from their AppConfig.ready().
MergeHandler = Callable[[Prospect, Sequence[int]], None]
_merge_handlers: list[MergeHandler] = []


def register_merge_handler(handler: MergeHandler) -> None:
    _merge_handlers.append(handler)


@transaction.atomic
def prospects_merge(
    *, actor: User | None, survivor: Prospect, others: Sequence[Prospect]
) -> Prospect:
    """Merge ``others`` into ``survivor`` and delete them.

    Field values: the newest non-empty value wins (records ordered by their last update). Tags,
    lists and custom values are united; tasks and every app's history move to the survivor.
    Opt-outs are never lost: if any record opted out or is do-not-email, the survivor is too.
    """
    other_ids = [other.pk for other in others if other.pk != survivor.pk]
    if not other_ids:
        return survivor
    records = list(
        Prospect.objects.select_for_update().filter(pk__in=[survivor.pk, *other_ids]).order_by("pk")
    )
    survivor = next(record for record in records if record.pk == survivor.pk)
    newest_first = sorted(records, key=lambda record: (record.updated_at, record.pk), reverse=True)
    merged_fields = {}
    for name in EDITABLE_FIELDS:
        if name == "email":
            continue
        for record in newest_first:
            value = getattr(record, name)
            if value not in ("", None):
                merged_fields[name] = value
                break
    for name, value in merged_fields.items():
        setattr(survivor, name, value)
    survivor.assigned_user = next(
        (record.assigned_user for record in newest_first if record.assigned_user_id), None
    )
    survivor.opted_out = any(record.opted_out for record in records)
    survivor.do_not_email = any(record.do_not_email for record in records)
    survivor.last_activity_at = max(
        (record.last_activity_at for record in records if record.last_activity_at), default=None
    )
    survivor.created_at = min(record.created_at for record in records)

    # Relations: tags and lists are united, custom values fill what the survivor lacks.
    tag_through = Prospect.tags.through
    tag_ids = set(
        tag_through.objects.filter(prospect_id__in=other_ids).values_list("tag_id", flat=True)
    )
    tag_through.objects.bulk_create(
        [tag_through(prospect_id=survivor.pk, tag_id=tag_id) for tag_id in tag_ids],
        ignore_conflicts=True,
    )
    memberships = ListMembership.objects.filter(prospect_id__in=other_ids)
    ListMembership.objects.bulk_create(
        [
            ListMembership(prospect_list_id=list_id, prospect_id=survivor.pk, source=source)
            for list_id, source in memberships.values_list("prospect_list_id", "source")
        ],
        ignore_conflicts=True,
    )
    survivor_fields = set(
        CustomFieldValue.objects.filter(prospect=survivor).values_list("field_id", flat=True)
    )
    CustomFieldValue.objects.filter(prospect_id__in=other_ids).exclude(
        field_id__in=survivor_fields
    ).update(prospect_id=survivor.pk)
    Task.objects.filter(prospect_id__in=other_ids).update(prospect_id=survivor.pk)
    for handler in _merge_handlers:
        handler(survivor, other_ids)

    emails = [record.email for record in records if record.pk != survivor.pk]
    Prospect.objects.filter(pk__in=other_ids).delete()
    prospect_normalize(survivor, classifier=Classifier.load())
    survivor.save()
    audit_log_record(
        actor=actor,
        action="prospect.merge",
        target=survivor,
        changes={"merged_ids": other_ids, "merged_emails": emails},
    )
    schedule_dynamic_list_refresh([survivor.pk])
    return survivor


# --- tags and custom values ---------------------------------------------------------------------


def tags_for_names(names: Iterable[str]) -> list[Tag]:
    cleaned = []
    seen = set()
    for name in names:
        text = nfkc(name)[:100]
        if text and text.lower() not in seen:
            seen.add(text.lower())
            cleaned.append(text)
    tags = []
    for name in cleaned:
        tag = Tag.objects.filter(name__iexact=name).first()
        if tag is None:
            tag, _created = Tag.objects.get_or_create(name=name)
        tags.append(tag)
    return tags


def prospect_tags_add(*, prospect_ids: Sequence[int], names: Iterable[str]) -> int:
    through = Prospect.tags.through
    rows = [
        through(prospect_id=prospect_id, tag_id=tag.pk)
        for tag in tags_for_names(names)
        for prospect_id in prospect_ids
    ]
    before = through.objects.filter(prospect_id__in=prospect_ids).count()
    through.objects.bulk_create(rows, ignore_conflicts=True)
    added = through.objects.filter(prospect_id__in=prospect_ids).count() - before
    if added:
        _touch(prospect_ids)
    return added


def _touch(prospect_ids: Sequence[int]) -> None:
    """Mark prospects changed (updated_at drives `updated_since` syncs) for changes that are not
    columns of the prospect row itself: tags, custom values."""
    Prospect.objects.filter(pk__in=prospect_ids).update(updated_at=timezone.now())
    schedule_dynamic_list_refresh(list(prospect_ids))  # tag and custom-field criteria


def prospect_tags_remove(*, prospect_ids: Sequence[int], names: Iterable[str]) -> int:
    name_q = Q()
    for name in names:
        name_q |= Q(tag__name__iexact=nfkc(name))
    if not name_q:
        return 0
    deleted, _rows = Prospect.tags.through.objects.filter(
        Q(prospect_id__in=prospect_ids) & name_q
    ).delete()
    if deleted:
        _touch(prospect_ids)
    return deleted


def _custom_rows(custom_field: CustomField, raw: Any) -> list[CustomFieldValue]:
    """Typed value rows for one custom field; raises ValidationError with a per-field message."""
    error = ValidationError(
        {custom_field.key: _("Invalid value for %(field)s.") % {"field": custom_field.label}}
    )
    if raw in (None, "", []):
        return []
    field_type = custom_field.field_type
    if field_type == CustomFieldType.NUMBER:
        try:
            number = Decimal(unicodedata.normalize("NFKC", str(raw)).replace(",", "").strip())
        except (InvalidOperation, ValueError) as exc:
            raise error from exc
        if not number.is_finite() or abs(number) >= Decimal("1e14"):
            raise error
        return [CustomFieldValue(field=custom_field, value_number=number)]
    if field_type == CustomFieldType.DATE:
        try:
            day = datetime.date.fromisoformat(nfkc(str(raw)).replace("/", "-"))
        except ValueError as exc:
            raise error from exc
        return [CustomFieldValue(field=custom_field, value_date=day)]
    if field_type == CustomFieldType.BOOLEAN:
        text = nfkc(str(raw)).lower()
        if text in {"1", "true", "yes", "y", "はい", "有", "○"}:
            return [CustomFieldValue(field=custom_field, value_bool=True)]
        if text in {"0", "false", "no", "n", "いいえ", "無", "×"}:
            return [CustomFieldValue(field=custom_field, value_bool=False)]
        raise error
    values = raw if isinstance(raw, list | tuple) else [raw]
    if field_type == CustomFieldType.MULTI_CHOICE and isinstance(raw, str):
        values = [
            part for part in (piece.strip() for piece in raw.replace("、", ";").split(";")) if part
        ]
    if field_type != CustomFieldType.MULTI_CHOICE and len(values) != 1:
        raise error
    texts = [nfkc(str(value))[:1000] for value in values]
    if field_type in (CustomFieldType.CHOICE, CustomFieldType.MULTI_CHOICE):
        allowed = {str(choice) for choice in custom_field.choices}
        if any(text not in allowed for text in texts):
            raise error
    return [CustomFieldValue(field=custom_field, value_text=text) for text in dict.fromkeys(texts)]


def prospect_set_custom_values(*, prospect: Prospect, values: dict[str, Any]) -> bool:
    """Replace the given custom fields' values (by key). Returns whether anything changed."""
    if not values:
        return False
    fields = {
        custom_field.key: custom_field
        for custom_field in CustomField.objects.filter(key__in=values)
    }
    unknown = set(values) - set(fields)
    if unknown:
        raise ValidationError(
            _("Unknown custom fields: %(names)s") % {"names": ", ".join(sorted(unknown))}
        )
    rows = []
    for key, raw in values.items():
        for row in _custom_rows(fields[key], raw):
            row.prospect = prospect
            rows.append(row)

    def signature(items: Iterable[CustomFieldValue]) -> set[tuple[Any, ...]]:
        return {
            (row.field_id, row.value_text, row.value_number, row.value_date, row.value_bool)
            for row in items
        }

    current = CustomFieldValue.objects.filter(prospect=prospect, field__in=fields.values())
    if signature(current) == signature(rows):
        return False
    with transaction.atomic():
        current.delete()
        CustomFieldValue.objects.bulk_create(rows)
        _touch([prospect.pk])
    return True


# --- assignment ---------------------------------------------------------------------------------


def prospects_assign(*, actor: User | None, prospect_ids: Sequence[int], user: User | None) -> int:
    updated = Prospect.objects.filter(pk__in=prospect_ids).update(
        assigned_user=user, updated_at=timezone.now()
    )
    schedule_dynamic_list_refresh(list(prospect_ids))
    return updated


def assignment_group_take_turns(group: AssignmentGroup, count: int) -> list[User]:
    """The next ``count`` users of a round-robin group, advancing its position atomically."""
    with transaction.atomic():
        locked = AssignmentGroup.objects.select_for_update().get(pk=group.pk)
        members = list(locked.members.filter(is_active=True).order_by("pk"))
        if not members:
            raise ValidationError(_("The assignment group has no active members."))
        turns = [members[(locked.next_position + index) % len(members)] for index in range(count)]
        locked.next_position = (locked.next_position + count) % len(members)
        locked.save(update_fields=["next_position"])
    return turns


def prospects_assign_round_robin(
    *,
    actor: User | None,
    prospect_ids: Sequence[int],
    group: AssignmentGroup,
    reassign: bool = False,
) -> int:
    """Hand prospects to the group's members in turn; assigned ones are kept unless ``reassign``."""
    queryset = Prospect.objects.filter(pk__in=prospect_ids)
    if not reassign:
        queryset = queryset.filter(assigned_user__isnull=True)
    ids = list(queryset.order_by("pk").values_list("pk", flat=True))
    if not ids:
        return 0
    users = assignment_group_take_turns(group, len(ids))
    by_user: dict[int, list[int]] = {}
    for prospect_id, user in zip(ids, users, strict=True):
        by_user.setdefault(user.pk, []).append(prospect_id)
    now = timezone.now()
    with transaction.atomic():
        for user_id, user_prospect_ids in by_user.items():
            Prospect.objects.filter(pk__in=user_prospect_ids).update(
                assigned_user_id=user_id, updated_at=now
            )
    schedule_dynamic_list_refresh(ids)
    return len(ids)


def prospects_reassign(from_user: User, to_user: User | None) -> int:
    """Move every prospect assigned to ``from_user`` to ``to_user`` (None: unassigned)."""
    ids = list(Prospect.objects.filter(assigned_user=from_user).values_list("pk", flat=True))
    Prospect.objects.filter(pk__in=ids).update(assigned_user=to_user, updated_at=timezone.now())
    schedule_dynamic_list_refresh(ids)
    return len(ids)


def prospects_delete(*, actor: User | None, prospect_ids: Sequence[int]) -> int:
    emails = list(Prospect.objects.filter(pk__in=prospect_ids).values_list("email", flat=True)[:50])
    deleted, _rows = Prospect.objects.filter(pk__in=prospect_ids).delete()
    count = len(prospect_ids) if deleted else 0
    audit_log_record(
        actor=actor,
        action="prospect.delete",
        changes={"count": len(prospect_ids), "emails": emails},
    )
    return count


def prospects_set_do_not_email(
    *, actor: User | None, prospect_ids: Sequence[int], value: bool
) -> int:
    updated = Prospect.objects.filter(pk__in=prospect_ids).update(
        do_not_email=value, updated_at=timezone.now()
    )
    schedule_dynamic_list_refresh(list(prospect_ids))
    return updated


def prospect_opt_out(*, prospect_id: int) -> bool:
    """Opt the prospect out of marketing email; False if they had opted out already.

    The one writer of the flag (the "opt out" action, form consent, email unsubscribes); callers
    record their own evidence (consent log, activities).
    """
    updated = Prospect.objects.filter(pk=prospect_id, opted_out=False).update(
        opted_out=True, updated_at=timezone.now()
    )
    if updated:
        schedule_dynamic_list_refresh([prospect_id])
    return bool(updated)


def prospect_opt_back_in(*, prospect_id: int) -> bool:
    """Undo an opt-out: only for the person's own explicit consent (特定電子メール法), never an
    automation. False if the prospect was not opted out."""
    updated = Prospect.objects.filter(pk=prospect_id, opted_out=True).update(
        opted_out=False, updated_at=timezone.now()
    )
    if updated:
        schedule_dynamic_list_refresh([prospect_id])
    return bool(updated)


def prospect_mark_hard_bounced(*, prospect_id: int) -> bool:
    """The prospect's address does not exist: no more email. False if already marked."""
    now = timezone.now()
    updated = Prospect.objects.filter(pk=prospect_id, hard_bounced_at__isnull=True).update(
        hard_bounced_at=now, updated_at=now
    )
    if updated:
        schedule_dynamic_list_refresh([prospect_id])
    return bool(updated)


def prospect_count_soft_bounce(*, prospect_id: int) -> bool:
    """One more soft bounce (a full mailbox, a server down for days). At SOFT_BOUNCE_LIMIT the
    prospect is no longer mailable (MAILABLE_Q); counting stops there. False if the count had
    reached the limit already or there is no such prospect.

    The one writer of the count; emails.feedback calls it once per bounced message.
    """
    updated = Prospect.objects.filter(
        pk=prospect_id, soft_bounce_count__lt=SOFT_BOUNCE_LIMIT
    ).update(soft_bounce_count=F("soft_bounce_count") + 1, updated_at=timezone.now())
    if updated:
        schedule_dynamic_list_refresh([prospect_id])
    return bool(updated)


# --- lists --------------------------------------------------------------------------------------


def list_create(
    *,
    actor: User | None,
    name: str,
    description: str = "",
    is_dynamic: bool = False,
    criteria: dict[str, Any] | None = None,
    is_public: bool = False,
    public_name: str = "",
) -> ProspectList:
    name = nfkc(name)
    if not name:
        raise ValidationError({"name": _("A list needs a name.")})
    _check_public(is_dynamic=is_dynamic, is_public=is_public)
    clean_criteria = validate_criteria(criteria or {}) if is_dynamic else {}
    prospect_list = ProspectList.objects.create(
        name=name,
        description=description,
        is_dynamic=is_dynamic,
        criteria=clean_criteria,
        is_public=is_public,
        public_name=nfkc(public_name),
        created_by=actor,
    )
    if is_dynamic:
        schedule_full_list_refresh(prospect_list.pk)
    return prospect_list


def _check_public(*, is_dynamic: bool, is_public: bool) -> None:
    # The preference centre lets prospects leave a public list; nobody can leave a dynamic one.
    if is_dynamic and is_public:
        raise ValidationError(
            {
                "is_public": _(
                    "Only static lists can be shown in the preference centre: nobody can leave "
                    "a dynamic list by hand."
                )
            }
        )


def list_update(
    *,
    actor: User | None,
    prospect_list: ProspectList,
    name: str | None = None,
    description: str | None = None,
    is_public: bool | None = None,
    public_name: str | None = None,
) -> list[str]:
    changed = []
    if name is not None:
        name = nfkc(name)
        if not name:
            raise ValidationError({"name": _("A list needs a name.")})
        if name != prospect_list.name:
            prospect_list.name = name
            changed.append("name")
    if description is not None and description != prospect_list.description:
        prospect_list.description = description
        changed.append("description")
    if is_public is not None:
        _check_public(is_dynamic=prospect_list.is_dynamic, is_public=is_public)
        if is_public != prospect_list.is_public:
            prospect_list.is_public = is_public
            changed.append("is_public")
    if public_name is not None:
        public_name = nfkc(public_name)
        if public_name != prospect_list.public_name:
            prospect_list.public_name = public_name
            changed.append("public_name")
    if changed:
        prospect_list.save(update_fields=[*changed, "updated_at"])
    return changed


def list_delete(*, actor: User | None, prospect_list: ProspectList) -> None:
    audit_log_record(
        actor=actor,
        action="list.delete",
        target=prospect_list,
        changes={"name": prospect_list.name},
    )
    member_ids = list(prospect_list.memberships.values_list("prospect_id", flat=True))
    prospect_list.delete()
    schedule_dynamic_list_refresh(member_ids)  # lists whose criteria named this one


def list_update_criteria(
    *, actor: User | None, prospect_list: ProspectList, criteria: dict[str, Any]
) -> ProspectList:
    if not prospect_list.is_dynamic:
        raise ValidationError(_("Only dynamic lists have criteria."))
    prospect_list.criteria = validate_criteria(criteria)
    prospect_list.save(update_fields=["criteria", "updated_at"])
    schedule_full_list_refresh(prospect_list.pk)
    return prospect_list


def list_add_prospects(
    *,
    prospect_list: ProspectList,
    prospect_ids: Sequence[int],
    source: str = ListMembershipSource.MANUAL,
) -> int:
    if prospect_list.is_dynamic:
        raise ValidationError(_("Dynamic lists are maintained by their criteria."))
    rows = [
        ListMembership(prospect_list=prospect_list, prospect_id=prospect_id, source=source)
        for prospect_id in prospect_ids
    ]
    before = prospect_list.memberships.count()
    ListMembership.objects.bulk_create(rows, ignore_conflicts=True, batch_size=5000)
    added = prospect_list.memberships.count() - before
    schedule_dynamic_list_refresh(list(prospect_ids))  # lists that test list membership
    return added


def list_remove_prospects(*, prospect_list: ProspectList, prospect_ids: Sequence[int]) -> int:
    if prospect_list.is_dynamic:
        raise ValidationError(_("Dynamic lists are maintained by their criteria."))
    deleted, _rows = prospect_list.memberships.filter(prospect_id__in=prospect_ids).delete()
    schedule_dynamic_list_refresh(list(prospect_ids))
    return deleted


def dynamic_list_refresh(*, prospect_list: ProspectList) -> ListRefresh:
    """Bring a dynamic list's membership in line with its criteria, set-based, in two statements.

    Cost on 1M prospects: one anti-join DELETE and one INSERT … SELECT … ON CONFLICT, each a
    single pass over the matching rows (see bench/dynamic_list.py).
    """
    refresh = ListRefresh(prospect_list=prospect_list, mode=ListRefresh.Mode.FULL)
    matching = (
        Prospect.objects.filter(compile_criteria(prospect_list.criteria)).order_by().values("id")
    )
    matching_sql, matching_params = matching.query.sql_with_params()
    membership_table = ListMembership._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        # One refresh of a list at a time; other lists refresh in parallel.
        ProspectList.objects.select_for_update().filter(pk=prospect_list.pk).first()
        cursor.execute(
            f"DELETE FROM {membership_table} AS membership "  # noqa: S608 - table names from Django
            f"WHERE membership.prospect_list_id = %s AND NOT EXISTS ("
            f"SELECT 1 FROM ({matching_sql}) AS matching "
            f"WHERE matching.id = membership.prospect_id)",
            [prospect_list.pk, *matching_params],
        )
        refresh.removed_count = max(cursor.rowcount, 0)
        cursor.execute(
            f"INSERT INTO {membership_table} (prospect_list_id, prospect_id, source, created_at) "  # noqa: S608
            f"SELECT %s, matching.id, %s, %s FROM ({matching_sql}) AS matching "
            f"ON CONFLICT (prospect_list_id, prospect_id) DO NOTHING",
            [prospect_list.pk, ListMembershipSource.CRITERIA, timezone.now(), *matching_params],
        )
        refresh.added_count = max(cursor.rowcount, 0)
        refresh.member_count = ListMembership.objects.filter(prospect_list=prospect_list).count()
        refresh.finished_at = timezone.now()
        refresh.save()
        ProspectList.objects.filter(pk=prospect_list.pk).update(
            last_refreshed_at=refresh.finished_at
        )
    return refresh


def dynamic_lists_refresh_for_prospects(prospect_ids: Sequence[int]) -> list[ListRefresh]:
    """Incremental refresh: re-test only these prospects against every dynamic list."""
    ids = sorted(set(prospect_ids))
    if not ids:
        return []
    refreshes = []
    for prospect_list in ProspectList.objects.filter(is_dynamic=True).order_by("pk"):
        matching = set(
            Prospect.objects.filter(pk__in=ids)
            .filter(compile_criteria(prospect_list.criteria))
            .values_list("pk", flat=True)
        )
        with transaction.atomic():
            current = set(
                ListMembership.objects.filter(
                    prospect_list=prospect_list, prospect_id__in=ids
                ).values_list("prospect_id", flat=True)
            )
            to_add = matching - current
            to_remove = current - matching
            ListMembership.objects.bulk_create(
                [
                    ListMembership(
                        prospect_list=prospect_list,
                        prospect_id=prospect_id,
                        source=ListMembershipSource.CRITERIA,
                    )
                    for prospect_id in sorted(to_add)
                ],
                ignore_conflicts=True,
            )
            if to_remove:
                ListMembership.objects.filter(
                    prospect_list=prospect_list, prospect_id__in=to_remove
                ).delete()
            now = timezone.now()
            refresh = ListRefresh.objects.create(
                prospect_list=prospect_list,
                mode=ListRefresh.Mode.INCREMENTAL,
                added_count=len(to_add),
                removed_count=len(to_remove),
                member_count=ListMembership.objects.filter(prospect_list=prospect_list).count(),
                finished_at=now,
            )
            ProspectList.objects.filter(pk=prospect_list.pk).update(last_refreshed_at=now)
        refreshes.append(refresh)
    return refreshes


# Incremental refreshes run in batches of at most this many prospects per task (each batch costs
# one query per dynamic list, a few milliseconds each).
INCREMENTAL_REFRESH_BATCH = 1000


# Other rooms that evaluate criteria over prospects (grading, the HOT rule, automation rules)
# register a listener here; each gets the changed prospects' ids, in batches, after commit.
# A listener should only enqueue work (a Celery task) and must not signal again for prospects
# whose data it did not actually change, so that listeners settle instead of looping.
ProspectsChangedListener = Callable[[list[int]], None]
_changed_listeners: dict[str, ProspectsChangedListener] = {}


def register_prospects_changed_listener(key: str, listener: ProspectsChangedListener) -> None:
    _changed_listeners[key] = listener


def unregister_prospects_changed_listener(key: str) -> None:
    """For tests that register a listener of their own."""
    _changed_listeners.pop(key, None)


def _notify_changed_listeners(ids: list[int]) -> None:
    def call(listener: ProspectsChangedListener, batch: list[int]) -> Callable[[], None]:
        return lambda: listener(batch)

    for listener in list(_changed_listeners.values()):
        for start in range(0, len(ids), INCREMENTAL_REFRESH_BATCH):
            transaction.on_commit(call(listener, ids[start : start + INCREMENTAL_REFRESH_BATCH]))


def schedule_dynamic_list_refresh(prospect_ids: Sequence[int]) -> None:
    """After commit, re-test these prospects against the dynamic lists (Celery), and tell the
    other criteria evaluators (registered listeners) that these prospects changed."""
    ids = sorted(set(prospect_ids))
    if ids:
        _notify_changed_listeners(ids)
    if not ids or not ProspectList.objects.filter(is_dynamic=True).exists():
        return
    from prospects.tasks import refresh_dynamic_lists_for_prospects

    def enqueue(batch: list[int]) -> Callable[[], None]:
        def send() -> None:
            refresh_dynamic_lists_for_prospects.delay(batch)

        return send

    for start in range(0, len(ids), INCREMENTAL_REFRESH_BATCH):
        transaction.on_commit(enqueue(ids[start : start + INCREMENTAL_REFRESH_BATCH]))


def schedule_full_list_refresh(list_id: int) -> None:
    from prospects.tasks import refresh_dynamic_list

    transaction.on_commit(lambda: refresh_dynamic_list.delay(list_id))


def mailable_limit_check() -> int | None:
    """Warn administrators once a day while mailable prospects exceed the account limit.

    Returns the mailable count when over the limit (None when within it or no limit is set).
    """
    from mapp.models import AccountSettings
    from mapp.notifications import notify_administrators
    from prospects.models import MAILABLE_Q

    account = AccountSettings.load()
    if not account.mailable_prospect_limit:
        return None
    mailable = Prospect.objects.filter(MAILABLE_Q).count()
    if mailable <= account.mailable_prospect_limit:
        return None
    today = timezone.localdate().isoformat()
    notify_administrators(
        title=_("Mailable prospects exceed the account limit"),
        body=_(
            "%(count)d prospects are mailable; the limit is %(limit)d. Remove or opt out "
            "prospects you no longer email (database hygiene)."
        )
        % {"count": mailable, "limit": account.mailable_prospect_limit},
        url="/prospects/",
        dedup_key=f"mailable-limit-{today}",
    )
    AccountSettings.objects.filter(pk=account.pk).update(mailable_limit_warned_at=timezone.now())
    return mailable


# Re-classifying reads and writes this many prospects per transaction (≈ 5,000 rows ≈ 0.3 s).
RECLASSIFY_BATCH = 5000


def prospects_reclassify(
    *, after_id: int = 0, batch_size: int = RECLASSIFY_BATCH
) -> tuple[int, int]:
    """Re-derive department category and job level for one batch of prospects after ``after_id``
    (the dictionary changed). Returns (last id handled, rows changed); last id 0 means done."""
    classifier = Classifier.load()
    batch = list(
        Prospect.objects.filter(pk__gt=after_id)
        .order_by("pk")
        .only("pk", "department", "job_title", "department_category", "job_level")[:batch_size]
    )
    if not batch:
        return 0, 0
    changed = []
    for prospect in batch:
        category = classifier.department_category(prospect.department)
        level = classifier.job_level_of(prospect.job_title)
        if (category, level) != (prospect.department_category, prospect.job_level):
            prospect.department_category, prospect.job_level = category, level
            changed.append(prospect)
    with transaction.atomic():
        Prospect.objects.bulk_update(changed, ["department_category", "job_level"], batch_size=1000)
    if changed:
        schedule_dynamic_list_refresh([prospect.pk for prospect in changed])
    return batch[-1].pk, len(changed)
