"""Issue and verify HS256 access tokens shared with the frontend's Better Auth.

Our tokens carry `sub`, `email`, `iat`, `exp` and `jti`. A frontend token signed with the same
secret that carries only `sub` and `exp` is equally valid; it has no `jti`, so its revocation
key is a digest of the token itself.

Our `iat` is a float with sub-second precision: a password change revokes every token issued
before that instant, and a token issued in the same second right after it must keep working.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

REQUIRED_CLAIMS = ("exp", "sub")
LATEST_TIMESTAMP = 253402214400  # 9999-12-31T00:00:00Z: later `exp` values are clamped


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
    except (jwt.PyJWTError, TypeError, ValueError):
        # TypeError/ValueError: a key that does not fit the algorithm, absurd numeric claims.
        raise InvalidTokenError("Invalid token") from None


def _finite_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def claims_from_payload(payload: dict[str, Any], token: str) -> TokenClaims:
    """The claims of a token whose signature, `exp` and `nbf` have been verified."""
    subject = payload["sub"]
    if not isinstance(subject, str) or not subject or "\x00" in subject:
        raise InvalidTokenError("Invalid token subject")
    jti = payload.get("jti")
    revocation_key = (
        jti
        if isinstance(jti, str) and jti and len(jti) <= 128 and "\x00" not in jti
        else "sha256:" + hashlib.sha256(token.encode()).hexdigest()
    )
    email = payload.get("email")
    name = payload.get("name")
    issued_at = payload.get("iat")
    return TokenClaims(
        sub=subject,
        expires_at=datetime.fromtimestamp(min(payload["exp"], LATEST_TIMESTAMP), UTC),
        revocation_key=revocation_key,
        email=email if isinstance(email, str) else None,
        name=name if isinstance(name, str) else None,
        issued_at=_finite_number(issued_at),
    )
