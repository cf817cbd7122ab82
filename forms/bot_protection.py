"""Telling people from form-filling bots without a CAPTCHA.

Three checks, cheapest first:

* **Per-address throttling** (``tracking.beacon.admit_hit``, scope ``form``): a flood from one
  address is refused before anything is stored.
* **Honeypot**: a text input hidden by CSS (not ``type=hidden``, which bots skip). People never
  see it; naive bots fill every input.
* **Render token**: the form page embeds a token signed with ``TimestampSigner`` when it is
  rendered. It names the form and the fields that were shown (so validation checks exactly what
  the person saw, progressive profiling included). A post without it, for another form, faster
  than :data:`MIN_FILL_SECONDS` after rendering or older than :data:`MAX_TOKEN_AGE` is a bot's.

The token check is computed against the submission's ``received_at``, not "now", so a
submission retried later by the Celery task gets the same verdict it would have had at once.
Form handlers receive posts from the customer's own HTML, which carries no token: they rely on
their honeypot (if configured) and throttling.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.core import signing

from tracking.beacon import Admission, admit_hit

TOKEN_FIELD = "_mapp_token"  # noqa: S105 - an input name, not a secret
HONEYPOT_FIELD = "homepage_url"
# Input names that carry protection data, never prospect data.
CONTROL_FIELDS = frozenset({TOKEN_FIELD, HONEYPOT_FIELD})
TOKEN_SALT = "mapp.forms.render"  # noqa: S105 - a signing namespace, not a secret
MIN_FILL_SECONDS = 2
MAX_TOKEN_AGE = datetime.timedelta(days=1)
# A real token is ≈ 100–400 characters (the shown field ids compress well).
MAX_TOKEN_LENGTH = 4000
THROTTLE_SCOPE = "form"

# Reasons stored in Submission.error for rejected bots (not translated: an operator's code).
REASON_THROTTLED = "throttled"
REASON_HONEYPOT = "honeypot"
REASON_MISSING_TOKEN = "missing_token"  # noqa: S105 - a reason code
REASON_BAD_TOKEN = "bad_token"  # noqa: S105 - a reason code
REASON_TOO_FAST = "too_fast"
REASON_EXPIRED = "expired_token"


@dataclass(frozen=True)
class RenderToken:
    """What a valid render token vouches for."""

    form_uuid: uuid.UUID
    shown_field_ids: tuple[int, ...]
    rendered_at: datetime.datetime
    # Consent field id → the ConsentWording version shown next to it.
    consent_wordings: dict[int, int] = field(default_factory=dict)


def render_token_issue(
    *,
    form_uuid: uuid.UUID,
    shown_field_ids: list[int],
    consent_wordings: dict[int, int] | None = None,
) -> str:
    """The token put into the form page when it is rendered."""
    signer = signing.TimestampSigner(salt=TOKEN_SALT)
    wordings = {
        str(field_id): wording_id for field_id, wording_id in (consent_wordings or {}).items()
    }
    return signer.sign_object(
        {"f": form_uuid.hex, "s": shown_field_ids, "c": wordings}, compress=True
    )


def render_token_load(token: Any) -> RenderToken | None:
    """The token's contents if it is ours and intact (age not checked here)."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    signer = signing.TimestampSigner(salt=TOKEN_SALT)
    try:
        data = signer.unsign_object(token)
        _value, timestamp, _signature = token.rsplit(signer.sep, 2)
        rendered_at = datetime.datetime.fromtimestamp(
            signing.b62_decode(timestamp), tz=datetime.UTC
        )
    except (signing.BadSignature, ValueError, OverflowError):
        return None
    if not isinstance(data, dict):
        return None
    shown = data.get("s")
    if not isinstance(shown, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) for item in shown
    ):
        return None
    wordings = data.get("c", {})
    if not isinstance(wordings, dict):
        return None
    consent_wordings: dict[int, int] = {}
    for field_id, wording_id in wordings.items():
        if not str(field_id).isdigit() or not isinstance(wording_id, int):
            return None
        consent_wordings[int(field_id)] = wording_id
    try:
        form_uuid = uuid.UUID(str(data.get("f")))
    except ValueError:
        return None
    return RenderToken(
        form_uuid=form_uuid,
        shown_field_ids=tuple(shown),
        rendered_at=rendered_at,
        consent_wordings=consent_wordings,
    )


def render_token_verdict(
    *, token: Any, form_uuid: uuid.UUID, received_at: datetime.datetime
) -> tuple[RenderToken | None, str | None]:
    """(the token, None) for a person; (None or the token, reason) for a bot."""
    if token in (None, ""):
        return None, REASON_MISSING_TOKEN
    loaded = render_token_load(token)
    if loaded is None or loaded.form_uuid != form_uuid:
        return None, REASON_BAD_TOKEN
    age = received_at - loaded.rendered_at
    if age < datetime.timedelta(seconds=MIN_FILL_SECONDS):
        return loaded, REASON_TOO_FAST
    if age > MAX_TOKEN_AGE:
        return loaded, REASON_EXPIRED
    return loaded, None


def honeypot_filled(data: dict[str, Any], field_name: str) -> bool:
    """Whether the hidden trap input came back with anything in it."""
    if not field_name:
        return False
    value = data.get(field_name)
    if isinstance(value, list):
        return any(str(item).strip() for item in value)
    return bool(value is not None and str(value).strip())


def is_throttled(*, client_address: str | None) -> bool:
    """Over the per-address limit for form posts (Redis away: never throttled)."""
    return admit_hit(client_address=client_address, scope=THROTTLE_SCOPE) is Admission.LIMITED
