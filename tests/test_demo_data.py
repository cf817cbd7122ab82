"""`make run DEMO=1`: realistic Japanese demo data, safe to load twice."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from mapp.models import User
from mapp.roles import ensure_default_roles
from prospects.models import Prospect, ProspectList

pytestmark = pytest.mark.django_db


def test_demo_data_loads_once_with_derived_categories() -> None:
    ensure_default_roles()
    call_command("load_demo_data")
    call_command("load_demo_data")
    assert User.objects.filter(email__endswith="@demo.example.jp").count() == 4
    assert Prospect.objects.count() == 60
    assert Prospect.objects.filter(job_level__gte=3).exists()
    assert Prospect.objects.exclude(company=None).count() == 60
    assert ProspectList.objects.filter(is_dynamic=True).count() == 1
