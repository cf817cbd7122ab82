"""Grading: the scale, criterion states (matched / not matched / unknown, marks), the
set-based regrade, the background job, the prospects-changed listener, the criteria subjects
and the catalogue actions."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mapp.models import Notification, User
from prospects.actions import ActionContext
from prospects.actions.services import action_run
from prospects.criteria import CriteriaError, prospects_matching, validate_criteria
from prospects.models import Prospect, Tag
from prospects.services import prospect_create, prospect_tags_add, prospect_update
from scoring.grading import (
    criterion_mark_reset,
    criterion_mark_set,
    default_profile,
    grading_profile_save,
    prospect_profile_set,
    regrade,
    regrade_request,
    regrade_run,
)
from scoring.grading_compile import grade_of
from scoring.grading_selectors import prospect_grade_explanation, thirds_label
from scoring.models import (
    GRADE_SCALE,
    CriterionMark,
    CriterionState,
    GradingCriterion,
    GradingProfile,
    ProspectProfile,
    Regrade,
    RescoreStatus,
)
from tests.factories import ProspectFactory

pytestmark = pytest.mark.django_db

MANUFACTURING = {
    "match": "all",
    "conditions": [
        {"subject": "field", "field": "industry", "operator": "equals", "value": "製造業"}
    ],
}
LARGE = {
    "match": "all",
    "conditions": [
        {"subject": "field", "field": "employee_count", "operator": "gte", "value": 300}
    ],
}
MANAGER = {
    "match": "all",
    "conditions": [
        {"subject": "field", "field": "job_title", "operator": "contains", "value": "部長"}
    ],
}
TOKYO = {
    "match": "all",
    "conditions": [
        {"subject": "field", "field": "prefecture", "operator": "equals", "value": "東京都"}
    ],
}


def _grade(prospect: Prospect) -> str:
    return Prospect.objects.values_list("grade", flat=True).get(pk=prospect.pk)


def _prospect(**fields: Any) -> Prospect:
    fields.setdefault("company_name", "株式会社サンプル製作所")
    return ProspectFactory.create(**fields)


def _configure_default(*documents_and_weights: tuple[dict[str, Any], int]) -> GradingProfile:
    """Give the seeded Default criteria documents and weights, in their order."""
    profile = default_profile()
    criteria = list(profile.criteria.all())
    for criterion, (document, weight) in zip(criteria, documents_and_weights, strict=False):
        criterion.criteria = document
        criterion.weight = weight
        criterion.save()
    return profile


def _profile(name: str, *documents_and_weights: tuple[dict[str, Any], int]) -> GradingProfile:
    profile = GradingProfile.objects.create(name=name)
    for position, (document, weight) in enumerate(documents_and_weights):
        GradingCriterion.objects.create(
            profile=profile,
            name=f"{name} {position}",
            criteria=document,
            weight=weight,
            position=position,
        )
    return profile


# --- the scale -----------------------------------------------------------------------------------


def test_the_scale_moves_a_third_of_a_letter_per_step_and_clamps() -> None:
    assert GRADE_SCALE[0] == "F" and GRADE_SCALE[-1] == "A+"
    assert grade_of(0) == "D"
    assert [grade_of(steps) for steps in (1, 2, 3)] == ["D+", "C-", "C"]
    assert grade_of(-1) == "D-" and grade_of(-2) == "F"
    assert grade_of(-9) == "F"  # clamped at F
    assert grade_of(10) == "A+" and grade_of(25) == "A+"  # clamped at A+
    assert [thirds_label(points) for points in (2, -1, 3, 4, 0)] == [
        "+2/3",
        "−1/3",
        "+1",
        "+1 1/3",
        "0",
    ]


def test_default_profile_is_seeded_with_five_empty_criteria_and_leaves_everyone_at_d() -> None:
    profile = default_profile()
    criteria = list(profile.criteria.all())
    assert len(criteria) == 5 and {criterion.weight for criterion in criteria} == {2}
    prospect = _prospect(industry="製造業", job_title="営業部長", prefecture="東京都")
    odd = _prospect(industry="IT")
    Prospect.objects.filter(pk=odd.pk).update(grade="A")
    assert regrade() == [odd.pk]  # only the wrong row is written
    assert (_grade(prospect), _grade(odd)) == ("D", "D")


def test_all_matched_clamps_at_a_plus_and_all_not_matched_at_f() -> None:
    _configure_default((MANUFACTURING, 3), (LARGE, 3), (MANAGER, 3), (TOKYO, 3))
    best = _prospect(
        industry="製造業", employee_count=1200, job_title="製造部長", prefecture="東京都"
    )
    worst = _prospect(industry="小売業", employee_count=12, job_title="担当", prefecture="大阪府")
    regrade()
    assert (_grade(best), _grade(worst)) == ("A+", "F")
    explanation = prospect_grade_explanation(worst)
    assert explanation.grade == "F" and explanation.is_clamped
    assert explanation.total_points == -12


# --- criterion states ----------------------------------------------------------------------------


def test_unknown_moves_nothing_while_not_matched_lowers() -> None:
    _configure_default((MANUFACTURING, 1), (LARGE, 2))
    matched = _prospect(industry="製造業", employee_count=500)  # +1 +2
    not_matched = _prospect(industry="小売業", employee_count=50)  # −1 −2
    unknown = _prospect(industry="", employee_count=None)  # nothing known
    mixed = _prospect(industry="製造業", employee_count=None)  # +1, size unknown
    regrade()
    assert _grade(matched) == "C"
    assert _grade(not_matched) == "F"
    assert _grade(unknown) == "D"
    assert _grade(mixed) == "D+"
    states = [line.state for line in prospect_grade_explanation(mixed).lines[:2]]
    assert states == [CriterionState.MATCHED, CriterionState.UNKNOWN]


def test_conditions_on_other_subjects_are_always_known() -> None:
    tagged = {
        "match": "all",
        "conditions": [{"subject": "tag", "operator": "has", "value": "展示会2025"}],
    }
    _configure_default((tagged, 1))
    with_tag, without = _prospect(), _prospect()
    prospect_tags_add(prospect_ids=[with_tag.pk], names=["展示会2025"])
    regrade()
    assert (_grade(with_tag), _grade(without)) == ("D+", "D-")
    assert Tag.objects.filter(name="展示会2025").exists()


def test_company_and_custom_field_criteria_use_the_same_known_test() -> None:
    from prospects.models import CustomField
    from prospects.services import prospect_set_custom_values

    CustomField.objects.create(key="budget", label="予算", field_type="number")
    budget = {
        "match": "any",
        "conditions": [
            {"subject": "custom_field", "field": "budget", "operator": "gte", "value": 100},
            {"subject": "company", "field": "industry", "operator": "equals", "value": "製造業"},
        ],
    }
    _configure_default((budget, 1))
    rich, poor, silent = _prospect(), _prospect(), _prospect()
    prospect_set_custom_values(prospect=rich, values={"budget": 500})
    prospect_set_custom_values(prospect=poor, values={"budget": 10})
    regrade()
    assert (_grade(rich), _grade(poor), _grade(silent)) == ("D+", "D-", "D")


def test_marks_override_the_data_until_reset(administrator: User) -> None:
    profile = _configure_default((MANUFACTURING, 3))
    criterion = profile.criteria.get(position=0)
    prospect = _prospect(industry="製造業")
    other = _prospect(industry="製造業")
    regrade()
    assert _grade(prospect) == "C"

    assert (
        criterion_mark_set(
            prospect=prospect,
            criterion=criterion,
            state=CriterionState.NOT_MATCHED,
            actor=administrator,
        )
        == "F"
    )
    assert _grade(prospect) == "F" and _grade(other) == "C"
    line = prospect_grade_explanation(prospect).lines[0]
    assert line.is_marked and line.mark is not None and line.mark.marked_by == administrator
    assert line.data_state == CriterionState.MATCHED and line.state == CriterionState.NOT_MATCHED

    criterion_mark_set(prospect=prospect, criterion=criterion, state=CriterionState.UNKNOWN)
    assert _grade(prospect) == "D"  # not known: neutral
    regrade()  # a full regrade keeps the mark
    assert _grade(prospect) == "D"

    assert criterion_mark_reset(prospect=prospect, criterion=criterion) == "C"
    assert not CriterionMark.objects.filter(prospect=prospect).exists()


def test_a_mark_on_an_empty_criterion_counts() -> None:
    profile = default_profile()
    criterion = profile.criteria.get(position=3)  # 役職 / Job title, no conditions
    prospect = _prospect(job_title="代表取締役")
    criterion_mark_set(prospect=prospect, criterion=criterion, state=CriterionState.MATCHED)
    assert _grade(prospect) == "C-"
    explanation = prospect_grade_explanation(prospect)
    assert [step.grade for step in explanation.steps] == ["C-"]
    assert explanation.is_current


def test_invalid_stored_criteria_and_criteria_on_the_grade_are_unknown() -> None:
    on_grade = {
        "match": "all",
        "conditions": [{"subject": "grade", "operator": "lte", "value": "D"}],
    }
    broken = {
        "match": "all",
        "conditions": [{"subject": "list", "operator": "member_of", "value": 999999}],
    }
    _configure_default((on_grade, 3), (broken, 3))
    prospect = _prospect()
    regrade()
    assert _grade(prospect) == "D"  # would flip for ever otherwise


# --- the set-based regrade ------------------------------------------------------------------------


def test_regrade_writes_only_changed_rows_and_its_queries_do_not_grow(
    django_capture_on_commit_callbacks: Any,
) -> None:
    _configure_default((MANUFACTURING, 2), (TOKYO, 1))
    other_profile = _profile("大企業", (LARGE, 1))
    few = [_prospect(industry="製造業", prefecture="東京都") for _ in range(3)]
    for prospect in few:
        Prospect.objects.filter(pk=prospect.pk).update(grade="D")
    with CaptureQueriesContext(connection) as small:
        changed = regrade(prospect_ids=[prospect.pk for prospect in few])
    assert sorted(changed) == sorted(prospect.pk for prospect in few)
    many = [_prospect(industry="製造業", prefecture="東京都") for _ in range(30)]
    big = [_prospect(employee_count=5000) for _ in range(5)]
    ProspectProfile.objects.bulk_create(
        ProspectProfile(prospect=prospect, profile=other_profile) for prospect in big
    )
    everyone = [prospect.pk for prospect in [*few, *many, *big]]
    with CaptureQueriesContext(connection) as large:
        changed = regrade(prospect_ids=everyone)
    assert sorted(changed) == sorted(prospect.pk for prospect in [*many, *big])
    # Per call: profiles, criteria, marks, one UPDATE per profile; not one per prospect.
    assert len(large.captured_queries) <= len(small.captured_queries) + 1
    updates = [query for query in large.captured_queries if "UPDATE" in query["sql"]]
    assert len(updates) == 2
    assert {_grade(prospect) for prospect in many} == {"C"}
    assert {_grade(prospect) for prospect in big} == {"D+"}

    # Nothing changes: nothing written, nothing announced.
    with django_capture_on_commit_callbacks() as callbacks:
        assert regrade(prospect_ids=everyone) == []
    assert callbacks == []


def test_a_changed_grade_is_announced_to_the_listeners(
    django_capture_on_commit_callbacks: Any,
) -> None:
    from prospects.services import (
        register_prospects_changed_listener,
        unregister_prospects_changed_listener,
    )

    heard: list[list[int]] = []
    register_prospects_changed_listener("test.grading", heard.append)
    try:
        _configure_default((MANUFACTURING, 2))
        prospect = _prospect(industry="製造業")
        with django_capture_on_commit_callbacks(execute=True):
            regrade(prospect_ids=[prospect.pk])
    finally:
        unregister_prospects_changed_listener("test.grading")
    assert heard == [[prospect.pk]]


# --- the background job ---------------------------------------------------------------------------


def test_saving_a_profile_regrades_its_prospects_in_the_background(
    administrator: User, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    profile = _profile("製造業プロファイル")
    on_profile = [_prospect(industry="製造業") for _ in range(3)]
    on_default = _prospect(industry="製造業")
    ProspectProfile.objects.bulk_create(
        ProspectProfile(prospect=prospect, profile=profile) for prospect in on_profile
    )
    criterion = GradingCriterion(name="業種", criteria=MANUFACTURING, weight=3)
    with django_capture_on_commit_callbacks(execute=True):
        job = grading_profile_save(profile=profile, criteria=[criterion], actor=administrator)
    job.refresh_from_db()
    assert job.status == RescoreStatus.DONE and job.profile == profile
    assert job.total == job.processed == 3
    assert {_grade(prospect) for prospect in on_profile} == {"C"}
    assert _grade(on_default) == "D"
    notice = Notification.objects.get(user=administrator, dedup_key=f"scoring-regrade-{job.pk}")
    assert "製造業プロファイル" in notice.body


def test_the_regrade_job_records_progress_chunk_by_chunk_and_runs_once(
    administrator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure_default((MANUFACTURING, 1))
    prospects = [_prospect(industry="製造業") for _ in range(5)]
    job = regrade_request(actor=administrator)
    assert regrade_request(actor=administrator) == job  # a queued job covers the next request
    progress: list[int] = []
    original_save = Regrade.save

    def spy(self: Regrade, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("update_fields") == ["processed"]:
            progress.append(self.processed)
        original_save(self, *args, **kwargs)

    monkeypatch.setattr(Regrade, "save", spy)
    done = regrade_run(job.pk, chunk=2)
    monkeypatch.undo()
    assert done.status == RescoreStatus.DONE and done.total == done.processed == 5
    assert progress == sorted(progress) and len(progress) == 3 and progress[-1] == 5
    assert {_grade(prospect) for prospect in prospects} == {"D+"}
    assert Notification.objects.filter(dedup_key=f"scoring-regrade-{job.pk}").count() == 1
    # A duplicated task changes nothing and notifies no one again.
    assert regrade_run(job.pk).status == RescoreStatus.DONE
    assert Notification.objects.filter(dedup_key=f"scoring-regrade-{job.pk}").count() == 1


# --- continuous regrading -------------------------------------------------------------------------


def test_a_field_change_regrades_the_prospect(
    django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    _configure_default((MANUFACTURING, 3), (MANAGER, 2))
    with django_capture_on_commit_callbacks(execute=True):
        prospect = prospect_create(
            actor=None,
            data={
                "email": "tanaka@sample-seisakusho.co.jp",
                "company_name": "株式会社サンプル製作所",
            },
        )
    assert _grade(prospect) == "D"
    with django_capture_on_commit_callbacks(execute=True):
        prospect_update(
            actor=None, prospect=prospect, data={"industry": "製造業", "job_title": "製造部長"}
        )
    assert _grade(prospect) == "B-"
    with django_capture_on_commit_callbacks(execute=True):
        prospect_update(actor=None, prospect=prospect, data={"industry": "小売業"})
    assert _grade(prospect) == "D-"


# --- criteria subjects ----------------------------------------------------------------------------


def test_grade_subject_compiles_to_grade_in() -> None:
    grades = ["A+", "B", "B-", "C", "F"]
    prospects = {grade: _prospect() for grade in grades}
    for grade, prospect in prospects.items():
        Prospect.objects.filter(pk=prospect.pk).update(grade=grade)

    def matching(operator: str, value: str) -> set[str]:
        document = {
            "match": "all",
            "conditions": [{"subject": "grade", "operator": operator, "value": value}],
        }
        return set(prospects_matching(document).values_list("grade", flat=True))

    assert matching("gte", "B") == {"A+", "B"}
    assert matching("lte", "C") == {"C", "F"}
    assert matching("equals", "B-") == {"B-"}
    assert matching("not_equals", "F") == {"A+", "B", "B-", "C"}
    assert (
        validate_criteria({"conditions": [{"subject": "grade", "operator": "gte", "value": "A−"}]})[
            "conditions"
        ][0]["value"]
        == "A-"
    )
    for bad in (
        {"subject": "grade", "operator": "gte", "value": "E"},
        {"subject": "grade", "operator": "contains", "value": "B"},
    ):
        with pytest.raises(CriteriaError):
            validate_criteria({"conditions": [bad]})


def test_grading_profile_subject_counts_prospects_without_a_row_as_default() -> None:
    default = default_profile()
    special = _profile("金融業")
    on_default, on_special, explicit_default = _prospect(), _prospect(), _prospect()
    ProspectProfile.objects.create(prospect=on_special, profile=special)
    ProspectProfile.objects.create(prospect=explicit_default, profile=default)

    def matching(operator: str, profile: GradingProfile) -> set[int]:
        document = {
            "match": "all",
            "conditions": [
                {"subject": "grading_profile", "operator": operator, "value": str(profile.pk)}
            ],
        }
        return set(prospects_matching(document).values_list("pk", flat=True))

    assert matching("is", default) == {on_default.pk, explicit_default.pk}
    assert matching("is", special) == {on_special.pk}
    assert matching("is_not", special) == {on_default.pk, explicit_default.pk}
    with pytest.raises(CriteriaError):
        validate_criteria(
            {"conditions": [{"subject": "grading_profile", "operator": "is", "value": 999999}]}
        )


# --- actions --------------------------------------------------------------------------------------


def test_change_profile_action_assigns_and_regrades_at_once(english: None) -> None:
    special = _profile("大企業", (LARGE, 3))
    prospect = _prospect(employee_count=3000)
    context = ActionContext(cause_type="automation_rule", cause_id=1, cause_label="大企業ルール")
    run = action_run(
        key="change_grading_profile",
        prospect=prospect,
        config={"profile": special.pk},
        context=context,
    )
    assert run.status == "ok", run.message
    assert run.message == "Profile set to “大企業”; grade now C."
    assert ProspectProfile.objects.get(prospect=prospect).profile == special
    assert _grade(prospect) == "C"
    back = action_run(
        key="change_grading_profile",
        prospect=prospect,
        config={"profile": default_profile().pk},
        context=context,
    )
    assert back.status == "ok"
    assert not ProspectProfile.objects.filter(prospect=prospect).exists()  # Default: no row
    assert _grade(prospect) == "D"
    refused = action_run(
        key="change_grading_profile", prospect=prospect, config={"profile": 999999}, context=context
    )
    assert refused.status == "failed"


def test_change_profile_criterion_action_marks_without_an_author(english: None) -> None:
    profile = _configure_default((MANUFACTURING, 2))
    criterion = profile.criteria.get(position=0)
    prospect = _prospect(industry="製造業")
    context = ActionContext(cause_type="automation_rule", cause_id=2)
    run = action_run(
        key="change_profile_criterion",
        prospect=prospect,
        config={"criterion": criterion.pk, "state": "not_matched"},
        context=context,
    )
    assert run.status == "ok", run.message
    assert "grade now F" in run.message
    mark = CriterionMark.objects.get(prospect=prospect, criterion=criterion)
    assert mark.state == CriterionState.NOT_MATCHED and mark.marked_by is None
    action_run(
        key="change_profile_criterion",
        prospect=prospect,
        config={"criterion": criterion.pk, "state": "unknown"},
        context=context,
    )
    assert _grade(prospect) == "D"
    bad = action_run(
        key="change_profile_criterion",
        prospect=prospect,
        config={"criterion": criterion.pk, "state": "maybe"},
        context=context,
    )
    assert bad.status == "failed"


def test_assigning_a_profile_by_hand_regrades_and_announces_the_change(
    django_capture_on_commit_callbacks: Any,
) -> None:
    from prospects.services import (
        register_prospects_changed_listener,
        unregister_prospects_changed_listener,
    )

    special = _profile("東京", (TOKYO, 3))
    empty = _profile("未設定")
    prospect = _prospect(prefecture="東京都")
    assert prospect_profile_set(prospect=prospect, profile=special) is True
    assert prospect.grade == "C" == _grade(prospect)
    assert prospect_profile_set(prospect=prospect, profile=special) is False
    prospect_profile_set(prospect=prospect, profile=default_profile())
    heard: list[list[int]] = []
    register_prospects_changed_listener("test.grading", heard.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            # Same grade (D on both), but criteria on the profile must re-test it.
            assert prospect_profile_set(prospect=prospect, profile=empty) is True
    finally:
        unregister_prospects_changed_listener("test.grading")
    assert _grade(prospect) == "D" and heard == [[prospect.pk]]


def test_a_merge_keeps_the_survivors_profile_and_takes_over_missing_marks(
    administrator: User, django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    from prospects.services import prospects_merge

    profile = _configure_default((MANUFACTURING, 2), (TOKYO, 1))
    industry, location = profile.criteria.get(position=0), profile.criteria.get(position=1)
    special = _profile("関東", (TOKYO, 3))
    survivor = _prospect(email="yamada@sample.co.jp", industry="製造業")
    duplicate = _prospect(email="yamada2@sample.co.jp", prefecture="東京都")
    ProspectProfile.objects.create(prospect=duplicate, profile=special)
    criterion_mark_set(prospect=survivor, criterion=industry, state=CriterionState.NOT_MATCHED)
    criterion_mark_set(prospect=duplicate, criterion=industry, state=CriterionState.MATCHED)
    criterion_mark_set(prospect=duplicate, criterion=location, state=CriterionState.MATCHED)
    with django_capture_on_commit_callbacks(execute=True):
        prospects_merge(actor=administrator, survivor=survivor, others=[duplicate])
    assert ProspectProfile.objects.get(prospect=survivor).profile == special
    marks = dict(
        CriterionMark.objects.filter(prospect=survivor).values_list("criterion_id", "state")
    )
    assert marks == {industry.pk: CriterionState.NOT_MATCHED, location.pk: CriterionState.MATCHED}
    assert _grade(survivor) == "C"  # 関東: 東京都 (merged in) matches, worth a full letter


@pytest.mark.django_db
def test_a_regrade_queued_long_ago_is_queued_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A task lost by the broker must not leave the regrade queued for ever (as for rescores)."""
    import datetime

    from django.utils import timezone

    from scoring import grading
    from scoring.models import Regrade

    queued: list[int] = []
    monkeypatch.setattr(grading, "_enqueue_regrade", queued.append)
    stale = Regrade.objects.create()
    Regrade.objects.filter(pk=stale.pk).update(
        created_at=timezone.now() - datetime.timedelta(minutes=30)
    )

    assert grading.regrade_request().pk == stale.pk
    assert queued == [stale.pk]
    Regrade.objects.filter(pk=stale.pk).update(created_at=timezone.now())
    assert grading.regrade_request().pk == stale.pk
    assert queued == [stale.pk]  # a fresh one is left to its own task
