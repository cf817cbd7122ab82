from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from mapp.access import access_required, request_user
from mapp.models import Module
from prospects.selectors import prospect_get_for_user, prospects_visible_to

PAGE_SIZE = 50


@access_required(Module.PROSPECTS)
def prospect_list(request: HttpRequest) -> HttpResponse:
    prospects = prospects_visible_to(request_user(request))
    query = request.GET.get("q", "").strip()
    if query:
        prospects = prospects.filter(
            Q(email__icontains=query)
            | Q(last_name__icontains=query)
            | Q(first_name__icontains=query)
            | Q(company_name__icontains=query)
        )
    page = Paginator(prospects, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "prospects/prospect_list.html", {"page": page, "query": query})


@access_required(Module.PROSPECTS)
def prospect_detail(request: HttpRequest, prospect_id: int) -> HttpResponse:
    prospect = prospect_get_for_user(user=request_user(request), prospect_id=prospect_id)
    return render(request, "prospects/prospect_detail.html", {"prospect": prospect})
