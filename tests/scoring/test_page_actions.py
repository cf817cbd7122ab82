"""Page actions: URL matching (exact, starts with, wildcard; Japanese URLs), ledger rows and
the score sum, catalogue actions, priority-page notifications, idempotency and bots."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.core import mail
from django.db.models import Sum
from django.utils import timezone

from mapp.models import Notification, Role, User
from prospects.models import ActionRun, ActionRunStatus, Prospect, ProspectList
from prospects.services import prospect_create, prospects_merge
from scoring.models import PageAction, ScoreCause, ScoreChange, UrlMatch
from scoring.page_actions import page_views_handle, url_spellings
from tests.factories import make_user
from tracking.models import Activity, ActivityType
from tracking.services import activity_record, deliver_activities

pytestmark = pytest.mark.django_db

SITE = "https://example.co.jp"
PRICING_ENCODED = f"{SITE}/%E6%96%99%E9%87%91/"  # 料金, the way browsers send it


def _prospect(email: str = "p@a.jp", assigned_user: User | None = None) -> Prospect:
    prospect = prospect_create(actor=None, data={"email": email}, refresh_lists=False)
    if assigned_user is not None:
        Prospect.objects.filter(pk=prospect.pk).update(assigned_user=assigned_user)
    return prospect


def _page_action(
    url: str, match_type: str = UrlMatch.EXACT, points: int = 10, **fields: Any
) -> PageAction:
    return PageAction.objects.create(
        name=fields.pop("name", "価格ページ"),
        match_type=match_type,
        url_pattern=url,
        points=points,
        **fields,
    )


def _view(
    prospect: Prospect | None,
    url: str,
    *,
    visit_id: int | None = None,
    is_bot: bool = False,
) -> Activity:
    return activity_record(
        type=ActivityType.PAGE_VIEW,
        prospect_id=prospect.pk if prospect else None,
        object_type="url",
        object_label=url,
        payload={"visit_id": visit_id} if visit_id is not None else {},
        is_bot=is_bot,
    )


def _deliver(*activities: Activity) -> None:
    deliver_activities([activity.pk for activity in activities])


def _page_rows(page_action: PageAction) -> Any:
    return ScoreChange.objects.filter(
        cause=ScoreCause.PAGE_ACTION, first_key__startswith=f"page:{page_action.pk}:"
    )


def _matched_activities(page_action: PageAction) -> set[int]:
    return set(_page_rows(page_action).values_list("activity_id", flat=True))


def _score(prospect: Prospect) -> int:
    return Prospect.objects.values_list("score", flat=True).get(pk=prospect.pk)


def _ledger_sum(prospect: Prospect) -> int:
    return (
        ScoreChange.objects.filter(prospect=prospect).aggregate(total=Sum("points"))["total"] or 0
    )


# --- matching -------------------------------------------------------------------------------------


def test_exact_ignores_fragment_scheme_host_case_trailing_slash_and_query() -> None:
    prospect = _prospect()
    pricing = _page_action(f"{SITE}/pricing")
    matching = [
        _view(prospect, f"{SITE}/pricing"),
        _view(prospect, f"{SITE}/pricing/"),
        _view(prospect, "http://EXAMPLE.co.jp/pricing?utm_source=mail#plans"),
    ]
    other = [
        _view(prospect, f"{SITE}/pricing/enterprise"),
        _view(prospect, f"{SITE}/Pricing"),  # paths are case-sensitive
        _view(prospect, f"{SITE}/pricingx"),
        _view(prospect, "https://example.com/pricing"),
    ]
    _deliver(*matching, *other)
    assert _matched_activities(pricing) == {activity.pk for activity in matching}


def test_exact_with_a_query_string_needs_the_same_query() -> None:
    prospect = _prospect()
    search = _page_action(f"{SITE}/search?q=mapp")
    same = _view(prospect, f"{SITE}/search/?q=mapp#top")
    other_query = _view(prospect, f"{SITE}/search?q=other")
    no_query = _view(prospect, f"{SITE}/search")
    _deliver(same, other_query, no_query)
    assert _matched_activities(search) == {same.pk}


def test_prefix_matches_urls_that_start_with_the_pattern() -> None:
    prospect = _prospect()
    blog = _page_action(f"{SITE}/blog/", UrlMatch.PREFIX)
    inside = [
        _view(prospect, f"{SITE}/blog/"),
        _view(prospect, f"{SITE}/blog/2026/mapp?ref=x"),
        _view(prospect, "http://example.co.jp/blog/a"),
    ]
    outside = [_view(prospect, f"{SITE}/blog"), _view(prospect, f"{SITE}/news/blog/")]
    _deliver(*inside, *outside)
    assert _matched_activities(blog) == {activity.pk for activity in inside}


def test_wildcard_star_matches_anything_and_percent_and_underscore_are_literal() -> None:
    prospect = _prospect()
    specs = _page_action(f"{SITE}/products/*/specs", UrlMatch.WILDCARD)
    sale = _page_action("*/sale_100%*", UrlMatch.WILDCARD)
    spec_views = [
        _view(prospect, f"{SITE}/products/a/specs"),
        _view(prospect, f"{SITE}/products/a/b/specs#x"),
    ]
    with_query = _view(prospect, f"{SITE}/products/a/specs?x=1")  # the whole URL must match
    sale_view = _view(prospect, f"{SITE}/sale_100%/tokyo")
    not_sale = _view(prospect, f"{SITE}/saleX100YZ/tokyo")  # _ and % are not wildcards
    _deliver(*spec_views, with_query, sale_view, not_sale)
    assert _matched_activities(specs) == {activity.pk for activity in spec_views}
    assert _matched_activities(sale) == {sale_view.pk}


@pytest.mark.parametrize(
    "pattern",
    [
        f"{SITE}/料金/",
        f"{SITE}/料金",
        PRICING_ENCODED,
        f"{SITE}/%e6%96%99%e9%87%91/",  # lower-case escapes, as some tools write them
    ],
)
def test_japanese_urls_match_whether_typed_or_percent_encoded(pattern: str) -> None:
    prospect = _prospect()
    pricing = _page_action(pattern)
    encoded = _view(prospect, PRICING_ENCODED)
    decoded = _view(prospect, f"{SITE}/料金/?utm_source=mail")
    other = _view(prospect, f"{SITE}/%E6%96%99%E9%87%91%E8%A1%A8/")  # 料金表
    _deliver(encoded, decoded, other)
    assert _matched_activities(pricing) == {encoded.pk, decoded.pk}


def test_japanese_prefix_and_internationalised_host() -> None:
    prospect = _prospect()
    pattern = _page_action("https://日本語.jp/製品/", UrlMatch.PREFIX)
    view = _view(prospect, "https://xn--wgv71a119e.jp/%E8%A3%BD%E5%93%81/a")
    _deliver(view)
    assert _matched_activities(pattern) == {view.pk}
    assert url_spellings("https://日本語.jp/製品/", UrlMatch.PREFIX)[0] == (
        "//xn--wgv71a119e.jp/%E8%A3%BD%E5%93%81/"
    )


# --- ledger ---------------------------------------------------------------------------------------


def test_a_matched_view_is_one_ledger_row_and_the_score_is_the_ledger_sum() -> None:
    prospect = _prospect()
    pricing = _page_action(f"{SITE}/料金/", points=30, name="価格ページ")
    _page_action(f"{SITE}/*", UrlMatch.WILDCARD, points=2, name="サイト全体")
    view = _view(prospect, PRICING_ENCODED)
    _deliver(view)
    row = _page_rows(pricing).get()
    assert row.points == 30
    assert row.activity_id == view.pk
    assert row.activity_type == ActivityType.PAGE_VIEW
    assert row.rule_id is None
    assert row.label == f"価格ページ: {SITE}/料金/"  # decoded for people to read
    changes = ScoreChange.objects.filter(prospect=prospect, cause=ScoreCause.PAGE_ACTION)
    assert sorted(changes.values_list("points", flat=True)) == [2, 30]
    # The default page-view scoring rule (+1) applies as well; the score is the ledger's sum.
    assert _score(prospect) == 33 == _ledger_sum(prospect)


def test_zero_points_write_no_row_and_inactive_page_actions_do_nothing() -> None:
    prospect = _prospect()
    _page_action(f"{SITE}/a", points=0)
    _page_action(f"{SITE}/a", points=50, is_active=False)
    _deliver(_view(prospect, f"{SITE}/a"))
    assert not ScoreChange.objects.filter(cause=ScoreCause.PAGE_ACTION).exists()
    assert _score(prospect) == 1 == _ledger_sum(prospect)  # the page-view rule only


def test_negative_points_lower_the_score() -> None:
    prospect = _prospect()
    _page_action(f"{SITE}/careers/", UrlMatch.PREFIX, points=-20, name="採用ページ")
    _deliver(_view(prospect, f"{SITE}/careers/engineer"))
    assert _score(prospect) == -19 == _ledger_sum(prospect)


def test_a_redelivered_view_never_scores_or_acts_twice(administrator: User) -> None:
    prospect = _prospect(assigned_user=administrator)
    pricing = _page_action(
        f"{SITE}/pricing",
        points=30,
        is_priority=True,
        actions=[{"action": "add_tag", "config": {"tag": "価格検討"}}],
    )
    view = _view(prospect, f"{SITE}/pricing", visit_id=7)
    _deliver(view)
    _deliver(view)  # the delivery record skips it
    page_views_handle([Activity.objects.get(pk=view.pk)])  # even the consumer itself, again
    assert _page_rows(pricing).count() == 1
    assert _score(prospect) == 31 == _ledger_sum(prospect)
    assert ActionRun.objects.filter(action="add_tag").count() == 1
    assert Notification.objects.filter(user=administrator).count() == 1


def test_bots_never_score_nor_trigger(administrator: User) -> None:
    prospect = _prospect(assigned_user=administrator)
    _page_action(
        f"{SITE}/pricing",
        is_priority=True,
        actions=[{"action": "add_tag", "config": {"tag": "bot"}}],
    )
    bot_view = _view(prospect, f"{SITE}/pricing", is_bot=True)
    _deliver(bot_view)
    page_views_handle([Activity.objects.get(pk=bot_view.pk)])  # even when handed one directly
    assert not ScoreChange.objects.filter(cause=ScoreCause.PAGE_ACTION).exists()
    assert not ActionRun.objects.exists()
    assert not Notification.objects.exists()
    assert _score(prospect) == 0


def test_anonymous_views_wait_until_the_visitor_is_a_prospect() -> None:
    _page_action(f"{SITE}/pricing", actions=[{"action": "add_tag", "config": {"tag": "x"}}])
    anonymous = _view(None, f"{SITE}/pricing")
    _deliver(anonymous)
    page_views_handle([Activity.objects.get(pk=anonymous.pk)])
    assert not ScoreChange.objects.exists()
    assert not ActionRun.objects.exists()


# --- actions --------------------------------------------------------------------------------------


def test_actions_run_once_per_view_and_a_failing_one_does_not_stop_the_rest() -> None:
    prospect = _prospect()
    stale_list = ProspectList.objects.create(name="消える予定のリスト")
    pricing = _page_action(
        f"{SITE}/pricing",
        actions=[
            {"action": "add_to_list", "config": {"list": stale_list.pk}},
            {"action": "add_tag", "config": {"tag": "価格検討"}},
        ],
    )
    stale_list.delete()  # the stored settings go stale: that action fails when it runs
    first, second = _view(prospect, f"{SITE}/pricing"), _view(prospect, f"{SITE}/pricing/")
    _deliver(first, second)
    runs = ActionRun.objects.filter(prospect=prospect, cause_type="page_action")
    assert runs.count() == 4
    assert set(runs.values_list("idempotency_key", flat=True)) == {
        f"page_action:{pricing.pk}:{activity.pk}:{index}"
        for activity in (first, second)
        for index in (0, 1)
    }
    assert set(runs.filter(action="add_to_list").values_list("status", flat=True)) == {
        ActionRunStatus.FAILED
    }
    assert set(runs.filter(action="add_tag").values_list("status", flat=True)) == {
        ActionRunStatus.OK
    }
    assert list(prospect.tags.values_list("name", flat=True)) == ["価格検討"]
    assert runs.filter(action="add_tag").first().cause_label == f"価格ページ: {SITE}/pricing/"  # type: ignore[union-attr]


# --- priority pages -------------------------------------------------------------------------------


def test_a_priority_page_notifies_the_assigned_user_at_once_once_per_visit(
    django_capture_on_commit_callbacks: Any,
) -> None:
    seller = make_user(Role.SALES, email="seller@example.jp")
    prospect = _prospect("buyer@customer.co.jp", assigned_user=seller)
    pricing = _page_action(f"{SITE}/料金/", is_priority=True, name="価格ページ")
    with django_capture_on_commit_callbacks(execute=True):
        _deliver(_view(prospect, PRICING_ENCODED, visit_id=1))
        _deliver(_view(prospect, PRICING_ENCODED, visit_id=1))  # same visit: no second notice
    notification = Notification.objects.get(user=seller)
    assert "buyer@customer.co.jp" in notification.title
    assert f"価格ページ: {SITE}/料金/" in notification.body
    assert notification.url.endswith(f"/prospects/{prospect.pk}/")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["seller@example.jp"]
    run = ActionRun.objects.get(action="notify_assigned_user")
    assert run.status == ActionRunStatus.OK and run.cause_id == str(pricing.pk)

    with django_capture_on_commit_callbacks(execute=True):
        _deliver(_view(prospect, PRICING_ENCODED, visit_id=2))  # a new visit notifies again
    assert Notification.objects.filter(user=seller).count() == 2
    assert len(mail.outbox) == 2


def test_a_priority_page_without_assigned_user_notifies_nobody_and_says_so() -> None:
    prospect = _prospect()
    _page_action(f"{SITE}/pricing", is_priority=True)
    _deliver(_view(prospect, f"{SITE}/pricing", visit_id=3))
    run = ActionRun.objects.get(prospect=prospect, action="notify_assigned_user")
    assert run.status == ActionRunStatus.SKIPPED
    assert run.message  # "The prospect has no assigned user." in the history
    assert not Notification.objects.exists()


def test_an_old_view_reaching_a_prospect_later_does_not_ring(administrator: User) -> None:
    prospect = _prospect(assigned_user=administrator)
    _page_action(f"{SITE}/pricing", is_priority=True, points=5)
    old = _view(prospect, f"{SITE}/pricing", visit_id=4)
    # Recorded three days ago while anonymous (activity_record refuses times a day off).
    Activity.objects.filter(pk=old.pk).update(
        occurred_at=timezone.now() - datetime.timedelta(days=3)
    )
    _deliver(old)
    assert not Notification.objects.exists()
    assert _score(prospect) == 6 == _ledger_sum(prospect)  # it still scores


def test_the_actions_run_before_the_notification_so_an_assignment_counts() -> None:
    seller = make_user(Role.SALES, email="rep@example.jp")
    prospect = _prospect()
    _page_action(
        f"{SITE}/pricing",
        is_priority=True,
        actions=[{"action": "assign_user", "config": {"user": seller.pk, "reassign": False}}],
    )
    _deliver(_view(prospect, f"{SITE}/pricing", visit_id=9))
    assert Notification.objects.filter(user=seller).count() == 1


def test_a_merge_keeps_the_points_of_two_page_actions_on_the_same_view() -> None:
    """Rule-less ledger rows (page actions) share a NULL rule: the merge's de-duplication must
    not take them for copies of one another."""
    merged = _prospect("old@a.jp")
    survivor = _prospect("new@a.jp")
    _page_action(PRICING_ENCODED, points=10, name="価格ページ")
    _page_action(f"{SITE}/*", match_type=UrlMatch.WILDCARD, points=5, name="サイト全体")
    _deliver(_view(merged, PRICING_ENCODED))
    before = _score(merged)

    prospects_merge(actor=None, survivor=survivor, others=[merged])

    assert _score(survivor) == before
    assert (
        _score(survivor)
        == ScoreChange.objects.filter(prospect=survivor).aggregate(total=Sum("points"))["total"]
    )
    assert ScoreChange.objects.filter(prospect=survivor, cause=ScoreCause.PAGE_ACTION).count() == 2


def test_why_this_score_names_each_page_action() -> None:
    from scoring.selectors import prospect_score_explanation

    prospect = _prospect()
    _page_action(PRICING_ENCODED, points=30, name="価格ページ")
    _page_action(f"{SITE}/*", match_type=UrlMatch.WILDCARD, points=5, name="サイト全体")
    _deliver(_view(prospect, PRICING_ENCODED), _view(prospect, PRICING_ENCODED))

    groups = {
        group.label: (group.count, group.points)
        for group in prospect_score_explanation(prospect).groups
        if group.cause == ScoreCause.PAGE_ACTION
    }

    assert groups == {
        "ページアクション: 価格ページ": (2, 60),
        "ページアクション: サイト全体": (2, 10),
    }
