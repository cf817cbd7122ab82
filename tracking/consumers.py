"""The registry of activity consumers. Apps register theirs from AppConfig.ready().

A consumer is called with a batch of activities it has not seen for their current owner, inside
the transaction that records their delivery: its database effects and the delivery commit or
roll back together, which is what makes delivery exactly-once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tracking.models import Activity


@dataclass(frozen=True)
class ActivityConsumer:
    key: str
    handle: Callable[[list[Activity]], None]
    types: frozenset[str] | None = None  # None: every type
    include_bots: bool = False  # bots and machine opens never score or trigger
    needs_prospect: bool = True  # anonymous activity is delivered again once identified

    def wants(self, activity: Activity) -> bool:
        if activity.is_bot and not self.include_bots:
            return False
        if self.needs_prospect and activity.prospect_id is None:
            return False
        return self.types is None or activity.type in self.types


_consumers: dict[str, ActivityConsumer] = {}


def register_activity_consumer(consumer: ActivityConsumer) -> None:
    _consumers[consumer.key] = consumer


def activity_consumers() -> Iterable[ActivityConsumer]:
    return list(_consumers.values())


def unregister_activity_consumer(key: str) -> None:
    """For tests that register a consumer of their own."""
    _consumers.pop(key, None)
