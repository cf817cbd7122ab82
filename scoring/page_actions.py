"""Page actions: tracked pages that score, run catalogue actions and notify on priority pages.

A page action is a URL pattern (exact, starts with, or wildcard). When a prospect views a
matching page, the activity consumer ``scoring.page_actions`` writes a ledger row with the page
action's points (cause "page action"), runs its catalogue actions once per activity and, for a
priority page (価格ページ訪問で即通知), notifies the prospect's assigned user at once. Bots never
score or trigger (the consumer default, and the SQL says so again).

How a viewed URL is compared with a page action's URL — what a marketer expects:

- The fragment (``#plans``) never matters, nor does the scheme (``http`` / ``https``), nor the
  case of the host name; the path and the query are compared case-sensitively, as web servers do.
- Japanese and other non-ASCII URLs: browsers send ``https://example.co.jp/%E6%96%99%E9%87%91/``
  while a marketer types ``https://example.co.jp/料金/``. A pattern is tried in both spellings
  (percent-encoded with upper-case escapes, the way browsers send it, and decoded), so it
  matches a URL recorded either way. Internationalised host names are compared as punycode
  (what the browser sends) or as typed.
- Exact: the same page. A trailing slash does not matter, and the query string does not matter
  unless the pattern has one (then it must be the same, parameters in the same order):
  ``https://example.co.jp/pricing`` matches ``…/pricing/``, ``…/pricing?utm_source=mail`` and
  ``…/pricing#plans``.
- Starts with: the URL, query included, begins with the pattern.
- Wildcard: ``*`` matches anything (nothing, or several path segments); everything else,
  ``%`` and ``_`` included, is literal; the whole URL with its query must match, so end the
  pattern with ``*`` to allow a query string.

Priority pages: the notification goes through the catalogue's "Notify assigned user" action,
so it reaches the user in the app and by email in their language, and it is recorded in the
prospect's action history — "The prospect has no assigned user" when nobody is assigned (then
nobody is notified). It is sent once per prospect, page action and visit (a session): viewing
the page three times in one visit notifies once; a re-delivered activity never notifies
again. Views older than :data:`PRIORITY_NOTIFY_WINDOW` (an anonymous visitor's history that
reaches the prospect when the visitor is identified) score and run the actions but do not
raise an "at once" notification. The page action's own actions run first, so an "assign"
action in the list decides whom the notification reaches.
"""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from prospects.actions import ActionContext, action_run, actions_run
from prospects.models import Prospect
from scoring.models import PageAction, ScoreCause, UrlMatch
from scoring.services import (
    ACTIVITIES,
    LEDGER,
    PROSPECTS,
    _after_score_change,
    _lock_ledger,
    _lock_prospects,
)
from tracking.models import ActivityType

if TYPE_CHECKING:
    from mapp.models import User
    from tracking.models import Activity

logger = logging.getLogger(__name__)

CONSUMER_KEY = "scoring.page_actions"
CAUSE_TYPE = "page_action"
# A priority notification says "this prospect is on the page now"; older views do not ring.
PRIORITY_NOTIFY_WINDOW = datetime.timedelta(hours=24)
# The "views in the last 30 days" column scans 30 days of page views by index; on a large
# account that can take long, so the list page gives up after this and shows "—".
VIEW_COUNT_DAYS = 30
VIEW_COUNT_TIMEOUT_MS = 2000
LABEL_LENGTH = 255


# --- URL patterns ---------------------------------------------------------------------------------

_SCHEME = re.compile(r"^https?://", re.IGNORECASE)
# "http*://", "*://": a wildcard in the scheme means "either scheme", which is always true here.
_WILDCARD_SCHEME = re.compile(r"^[A-Za-z*]*\*[A-Za-z*]*://")
_ESCAPES = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
_STARS = re.compile(r"\*{2,}")


def _encode_non_ascii(text: str) -> str:
    """Non-ASCII characters and spaces percent-encoded (UTF-8), escapes upper-cased."""
    encoded = "".join(
        character
        if character.isascii() and character != " "
        else "".join(f"%{byte:02X}" for byte in character.encode("utf-8"))
        for character in text
    )
    return _ESCAPES.sub(lambda match: match.group(0).upper(), encoded)


def _decode_non_ascii(text: str) -> str:
    """Escapes of non-ASCII characters decoded; ASCII escapes (``%2F``, ``%20``) kept."""

    def decode(match: re.Match[str]) -> str:
        raw = bytes.fromhex(match.group(0).replace("%", ""))
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError:
            return match.group(0).upper()
        return "".join(
            character if not character.isascii() else f"%{ord(character):02X}"
            for character in decoded
        )

    return _ESCAPES.sub(decode, text)


def _host_spellings(host: str) -> tuple[str, str]:
    """The host as browsers send it (lower-case, punycode) and as people type it (Unicode)."""
    host = host.lower()
    ascii_host = unicode_host = host
    if "*" not in host:
        try:
            if host.isascii():
                unicode_host = host.encode("ascii").decode("idna")
            else:
                ascii_host = host.encode("idna").decode("ascii")
        except UnicodeError:
            pass
    return ascii_host, unicode_host.lower()


def url_spellings(pattern: str, match_type: str) -> list[str]:
    """The pattern in the canonical forms the SQL compares with (see the module docstring).

    Without fragment; ``http://`` / ``https://`` become ``//``; host lower-case; one form
    percent-encoded and one decoded (the same string twice is given once).
    """
    text = pattern.strip().split("#", 1)[0]
    if match_type == UrlMatch.WILDCARD:
        text = _STARS.sub("*", _WILDCARD_SCHEME.sub("//", text))
    text = _SCHEME.sub("//", text)
    if not text.startswith("//"):
        spellings = [_encode_non_ascii(text), _decode_non_ascii(text)]
    else:
        end = len(text)
        for separator in "/?":
            position = text.find(separator, 2)
            if position != -1:
                end = min(end, position)
        ascii_host, unicode_host = _host_spellings(text[2:end])
        rest = text[end:]
        spellings = [
            f"//{ascii_host}{_encode_non_ascii(rest)}",
            f"//{unicode_host}{_decode_non_ascii(rest)}",
        ]
    return list(dict.fromkeys(spellings))


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class _Needle:
    """One spelling of one page action's pattern, as the SQL compares it."""

    page_action_id: int
    kind: str  # "exact": compare ``needle`` with the URL's page (and query); else LIKE
    needle: str
    with_query: bool


def _needles(page_action: PageAction) -> list[_Needle]:
    needles = []
    for spelling in url_spellings(page_action.url_pattern, page_action.match_type):
        if page_action.match_type == UrlMatch.EXACT:
            page, _separator, query = spelling.partition("?")
            page = page.rstrip("/")
            needle = f"{page}?{query}" if query else page
            needles.append(_Needle(page_action.pk, "exact", needle, bool(query)))
        elif page_action.match_type == UrlMatch.PREFIX:
            needles.append(_Needle(page_action.pk, "like", f"{_like_literal(spelling)}%", False))
        else:
            like = _like_literal(spelling).replace("*", "%")
            needles.append(_Needle(page_action.pk, "like", like, False))
    return needles


def pattern_length(pattern: str, match_type: str) -> int:
    """The longest canonical spelling: a URL is stored clipped to 2,000 characters."""
    return max((len(spelling) for spelling in url_spellings(pattern, match_type)), default=0)


# Page views joined with the page actions' spellings they match. The viewed URL is canonicalised
# as the patterns are (no fragment, no scheme, host lower-case); ``{where}`` selects the views.
_MATCH_FROM = f"""
  FROM {ACTIVITIES} a
 CROSS JOIN LATERAL (
       SELECT regexp_replace(split_part(a.object_label, '#', 1), '^https?://', '//', 'i') AS raw
       ) s1
 CROSS JOIN LATERAL (SELECT regexp_match(s1.raw, '^(//[^/?]*)(.*)$') AS parts) s2
 CROSS JOIN LATERAL (
       SELECT CASE WHEN s2.parts IS NULL THEN s1.raw
                   ELSE lower(s2.parts[1]) || s2.parts[2] END AS url
       ) s3
 CROSS JOIN LATERAL (
       SELECT rtrim(split_part(s3.url, '?', 1), '/') AS page,
              CASE WHEN strpos(s3.url, '?') > 0 THEN substr(s3.url, strpos(s3.url, '?') + 1)
                   ELSE '' END AS query
       ) u
  JOIN unnest(%(ids)s::bigint[], %(kinds)s::text[], %(needles)s::text[],
              %(with_query)s::boolean[]) AS n(page_action_id, kind, needle, with_query)
    ON CASE WHEN n.kind = 'exact'
            THEN (CASE WHEN n.with_query THEN u.page || '?' || u.query ELSE u.page END)
                 = n.needle
            ELSE s3.url LIKE n.needle END
 WHERE a.type = '{ActivityType.PAGE_VIEW.value}' AND a.prospect_id IS NOT NULL AND NOT a.is_bot
   AND ({{where}})
"""

# The (page view, page action) pairs, oldest view first (two spellings may match one view).
_MATCHED = (
    "SELECT DISTINCT ON (a.occurred_at, a.id, n.page_action_id) a.id, a.prospect_id,"
    " a.occurred_at, a.object_label, a.payload ->> 'visit_id', n.page_action_id"
    + _MATCH_FROM
    + " ORDER BY a.occurred_at, a.id, n.page_action_id"
)
_COUNTS = (
    "SELECT n.page_action_id, count(DISTINCT a.id)" + _MATCH_FROM + " GROUP BY n.page_action_id"
)


def _needle_params(page_actions: Iterable[PageAction]) -> dict[str, list[Any]]:
    needles = [needle for page_action in page_actions for needle in _needles(page_action)]
    return {
        "ids": [needle.page_action_id for needle in needles],
        "kinds": [needle.kind for needle in needles],
        "needles": [needle.needle for needle in needles],
        "with_query": [needle.with_query for needle in needles],
    }


@dataclass(frozen=True)
class PageMatch:
    activity_id: int
    prospect_id: int
    occurred_at: datetime.datetime
    url: str
    visit_id: str | None
    page_action_id: int


def page_views_matching(
    *, activity_ids: Sequence[int], page_actions: Sequence[PageAction]
) -> list[PageMatch]:
    """The (page view, page action) pairs among these activities, oldest view first."""
    if not activity_ids or not page_actions:
        return []
    params: dict[str, Any] = {**_needle_params(page_actions), "activity_ids": list(activity_ids)}
    with connection.cursor() as cursor:
        cursor.execute(_MATCHED.format(where="a.id = ANY(%(activity_ids)s)"), params)
        return [PageMatch(*row) for row in cursor.fetchall()]


def display_url(url: str) -> str:
    """A URL as people read it: percent-escapes decoded (``/料金/``, not ``/%E6%96%99…``)."""
    return unquote(url, errors="replace")


# --- the activity consumer ------------------------------------------------------------------------


def _label(page_action: PageAction, url: str) -> str:
    return f"{page_action.name}: {display_url(url)}"[:LABEL_LENGTH]


def _score_matches(matches: Sequence[PageMatch], by_id: dict[int, PageAction]) -> list[int]:
    """Ledger rows for the matches worth points (once per page action and activity, by key)
    and the scores raised by their sum; returns the prospects whose score changed."""
    rows = [
        (match, by_id[match.page_action_id])
        for match in matches
        if by_id[match.page_action_id].points
    ]
    if not rows:
        return []
    with connection.cursor() as cursor:
        _lock_ledger(cursor)
        _lock_prospects(cursor, [match.prospect_id for match, _page_action in rows])
        cursor.execute(
            f"""
            WITH inserted AS (
                INSERT INTO {LEDGER} (prospect_id, points, cause, activity_id, activity_type,
                                      first_key, label, occurred_at, created_at)
                SELECT r.prospect_id, r.points, %s, r.activity_id, %s, r.first_key, r.label,
                       r.occurred_at, now()
                  FROM unnest(%s::bigint[], %s::integer[], %s::bigint[], %s::text[],
                              %s::text[], %s::timestamptz[])
                       AS r(prospect_id, points, activity_id, first_key, label, occurred_at)
                 ORDER BY r.occurred_at, r.activity_id
                ON CONFLICT DO NOTHING
                RETURNING prospect_id, points),
            delta AS (SELECT prospect_id, sum(points) AS points
                        FROM inserted GROUP BY prospect_id)
            UPDATE {PROSPECTS} p SET score = p.score + delta.points
              FROM delta WHERE p.id = delta.prospect_id AND delta.points <> 0
            RETURNING p.id
            """,  # noqa: S608
            [
                ScoreCause.PAGE_ACTION.value,
                ActivityType.PAGE_VIEW.value,
                [match.prospect_id for match, _page_action in rows],
                [page_action.points for _match, page_action in rows],
                [match.activity_id for match, _page_action in rows],
                [f"page:{page_action.pk}:{match.activity_id}" for match, page_action in rows],
                [_label(page_action, match.url) for match, page_action in rows],
                [match.occurred_at for match, _page_action in rows],
            ],
        )
        return [int(row[0]) for row in cursor.fetchall()]


def _priority_key(page_action: PageAction, match: PageMatch) -> str:
    if match.visit_id:
        return f"{CAUSE_TYPE}:{page_action.pk}:priority:{match.prospect_id}:visit:{match.visit_id}"
    return f"{CAUSE_TYPE}:{page_action.pk}:priority:{match.activity_id}"


def _run_actions(
    match: PageMatch, page_action: PageAction, prospect: Prospect, now: datetime.datetime
) -> None:
    label = _label(page_action, match.url)
    if page_action.actions:
        actions_run(
            actions=page_action.actions,
            prospect=prospect,
            context=ActionContext(
                cause_type=CAUSE_TYPE,
                cause_id=page_action.pk,
                cause_label=label,
                idempotency_key=f"{CAUSE_TYPE}:{page_action.pk}:{match.activity_id}",
            ),
        )
    if page_action.is_priority and match.occurred_at >= now - PRIORITY_NOTIFY_WINDOW:
        viewed_at = timezone.localtime(match.occurred_at).strftime("%Y-%m-%d %H:%M")
        action_run(
            key="notify_assigned_user",
            prospect=prospect,
            config={"note": _("Viewed at %(time)s.") % {"time": viewed_at}},
            context=ActionContext(
                cause_type=CAUSE_TYPE,
                cause_id=page_action.pk,
                cause_label=(_("Priority page viewed: %(page)s") % {"page": label})[:LABEL_LENGTH],
                idempotency_key=_priority_key(page_action, match),
            ),
        )


def page_views_handle(activities: list[Activity]) -> None:
    """The activity consumer: page views of prospects against the active page actions.

    Called inside the delivery transaction (exactly once per activity and owner); the ledger's
    keys and the action runs' idempotency keys make even a second call change nothing.
    """
    ids = [
        activity.pk
        for activity in activities
        if activity.prospect_id and not activity.is_bot and activity.type == ActivityType.PAGE_VIEW
    ]
    if not ids:
        return
    page_actions = list(PageAction.objects.filter(is_active=True).order_by("id"))
    matches = page_views_matching(activity_ids=ids, page_actions=page_actions)
    if not matches:
        return
    by_id = {page_action.pk: page_action for page_action in page_actions}
    with transaction.atomic():
        changed = _score_matches(matches, by_id)
        prospects = Prospect.objects.in_bulk({match.prospect_id for match in matches})
        now = timezone.now()
        for match in matches:
            prospect = prospects.get(match.prospect_id)
            page_action = by_id[match.page_action_id]
            if prospect is None or not (page_action.actions or page_action.is_priority):
                continue
            _run_actions(match, page_action, prospect, now)
    if changed:
        _after_score_change(changed)


def register() -> None:
    """Called from ScoringConfig.ready(): page views feed the page actions."""
    from tracking.consumers import ActivityConsumer, register_activity_consumer

    register_activity_consumer(
        ActivityConsumer(
            key=CONSUMER_KEY,
            handle=page_views_handle,
            types=frozenset({ActivityType.PAGE_VIEW.value}),
        )
    )


# --- reads ----------------------------------------------------------------------------------------


def page_action_view_counts(
    *, page_actions: Sequence[PageAction], now: datetime.datetime | None = None
) -> dict[int, int] | None:
    """Prospects' page views matched by each page action in the last 30 days, bots excluded.

    None when counting took longer than :data:`VIEW_COUNT_TIMEOUT_MS` (a very large account):
    the list page then shows no numbers rather than making everyone wait.
    """
    if not page_actions:
        return {}
    since = (now or timezone.now()) - datetime.timedelta(days=VIEW_COUNT_DAYS)
    params: dict[str, Any] = {**_needle_params(page_actions), "since": since}
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            # Local to this transaction; put back afterwards for a caller's outer transaction
            # (a rolled-back savepoint puts it back by itself).
            cursor.execute(
                "SELECT current_setting('statement_timeout'), "
                "set_config('statement_timeout', %s, true)",
                [str(int(VIEW_COUNT_TIMEOUT_MS))],
            )
            previous = cursor.fetchone()[0]
            cursor.execute(_COUNTS.format(where="a.occurred_at >= %(since)s"), params)
            counts = {int(row[0]): int(row[1]) for row in cursor.fetchall()}
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])
    except DatabaseError:
        logger.warning("page action view counts gave up after %d ms", VIEW_COUNT_TIMEOUT_MS)
        return None
    return {page_action.pk: counts.get(page_action.pk, 0) for page_action in page_actions}


# --- writes ---------------------------------------------------------------------------------------


def page_action_save(*, page_action: PageAction, actor: User | None) -> PageAction:
    """Create or change a page action (already validated by its form); audited.

    It applies to page views delivered from now on; past views are not re-run.
    """
    from mapp.services import audit_log_record

    with transaction.atomic():
        created = page_action.pk is None
        if created and actor is not None and actor.pk:
            page_action.created_by = actor
        page_action.save()
        audit_log_record(
            actor=actor,
            action="scoring.page_action_create" if created else "scoring.page_action_change",
            target=page_action,
            changes={
                "match_type": page_action.match_type,
                "url_pattern": page_action.url_pattern,
                "points": page_action.points,
                "is_priority": page_action.is_priority,
                "is_active": page_action.is_active,
                "actions": [item.get("action") for item in page_action.actions],
            },
        )
    return page_action


def page_action_set_active(
    *, page_action: PageAction, is_active: bool, actor: User | None
) -> PageAction:
    from mapp.services import audit_log_record

    with transaction.atomic():
        page_action.is_active = is_active
        page_action.save(update_fields=["is_active", "updated_at"])
        audit_log_record(
            actor=actor,
            action="scoring.page_action_activate" if is_active else "scoring.page_action_pause",
            target=page_action,
        )
    return page_action


def page_action_delete(*, page_action: PageAction, actor: User | None) -> None:
    """Delete a page action; the points it gave stay in the ledger (history)."""
    from mapp.services import audit_log_record

    with transaction.atomic():
        audit_log_record(actor=actor, action="scoring.page_action_delete", target=page_action)
        page_action.delete()
