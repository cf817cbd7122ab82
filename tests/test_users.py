"""User management, sign-in, throttling, password reset and the audit log."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.urls import reverse

from mapp.models import AuditLogEntry, Role, User
from mapp.services import audit_log_record, ensure_first_administrator, user_deactivate
from prospects.models import Prospect
from tests.conftest import client_for
from tests.factories import TEST_PASSWORD, ProspectFactory, make_user


def _actions() -> list[str]:
    return list(AuditLogEntry.objects.order_by("id").values_list("action", flat=True))


def test_administrator_adds_a_user_who_sets_a_password_by_email(
    administrator: User, django_capture_on_commit_callbacks
) -> None:
    client = client_for(administrator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("users:create"),
            {
                "email": "Suzuki@Example.JP",
                "last_name": "鈴木",
                "first_name": "一郎",
                "role": Role.objects.get(slug=Role.SALES).pk,
                "language": "ja",
            },
        )
    assert response.status_code == 302
    created = User.objects.get(email="suzuki@example.jp")
    assert created.role.slug == Role.SALES
    assert not created.has_usable_password()
    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+/accounts/password-reset/\S+/\S+/", str(mail.outbox[0].body))
    assert link, mail.outbox[0].body

    # The link lets the new user choose a password and sign in with it.
    new_client = Client()
    path = link.group(0).split("://", 1)[1].split("/", 1)[1]
    form_page = new_client.get("/" + path, follow=True)
    assert form_page.status_code == 200
    set_url = form_page.redirect_chain[-1][0]
    response = new_client.post(
        set_url, {"new_password1": "sakura-2026-kaigi", "new_password2": "sakura-2026-kaigi"}
    )
    assert response.status_code == 302
    signed_in = new_client.post(
        reverse("login"), {"username": "suzuki@example.jp", "password": "sakura-2026-kaigi"}
    )
    assert signed_in.status_code == 302
    assert signed_in["Location"] == reverse("home")
    assert "user.create" in _actions()


def test_duplicate_email_is_refused_with_a_message(administrator: User) -> None:
    make_user(Role.SALES, email="taken@example.jp")
    response = client_for(administrator).post(
        reverse("users:create"),
        {"email": "TAKEN@example.jp", "role": Role.objects.get(slug=Role.SALES).pk},
    )
    assert response.status_code == 200
    assert User.objects.filter(email__iexact="taken@example.jp").count() == 1
    assert "already exists" in response.content.decode() or "既に" in response.content.decode()


def test_deactivation_asks_whom_to_reassign_prospects_to(administrator: User) -> None:
    leaving = make_user(Role.SALES, email="leaving@example.jp")
    successor = make_user(Role.SALES, email="successor@example.jp")
    ProspectFactory.create_batch(3, assigned_user=leaving)
    client = client_for(administrator)

    page = client.get(reverse("users:deactivate", args=[leaving.pk])).content.decode()
    assert "successor@example.jp" in page
    response = client.post(
        reverse("users:deactivate", args=[leaving.pk]), {"reassign_to": successor.pk}
    )

    assert response.status_code == 302
    leaving.refresh_from_db()
    assert not leaving.is_active
    assert leaving.deactivated_at is not None
    assert Prospect.objects.filter(assigned_user=successor).count() == 3
    assert Prospect.objects.filter(assigned_user=leaving).count() == 0
    entry = AuditLogEntry.objects.get(action="user.deactivate")
    assert entry.changes["moved"] == {"prospects": 3, "tasks": 0}
    assert entry.actor == administrator


def test_an_administrator_cannot_deactivate_themselves(administrator: User) -> None:
    with pytest.raises(ValidationError):
        user_deactivate(actor=administrator, user=administrator, reassign_to=None)


def test_a_deactivated_user_cannot_sign_in(db: None) -> None:
    user = make_user(Role.MARKETING, email="gone@example.jp", is_active=False)
    response = Client().post(reverse("login"), {"username": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 200  # the form again, with an error


def test_sign_in_and_out_are_audited_with_the_ip_address(marketer: User) -> None:
    client = Client(REMOTE_ADDR="203.0.113.7")
    response = client.post(
        reverse("login"), {"username": marketer.email, "password": TEST_PASSWORD}
    )
    assert response.status_code == 302
    client.post(reverse("logout"))
    login, logout = AuditLogEntry.objects.filter(action__in=["auth.login", "auth.logout"]).order_by(
        "id"
    )
    assert login.action == "auth.login"
    assert login.ip_address == "203.0.113.7"
    assert logout.action == "auth.logout"


def test_sign_in_is_throttled_after_repeated_failures(marketer: User) -> None:
    client = Client(REMOTE_ADDR="198.51.100.20")
    for _ in range(4):
        client.post(reverse("login"), {"username": marketer.email, "password": "wrong password"})
    fifth = client.post(reverse("login"), {"username": marketer.email, "password": "wrong"})
    assert fifth.status_code == 429
    assert "Too many attempts" in fifth.content.decode() or "試行" in fifth.content.decode()
    # Even the right password is refused while locked out.
    response = client.post(
        reverse("login"), {"username": marketer.email, "password": TEST_PASSWORD}
    )
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert _actions().count("auth.login_failed") >= 5


def test_password_reset_for_an_unknown_address_reveals_nothing(db: None) -> None:
    response = Client().post(reverse("password_reset"), {"email": "nobody@example.jp"})
    assert response.status_code == 302
    assert mail.outbox == []


def test_audit_log_is_append_only_in_the_database(administrator: User) -> None:
    entry = audit_log_record(actor=administrator, action="test.record")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditLogEntry.objects.filter(pk=entry.pk).update(action="tampered")
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM mapp_auditlogentry WHERE id = %s", [entry.pk])
    with pytest.raises(ValueError):
        entry.save()
    assert AuditLogEntry.objects.get(pk=entry.pk).action == "test.record"


def test_audit_log_page_is_for_administrators(administrator: User, marketer: User) -> None:
    audit_log_record(actor=administrator, action="role.update")
    assert client_for(marketer).get(reverse("users:audit_log")).status_code == 403
    page = client_for(administrator).get(reverse("users:audit_log"))
    assert page.status_code == 200
    assert "role.update" in page.content.decode()


def test_default_roles_cannot_be_edited_but_copies_can(administrator: User) -> None:
    client = client_for(administrator)
    sales = Role.objects.get(slug=Role.SALES)
    assert client.get(reverse("users:role_edit", args=[sales.pk])).status_code == 302
    response = client.post(reverse("users:roles"), {"source": sales.pk, "name": "パートナー営業"})
    copy = Role.objects.get(name="パートナー営業")
    assert response.status_code == 302
    assert copy.permissions == sales.permissions
    assert copy.prospect_scope == sales.prospect_scope
    assert not copy.is_default


def test_admin_changes_are_audited(administrator: User) -> None:
    client = client_for(administrator)
    prospect = ProspectFactory.create()
    response = client.post(
        reverse("admin:prospects_prospect_change", args=[prospect.pk]),
        {
            "email": prospect.email,
            "last_name": "変更",
            "first_name": "",
            "company_name": "",
            "job_title": "",
        },
    )
    assert response.status_code == 302
    assert "admin.change" in _actions()


def test_first_administrator_is_created_once_with_a_generated_password(db: None) -> None:
    User.objects.all().delete()
    user, password = ensure_first_administrator(email="owner@example.jp", password=None)
    assert user is not None and password
    assert user.role.slug == Role.ADMINISTRATOR
    assert user.check_password(password)
    again, no_password = ensure_first_administrator(email="owner@example.jp", password=None)
    assert again is None and no_password is None
