"""Where a form may send people after a post: only to hosts the account vouches for.

A thank-you URL or a form handler's success / error location is typed by a marketer, but the
redirect is issued to anonymous visitors, so a wrong or malicious value would make mapp an
open redirect. Allowed hosts are: mapp's own host (``SITE_URL``), the tracker domains, and
``settings.FORMS_ALLOWED_REDIRECT_HOSTS`` (the customer's websites; an entry starting with a dot
allows its subdomains too). The URL must first pass ``tracking.links.is_safe_destination``
(absolute http(s), no ``//host``, ``javascript:``, whitespace or control characters), and may
carry no user-info (``https://host@evil`` goes to ``evil``).
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.utils.translation import gettext as _

from tracking.links import is_safe_destination
from tracking.models import TrackerDomain


def allowed_redirect_hosts() -> list[str]:
    """The host names (lower case) redirects may go to; entries starting with "." cover
    subdomains."""
    hosts = [urlsplit(settings.SITE_URL).hostname or ""]
    hosts.extend(
        domain.lower() for domain in TrackerDomain.objects.values_list("domain", flat=True)
    )
    hosts.extend(
        str(host).strip().lower() for host in getattr(settings, "FORMS_ALLOWED_REDIRECT_HOSTS", [])
    )
    return [host for host in hosts if host]


def _host_matches(host: str, allowed: list[str]) -> bool:
    for entry in allowed:
        if entry.startswith("."):
            if host == entry[1:] or host.endswith(entry):
                return True
        elif host == entry:
            return True
    return False


def redirect_url_error(url: str) -> str | None:
    """Why ``url`` may not be used as a redirect target (None: it may). Empty is allowed."""
    if not url:
        return None
    if not is_safe_destination(url):
        return _("Enter an absolute http:// or https:// address.")
    parts = urlsplit(url)
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        return _("The address may not contain a user name or password.")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host or not _host_matches(host, allowed_redirect_hosts()):
        return _(
            "Redirects may only go to this application's host, a tracker domain or an allowed "
            "website (ask an administrator to allow “%(host)s”)."
        ) % {"host": host}
    return None


def is_allowed_redirect(url: str) -> bool:
    """A non-empty URL that passes :func:`redirect_url_error`."""
    return bool(url) and redirect_url_error(url) is None


def url_with_parameters(url: str, parameters: list[tuple[str, str]]) -> str:
    """``url`` with ``parameters`` appended to its query string (existing ones kept)."""
    if not parameters:
        return url
    parts = urlsplit(url)
    extra = urlencode(parameters)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
