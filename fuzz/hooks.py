"""schemathesis hooks (`SCHEMATHESIS_HOOKS=fuzz.hooks`): our string formats, and a fresh valid
token for every request.

The formats (`fuzz/formats.py`) carry the rules the length keywords cannot (a password's bytes).

Each request gets its own token for the account `.ci/fuzz` signed up (`FUZZ_USER_ID`), signed
with the server's secret (`FUZZ_SECRET`), so a fuzzed `POST /api/auth/logout` revokes only the
token of that one request and every later operation is still exercised while authenticated.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import schemathesis

from fuzz.formats import FORMATS

for name, values in FORMATS.items():
    schemathesis.openapi.format(name, values())


def mint_token() -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": os.environ["FUZZ_USER_ID"],
        "iat": now.timestamp(),
        "exp": now + timedelta(minutes=30),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, os.environ["FUZZ_SECRET"], algorithm="HS256")


@schemathesis.auth(refresh_interval=None)
class FreshBearerToken:
    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
        return mint_token()

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
