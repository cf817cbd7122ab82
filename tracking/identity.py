"""Signed identification tokens: the site says "this visitor is prospect N" with ``mapp('identify',
token)``.

A token is the prospect's id signed with the app's SECRET_KEY (``TimestampSigner``, salt
``mapp.identify``) and is valid for one day. Only mapp can make one — on pages it renders (landing
pages, thank-you pages) or for a back end that asks mapp for it — so a visitor cannot claim to be
somebody else by typing a number.
"""

from __future__ import annotations

import datetime

from django.core import signing
from django.utils.translation import gettext as _

IDENTIFY_SALT = "mapp.identify"
IDENTIFY_MAX_AGE = datetime.timedelta(days=1)
# A real token is ≈ 40 characters; a longer value is garbage and is not even unsigned.
MAX_TOKEN_LENGTH = 200


class IdentifyTokenError(ValueError):
    """The token is tampered, malformed or expired; ``str(error)`` is a message for the caller."""


def identify_token_for(prospect_id: int) -> str:
    return signing.TimestampSigner(salt=IDENTIFY_SALT).sign(str(int(prospect_id)))


def prospect_id_from_identify_token(token: str) -> int:
    """The prospect id the token vouches for; raises :class:`IdentifyTokenError` otherwise."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise IdentifyTokenError(_("The identification token is missing or malformed."))
    signer = signing.TimestampSigner(salt=IDENTIFY_SALT)
    try:
        value = signer.unsign(token, max_age=IDENTIFY_MAX_AGE)
    except signing.SignatureExpired as error:
        raise IdentifyTokenError(_("The identification token has expired.")) from error
    except signing.BadSignature as error:
        raise IdentifyTokenError(_("The identification token is not valid.")) from error
    if not value.isdigit():
        raise IdentifyTokenError(_("The identification token is not valid."))
    return int(value)
