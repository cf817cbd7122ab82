"""The email preference centre: what a person may manage from the unsubscribe link of an email.

The link's token (:mod:`emails.unsubscribe`) names the prospect; whoever holds it manages that
prospect's email: unsubscribe from everything (the opt-out, as in :mod:`emails.unsubscribe`),
choose which public lists to be on, and undo their own opt-out. Only static lists marked public
are offered: a dynamic list is computed from its criteria, so nobody can leave it by hand.

Every change is recorded in the activity stream once (the prospect row is locked, so a repeated
or simultaneous POST finds nothing left to change and records nothing):

* joining a list: ``OPT_IN`` about the list (``object_type="prospect_list"``, ``scope="list"``);
* leaving a list: ``EMAIL_UNSUBSCRIBED`` about the list (same object type, ``scope="list"``);
* opting back in: ``OPT_IN`` about the list email whose link was used (none for an
  autoresponder's link; ``scope="all"``) with the address the request came from, as evidence
  of the person's own consent (特定電子メール法).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Case, Exists, OuterRef, QuerySet, When

from emails.unsubscribe import UnsubscribeToken, list_email_label
from prospects.models import ListMembership, ListMembershipSource, Prospect, ProspectList
from prospects.services import list_add_prospects, list_remove_prospects, prospect_opt_back_in
from tracking.models import ActivityType
from tracking.services import activity_record

PREFERENCE_SOURCE = "preference_centre"
LIST_OBJECT_TYPE = "prospect_list"
#: How many lists one save may name. The page offers every public list (a handful in practice);
#: more values than this are not a person ticking boxes, and each costs a few queries.
MAX_LIST_CHOICES = 200


@dataclass(frozen=True)
class PublicListChoice:
    """A list as the person sees it: its public name and description, and whether they are on it."""

    id: int
    name: str
    description: str
    is_member: bool


@dataclass(frozen=True)
class Preferences:
    prospect_id: int
    masked_email: str
    opted_out: bool
    lists: list[PublicListChoice]


@dataclass(frozen=True)
class ListChanges:
    joined: list[int]
    left: list[int]

    @property
    def changed(self) -> bool:
        return bool(self.joined or self.left)


def email_mask(email: str) -> str:
    """Enough of the address for its owner to recognise it, not all of it (the link may have been
    forwarded): ``ha•••@example.co.jp``."""
    local, at, domain = email.partition("@")
    if not at:
        return "•••"
    shown = 2 if len(local) > 4 else 1
    return f"{local[:shown]}•••@{domain}"


def offered_lists() -> QuerySet[ProspectList]:
    """The lists the preference centre offers: public and static, by the name people see."""
    return (
        ProspectList.objects.filter(is_public=True, is_dynamic=False)
        .annotate(
            shown_name=Case(When(public_name="", then="name"), default="public_name"),
        )
        .order_by("shown_name", "id")
    )


def preferences_for(*, prospect_id: int) -> Preferences | None:
    """What the page shows; None if the prospect no longer exists. Two queries."""
    prospect = Prospect.objects.filter(pk=prospect_id).only("pk", "email", "opted_out").first()
    if prospect is None:
        return None
    lists = offered_lists().annotate(
        is_member=Exists(
            ListMembership.objects.filter(prospect_list=OuterRef("pk"), prospect_id=prospect.pk)
        )
    )
    return Preferences(
        prospect_id=prospect.pk,
        masked_email=email_mask(prospect.email),
        opted_out=prospect.opted_out,
        lists=[
            PublicListChoice(
                id=prospect_list.pk,
                name=prospect_list.public_name or prospect_list.name,
                description=prospect_list.description,
                is_member=prospect_list.is_member,
            )
            for prospect_list in lists
        ],
    )


def _list_activity(
    *, activity_type: str, prospect_id: int, prospect_list: ProspectList, token: UnsubscribeToken
) -> None:
    activity_record(
        type=activity_type,
        prospect_id=prospect_id,
        object_type=LIST_OBJECT_TYPE,
        object_id=prospect_list.pk,
        object_label=prospect_list.name,
        payload={
            "source": PREFERENCE_SOURCE,
            "scope": "list",
            "email_id": token.email_reference[2],
        },
    )


def preferences_save(
    *, token: UnsubscribeToken, shown_list_ids: Collection[int], chosen_list_ids: Collection[int]
) -> ListChanges | None:
    """Put the prospect on the chosen lists among those the page showed, and off the others.

    Only lists offered now count: an id of a private or dynamic list (a hostile client, or a
    page left open while the list changed) is ignored, and so is every list the page did not
    show (a list made public since must not be left unseen). None if the prospect is gone.
    """
    with transaction.atomic():
        prospect = Prospect.objects.select_for_update().filter(pk=token.prospect_id).first()
        if prospect is None:
            return None
        offered = {
            prospect_list.pk: prospect_list
            for prospect_list in offered_lists().filter(pk__in=shown_list_ids)
        }
        wanted = set(chosen_list_ids) & offered.keys()
        current = set(
            ListMembership.objects.filter(
                prospect_id=prospect.pk, prospect_list_id__in=offered.keys()
            ).values_list("prospect_list_id", flat=True)
        )
        joined = sorted(wanted - current)
        left = sorted(current - wanted)
        for list_id in joined:
            list_add_prospects(
                prospect_list=offered[list_id],
                prospect_ids=[prospect.pk],
                source=ListMembershipSource.MANUAL,
            )
            _list_activity(
                activity_type=ActivityType.OPT_IN,
                prospect_id=prospect.pk,
                prospect_list=offered[list_id],
                token=token,
            )
        for list_id in left:
            list_remove_prospects(prospect_list=offered[list_id], prospect_ids=[prospect.pk])
            _list_activity(
                activity_type=ActivityType.EMAIL_UNSUBSCRIBED,
                prospect_id=prospect.pk,
                prospect_list=offered[list_id],
                token=token,
            )
    return ListChanges(joined=joined, left=left)


def prospect_resubscribe(*, token: UnsubscribeToken, ip_address: str | None) -> bool:
    """Undo the prospect's opt-out on their own, explicit request; True if this call did it.

    Allowed here because the person acts on their own link, by pressing a button that says
    so; the activity keeps the address the request came from as evidence of that consent.
    """
    with transaction.atomic():
        prospect = Prospect.objects.select_for_update().filter(pk=token.prospect_id).first()
        if prospect is None or not prospect.opted_out:
            return False
        prospect_opt_back_in(prospect_id=prospect.pk)
        object_type, object_id, email_id = token.email_reference
        activity_record(
            type=ActivityType.OPT_IN,
            prospect_id=prospect.pk,
            object_type=object_type,
            object_id=object_id,
            object_label=list_email_label(token),
            payload={
                "source": PREFERENCE_SOURCE,
                "scope": "all",
                "email_id": email_id,
                "ip_address": ip_address or "",
            },
        )
    return True
