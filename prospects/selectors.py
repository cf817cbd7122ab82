"""Reads of prospects, always through the user's role scope (mapp/access.py)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from mapp.access import has_access, sees_all_prospects
from mapp.models import Level, Module, User
from prospects.models import Prospect


def prospects_visible_to(user: User) -> QuerySet[Prospect]:
    """Every prospect query a user triggers starts here: Sales sees only their own."""
    if not has_access(user, Module.PROSPECTS, Level.VIEW):
        return Prospect.objects.none()
    queryset = Prospect.objects.select_related("assigned_user")
    if sees_all_prospects(user):
        return queryset
    return queryset.filter(assigned_user=user)


def prospect_get_for_user(*, user: User, prospect_id: int) -> Prospect:
    """One prospect the user may see; 404 (not 403) so ids of others' prospects reveal nothing."""
    try:
        return prospects_visible_to(user).get(pk=prospect_id)
    except Prospect.DoesNotExist as error:
        raise Http404 from error


def prospect_count_assigned(user: User) -> int:
    return Prospect.objects.filter(assigned_user=user).count()
