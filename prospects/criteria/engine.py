"""The criteria language: one JSON shape, validated, compiled to a single SQL query.

A criteria document is a group::

    {"match": "all" | "any",
     "conditions": [
        {"subject": "field", "field": "industry", "operator": "in", "value": ["IT", "製造"]},
        {"subject": "field", "field": "job_level", "operator": "gte", "value": 3},
        {"match": "any", "conditions": [ ... ]}          # groups nest without limit
     ]}

Each condition names a *subject* (a registered kind of thing to test: default fields, custom
fields, tags, lists, assignment, mailability, and later activities, score, campaigns…). A
subject validates its condition and turns it into a ``Q`` on ``Prospect``; groups combine
those with AND / OR. The result is one queryset — one SQL statement, with EXISTS sub-queries
where a subject needs another table — never a loop over prospects in Python.

Apps contribute subjects from their ``AppConfig.ready()`` with :func:`register_subject`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db.models import Q
from django.utils.translation import gettext as _

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.utils.functional import Promise

    from prospects.models import Prospect

# Bounds that keep a hostile or accidental document from becoming a huge query.
MAX_DEPTH = 6
MAX_CONDITIONS = 200
MAX_IN_VALUES = 500
MAX_TEXT_VALUE_LENGTH = 1000

MATCH_ALL = "all"
MATCH_ANY = "any"


class CriteriaError(ValueError):
    """The document is not valid criteria; ``path`` says where (e.g. conditions.2.value)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.message = message
        self.path = path


@dataclass(frozen=True)
class OperatorSpec:
    key: str
    label: str | Promise
    # What the value must be: "none", "one", "two" (between), "many" (in), "days" (relative).
    arity: str = "one"


@dataclass
class Subject:
    """A kind of condition. ``compile`` gets a validated condition and returns a Q on Prospect."""

    key: str
    label: str | Promise
    validate: Callable[[dict[str, Any], str], dict[str, Any]]
    compile: Callable[[dict[str, Any]], Q]
    describe: Callable[[], dict[str, Any]] = field(default=lambda: {})


_subjects: dict[str, Subject] = {}


def register_subject(subject: Subject) -> None:
    _subjects[subject.key] = subject


def subject_for(key: str) -> Subject | None:
    return _subjects.get(key)


def subjects_catalogue() -> list[dict[str, Any]]:
    """What the criteria builder in the browser offers: subjects, their fields and operators."""
    return [
        {"key": subject.key, "label": str(subject.label), **subject.describe()}
        for subject in _subjects.values()
    ]


def empty_criteria() -> dict[str, Any]:
    return {"match": MATCH_ALL, "conditions": []}


def validate_criteria(document: Any) -> dict[str, Any]:
    """Return a cleaned copy of ``document`` or raise CriteriaError naming the faulty part."""
    counter = [0]
    return _validate_group(document, path="", depth=0, counter=counter)


def _validate_group(group: Any, *, path: str, depth: int, counter: list[int]) -> dict[str, Any]:
    if not isinstance(group, dict):
        raise CriteriaError(_("A group must be an object."), path)
    if depth > MAX_DEPTH:
        raise CriteriaError(_("Groups nest at most %(depth)d deep.") % {"depth": MAX_DEPTH}, path)
    match = group.get("match", MATCH_ALL)
    if match not in (MATCH_ALL, MATCH_ANY):
        raise CriteriaError(_('Match must be "all" or "any".'), _join(path, "match"))
    conditions = group.get("conditions", [])
    if not isinstance(conditions, list):
        raise CriteriaError(_("Conditions must be a list."), _join(path, "conditions"))
    cleaned = []
    for index, item in enumerate(conditions):
        item_path = _join(path, f"conditions.{index}")
        counter[0] += 1
        if counter[0] > MAX_CONDITIONS:
            raise CriteriaError(
                _("At most %(count)d conditions.") % {"count": MAX_CONDITIONS}, item_path
            )
        if isinstance(item, dict) and "conditions" in item and "subject" not in item:
            cleaned.append(_validate_group(item, path=item_path, depth=depth + 1, counter=counter))
        else:
            cleaned.append(_validate_condition(item, item_path))
    return {"match": match, "conditions": cleaned}


def _validate_condition(condition: Any, path: str) -> dict[str, Any]:
    if not isinstance(condition, dict):
        raise CriteriaError(_("A condition must be an object."), path)
    subject = _subjects.get(str(condition.get("subject", "")))
    if subject is None:
        raise CriteriaError(
            _("Unknown subject %(name)r.") % {"name": condition.get("subject")},
            _join(path, "subject"),
        )
    cleaned = subject.validate(condition, path)
    cleaned["subject"] = subject.key
    return cleaned


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def criteria_conditions(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every condition of a validated document, its groups flattened (for checks of what a
    document tests, e.g. that a rule does not test its own output)."""
    for item in document.get("conditions", []):
        if "subject" in item:
            yield item
        else:
            yield from criteria_conditions(item)


def compile_criteria(document: dict[str, Any], *, validated: bool = False) -> Q:
    """The Q for a criteria document. An empty group matches every prospect."""
    clean = document if validated else validate_criteria(document)
    return _compile_group(clean)


def _compile_group(group: dict[str, Any]) -> Q:
    parts = []
    for item in group["conditions"]:
        if "subject" in item:
            parts.append(_subjects[item["subject"]].compile(item))
        else:
            parts.append(_compile_group(item))
    if not parts:
        return Q()
    combined = parts[0]
    for part in parts[1:]:
        combined = combined & part if group["match"] == MATCH_ALL else combined | part
    return combined


def prospects_matching(
    document: dict[str, Any], *, base: QuerySet[Prospect] | None = None
) -> QuerySet[Prospect]:
    """Prospects that meet ``document``, within ``base`` (a role-scoped queryset, usually)."""
    from prospects.models import Prospect

    queryset = base if base is not None else Prospect.objects.all()
    return queryset.filter(compile_criteria(document))
