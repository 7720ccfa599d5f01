"""schemathesis hooks (`SCHEMATHESIS_HOOKS=fuzz.hooks`): our string formats, a fresh valid
token for every request, and values no schema generates.

The formats (`fuzz/formats.py`) carry the rules the length keywords cannot (a password's bytes).

Each request gets its own token for the account `.ci/fuzz` signed up (`FUZZ_USER_ID`), signed
with the server's secret (`FUZZ_SECRET`), so a fuzzed `POST /api/auth/logout` revokes only the
token of that one request and every later operation is still exercised while authenticated.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import schemathesis
from schemathesis.generation.modes import GenerationMode

from fuzz.formats import FORMATS
from routes.idempotency import SF_STRING

for name, values in FORMATS.items():
    schemathesis.openapi.format(name, values())

# Values Python's JSON parser reads but JSON cannot carry (or no column holds): a schema never
# generates them, so some negative cases get one in a field, sent as the raw text a client would
# write. Each must be refused with a 4xx.
NON_JSON_VALUES: tuple[object, ...] = (
    float("nan"),
    float("inf"),
    float("-inf"),
    10**400,
    2**63,
    "\ud800",
    "ok \udfff",
    ["\udbff"],
)
INJECTED = random.Random(os.environ.get("FUZZ_SEED", "20261122"))


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


def _inject_non_json_value(case: schemathesis.Case) -> None:
    """Half the negative cases with an object body get a value of NON_JSON_VALUES in one field,
    sent as bytes (NaN, Infinity and \\udXXX escapes as a client would write them)."""
    if not isinstance(case.body, dict) or not case.body or INJECTED.random() >= 0.5:
        return
    field = INJECTED.choice(sorted(case.body))
    value = INJECTED.choice(NON_JSON_VALUES)
    case.body = json.dumps({**case.body, field: value}, allow_nan=True).encode()


@schemathesis.hook
def before_call(
    context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]
) -> None:
    """A client sends a new, well-formed key with each new request. The fuzzer repeats the few
    keys it generates (the documented example above all) across different bodies, which the
    server rightly refuses (422: one key, another request, as tests of its own cover), and its
    coverage phase fills the header of some valid cases with values outside the documented
    pattern (`0`). A valid case gets a fresh key of its own; a case meant to be invalid keeps
    its malformed key, to be refused with 400."""
    headers = dict(case.headers or {})
    positive = case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE
    if not positive:
        _inject_non_json_value(case)
    for name, value in headers.items():
        if name.lower() != "idempotency-key" or not isinstance(value, str):
            continue
        if positive or SF_STRING.fullmatch(value.strip()):
            headers[name] = f'"{uuid.uuid4()}"'
            case.headers = headers
        return
