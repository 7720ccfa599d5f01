"""Which check a bearer token gets: the shared secret, or the Better Auth JWT plugin's keys.

The unverified header only chooses the path; each path then accepts nothing but its own
algorithms, so a token can never be checked with the wrong kind of key (no HS/RS confusion).
"""

from __future__ import annotations

import jwt

from auth.jwks import JWKSKeySet, UnknownKey
from auth.tokens import InvalidTokenError, TokenClaims, TokenService, claims_from_payload, decode

ASYMMETRIC_ALGORITHMS = frozenset({"EdDSA", "ES256", "RS256", "PS256"})
JWKS_REQUIRED_CLAIMS = ("exp", "sub", "iss", "aud")
NOT_A_JWT = (
    "A JWT is expected (header.payload.signature), not a session token: "
    "send the token from Better Auth's JWT plugin (/api/auth/token)"
)


class TokenVerifier:
    def __init__(
        self,
        shared: TokenService,
        key_set: JWKSKeySet | None = None,
        issuer: str | None = None,
    ) -> None:
        self.shared = shared
        self.key_set = key_set
        self.issuer = issuer

    async def verify(self, token: str) -> TokenClaims:
        if token.count(".") != 2:
            raise InvalidTokenError(NOT_A_JWT)
        if self.key_set is None:
            return self.shared.verify(token)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidTokenError("Invalid token") from None
        algorithm = header.get("alg")
        if algorithm in ASYMMETRIC_ALGORITHMS:
            return await self._verify_with_key_set(token, algorithm, header.get("kid"))
        return self.shared.verify(token)

    async def _verify_with_key_set(self, token: str, algorithm: str, kid: object) -> TokenClaims:
        assert self.key_set is not None
        if not isinstance(kid, str) or not kid:
            raise InvalidTokenError("Token has no key id ('kid')")
        try:
            key = await self.key_set.get(kid)
        except UnknownKey:
            raise InvalidTokenError("Token is signed with an unknown key") from None
        if algorithm not in key.algorithms:
            raise InvalidTokenError("Invalid token")
        payload = decode(
            token,
            key.key,
            algorithms=[algorithm],
            required=JWKS_REQUIRED_CLAIMS,
            audience=self.issuer,
            issuer=self.issuer,
        )
        return claims_from_payload(payload, token)
