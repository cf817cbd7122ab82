"""ESP tracking webhooks (django-anymail's views), public and hardened. Included by mapp/urls.py:
``path("email/webhooks/", include("emails.urls_webhooks"))``, so Postmark posts to
``/email/webhooks/postmark/tracking/``, Mailgun to ``…/mailgun/tracking/`` and so on.

Anymail checks each ESP's credentials (basic auth from ANYMAIL["WEBHOOK_SECRET"], plus the
ESP's signature where it has one); the events go to emails.webhooks. What is wrapped around
anymail's views here keeps the public endpoint's promise: a payload that cannot be read is a
400 with a message, wrong credentials a 403, a body over DATA_UPLOAD_MAX_MEMORY_SIZE a 413, a
missing ESP setting or the database being away a 503 (the ESP retries later), never a 500. Without
a WEBHOOK_SECRET every endpoint answers 503: anymail would accept anyone's posts.
"""

from __future__ import annotations

import logging
from typing import Any

from anymail import urls as anymail_urls
from anymail.exceptions import AnymailError, AnymailWebhookValidationFailure
from anymail.utils import get_anymail_setting
from django.core.exceptions import ImproperlyConfigured, RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.views.decorators.csrf import csrf_exempt

from emails.webhooks import connect_receivers
from mapp.access import public

logger = logging.getLogger(__name__)

app_name = "emails_webhooks"

#: What anymail's parsers raise on a payload that is not what the ESP sends.
_PAYLOAD_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    LookupError,
    TypeError,
    AttributeError,
    AnymailError,
)
_RETRY_AFTER_SECONDS = "60"


class UnreadableWebhookError(Exception):
    """The webhook's body is not a payload the ESP's parser can read."""


def _guarded_view_class(view_class: type[Any]) -> type[Any]:
    """The ESP's view with its payload errors told apart from everything else."""

    def run_validators(self: Any, request: HttpRequest) -> None:
        try:
            view_class.run_validators(self, request)
        except AnymailWebhookValidationFailure:
            raise
        except _PAYLOAD_ERRORS as error:
            raise UnreadableWebhookError(str(error)) from error

    def parse_events(self: Any, request: HttpRequest) -> Any:
        try:
            return view_class.parse_events(self, request)
        except AnymailWebhookValidationFailure:
            raise
        except _PAYLOAD_ERRORS as error:
            raise UnreadableWebhookError(str(error)) from error

    return type(
        f"Guarded{view_class.__name__}",
        (view_class,),
        {"run_validators": run_validators, "parse_events": parse_events},
    )


def _text_response(message: str, status: int, **headers: str) -> HttpResponse:
    return HttpResponse(
        message, status=status, content_type="text/plain; charset=utf-8", headers=headers
    )


def webhook_view(view_class: type[Any]) -> Any:
    anymail_view = _guarded_view_class(view_class).as_view()

    @public
    @csrf_exempt
    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not get_anymail_setting("webhook_secret", default=None):
            # Anymail would only warn and accept anyone's posts; forged bounces and
            # unsubscribes would then change real prospects. Closed until a secret is set.
            logger.error("ESP webhook refused: ANYMAIL['WEBHOOK_SECRET'] is not set")
            return _text_response("Webhook not configured.", 503)
        try:
            response: HttpResponse = anymail_view(request, *args, **kwargs)
        except UnreadableWebhookError as error:
            logger.info("unreadable %s webhook: %s", view_class.__name__, error)
            return _text_response("Unreadable webhook payload.", 400)
        except AnymailWebhookValidationFailure as error:
            logger.warning("%s webhook refused: %s", view_class.__name__, error)
            return _text_response("Webhook credentials missing or wrong.", 403)
        except RequestDataTooBig:
            return _text_response("Webhook payload too large.", 413)
        except ImproperlyConfigured:
            logger.exception("%s webhook is not configured", view_class.__name__)
            return _text_response("Webhook not configured.", 503)
        except DatabaseError:
            logger.exception("%s webhook could not be applied", view_class.__name__)
            return _text_response("Try again later.", 503, **{"Retry-After": _RETRY_AFTER_SECONDS})
        return response

    return view


def _tracking_patterns() -> list[URLPattern]:
    patterns = []
    for pattern in anymail_urls.urlpatterns:
        name = pattern.name if isinstance(pattern, URLPattern) else None
        if name is None or not name.endswith("tracking_webhook"):
            continue
        view_class = pattern.callback.view_class
        patterns.append(path(str(pattern.pattern), webhook_view(view_class), name=name))
    return patterns


urlpatterns = _tracking_patterns()
# Wherever these endpoints exist, what they report is applied (idempotent: a dispatch_uid).
connect_receivers()
