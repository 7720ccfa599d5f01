"""Which check a bearer token gets: the shared secret, or the Better Auth JWT plugin's keys.

The unverified header only chooses the path, by its `alg`: HS256/HS384/HS512 go to the shared
secret, the plugin's asymmetric algorithms to the key named by `kid`, anything else is refused.
Each path then accepts nothing but its own algorithms, and a published key only the algorithm
its own `kty`/`crv`/`alg` allow, so a token can never be checked with the wrong kind of key (no
HS/RS confusion): an asymmetric token never reaches the shared secret, even when no key set is
configured (it is then refused with a message saying so).
"""

from __future__ import annotations

from collections.abc import Sequence

import jwt

from auth.jwks import PLUGIN_ALGORITHMS, JWKSKeySet, UnknownKey
from auth.tokens import (
    MAX_TOKEN_LENGTH,
    InvalidTokenError,
    TokenClaims,
    TokenService,
    claims_from_payload,
    decode,
)
from settings import SHARED_SECRET_ALGORITHMS, Settings

JWKS_REQUIRED_CLAIMS = ("exp", "sub", "iss", "aud")
# Public-key algorithms a JWT may name (RFC 7518 and RFC 8037): none of them is ever checked
# against the shared secret. Those the plugin signs with are PLUGIN_ALGORITHMS.
ASYMMETRIC_ALGORITHMS = frozenset(
    {
        *("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
        *("ES256", "ES256K", "ES384", "ES512", "ES521", "EdDSA", "Ed25519", "Ed448"),
    }
)
PLUGIN_ALGORITHM_LIST = ", ".join(sorted(PLUGIN_ALGORITHMS))
NOT_A_JWT = (
    "A JWT is expected (header.payload.signature), not a session token: "
    "send the token from Better Auth's JWT plugin (/api/auth/token)"
)


def no_key_set(algorithm: str) -> str:
    return (
        f"Token is signed with {algorithm}, a Better Auth JWT plugin key, but this API has no "
        "key set to verify it: set BETTER_AUTH_URL (or BETTER_AUTH_JWKS_URL)"
    )


def unsupported_algorithm(algorithm: str) -> str:
    return (
        f"Token is signed with {algorithm}, which Better Auth's JWT plugin does not use "
        f"(accepted: {PLUGIN_ALGORITHM_LIST})"
    )


class TokenVerifier:
    def __init__(
        self,
        shared: TokenService,
        key_set: JWKSKeySet | None = None,
        issuers: Sequence[str] = (),
        audiences: Sequence[str] = (),
    ) -> None:
        if key_set is not None and not (issuers and audiences):
            raise ValueError("a key set needs the issuers and audiences its tokens must carry")
        self.shared = shared
        self.key_set = key_set
        # Lists: PyJWT 2.9 takes several issuers only as a list (2.10+ any sequence).
        self.issuers = list(issuers)
        self.audiences = list(audiences)

    async def verify(self, token: str) -> TokenClaims:
        """Every surface's check of a bearer token (REST, event tickets and streams, `/mcp`)."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidTokenError(f"Token is longer than {MAX_TOKEN_LENGTH} characters")
        if token.count(".") != 2:
            raise InvalidTokenError(NOT_A_JWT)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidTokenError("Invalid token") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str):
            raise InvalidTokenError("Invalid token")
        if algorithm in SHARED_SECRET_ALGORITHMS:
            return self.shared.verify(token)
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            # `none`, a missing or unknown `alg`: nothing can verify it.
            raise InvalidTokenError("Invalid token")
        if algorithm not in PLUGIN_ALGORITHMS:
            raise InvalidTokenError(unsupported_algorithm(algorithm))
        if self.key_set is None:
            raise InvalidTokenError(no_key_set(algorithm))
        return await self._verify_with_key_set(token, algorithm, header.get("kid"))

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
            audience=self.audiences,
            issuer=self.issuers,
        )
        return claims_from_payload(payload, token)


def build_token_verifier(settings: Settings, shared: TokenService) -> TokenVerifier:
    """The verifier the settings describe: the shared secret, plus the plugin's key set if set."""
    jwks_url = settings.jwks_url
    if jwks_url is None:
        return TokenVerifier(shared)
    return TokenVerifier(
        shared,
        JWKSKeySet(jwks_url),
        issuers=settings.accepted_issuers,
        audiences=settings.accepted_audiences,
    )
