"""ALLOWED_HOSTS that also admit the hosts apps add at run time (the customer's tracker domains).

A customer points ``go.example.co.jp`` (a CNAME) at mapp so the tracking script, beacons, forms
and landing pages are first-party on their site. Django refuses any Host header not in
``ALLOWED_HOSTS``, which is fixed at start-up; marketers add tracker domains in the app. So the
setting is an :class:`AllowedHosts` list: the configured hosts, then whatever the registered
providers return (tracking registers its tracker domains, cached a few seconds per process).
Django only iterates the setting (``validate_host``), so this is all it needs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

logger = logging.getLogger(__name__)

_providers: list[Callable[[], Iterable[str]]] = []


def register_host_provider(provider: Callable[[], Iterable[str]]) -> None:
    """``provider()`` returns host names to admit; it must be cheap (cache what it reads)."""
    if provider not in _providers:
        _providers.append(provider)


class AllowedHosts(list[str]):
    """The configured hosts; iterating also yields the providers' hosts."""

    def __iter__(self) -> Iterator[str]:
        yield from super().__iter__()
        for provider in _providers:
            try:
                yield from provider()
            except Exception:  # a broken provider must not take the whole site down
                logger.exception("allowed-host provider %r failed", provider)
