"""Test data made the way the app makes it."""

from __future__ import annotations

from typing import Any, cast

import factory

from mapp.models import Role, User
from mapp.roles import ensure_default_roles
from prospects.models import Prospect

TEST_PASSWORD = "correct-horse-battery-staple"


def role(slug: str) -> Role:
    # Transactional tests flush the tables the roles migration filled; restore them on demand.
    if not Role.objects.filter(slug=slug).exists():
        ensure_default_roles()
    return Role.objects.get(slug=slug)


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda number: f"user{number}@example.jp")
    last_name = "山田"
    first_name = factory.Sequence(lambda number: f"太郎{number}")
    role = factory.LazyFunction(lambda: role(Role.MARKETING))
    is_active = True

    @factory.post_generation
    def password(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        user = cast(User, self)  # factory_boy passes the built model instance here
        user.set_password(extracted or TEST_PASSWORD)
        if create:
            user.save(update_fields=["password"])


def make_user(role_slug: str, **kwargs: Any) -> User:
    return UserFactory.create(role=role(role_slug), **kwargs)


class ProspectFactory(factory.django.DjangoModelFactory[Prospect]):
    class Meta:
        model = Prospect

    email = factory.Sequence(lambda number: f"prospect{number}@sample-shoji.co.jp")
    last_name = "佐藤"
    first_name = factory.Sequence(lambda number: f"花子{number}")
    company_name = "株式会社サンプル商事"
