"""The `Idempotency-Key` request header (draft-ietf-httpapi-idempotency-key-header-07).

The key is a structured-field string (RFC 8941 §3.3.3): a quoted string of printable ASCII, here
1 to 255 characters. It is scoped by the caller (the token's subject, or the client address for
signup), and the request's fingerprint (method, path with query, body) tells a retry from a
different request reusing the key.
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import timedelta
from typing import Annotated

from cryptography.fernet import Fernet, InvalidToken
from fastapi import Header, HTTPException, Request, status
from pydantic import WithJsonSchema

from tasks.idempotency import IdempotencyKey

REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# sf-string = DQUOTE *( unescaped / "\\" ( DQUOTE / "\\" ) ) DQUOTE
# unescaped = %x20-21 / %x23-5B / %x5D-7E; here 1 to 255 characters once unescaped.
SF_STRING = re.compile(r'^"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\]){1,255}"$')
# The documented form is the common one (a UUID, a token): what the schema allows, the server
# accepts; the server also takes the rest of the sf-string alphabet (spaces, escapes, ...).
DOCUMENTED_KEY_PATTERN = r'^"[A-Za-z0-9._:~+/=-]{1,255}"$'
EXAMPLE_KEY = '"8e03978e-40d5-43e8-bc93-6894a57f9324"'
INVALID_KEY = (
    "Idempotency-Key must be a structured-field string: 1 to 255 printable ASCII characters "
    f"in double quotes, e.g. Idempotency-Key: {EXAMPLE_KEY}"
)

IdempotencyKeyHeader = Annotated[
    str | None,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DOCUMENTED_KEY_PATTERN,
            "maxLength": MAX_KEY_LENGTH + 2,
            "examples": [EXAMPLE_KEY],
        }
    ),
    Header(
        description="Makes the request safe to retry for 24 hours: a retry with the same key "
        "and the same request replays the first answer (`Idempotent-Replayed: true`). A quoted "
        'string, e.g. `"8e03978e-40d5-43e8-bc93-6894a57f9324"`.',
        max_length=2 * MAX_KEY_LENGTH + 2,
    ),
]


def parse_key(value: str) -> str:
    """The key inside a structured-field string; 400 when it is not one."""
    value = value.strip()
    if SF_STRING.fullmatch(value) is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=INVALID_KEY)
    return re.sub(r"\\(.)", r"\1", value[1:-1])


async def read_idempotency_key(
    request: Request, value: str | None, scope: str
) -> IdempotencyKey | None:
    """The request's key, scoped and fingerprinted, or None without the header."""
    if value is None:
        return None
    key = parse_key(value)
    fingerprint = hashlib.sha256()
    target = request.url.path + ("?" + request.url.query if request.url.query else "")
    for part in (request.method.encode(), target.encode(), await request.body()):
        fingerprint.update(len(part).to_bytes(8, "big"))
        fingerprint.update(part)
    hours = request.app.state.settings.idempotency_key_lifetime_hours
    return IdempotencyKey(scope, key, fingerprint.hexdigest(), timedelta(hours=hours))


class SealedBodies:
    """Encrypts a stored answer that carries a credential (signup's token) with a key derived
    from the server's secret: the database alone never holds a usable token. An answer sealed
    under another secret (it changed) cannot be opened and counts as absent."""

    def __init__(self, secret: str) -> None:
        digest = hashlib.sha256(b"todo idempotency records\0" + secret.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, body: bytes) -> str:
        return self._fernet.encrypt(body).decode("ascii")

    def open(self, sealed: str) -> bytes | None:
        try:
            return self._fernet.decrypt(sealed.encode("ascii"))
        except InvalidToken:
            return None
