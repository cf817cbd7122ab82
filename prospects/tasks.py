"""Celery tasks of prospects: thin wrappers that take ids and call services."""

from __future__ import annotations

from celery import shared_task

from prospects.exporting import export_run  # noqa: F401 - registers the export task
from prospects.importing import import_run  # noqa: F401 - registers the import task
from prospects.models import ProspectList


@shared_task(name="prospects.refresh_dynamic_list", acks_late=True)
def refresh_dynamic_list(list_id: int) -> dict[str, int] | None:
    from prospects.services import dynamic_list_refresh

    prospect_list = ProspectList.objects.filter(pk=list_id, is_dynamic=True).first()
    if prospect_list is None:
        return None  # deleted or turned static since: nothing to do
    refresh = dynamic_list_refresh(prospect_list=prospect_list)
    return {
        "added": refresh.added_count,
        "removed": refresh.removed_count,
        "members": refresh.member_count,
    }


@shared_task(name="prospects.refresh_dynamic_lists_for_prospects", acks_late=True)
def refresh_dynamic_lists_for_prospects(prospect_ids: list[int]) -> int:
    """Idempotent: re-testing the same prospects twice changes nothing the second time."""
    from prospects.services import dynamic_lists_refresh_for_prospects

    return len(dynamic_lists_refresh_for_prospects(prospect_ids))


@shared_task(name="prospects.refresh_all_dynamic_lists")
def refresh_all_dynamic_lists() -> int:
    """Scheduled full refresh: catches changes no incremental refresh saw (time-based criteria)."""
    list_ids = list(ProspectList.objects.filter(is_dynamic=True).values_list("pk", flat=True))
    for list_id in list_ids:
        refresh_dynamic_list.delay(list_id)
    return len(list_ids)


@shared_task(name="prospects.check_mailable_limit")
def check_mailable_limit() -> int | None:
    from prospects.services import mailable_limit_check

    return mailable_limit_check()


@shared_task(name="prospects.reclassify", acks_late=True)
def reclassify(after_id: int = 0) -> int:
    """Re-classify every prospect, one batch per task run, each batch committed as it goes."""
    from prospects.services import prospects_reclassify

    last_id, changed = prospects_reclassify(after_id=after_id)
    if last_id:
        reclassify.delay(last_id)
    return changed
