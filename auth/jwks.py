"""The public keys of the frontend's Better Auth JWT plugin (`Settings.jwks_url`).

Keys are fetched in a worker thread (urllib blocks), cached by `kid`, and refetched when a token
names a `kid` the cache does not know, at most once per `min_refetch_seconds`, so a stream of
forged `kid`s cannot turn the API into a load generator against the frontend. One fetch runs at a
time; requests that wait for it reuse its result.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import jwt

logger = logging.getLogger("todo.jwks")

MIN_REFETCH_SECONDS = 60.0
FETCH_TIMEOUT_SECONDS = 5.0
MAX_JWKS_BYTES = 1024 * 1024


# What Better Auth's JWT plugin signs with (`jwks.keyPairConfig.alg` in better-auth 1.7: EdDSA on
# Ed25519, ES256 on P-256, ES512 on P-521, RS256 and PS256 on RSA), by the key that can make it.
# A key verifies only what its own `kty`/`crv` allow: its published `alg` when it has one (and
# that `alg` fits the key), otherwise every algorithm of its family. Other key types (Ed448, P-384,
# secp256k1, symmetric `oct` keys) are never made by the plugin and are skipped.
KEY_ALGORITHMS: dict[tuple[str, str | None], tuple[str, ...]] = {
    ("OKP", "Ed25519"): ("EdDSA",),
    ("EC", "P-256"): ("ES256",),
    ("EC", "P-521"): ("ES512",),
    ("RSA", None): ("RS256", "PS256"),
}
PLUGIN_ALGORITHMS = frozenset(
    algorithm for algorithms in KEY_ALGORITHMS.values() for algorithm in algorithms
)


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A published key and the algorithms a token signed with it may name."""

    key: Any
    algorithms: tuple[str, ...]


class UnusableKey(ValueError):
    """A published key the plugin could not have made, or whose `alg` does not fit it."""


def verification_key(document: dict[str, Any]) -> VerificationKey:
    """The key of one JWKS entry, pinned to the algorithms its own `kty`/`crv`/`alg` allow."""
    kty = document.get("kty")
    crv = document.get("crv") if kty in ("OKP", "EC") else None
    shape = f"{kty} {crv}" if crv is not None else str(kty)
    family = None
    if isinstance(kty, str) and (crv is None or isinstance(crv, str)):
        family = KEY_ALGORITHMS.get((kty, crv))
    if family is None:
        raise UnusableKey(f"a {shape} key is not one Better Auth's JWT plugin makes")
    use = document.get("use")
    if use is not None and use != "sig":
        raise UnusableKey(f"the key is for {use!r}, not for signatures")
    declared = document.get("alg")
    if declared is None:
        algorithms = family
    elif declared in family:
        algorithms = (declared,)
    else:
        raise UnusableKey(f"alg {declared!r} does not fit a {shape} key")
    return VerificationKey(jwt.PyJWK(document, algorithm=algorithms[0]).key, algorithms)


class KeySetUnavailable(Exception):
    """The key set could not be fetched and no cached key matches."""


class UnknownKey(Exception):
    """The key set, fetched recently, has no key with this `kid`."""


def _fetch_blocking(url: str) -> dict[str, VerificationKey]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response:
        raw = response.read(MAX_JWKS_BYTES + 1)
    if len(raw) > MAX_JWKS_BYTES:
        raise ValueError(f"JWKS larger than {MAX_JWKS_BYTES} bytes")
    document: Any = json.loads(raw)
    if not isinstance(document, dict):
        raise ValueError("JWKS is not a JSON object")
    keys: dict[str, VerificationKey] = {}
    for entry in document.get("keys") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        try:
            keys[entry["kid"]] = verification_key(entry)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            logger.warning("skipping unusable key %r in the JWKS: %s", entry["kid"], exc)
    if not keys:
        raise ValueError("the JWKS has no usable key with a 'kid'")
    return keys


class JWKSKeySet:
    def __init__(
        self,
        url: str,
        *,
        min_refetch_seconds: float = MIN_REFETCH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.min_refetch_seconds = min_refetch_seconds
        self.clock = clock
        self._keys: dict[str, VerificationKey] = {}
        self._last_fetch: float | None = None
        self._lock = anyio.Lock()

    def _may_fetch(self) -> bool:
        return (
            self._last_fetch is None or self.clock() - self._last_fetch >= self.min_refetch_seconds
        )

    async def get(self, kid: str) -> VerificationKey:
        """The key named `kid`, fetching the key set if it is unknown and a fetch is allowed."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._keys.get(kid)
            if key is None and self._may_fetch():
                await self._refresh()
                key = self._keys.get(kid)
        if key is not None:
            return key
        if not self._keys and self._last_fetch is not None:
            raise KeySetUnavailable(self.url)
        raise UnknownKey(kid)

    async def _refresh(self) -> None:
        self._last_fetch = self.clock()
        try:
            keys = await anyio.to_thread.run_sync(_fetch_blocking, self.url)
        except Exception as exc:
            logger.warning("cannot fetch the JWKS from %s: %s", self.url, exc)
            if not self._keys:
                raise KeySetUnavailable(self.url) from None
            return
        self._keys = keys
