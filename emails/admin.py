"""Django admin for emails: for support and inspection; marketers use the app's own pages."""

from __future__ import annotations

from typing import ClassVar

from django.contrib import admin

from emails.models import (
    EmailTemplate,
    ListEmail,
    ListEmailVariant,
    Recipient,
    SendingDomain,
    TriggeredEmail,
)
from mapp.admin_site import GuardedModelAdmin, ReadOnlyGuardedModelAdmin
from mapp.models import Module


@admin.register(SendingDomain)
class SendingDomainAdmin(GuardedModelAdmin):
    access_module = Module.SETTINGS
    list_display = ("domain", "dkim_selector", "dkim_algorithm", "status", "last_checked_at")
    list_filter = ("status", "dkim_algorithm")
    search_fields = ("domain",)
    # The key pair is made by emails.services.sending_domain_create, never typed in.
    readonly_fields = (
        "dkim_public_key",
        "dkim_key_file",
        "ed25519_public_key",
        "ed25519_key_file",
        "verified_at",
        "last_checked_at",
    )

    def has_add_permission(self, request: object, *args: object) -> bool:
        return False


@admin.register(EmailTemplate)
class EmailTemplateAdmin(GuardedModelAdmin):
    access_module = Module.MARKETING
    list_display = ("name", "subject", "sender_type", "updated_at")
    list_filter = ("sender_type",)
    search_fields = ("name", "subject")


@admin.register(ListEmail)
class ListEmailAdmin(GuardedModelAdmin):
    access_module = Module.MARKETING
    list_display = ("name", "status", "scheduled_at", "recipient_count", "sent_count")
    list_filter = ("status",)
    search_fields = ("name", "subject")
    readonly_fields = (
        "status",
        "started_at",
        "finished_at",
        "recipient_count",
        "sent_count",
        "failed_count",
        "skipped_count",
        "hard_bounce_count",
        "soft_bounce_count",
        "complaint_count",
        "ab_winner",
        "ab_decided_at",
    )
    filter_horizontal: ClassVar[tuple[str, ...]] = ("recipient_lists", "suppression_lists")


@admin.register(Recipient)
class RecipientAdmin(ReadOnlyGuardedModelAdmin):
    access_module = Module.MARKETING
    list_display = ("email", "list_email", "variant", "status", "attempts", "sent_at")
    list_filter = ("status", "bounce_kind")
    search_fields = ("email", "message_id")
    raw_id_fields = ("prospect", "list_email", "variant")


@admin.register(ListEmailVariant)
class ListEmailVariantAdmin(GuardedModelAdmin):
    access_module = Module.MARKETING
    list_display = ("list_email", "letter", "subject")
    search_fields = ("list_email__name", "subject")
    list_filter = ("letter",)
    raw_id_fields = ("list_email",)


@admin.register(TriggeredEmail)
class TriggeredEmailAdmin(ReadOnlyGuardedModelAdmin):
    access_module = Module.MARKETING
    list_display = ("email", "template", "status", "attempts", "sent_at")
    list_filter = ("status",)
    search_fields = ("email", "message_id", "dedup_key")
    raw_id_fields = ("prospect", "template", "sending_domain")
