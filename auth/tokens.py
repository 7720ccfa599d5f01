"""Issue and verify HS256 access tokens shared with the frontend's Better Auth.

Our tokens carry `sub`, `email`, `iat`, `exp` and `jti`. A frontend token signed with the same
secret that carries only `sub` and `exp` is equally valid; it has no `jti`, so its revocation
key is a digest of the token itself.

Our `iat` is a float with sub-second precision: a password change revokes every token issued
before that instant, and a token issued in the same second right after it must keep working.

`claims_from_payload` is the one validation of the claims every verifier's tokens go through
(shared secret and Better Auth's keys), for every surface (REST routes, event tickets and
streams, `/mcp`): PyJWT checks `exp`, `nbf` and `iat` with `int(...)`, so it lets a numeric
string through, and it never looks at `sub` or `jti`. Here each claim the app reads must have
its type, and `sub` the rules of a `{user_id}`: 1 to 255 characters, no control characters
(they would reach the log), no `/` (no URL path segment can carry it), no lone surrogates.

A token is revoked by its subject and `jti` together (two issuers' subjects may share a `jti`):
the key is a digest of both. Rows written before that keyed by the bare `jti`; they are still
checked (`legacy_revocation_key`) until they expire with their tokens.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from models import USER_ID_MAX_LENGTH

REQUIRED_CLAIMS = ("exp", "sub")
LATEST_TIMESTAMP = 253402214400  # 9999-12-31T00:00:00Z: later `exp` values are clamped
# Checked before any parsing: ours are ~250 characters, Better Auth's JWTs well under 2 KiB.
MAX_TOKEN_LENGTH = 8192
# C0 and C1 controls, DEL, the Unicode line and paragraph separators, `/` and lone surrogates.
FORBIDDEN_IN_SUBJECT = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029/\ud800-\udfff]")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
INVALID_SUBJECT = (
    f"Token claim 'sub' must be 1 to {USER_ID_MAX_LENGTH} characters, "
    "without control characters or '/'"
)
# What a bare `jti` had to be to serve as a revocation key before keys named the subject.
LEGACY_JTI_MAX_LENGTH = 128
SUBJECT_AND_JTI = "sub+jti:"
TOKEN_DIGEST = "sha256:"


class InvalidTokenError(Exception):
    """The token cannot be trusted; the message is safe to show to the client."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    sub: str
    expires_at: datetime
    revocation_key: str
    email: str | None = None
    name: str | None = None
    issued_at: float | None = None
    legacy_revocation_key: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int


class TokenService:
    def __init__(self, secret: str, algorithm: str, lifetime_seconds: int) -> None:
        self._secret = secret
        self._algorithm = algorithm
        self._algorithms = [algorithm]
        self._lifetime = lifetime_seconds

    def issue(self, user_id: str, email: str) -> IssuedToken:
        now = datetime.now(UTC)
        payload = {
            "sub": user_id,
            "email": email,
            "iat": now.timestamp(),
            "exp": now + timedelta(seconds=self._lifetime),
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(payload, self._secret, algorithm=self._algorithm)
        return IssuedToken(access_token=token, expires_in=self._lifetime)

    def verify(self, token: str) -> TokenClaims:
        payload = decode(token, self._secret, algorithms=self._algorithms, required=REQUIRED_CLAIMS)
        return claims_from_payload(payload, token)


def decode(
    token: str, key: Any, *, algorithms: list[str], required: tuple[str, ...], **expected: Any
) -> dict[str, Any]:
    """`jwt.decode`, with every failure turned into an InvalidTokenError a client may read."""
    try:
        return jwt.decode(
            token, key, algorithms=algorithms, options={"require": list(required)}, **expected
        )
    except jwt.ExpiredSignatureError:
        raise InvalidTokenError("Token has expired") from None
    except jwt.ImmatureSignatureError:
        raise InvalidTokenError("Token is not valid yet") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidTokenError(f"Token is missing the {exc.claim!r} claim") from None
    except jwt.InvalidAudienceError:
        raise InvalidTokenError("Token has the wrong audience") from None
    except jwt.InvalidIssuerError:
        raise InvalidTokenError("Token has the wrong issuer") from None
    except (jwt.PyJWTError, TypeError, ValueError, OverflowError):
        # A key that does not fit the algorithm, absurd numeric claims (`int(Infinity)`).
        raise InvalidTokenError("Invalid token") from None


def valid_subject(subject: object) -> bool:
    """Whether `subject` is a user id a URL can carry and a log line can show as it is."""
    return (
        isinstance(subject, str)
        and 0 < len(subject) <= USER_ID_MAX_LENGTH
        and FORBIDDEN_IN_SUBJECT.search(subject) is None
    )


def _number(payload: dict[str, Any], claim: str) -> float | None:
    """A numeric claim (NumericDate): a finite JSON number, or None when absent. An integer
    past the float range (JSON's numbers have no limit: `1` and 400 zeros) is refused too."""
    value = payload.get(claim)
    if value is None and claim not in payload:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTokenError(f"Token claim {claim!r} must be a number")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidTokenError(f"Token claim {claim!r} is out of range") from None
    if not math.isfinite(number):
        raise InvalidTokenError(f"Token claim {claim!r} must be a number")
    return number


def revocation_keys(subject: str, jti: str | None, token: str) -> tuple[str, str]:
    """The key a revocation of this token is stored under, and the one it had before keys
    named the subject (the bare `jti`), still checked until those rows expire."""
    if not jti:
        key = TOKEN_DIGEST + hashlib.sha256(token.encode()).hexdigest()
        return key, key
    # `sub` has no NUL, so the first one ends it: no two (sub, jti) pairs share a digest input.
    digest = hashlib.sha256(f"{subject}\x00{jti}".encode("utf-8", "surrogatepass")).hexdigest()
    # A bare `jti` is bound as a column value: one no column can hold (NUL, a lone surrogate,
    # which no UTF-8 encoder takes) cannot have been stored, so its token's digest stands in.
    legacy_jti = (
        len(jti) <= LEGACY_JTI_MAX_LENGTH
        and "\x00" not in jti
        and LONE_SURROGATE.search(jti) is None
    )
    legacy = jti if legacy_jti else TOKEN_DIGEST + hashlib.sha256(token.encode()).hexdigest()
    return SUBJECT_AND_JTI + digest, legacy


def claims_from_payload(payload: dict[str, Any], token: str) -> TokenClaims:
    """The claims of a token whose signature, `exp` and `nbf` have been verified, each of the
    type the app reads (InvalidTokenError naming the claim otherwise)."""
    subject = payload["sub"]
    if not valid_subject(subject):
        raise InvalidTokenError(INVALID_SUBJECT)
    expires = _number(payload, "exp")
    assert expires is not None  # a required claim
    issued_at = _number(payload, "iat")
    _number(payload, "nbf")
    jti = payload.get("jti")
    if jti is not None and not isinstance(jti, str):
        raise InvalidTokenError("Token claim 'jti' must be a string")
    revocation_key, legacy_key = revocation_keys(subject, jti, token)
    email = payload.get("email")
    name = payload.get("name")
    return TokenClaims(
        sub=subject,
        expires_at=datetime.fromtimestamp(min(expires, LATEST_TIMESTAMP), UTC),
        revocation_key=revocation_key,
        email=email if isinstance(email, str) else None,
        name=name if isinstance(name, str) else None,
        issued_at=issued_at,
        legacy_revocation_key=legacy_key,
    )
