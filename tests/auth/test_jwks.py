"""Tokens of Better Auth's JWT plugin: asymmetric keys from a JWKS served by a local test server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
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
from auth.jwks import UnusableKey, verification_key
from auth.verification import NOT_A_JWT, no_key_set, unsupported_algorithm
from tests.helpers import TEST_SECRET, bearer, frontend_token

SUB = "ba-user-1"
URL = f"/api/{SUB}/tasks"


PLUGIN_ALGORITHMS = ["EdDSA", "ES256", "ES512", "RS256", "PS256"]
CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}


class SigningKey:
    """A private key and the public JWK the frontend would publish for it (as Better Auth does:
    `alg`, `crv` for OKP and EC keys, `kid`; `publish_alg=False` leaves `alg` out)."""

    def __init__(self, algorithm: str = "EdDSA", *, publish_alg: bool = True) -> None:
        self.algorithm = algorithm
        self.kid = uuid.uuid4().hex
        if algorithm == "EdDSA":
            self.private = ed25519.Ed25519PrivateKey.generate()
            to_jwk = jwt.algorithms.OKPAlgorithm.to_jwk
        elif algorithm in CURVES:
            self.private = ec.generate_private_key(CURVES[algorithm]())
            to_jwk = jwt.algorithms.ECAlgorithm.to_jwk
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            to_jwk = jwt.algorithms.RSAAlgorithm.to_jwk
        self.jwk = {**to_jwk(self.private.public_key(), as_dict=True), "kid": self.kid}
        if publish_alg:
            self.jwk["alg"] = algorithm

    def sign(self, claims: dict[str, Any], kid: str | None = None) -> str:
        return jwt.encode(
            claims, self.private, algorithm=self.algorithm, headers={"kid": kid or self.kid}
        )


class JWKSServer:
    """Serves `keys` as `/api/auth/jwks` on 127.0.0.1 and counts the requests."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.path = "/api/auth/jwks"
        self.status = 200
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                body = json.dumps({"keys": server.keys}).encode()
                self.send_response(server.status if self.path == server.path else 404)
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


def _segment(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _hmac_token_claiming(header: dict[str, Any], payload: dict[str, Any]) -> str:
    """A token with any `header`, signed with HS256 and the shared secret (what an attacker who
    hopes the asymmetric `alg` is checked as HMAC would send)."""
    payload = {"exp": int((datetime.now(UTC) + timedelta(minutes=5)).timestamp()), **payload}
    signing_input = f"{_segment(header)}.{_segment(payload)}"
    mac = hmac.new(TEST_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


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

    @pytest.mark.parametrize("publish_alg", [True, False], ids=["alg", "kty-crv"])
    @pytest.mark.parametrize("algorithm", PLUGIN_ALGORITHMS)
    async def test_every_plugin_algorithm(
        self, client: AsyncClient, jwks_server: JWKSServer, algorithm: str, publish_alg: bool
    ) -> None:
        """Each `keyPairConfig.alg` the plugin offers, with the key's `alg` published or (older
        key sets) derived from its `kty`/`crv`."""
        key = SigningKey(algorithm, publish_alg=publish_alg)
        jwks_server.keys = [key.jwk]
        token = key.sign(claims(jwks_server.base_url))
        response = await client.get(URL, headers=bearer(token))
        assert response.status_code == 200, response.text

    async def test_key_sets_with_several_algorithms(
        self, client: AsyncClient, jwks_server: JWKSServer
    ) -> None:
        """`jwks.keyPairConfigs` publishes keys of several algorithms side by side."""
        keys = [SigningKey(algorithm) for algorithm in PLUGIN_ALGORITHMS]
        jwks_server.keys = [key.jwk for key in keys]
        for key in keys:
            token = key.sign(claims(jwks_server.base_url, jti=uuid.uuid4().hex))
            assert (await client.get(URL, headers=bearer(token))).status_code == 200
        assert jwks_server.requests == 1

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

    @pytest.mark.parametrize("algorithm", PLUGIN_ALGORITHMS)
    async def test_plugin_tokens_are_refused_with_the_setting_to_set(
        self, client: AsyncClient, algorithm: str
    ) -> None:
        key = SigningKey(algorithm)
        token = key.sign(claims("http://127.0.0.1:9"))
        await _assert_401(client, token, no_key_set(algorithm))
        assert "set BETTER_AUTH_URL" in no_key_set(algorithm)

    async def test_asymmetric_header_never_reaches_the_shared_secret(
        self, client: AsyncClient
    ) -> None:
        """`alg: ES512` over an HMAC made with the shared secret (algorithm confusion)."""
        token = _hmac_token_claiming({"alg": "ES512", "typ": "JWT"}, {"sub": SUB})
        await _assert_401(client, token, no_key_set("ES512"))

    async def test_shared_secret_tokens_keep_working(self, client: AsyncClient) -> None:
        assert (await client.get(URL, headers=bearer(frontend_token(SUB)))).status_code == 200

    async def test_session_token_is_told_a_jwt_is_expected(self, client: AsyncClient) -> None:
        await _assert_401(client, "opaque-session-token", NOT_A_JWT)


class TestKeyPinning:
    """A published key verifies only its own algorithm; an asymmetric `alg` never meets HMAC."""

    async def test_es512_token_on_an_es256_key_is_refused(
        self, client: AsyncClient, jwks_server: JWKSServer
    ) -> None:
        published = SigningKey("ES256")
        jwks_server.keys = [published.jwk]
        token = SigningKey("ES512").sign(claims(jwks_server.base_url), kid=published.kid)
        await _assert_401(client, token, "Invalid token")

    async def test_a_published_alg_pins_an_rsa_key(
        self, client: AsyncClient, jwks_server: JWKSServer
    ) -> None:
        """RS256 and PS256 share RSA keys: a key that says RS256 does not verify PS256."""
        key = SigningKey("RS256")
        jwks_server.keys = [key.jwk]
        pss = jwt.encode(
            claims(jwks_server.base_url), key.private, algorithm="PS256", headers={"kid": key.kid}
        )
        await _assert_401(client, pss, "Invalid token")
        assert (
            await client.get(URL, headers=bearer(key.sign(claims(jwks_server.base_url))))
        ).status_code == 200

    async def test_hmac_under_a_plugin_alg_is_refused(
        self, client: AsyncClient, jwks_server: JWKSServer, signing_key: SigningKey
    ) -> None:
        token = _hmac_token_claiming(
            {"alg": "EdDSA", "kid": signing_key.kid},
            {"sub": SUB, "iss": jwks_server.base_url, "aud": jwks_server.base_url},
        )
        await _assert_401(client, token, "Invalid token")
        token = _hmac_token_claiming({"alg": "ES512", "kid": "not-published"}, {"sub": SUB})
        await _assert_401(client, token, "Token is signed with an unknown key")

    @pytest.mark.parametrize("algorithm", ["RS384", "RS512", "PS512", "ES384", "ES256K", "Ed448"])
    async def test_algorithms_the_plugin_never_uses(
        self, client: AsyncClient, jwks_server: JWKSServer, algorithm: str
    ) -> None:
        token = _hmac_token_claiming({"alg": algorithm, "kid": "k"}, {"sub": SUB})
        await _assert_401(client, token, unsupported_algorithm(algorithm))
        assert jwks_server.requests == 0

    @pytest.mark.parametrize(
        "header",
        [{"alg": "none"}, {"alg": ["EdDSA"]}, {"alg": None}, {"typ": "JWT"}, {"alg": "XYZ"}],
        ids=["none", "list", "null", "missing", "unknown"],
    )
    async def test_unusable_alg_headers(
        self, client: AsyncClient, jwks_server: JWKSServer, header: dict[str, Any]
    ) -> None:
        token = _hmac_token_claiming(header, {"sub": SUB})
        await _assert_401(client, token, "Invalid token")

    async def test_keys_that_do_not_fit_their_alg_are_skipped(
        self,
        client: AsyncClient,
        jwks_server: JWKSServer,
        signing_key: SigningKey,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        p521 = SigningKey("ES512")
        liar = {**p521.jwk, "alg": "ES256"}
        p384 = SigningKey("ES384")
        jwks_server.keys = [liar, p384.jwk, {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]
        jwks_server.keys.append(signing_key.jwk)
        caplog.set_level(logging.WARNING, logger="todo.jwks")
        assert (
            await client.get(URL, headers=bearer(signing_key.sign(claims(jwks_server.base_url))))
        ).status_code == 200
        token = p521.sign(claims(jwks_server.base_url))
        await _assert_401(client, token, "Token is signed with an unknown key")
        assert "skipping unusable key" in caplog.text


class TestVerificationKey:
    @pytest.mark.parametrize(
        ("algorithm", "expected"),
        [
            ("EdDSA", ("EdDSA",)),
            ("ES256", ("ES256",)),
            ("ES512", ("ES512",)),
            ("RS256", ("RS256", "PS256")),
            ("PS256", ("RS256", "PS256")),
        ],
    )
    def test_without_alg_the_key_type_decides(
        self, algorithm: str, expected: tuple[str, ...]
    ) -> None:
        key = SigningKey(algorithm, publish_alg=False)
        assert verification_key(key.jwk).algorithms == expected

    @pytest.mark.parametrize("algorithm", PLUGIN_ALGORITHMS)
    def test_a_published_alg_is_the_only_one(self, algorithm: str) -> None:
        assert verification_key(SigningKey(algorithm).jwk).algorithms == (algorithm,)

    @pytest.mark.parametrize(
        ("document", "reason"),
        [
            ({**SigningKey("ES512").jwk, "alg": "ES256"}, "does not fit"),
            ({**SigningKey("ES256").jwk, "alg": "ES512"}, "does not fit"),
            ({**SigningKey("EdDSA").jwk, "alg": "ES256"}, "does not fit"),
            ({**SigningKey("ES384").jwk}, "EC P-384"),
            ({**SigningKey("ES256").jwk, "crv": None}, "EC"),
            ({**SigningKey("EdDSA").jwk, "crv": ["Ed25519"]}, "OKP"),
            ({**SigningKey("EdDSA").jwk, "use": "enc"}, "not for signatures"),
            ({"kty": "oct", "k": "c2VjcmV0"}, "oct"),
            ({"kid": "no-kty"}, "None"),
        ],
    )
    def test_keys_the_plugin_cannot_have_made(self, document: dict[str, Any], reason: str) -> None:
        with pytest.raises(UnusableKey, match=reason):
            verification_key(document)


class TestCustomIssuerAndAudience:
    """`jwt: { issuer, audience }` on the frontend, mirrored by BETTER_AUTH_ISSUER/_AUDIENCE."""

    ISSUER = "https://auth.example.test"
    AUDIENCE = "https://api.example.test"

    @pytest.fixture
    def settings_overrides(self, jwks_server: JWKSServer) -> dict[str, object]:
        return {
            "better_auth_url": jwks_server.base_url,
            "better_auth_issuer": f"{self.ISSUER},{jwks_server.base_url}",
            "better_auth_audience": f"{self.AUDIENCE}, urn:todo-api",
        }

    @pytest.mark.parametrize(
        "audience", [AUDIENCE, "urn:todo-api", [AUDIENCE, "https://other.example"]]
    )
    async def test_accepted(
        self, client: AsyncClient, signing_key: SigningKey, audience: str | list[str]
    ) -> None:
        token = signing_key.sign(claims(self.ISSUER, aud=audience))
        assert (await client.get(URL, headers=bearer(token))).status_code == 200

    async def test_every_listed_issuer_is_accepted(
        self, client: AsyncClient, jwks_server: JWKSServer, signing_key: SigningKey
    ) -> None:
        token = signing_key.sign(claims(jwks_server.base_url, aud=self.AUDIENCE))
        assert (await client.get(URL, headers=bearer(token))).status_code == 200

    async def test_the_default_audience_is_no_longer_accepted(
        self, client: AsyncClient, jwks_server: JWKSServer, signing_key: SigningKey
    ) -> None:
        token = signing_key.sign(claims(self.ISSUER, aud=jwks_server.base_url))
        await _assert_401(client, token, "Token has the wrong audience")

    async def test_other_issuers_are_refused(
        self, client: AsyncClient, signing_key: SigningKey
    ) -> None:
        token = signing_key.sign(claims("https://evil.example", aud=self.AUDIENCE))
        await _assert_401(client, token, "Token has the wrong issuer")


class TestBaseURLWithPath:
    """BETTER_AUTH_URL=https://app/api/auth: Better Auth serves `{baseURL}/jwks` and signs with
    the origin only as `iss` and `aud`."""

    @pytest.fixture
    def settings_overrides(self, jwks_server: JWKSServer) -> dict[str, object]:
        return {"better_auth_url": jwks_server.base_url + "/api/auth/"}

    async def test_origin_is_issuer_and_audience(
        self, client: AsyncClient, jwks_server: JWKSServer, signing_key: SigningKey
    ) -> None:
        token = signing_key.sign(claims(jwks_server.base_url))
        assert (await client.get(URL, headers=bearer(token))).status_code == 200
        assert jwks_server.requests == 1
        with_path = signing_key.sign(claims(jwks_server.base_url + "/api/auth"))
        await _assert_401(client, with_path, "Token has the wrong issuer")
