"""REST API of tracking: identification tokens for a customer's back end.

A site that knows who is signed in (a member area, a webinar registration handled by its own
back end) asks mapp for a token and prints ``mapp('identify', token)`` into the page; the
browser's anonymous history then moves to that prospect (tracking/views_tracking.py). Only mapp
can make a token, so a visitor cannot claim somebody else by typing an id.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from mapp.models import User
from prospects.api import DETAIL_ERRORS, ScopedApiView
from prospects.models import Prospect
from prospects.selectors import prospects_visible_to
from tracking.identity import IDENTIFY_MAX_AGE, identify_token_for


class IdentifyTokenApi(ScopedApiView):
    """``POST /api/v1/prospects/<id>/identify-token/``: a token valid for one day.

    POST (not GET): handing out a way to attach browsers to a prospect needs edit rights on
    prospects, and the prospect must be within the caller's scope (404 otherwise).
    """

    lookup_url_kwarg = "prospect_id"

    def scoped_queryset(self, user: User) -> QuerySet[Prospect]:
        return prospects_visible_to(user)

    @extend_schema(
        operation_id="prospects_identify_token",
        request=None,
        responses={
            200: inline_serializer(
                "IdentifyToken",
                {
                    "prospect_id": serializers.IntegerField(),
                    "token": serializers.CharField(),
                    "expires_in_seconds": serializers.IntegerField(),
                },
            ),
            **DETAIL_ERRORS,
        },
    )
    def post(self, request: Request, prospect_id: int) -> Response:
        prospect: Any = self.get_object()
        return Response(
            {
                "prospect_id": prospect.pk,
                "token": identify_token_for(prospect.pk),
                "expires_in_seconds": int(IDENTIFY_MAX_AGE.total_seconds()),
            }
        )
