"""The action catalogue: each action's real effect, validation, idempotent runs, failure
isolation, the "Automation history" panel, and the editor's catalogue and form field."""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

import pytest
from django import forms
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from mapp.models import Notification, Role, User
from prospects.actions import (
    MAX_ACTIONS,
    Action,
    ActionContext,
    ActionListError,
    ActionOutcome,
    action_run,
    actions_run,
    actions_validate,
    get_action,
    registry,
)
from prospects.actions.editor import ActionListField, action_catalogue_json
from prospects.actions.selectors import action_runs_for
from prospects.models import (
    ActionRun,
    AssignmentGroup,
    CustomField,
    CustomFieldType,
    CustomFieldValue,
    ListMembership,
    ListMembershipSource,
    Prospect,
    ProspectList,
    Task,
    TaskPriority,
)
from prospects.services import list_create, prospect_tags_add
from tests.conftest import client_for
from tests.factories import ProspectFactory, make_user

pytestmark = pytest.mark.django_db


def _context(key: str = "", label: str = "フォーム「資料請求」の送信") -> ActionContext:
    return ActionContext(
        cause_type="form_submission", cause_id=42, cause_label=label, idempotency_key=key
    )


def _run(prospect: Prospect, key: str, config: dict[str, Any] | None = None) -> ActionRun:
    return action_run(key=key, prospect=prospect, config=config or {}, context=_context())


def _static_list(name: str = "展示会 2026") -> ProspectList:
    return list_create(actor=None, name=name)


def _tags(prospect: Prospect) -> set[str]:
    return set(prospect.tags.values_list("name", flat=True))


def _reloaded(prospect: Prospect) -> Prospect:
    return Prospect.objects.get(pk=prospect.pk)


# --- each action does its real effect -----------------------------------------------------------


def test_add_and_remove_list_change_membership_marked_as_automation(english: None) -> None:
    prospect = ProspectFactory.create()
    prospect_list = _static_list()

    added = _run(prospect, "add_to_list", {"list": prospect_list.pk})
    again = _run(prospect, "add_to_list", {"list": prospect_list.pk})

    membership = ListMembership.objects.get(prospect=prospect, prospect_list=prospect_list)
    assert membership.source == ListMembershipSource.ACTION
    assert (added.status, added.message) == ("ok", "Added to the list “展示会 2026”.")
    assert again.message == "Already on the list “展示会 2026”."
    assert added.cause_type == "form_submission"
    assert added.cause_id == "42"
    assert added.config == {"list": prospect_list.pk}

    removed = _run(prospect, "remove_from_list", {"list": prospect_list.pk})
    assert removed.status == "ok"
    assert not ListMembership.objects.filter(prospect=prospect).exists()


def test_change_field_goes_through_the_prospect_services(english: None) -> None:
    prospect = ProspectFactory.create(industry="", job_title="")
    employees = CustomField.objects.create(
        label="従業員規模", key="size", field_type=CustomFieldType.NUMBER
    )

    run = _run(prospect, "change_field", {"field": "job_title", "value": "情報システム部 部長"})
    _run(prospect, "change_field", {"field": "custom:size", "value": "１，２００"})

    prospect = _reloaded(prospect)
    assert run.status == "ok"
    assert run.message == "Job title set to “情報システム部 部長”."
    assert prospect.job_title == "情報システム部 部長"
    assert prospect.job_level >= 4  # normalised like any other edit: 部長 is director level
    value = CustomFieldValue.objects.get(prospect=prospect, field=employees)
    assert value.value_number == 1200

    cleared = _run(prospect, "change_field", {"field": "job_title", "value": ""})
    assert cleared.message == "Job title cleared."
    assert _reloaded(prospect).job_title == ""


def test_add_and_remove_tag(english: None) -> None:
    prospect = ProspectFactory.create()

    added = _run(prospect, "add_tag", {"tag": "ＶＩＰ"})
    assert _tags(prospect) == {"VIP"}  # NFKC, as tags are stored everywhere
    assert added.message == "Tagged “VIP”."

    removed = _run(prospect, "remove_tag", {"tag": "vip"})
    assert removed.status == "ok"
    assert _tags(prospect) == set()


def test_assign_to_user_never_reassigns_unless_told(english: None) -> None:
    first = make_user(Role.SALES, email="first@example.jp", last_name="一", first_name="郎")
    second = make_user(Role.SALES, email="second@example.jp", last_name="二", first_name="郎")
    prospect = ProspectFactory.create()

    assigned = _run(prospect, "assign_user", {"user": first.pk})
    kept = _run(prospect, "assign_user", {"user": second.pk})

    assert _reloaded(prospect).assigned_user == first
    assert assigned.message == "Assigned to 一 郎."
    assert (kept.status, kept.message) == ("skipped", "Already assigned to 一 郎; not reassigned.")

    reassigned = _run(prospect, "assign_user", {"user": second.pk, "reassign": True})
    assert reassigned.status == "ok"
    assert _reloaded(prospect).assigned_user == second


def test_round_robin_takes_turns_and_never_reassigns_unless_told(english: None) -> None:
    first = make_user(Role.SALES, email="rr1@example.jp")
    second = make_user(Role.SALES, email="rr2@example.jp")
    group = AssignmentGroup.objects.create(name="東日本チーム")
    group.members.set([first, second])
    owner = make_user(Role.SALES, email="owner@example.jp")
    prospects = ProspectFactory.create_batch(3)
    already = ProspectFactory.create(assigned_user=owner)

    runs = [_run(prospect, "assign_round_robin", {"group": group.pk}) for prospect in prospects]
    kept = _run(already, "assign_round_robin", {"group": group.pk})

    assignees = [_reloaded(prospect).assigned_user for prospect in prospects]
    assert assignees == [first, second, first]
    assert all(run.status == "ok" for run in runs)
    assert "round-robin in 東日本チーム" in runs[0].message
    assert kept.status == "skipped"
    assert _reloaded(already).assigned_user == owner

    reassigned = _run(already, "assign_round_robin", {"group": group.pk, "reassign": True})
    assert reassigned.status == "ok"
    assert _reloaded(already).assigned_user == second


def test_notify_user_sends_an_in_app_notice_and_an_email_in_their_language(
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given an English-speaking sales user, while the interface runs in Japanese
    user = make_user(Role.SALES, email="smith@example.jp", language="en")
    prospect = ProspectFactory.create(company_name="株式会社サンプル商事")

    # when the action runs
    with django_capture_on_commit_callbacks(execute=True):
        run = _run(prospect, "notify_user", {"user": user.pk, "note": "至急フォロー"})

    # then the user has a notice linking to the prospect and one email, in English
    notification = Notification.objects.get(user=user)
    assert run.status == "ok"
    assert notification.url == reverse("prospects:detail", args=[prospect.pk])
    assert notification.title.startswith("Prospect to follow up:")
    assert "Why: フォーム「資料請求」の送信" in notification.body
    assert "至急フォロー" in notification.body
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["smith@example.jp"]
    assert "Prospect to follow up" in mail.outbox[0].subject


def test_notify_and_task_for_the_assigned_user_are_skipped_without_one(english: None) -> None:
    prospect = ProspectFactory.create()
    notify = _run(prospect, "notify_assigned_user", {"note": ""})
    task = _run(
        prospect,
        "create_task_for_assigned_user",
        {"subject": "電話", "due_in_days": 1, "priority": TaskPriority.NORMAL},
    )
    assert (notify.status, notify.message) == ("skipped", "The prospect has no assigned user.")
    assert task.status == "skipped"
    assert not Notification.objects.exists()
    assert not Task.objects.exists()


def test_notify_the_assigned_user_follows_an_assignment_made_earlier_in_the_list(
    english: None,
) -> None:
    user = make_user(Role.SALES, email="owner2@example.jp")
    prospect = ProspectFactory.create()
    runs = actions_run(
        actions=[
            {"action": "assign_user", "config": {"user": user.pk}},
            {"action": "notify_assigned_user", "config": {"note": ""}},
        ],
        prospect=prospect,
        context=_context("form_submission:1"),
    )
    assert [run.status for run in runs] == ["ok", "ok"]
    assert Notification.objects.filter(user=user).count() == 1


def test_create_task_for_a_user_and_for_the_assigned_user(english: None) -> None:
    manager = make_user(Role.SALES_MANAGER, email="boss@example.jp")
    owner = make_user(Role.SALES, email="tasks-owner@example.jp")
    prospect = ProspectFactory.create(assigned_user=owner)

    for_user = _run(
        prospect,
        "create_task",
        {
            "assignee": manager.pk,
            "subject": "見積書を送付",
            "due_in_days": 3,
            "priority": TaskPriority.HIGH,
            "notes": "展示会で名刺交換",
        },
    )
    for_owner = _run(
        prospect,
        "create_task_for_assigned_user",
        {"subject": "お礼の電話", "due_in_days": 0, "priority": str(TaskPriority.LOW)},
    )

    task = Task.objects.get(assignee=manager)
    assert for_user.status == "ok"
    assert (task.subject, task.prospect, task.priority) == ("見積書を送付", prospect, 3)
    assert task.due_date == timezone.localdate() + datetime.timedelta(days=3)
    assert task.notes == "展示会で名刺交換"
    assert task.created_by is None  # an automation, not a person
    owner_task = Task.objects.get(assignee=owner)
    assert for_owner.status == "ok"
    assert owner_task.due_date == timezone.localdate()
    assert owner_task.priority == TaskPriority.LOW


def test_do_not_email_and_opt_out(english: None) -> None:
    prospect = ProspectFactory.create()

    marked = _run(prospect, "set_do_not_email", {"mark": "set"})
    assert _reloaded(prospect).do_not_email is True
    assert marked.message == "Marked do not email."

    cleared = _run(prospect, "set_do_not_email", {"mark": "clear"})
    assert _reloaded(prospect).do_not_email is False
    assert cleared.message == "Do-not-email mark removed."

    opted = _run(prospect, "opt_out")
    again = _run(prospect, "opt_out")
    assert _reloaded(prospect).opted_out is True
    assert (opted.message, again.message) == ("Opted out.", "Had opted out already.")


def test_adjust_score_adds_subtracts_and_sets_within_bounds(english: None) -> None:
    from scoring.actions import SCORE_MAX

    prospect = ProspectFactory.create(score=5)

    added = _run(prospect, "adjust_score", {"mode": "add", "points": 10})
    _run(prospect, "adjust_score", {"mode": "subtract", "points": 3})
    assert _reloaded(prospect).score == 12
    assert added.message == "Score +10, now 15."

    _run(prospect, "adjust_score", {"mode": "set", "points": 50})
    assert _reloaded(prospect).score == 50

    Prospect.objects.filter(pk=prospect.pk).update(score=SCORE_MAX - 1)
    _run(prospect, "adjust_score", {"mode": "add", "points": 100})
    assert _reloaded(prospect).score == SCORE_MAX


# --- validation ---------------------------------------------------------------------------------


def test_a_valid_list_is_cleaned_to_json_with_ids(english: None) -> None:
    prospect_list = _static_list()
    user = make_user(Role.SALES, email="valid@example.jp")
    cleaned = actions_validate(
        [
            {"action": "add_to_list", "config": {"list": str(prospect_list.pk)}},
            {"action": "assign_user", "config": {"user": user.pk, "ignored": "x"}},
            {
                "action": "create_task",
                "config": {
                    "assignee": str(user.pk),
                    "subject": " 電話 ",
                    "due_in_days": "７",
                    "priority": "3",
                },
            },
            {"action": "opt_out"},
        ]
    )
    assert cleaned == [
        {"action": "add_to_list", "config": {"list": prospect_list.pk}},
        {"action": "assign_user", "config": {"user": user.pk, "reassign": False}},
        {
            "action": "create_task",
            "config": {
                "assignee": user.pk,
                "subject": "電話",
                "due_in_days": 7,
                "priority": 3,
                "notes": "",
            },
        },
        {"action": "opt_out", "config": {}},
    ]
    json.dumps(cleaned)  # storable as is
    assert actions_validate(cleaned) == cleaned  # and valid again once stored


def test_validation_names_each_faulty_item_in_english(english: None) -> None:
    dynamic = list_create(
        actor=None,
        name="動的",
        is_dynamic=True,
        criteria={"match": "all", "conditions": []},
    )
    inactive = make_user(Role.SALES, email="gone@example.jp", is_active=False)
    CustomField.objects.create(label="検討時期", key="timing", field_type=CustomFieldType.DATE)
    with pytest.raises(ActionListError) as caught:
        actions_validate(
            [
                {"action": "launch_rocket", "config": {}},
                {"action": "add_to_list", "config": {"list": dynamic.pk}},
                {"action": "notify_user", "config": {"user": inactive.pk}},
                {
                    "action": "create_task_for_assigned_user",
                    "config": {"subject": "x", "due_in_days": 400, "priority": 2},
                },
                {"action": "change_field", "config": {"field": "custom:timing", "value": "来月"}},
                {"action": "send_autoresponder", "config": {}},
                {"action": "add_tag", "config": {"tag": ["a", "b"]}},
                {"action": "change_field", "config": {"field": "employee_count", "value": "多数"}},
            ]
        )
    messages = caught.value.messages
    assert messages == [
        "Action 1: Unknown action “launch_rocket”.",
        "Action 2 (Add to list): List: No such static list.",
        "Action 3 (Notify user): User to notify: No such active user.",
        "Action 4 (Create task for assigned user): Due in (days): "
        "Ensure this value is less than or equal to 365.",
        "Action 5 (Change field value): New value: Invalid value for 検討時期.",
        "Action 6 (Send autoresponder email): Email template: This field is required.",
        "Action 7 (Add tag): Tag: expected a single value.",
        "Action 8 (Change field value): New value: Enter a whole number.",
    ]
    assert caught.value.item_errors[1] == ["List: No such static list."]
    assert sorted(caught.value.item_errors) == list(range(8))


def test_validation_refuses_shapes_and_too_many_actions(english: None) -> None:
    with pytest.raises(ValidationError, match=r"The actions must be a list\."):
        actions_validate({"action": "opt_out"})
    with pytest.raises(ValidationError, match=r"At most 20 actions\."):
        actions_validate([{"action": "opt_out"}] * (MAX_ACTIONS + 1))
    with pytest.raises(ValidationError) as caught:
        actions_validate(["opt_out", {"action": ""}, {"action": "opt_out", "config": [1]}])
    assert caught.value.messages == [
        "Action 1: An action must be an object.",
        "Action 2: Choose an action.",
        "Action 3 (Opt out): The settings must be an object.",
    ]
    assert actions_validate(None) == []


def test_a_role_without_the_actions_module_cannot_set_it_up(
    english: None, sales_user: User, marketer: User
) -> None:
    # Sales has no access to Automation, where scoring lives
    score = [{"action": "adjust_score", "config": {"mode": "add", "points": 5}}]
    with pytest.raises(ValidationError) as caught:
        actions_validate(score, actor=sales_user)
    assert caught.value.messages == [
        "Action 1 (Adjust score): Your role cannot set up this action."
    ]
    assert actions_validate(score, actor=marketer)[0]["config"] == {"mode": "add", "points": 5}


def _register_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    """An action listed before what it needs exists (as SMS would be before a provider)."""
    monkeypatch.setitem(
        registry._actions,
        "send_sms",
        Action(
            key="send_sms",
            label="Send SMS",
            unavailable_reason="SMS needs a provider first.",
            order=15,
        ),
    )


def test_an_unavailable_action_is_refused_and_a_run_of_it_is_skipped(
    english: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register_unavailable(monkeypatch)
    action = get_action("send_sms")
    assert action is not None
    assert not action.is_available
    prospect = ProspectFactory.create()
    with pytest.raises(ValidationError, match="SMS needs a provider first"):
        actions_validate([{"action": "send_sms", "config": {}}])

    run = _run(prospect, "send_sms")

    assert (run.status, run.message) == ("skipped", "SMS needs a provider first.")
    assert mail.outbox == []


def test_a_run_with_stale_settings_fails_and_says_why(english: None) -> None:
    prospect_list = _static_list()
    config = actions_validate([{"action": "add_to_list", "config": {"list": prospect_list.pk}}])
    prospect_list.delete()
    prospect = ProspectFactory.create()

    [run] = actions_run(actions=config, prospect=prospect, context=_context())

    assert run.status == "failed"
    assert run.message == "The settings are no longer valid: List: No such static list."


# --- idempotency and failure isolation ----------------------------------------------------------


def test_running_the_same_list_twice_with_one_key_acts_once(
    english: None, django_capture_on_commit_callbacks: Any
) -> None:
    # given a list that adds to a list, adjusts the score, notifies and creates a task
    user = make_user(Role.SALES_MANAGER, email="once@example.jp")
    prospect = ProspectFactory.create(score=0)
    prospect_list = _static_list()
    actions = actions_validate(
        [
            {"action": "add_to_list", "config": {"list": prospect_list.pk}},
            {"action": "adjust_score", "config": {"mode": "add", "points": 10}},
            {"action": "notify_user", "config": {"user": user.pk}},
            {
                "action": "create_task",
                "config": {"assignee": user.pk, "subject": "フォロー", "due_in_days": 2},
            },
        ]
    )
    context = _context("form_submission:42")

    # when a retried Celery batch runs it again with the same key
    with django_capture_on_commit_callbacks(execute=True):
        first = actions_run(actions=actions, prospect=prospect, context=context)
        second = actions_run(actions=actions, prospect=prospect, context=context)

    # then everything happened once, and the second run returned the first runs
    assert [run.pk for run in second] == [run.pk for run in first]
    assert [run.status for run in first] == ["ok"] * 4
    assert [run.idempotency_key for run in first] == [f"form_submission:42:{i}" for i in range(4)]
    assert ActionRun.objects.count() == 4
    assert _reloaded(prospect).score == 10
    assert Notification.objects.filter(user=user).count() == 2  # the notice and the task's
    assert Task.objects.count() == 1
    assert len(mail.outbox) == 2


def test_without_an_idempotency_key_every_run_acts(english: None) -> None:
    prospect = ProspectFactory.create(score=0)
    for _ in range(2):
        actions_run(
            actions=[{"action": "adjust_score", "config": {"mode": "add", "points": 1}}],
            prospect=prospect,
            context=_context(),
        )
    assert _reloaded(prospect).score == 2
    assert ActionRun.objects.count() == 2


@pytest.fixture
def broken_action(monkeypatch: pytest.MonkeyPatch) -> str:
    """An action that writes, then breaks as a bug would: registered for this test only."""

    def run(*, prospect: Prospect, config: dict[str, Any], context: ActionContext) -> Any:
        prospect_tags_add(prospect_ids=[prospect.pk], names=["書きかけ"])
        raise RuntimeError("boom")

    monkeypatch.setitem(registry._actions, "broken", Action(key="broken", label="Broken", run=run))
    return "broken"


@pytest.fixture
def refusing_action(monkeypatch: pytest.MonkeyPatch) -> str:
    """An action that writes, then returns a failed outcome: its writes must be undone."""

    def run(*, prospect: Prospect, config: dict[str, Any], context: ActionContext) -> Any:
        prospect_tags_add(prospect_ids=[prospect.pk], names=["途中"])
        return ActionOutcome.failed("refused")

    monkeypatch.setitem(
        registry._actions, "refusing", Action(key="refusing", label="Refusing", run=run)
    )
    return "refusing"


def test_a_failing_action_is_recorded_undone_and_does_not_stop_the_next(
    english: None, broken_action: str, refusing_action: str, caplog: pytest.LogCaptureFixture
) -> None:
    # given a sales user who cannot see the prospect (a task for them is refused)
    outsider = make_user(Role.SALES, email="outsider@example.jp")
    prospect = ProspectFactory.create()
    actions = [
        {"action": broken_action, "config": {}},
        {
            "action": "create_task",
            "config": {"assignee": outsider.pk, "subject": "x", "due_in_days": 1, "priority": 2},
        },
        {"action": refusing_action, "config": {}},
        {"action": "add_tag", "config": {"tag": "完了"}},
    ]

    with caplog.at_level(logging.ERROR, logger="prospects.actions.services"):
        runs = actions_run(actions=actions, prospect=prospect, context=_context("batch:7"))

    assert [run.status for run in runs] == ["failed", "failed", "failed", "ok"]
    assert runs[0].message == (
        "An unexpected error stopped this action; the details are in the server log."
    )
    assert "cannot see this prospect" in runs[1].message
    assert runs[2].message == "refused"
    assert _tags(prospect) == {"完了"}  # the broken and refusing actions' writes were undone
    assert not Task.objects.exists()
    assert "RuntimeError: boom" in caplog.text
    # a retry does not retry the failures either: they are recorded outcomes
    again = actions_run(actions=actions, prospect=prospect, context=_context("batch:7"))
    assert [run.pk for run in again] == [run.pk for run in runs]


# --- the panel ----------------------------------------------------------------------------------


def test_the_history_panel_lists_runs_and_escapes_the_cause(marketer: User) -> None:
    prospect = ProspectFactory.create()
    action_run(
        key="add_tag",
        prospect=prospect,
        config={"tag": "<b>tag</b>"},
        context=_context(label="<script>alert('x')</script>"),
    )
    action_run(key="assign_user", prospect=prospect, config={}, context=_context())

    html = client_for(marketer).get(reverse("prospects:detail", args=[prospect.pk])).content
    page = html.decode()

    assert 'data-panel="action_history"' in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    assert "&lt;b&gt;tag&lt;/b&gt;" in page
    assert 'data-action="assign_user" data-status="failed"' in page


def test_the_history_is_one_query_and_newest_first() -> None:
    prospect = ProspectFactory.create()
    for tag in ("一", "二", "三"):
        _run(prospect, "add_tag", {"tag": tag})
    with CaptureQueriesContext(connection) as queries:
        rows = action_runs_for(prospect_id=prospect.pk)
    assert len(queries) == 1
    assert [row.run.config["tag"] for row in rows] == ["三", "二", "一"]
    assert rows[0].label == str(get_action("add_tag").label)  # type: ignore[union-attr]


# --- the editor ---------------------------------------------------------------------------------


def test_the_catalogue_json_offers_lists_users_groups_and_custom_fields(
    english: None, marketer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register_unavailable(monkeypatch)
    static = _static_list("セミナー参加者")
    list_create(actor=None, name="動的リスト", is_dynamic=True, criteria={"conditions": []})
    sales = make_user(Role.SALES, email="cat@example.jp", last_name="鈴木", first_name="一郎")
    group = AssignmentGroup.objects.create(name="西日本")
    CustomField.objects.create(label="予算", key="budget", field_type=CustomFieldType.NUMBER)

    catalogue = {entry["key"]: entry for entry in action_catalogue_json(marketer)}
    json.dumps(catalogue)

    list_field = catalogue["add_to_list"]["fields"][0]
    assert list_field["type"] == "select"
    assert list_field["choices"] == [[str(static.pk), "セミナー参加者"]]
    users = dict(catalogue["notify_user"]["fields"][0]["choices"])
    assert users[str(sales.pk)] == "鈴木 一郎 <cat@example.jp>"
    assert dict(catalogue["assign_round_robin"]["fields"][0]["choices"]) == {
        str(group.pk): "西日本"
    }
    fields = dict(catalogue["change_field"]["fields"][0]["choices"])
    assert fields["custom:budget"] == "予算 (custom field)"
    assert "email" not in fields
    due = {field["name"]: field for field in catalogue["create_task"]["fields"]}["due_in_days"]
    assert (due["type"], due["min"], due["max"], due["initial"]) == ("number", 0, 365, 3)
    assert catalogue["assign_user"]["fields"][1]["type"] == "checkbox"
    assert catalogue["send_autoresponder"]["available"] is True
    assert catalogue["send_autoresponder"]["fields"][0]["name"] == "template"
    assert catalogue["send_sms"]["available"] is False
    assert catalogue["send_sms"]["unavailable_reason"] == "SMS needs a provider first."
    assert catalogue["adjust_score"]["available"] is True
    keys = list(catalogue)
    assert keys.index("send_autoresponder") < keys.index("add_to_list") < keys.index("opt_out")


def test_the_catalogue_greys_out_what_the_role_cannot_set_up(
    english: None, sales_user: User
) -> None:
    catalogue = {entry["key"]: entry for entry in action_catalogue_json(sales_user)}
    assert catalogue["adjust_score"]["available"] is False
    assert catalogue["adjust_score"]["unavailable_reason"] == "Your role cannot set up this action."
    assert catalogue["add_tag"]["available"] is True


class CompletionActionsForm(forms.Form):
    actions = ActionListField()


def test_the_form_field_cleans_json_and_shows_item_errors_in_the_editor(
    english: None, marketer: User
) -> None:
    prospect_list = _static_list()
    posted = json.dumps(
        [
            {"action": "add_to_list", "config": {"list": str(prospect_list.pk)}},
            {"action": "add_tag", "config": {"tag": "展示会"}},
        ]
    )
    form = CompletionActionsForm(data={"actions": posted})
    form.fields["actions"].actor = marketer  # type: ignore[attr-defined]
    assert form.is_valid()
    assert form.cleaned_data["actions"] == [
        {"action": "add_to_list", "config": {"list": prospect_list.pk}},
        {"action": "add_tag", "config": {"tag": "展示会"}},
    ]

    bad = CompletionActionsForm(
        data={"actions": json.dumps([{"action": "add_tag", "config": {"tag": ""}}])}
    )
    assert not bad.is_valid()
    assert bad.errors["actions"] == ["Action 1 (Add tag): Tag: This field is required."]
    html = str(bad["actions"])
    errors = html.split('id="action-editor-actions-errors" type="application/json">')[1]
    assert json.loads(errors.split("</script>")[0]) == {"0": ["Tag: This field is required."]}
    assert 'name="actions"' in html
    assert "data-action-editor" in html
    assert "js/action-editor.js" in html

    garbage = CompletionActionsForm(data={"actions": "[{not json"})
    assert not garbage.is_valid()
    assert garbage.errors["actions"] == [
        "The actions could not be read; reload the page and try again."
    ]
    assert CompletionActionsForm(data={"actions": ""}).is_valid()


def test_the_editor_shows_a_stored_list_back_with_the_catalogue(marketer: User) -> None:
    prospect_list = _static_list("<i>リスト</i>")
    stored = [{"action": "add_to_list", "config": {"list": prospect_list.pk}}]
    form = CompletionActionsForm(initial={"actions": stored})
    form.fields["actions"].actor = marketer  # type: ignore[attr-defined]

    html = str(form["actions"])

    catalogue_json = html.split('id="action-editor-actions-catalogue" type="application/json">')[1]
    catalogue = json.loads(catalogue_json.split("</script>")[0])
    [add_to_list] = [entry for entry in catalogue if entry["key"] == "add_to_list"]
    assert add_to_list["fields"][0]["choices"] == [[str(prospect_list.pk), "<i>リスト</i>"]]
    assert "<i>リスト</i>" not in html  # json_script escapes < and >
    initial_json = html.split('id="action-editor-actions-initial" type="application/json">')[1]
    assert json.loads(json.loads(initial_json.split("</script>")[0])) == stored


def test_a_replayed_list_costs_a_few_reads_per_action_and_writes_nothing() -> None:
    prospect = ProspectFactory.create()
    prospect_list = _static_list()
    actions = [
        {"action": "add_to_list", "config": {"list": prospect_list.pk}},
        {"action": "add_tag", "config": {"tag": "展示会"}},
        {"action": "adjust_score", "config": {"mode": "add", "points": 5}},
    ]
    context = _context("form_submission:99")
    with CaptureQueriesContext(connection) as first:
        actions_run(actions=actions, prospect=prospect, context=context)
    with CaptureQueriesContext(connection) as replay:
        actions_run(actions=actions, prospect=prospect, context=context)

    # a first run stays within a handful of statements per action (a form submission's budget)
    assert len(first) <= 16 * len(actions)
    # a retried batch only finds each run: savepoint, one indexed SELECT, release
    assert len(replay) <= 3 * len(actions)
    statements = [query["sql"].split(" ", 1)[0] for query in replay.captured_queries]
    assert not {"INSERT", "UPDATE", "DELETE"} & set(statements)
