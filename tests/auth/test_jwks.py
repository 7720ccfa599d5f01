"""Tokens of Better Auth's JWT plugin: asymmetric keys from a JWKS served by a local test server."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fastapi import FastAPI
from httpx import AsyncClient

import auth.jwks
from auth.verification import NOT_A_JWT
from tests.helpers import bearer, frontend_token

SUB = "ba-user-1"
URL = f"/api/{SUB}/tasks"


class SigningKey:
    """A private key and the public JWK the frontend would publish for it."""

    def __init__(self, algorithm: str = "EdDSA") -> None:
        self.algorithm = algorithm
        self.kid = uuid.uuid4().hex
        if algorithm == "EdDSA":
            self.private = ed25519.Ed25519PrivateKey.generate()
            to_jwk = jwt.algorithms.OKPAlgorithm.to_jwk
        elif algorithm == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
            to_jwk = jwt.algorithms.ECAlgorithm.to_jwk
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            to_jwk = jwt.algorithms.RSAAlgorithm.to_jwk
        self.jwk = {
            **to_jwk(self.private.public_key(), as_dict=True),
            "kid": self.kid,
            "alg": algorithm,
            "use": "sig",
        }

    def sign(self, claims: dict[str, Any], kid: str | None = None) -> str:
        return jwt.encode(
            claims, self.private, algorithm=self.algorithm, headers={"kid": kid or self.kid}
        )


class JWKSServer:
    """Serves `keys` as `/api/auth/jwks` on 127.0.0.1 and counts the requests."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.status = 200
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                body = json.dumps({"keys": server.keys}).encode()
                self.send_response(server.status if self.path == "/api/auth/jwks" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> JWKSServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    with JWKSServer() as server:
        yield server


@pytest.fixture
def signing_key(jwks_server: JWKSServer) -> SigningKey:
    key = SigningKey()
    jwks_server.keys = [key.jwk]
    return key


@pytest.fixture
def settings_overrides(jwks_server: JWKSServer) -> dict[str, object]:
    return {"better_auth_url": jwks_server.base_url}


@pytest.fixture
def clock(app: FastAPI) -> FakeClock:
    fake = FakeClock()
    app.state.token_verifier.key_set.clock = fake
    return fake


def claims(issuer: str, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    payload: dict[str, Any] = {
        "sub": SUB,
        "email": "ba@example.com",
        "name": "Better Auth",
        "iss": issuer,
        "aud": issuer,
        "iat": int(now.timestamp()),
        "exp": now + timedelta(minutes=15),
    }
    payload.update(overrides)
    return {key: value for key, value in payload.items() if value is not None}


async def _assert_401(client: AsyncClient, token: str, detail: str) -> None:
    response = await client.get(URL, headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.json() == {"detail": detail}
    assert response.headers["www-authenticate"] == "Bearer"


class TestAcceptedTokens:
    async def test_good_eddsa_token(
        self, client: AsyncClient, jwks_server: JWKSServer, signing_key: SigningKey
    ) -> None:
        token = signing_key.sign(claims(jwks_server.base_url))
        response = await client.get(URL, headers=bearer(token))
        assert response.status_code == 200
        assert response.json() == []
        me = await client.get("/api/auth/me", headers=bearer(token))
        assert me.json() == {
            "id": SUB,
            "email": "ba@example.com",
            "name": "Better Auth",
            "created_at": None,
        }

    @pytest.mark.parametrize("algorithm", ["ES256", "RS256", "PS256"])
    async def test_other_plugin_algorithms(
        self, client: AsyncClient, jwks_server: JWKSServer, algorithm: str
    ) -> None:
        key = SigningKey(algorithm)
        jwks_server.keys = [key.jwk]
        token = key.sign(claims(jwks_server.base_url))
        assert (await client.get(URL, headers=bearer(token))).status_code == 200

    async def test_keys_are_cached(
        self, client: AsyncClient, jwks_server: JWKSServer, signing_key: SigningKey
    ) -> None:
        for _ in range(3):
            token = signing_key.sign(claims(jwks_server.base_url, jti=uuid.uuid4().hex))
            assert (await client.get(URL, headers=bearer(token))).status_code == 200
        assert jwks_server.requests == 1

    async def test_concurrent_first_requests_fetch_once(
        self, client: AsyncClient, jwks_server: JWKSServer, signing_key: SigningKey
    ) -> None:
        token = signing_key.sign(claims(jwks_server.base_url))
        responses = await asyncio.gather(
            *(client.get(URL, headers=bearer(token)) for _ in range(5))
        )
        assert [r.status_code for r in responses] == [200] * 5
        assert jwks_server.requests == 1

    async def test_keys_are_fetched_off_the_event_loop(
        self,
        client: AsyncClient,
        jwks_server: JWKSServer,
        signing_key: SigningKey,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        threads: list[threading.Thread] = []
        original = auth.jwks._fetch_blocking

        def recording_fetch(url: str):
            threads.append(threading.current_thread())
            return original(url)

        monkeypatch.setattr(auth.jwks, "_fetch_blocking", recording_fetch)
        token = signing_key.sign(claims(jwks_server.base_url))
        assert (await client.get(URL, headers=bearer(token))).status_code == 200
        assert len(threads) == 1
        assert threads[0] is not threading.main_thread()

    async def test_shared_secret_tokens_keep_working(
        self, client: AsyncClient, jwks_server: JWKSServer
    ) -> None:
        assert (await client.get(URL, headers=bearer(frontend_token(SUB)))).status_code == 200
        assert jwks_server.requests == 0

    async def test_logout_revokes_a_plugin_token(
        self, client: AsyncClient, jwks_server: JWKSServer, signing_key: SigningKey
    ) -> None:
        token = signing_key.sign(claims(jwks_server.base_url))
        assert (await client.post("/api/auth/logout", headers=bearer(token))).status_code == 200
        await _assert_401(client, token, "Token has been revoked")


class TestRejectedTokens:
    async def test_expired(
        self, client: AsyncClient, jwks_server: JWKSServer, signing_key: SigningKey
    ) -> None:
        expired = datetime.now(UTC) - timedelta(seconds=1)
        token = signing_key.sign(claims(jwks_server.base_url, exp=expired))
        await _assert_401(client, token, "Token has expired")

    async def test_wrong_audience(
        self, client: AsyncClient, jwks_server: JWKSServer, signing_key: SigningKey
    ) -> None:
        token = signing_key.sign(claims(jwks_server.base_url, aud="https://elsewhere.example"))
        await _assert_401(client, token, "Token has the wrong audience")

    async def test_wrong_issuer(
        self, client: AsyncClient, jwks_server: JWKSServer, signing_key: SigningKey
    ) -> None:
        token = signing_key.sign(claims(jwks_server.base_url, iss="https://elsewhere.example"))
        await _assert_401(client, token, "Token has the wrong issuer")

    @pytest.mark.parametrize("claim", ["iss", "aud", "exp", "sub"])
    async def test_required_claims(
        self, client: AsyncClient, jwks_server: JWKSServer, signing_key: SigningKey, claim: str
    ) -> None:
        token = signing_key.sign(claims(jwks_server.base_url, **{claim: None}))
        await _assert_401(client, token, f"Token is missing the {claim!r} claim")

    async def test_forged_signature(self, client: AsyncClient, jwks_server: JWKSServer) -> None:
        published = SigningKey()
        jwks_server.keys = [published.jwk]
        token = SigningKey().sign(claims(jwks_server.base_url), kid=published.kid)
        await _assert_401(client, token, "Invalid token")

    async def test_key_type_must_match_the_algorithm(
        self, client: AsyncClient, jwks_server: JWKSServer
    ) -> None:
        rsa_key = SigningKey("RS256")
        jwks_server.keys = [rsa_key.jwk]
        forged = SigningKey("ES256").sign(claims(jwks_server.base_url), kid=rsa_key.kid)
        await _assert_401(client, forged, "Invalid token")

    async def test_no_kid(
        self, client: AsyncClient, jwks_server: JWKSServer, signing_key: SigningKey
    ) -> None:
        token = jwt.encode(claims(jwks_server.base_url), signing_key.private, algorithm="EdDSA")
        await _assert_401(client, token, "Token has no key id ('kid')")

    async def test_session_token_is_told_a_jwt_is_expected(self, client: AsyncClient) -> None:
        for session_token in ("Xy3kq9ZT0pLmN4vB8cR2sW7eA1uJ6hGf", "Xy3kq9ZT0pLmN4vB.c2lnbmF0dXJl"):
            await _assert_401(client, session_token, NOT_A_JWT)
        assert "JWT is expected" in NOT_A_JWT


class TestKeyRotation:
    async def test_unknown_kid_refetches_at_most_once_a_minute(
        self,
        client: AsyncClient,
        jwks_server: JWKSServer,
        signing_key: SigningKey,
        clock: FakeClock,
    ) -> None:
        good = signing_key.sign(claims(jwks_server.base_url))
        assert (await client.get(URL, headers=bearer(good))).status_code == 200
        assert jwks_server.requests == 1

        for n in range(3):
            clock.now += 10
            token = signing_key.sign(claims(jwks_server.base_url), kid=f"unknown-{n}")
            await _assert_401(client, token, "Token is signed with an unknown key")
        assert jwks_server.requests == 1

        clock.now += 31
        token = signing_key.sign(claims(jwks_server.base_url), kid="unknown-late")
        await _assert_401(client, token, "Token is signed with an unknown key")
        assert jwks_server.requests == 2

    async def test_rotated_key_is_picked_up(
        self,
        client: AsyncClient,
        jwks_server: JWKSServer,
        signing_key: SigningKey,
        clock: FakeClock,
    ) -> None:
        old_token = signing_key.sign(claims(jwks_server.base_url))
        assert (await client.get(URL, headers=bearer(old_token))).status_code == 200

        rotated = SigningKey()
        jwks_server.keys = [rotated.jwk]
        clock.now += 60
        new_token = rotated.sign(claims(jwks_server.base_url))
        assert (await client.get(URL, headers=bearer(new_token))).status_code == 200
        assert jwks_server.requests == 2
        await _assert_401(client, old_token, "Token is signed with an unknown key")

    async def test_rotation_with_a_grace_period_keeps_both_keys(
        self,
        client: AsyncClient,
        jwks_server: JWKSServer,
        signing_key: SigningKey,
        clock: FakeClock,
    ) -> None:
        old_token = signing_key.sign(claims(jwks_server.base_url))
        assert (await client.get(URL, headers=bearer(old_token))).status_code == 200
        rotated = SigningKey()
        jwks_server.keys = [rotated.jwk, signing_key.jwk]
        clock.now += 61
        new_token = rotated.sign(claims(jwks_server.base_url))
        assert (await client.get(URL, headers=bearer(new_token))).status_code == 200
        assert (await client.get(URL, headers=bearer(old_token))).status_code == 200


class TestKeySetUnavailable:
    async def test_unreachable_key_set_is_503(
        self, client: AsyncClient, jwks_server: JWKSServer, signing_key: SigningKey
    ) -> None:
        jwks_server.status = 500
        token = signing_key.sign(claims(jwks_server.base_url))
        response = await client.get(URL, headers=bearer(token))
        assert response.status_code == 503
        assert response.json() == {"detail": "The keys to verify this token are unavailable"}
        assert int(response.headers["retry-after"]) > 0

    async def test_cached_keys_survive_an_outage(
        self,
        client: AsyncClient,
        jwks_server: JWKSServer,
        signing_key: SigningKey,
        clock: FakeClock,
    ) -> None:
        token = signing_key.sign(claims(jwks_server.base_url))
        assert (await client.get(URL, headers=bearer(token))).status_code == 200
        jwks_server.status = 500
        clock.now += 120
        stranger = signing_key.sign(claims(jwks_server.base_url), kid="unknown")
        await _assert_401(client, stranger, "Token is signed with an unknown key")
        assert (await client.get(URL, headers=bearer(token))).status_code == 200


class TestWithoutJWKS:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {}

    async def test_asymmetric_tokens_are_refused(self, client: AsyncClient) -> None:
        key = SigningKey()
        token = key.sign(claims("http://127.0.0.1:9"))
        await _assert_401(client, token, "Invalid token")

    async def test_session_token_is_told_a_jwt_is_expected(self, client: AsyncClient) -> None:
        await _assert_401(client, "opaque-session-token", NOT_A_JWT)
