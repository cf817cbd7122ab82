"""The criteria engine (see engine.py): one language for dynamic lists, automation rules,
Engagement rules, campaign targets, HOT conditions and suppression."""

from typing import Any

from prospects.criteria.engine import (
    CriteriaError,
    OperatorSpec,
    Subject,
    compile_criteria,
    criteria_conditions,
    empty_criteria,
    prospects_matching,
    register_subject,
    subjects_catalogue,
    validate_criteria,
)


def criteria_catalogue() -> dict[str, Any]:
    """Everything the criteria builder needs: subjects (with fields) and operators per type."""
    from prospects.criteria.subjects import OPERATORS

    return {
        "subjects": subjects_catalogue(),
        "operators": {
            value_type: [
                {"key": spec.key, "label": str(spec.label), "arity": spec.arity} for spec in specs
            ]
            for value_type, specs in OPERATORS.items()
        },
    }


__all__ = [
    "CriteriaError",
    "OperatorSpec",
    "Subject",
    "compile_criteria",
    "criteria_catalogue",
    "criteria_conditions",
    "empty_criteria",
    "prospects_matching",
    "register_subject",
    "subjects_catalogue",
    "validate_criteria",
]
