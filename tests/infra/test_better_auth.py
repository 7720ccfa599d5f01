"""The real Better Auth (pinned in tests/infra/better_auth) issues tokens to the task routes.

Users sign up through Better Auth's HTTP API and get their JWTs as a Next.js frontend does
(`GET /api/auth/token` with the session cookie, or the `set-auth-jwt` header of
`GET /api/auth/get-session`). The API runs in this process (one test runs it under uvicorn) and
fetches the plugin's key set over HTTP from the issuer, like in production. Covered: every
`keyPairConfig.alg` the plugin offers, a custom `jwt.issuer`/`jwt.audience`, a `baseURL` with a
path, key rotation, tampered and foreign tokens, the opaque session token, and logout.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import jwt
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from auth.verification import NOT_A_JWT, no_key_set
from main import create_app
from settings import load_settings
from tests.helpers import TEST_SECRET, bearer
from tests.infra.apps import running_app
from tests.infra.conftest import skip_or_fail
from tests.infra.issuer import (
    BetterAuthUser,
    Issuer,
    missing_node,
    pinned_version,
    prepare_project,
    running_issuer,
    sign_up,
)

pytestmark = pytest.mark.infra

# `jwks.keyPairConfig.alg` in better-auth 1.7 (its JWKOptions type), and the curve it publishes.
PLUGIN_ALGORITHMS = {
    "EdDSA": "Ed25519",
    "ES256": "P-256",
    "ES512": "P-521",
    "RS256": None,
    "PS256": None,
}
TOKEN_LIFETIME_SECONDS = 15 * 60  # the plugin's default `jwt.expirationTime`
CUSTOM_ISSUER = "https://auth.example.test"
CUSTOM_AUDIENCES = ("https://api.example.test", "urn:todo-api")
ROTATION_SECONDS = 2

IssuerFactory = Callable[..., Issuer]


@pytest.fixture(scope="module")
def issuer_project() -> Path:
    reason = missing_node()
    if reason:
        skip_or_fail(reason)
    return prepare_project()


@pytest.fixture(scope="module")
def issuers(
    issuer_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IssuerFactory]:
    """`issuers(ISSUER_ALG="ES512", ...)`: a Better Auth server with these settings, started on
    first use and shared by the module's tests (accounts differ per test)."""
    logs = tmp_path_factory.mktemp("issuers")
    started: dict[tuple[tuple[str, str], ...], Issuer] = {}
    with ExitStack() as stack:

        def get(**settings: str) -> Issuer:
            key = tuple(sorted(settings.items()))
            if key not in started:
                issuer = stack.enter_context(running_issuer(issuer_project, logs, **settings))
                assert issuer.version == pinned_version()
                started[key] = issuer
            return started[key]

        yield get


@asynccontextmanager
async def api(tmp_path: Path, **settings: Any) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """Our API on a fresh SQLite database, with these settings (BETTER_AUTH_URL, ...)."""
    app = create_app(
        load_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / f'api-{uuid.uuid4().hex[:8]}.db'}",
            better_auth_secret=TEST_SECRET,
            bcrypt_rounds=4,
            environment="test",
            _env_file=None,
            **settings,
        )
    )
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://api.test") as client,
    ):
        yield app, client


@asynccontextmanager
async def browsers(count: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One cookie jar per user, as each user's browser would have."""
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(httpx.AsyncClient(timeout=30)) for _ in range(count)]


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def tampered(token: str) -> str:
    """The token with one bit of its signature flipped (in the middle: the last base64url
    character may carry only padding bits)."""
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{header}.{payload}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"


def with_payload(token: str, **changes: Any) -> str:
    """The token with changed claims and its original signature."""
    header, _payload, signature = token.split(".")
    payload = {**claims_of(token), **changes}
    encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"


async def assert_401(client: AsyncClient, path: str, token: str, detail: str) -> None:
    response = await client.get(path, headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.json() == {"detail": detail}
    assert response.headers["www-authenticate"] == "Bearer"


async def a_new_jwt(user: BetterAuthUser, previous: str) -> str:
    """A JWT other than `previous`. The plugin's tokens carry no `jti` and a whole-second `iat`,
    so within one second EdDSA and RS256 (deterministic signatures) hand out the same string."""
    deadline = time.monotonic() + 3
    while True:
        token = await user.jwt()
        if token != previous or time.monotonic() > deadline:
            return token
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("algorithm", list(PLUGIN_ALGORITHMS))
async def test_every_plugin_algorithm_on_the_task_routes(
    issuers: IssuerFactory, tmp_path: Path, algorithm: str
) -> None:
    issuer = issuers(ISSUER_ALG=algorithm)
    async with (
        browsers(2) as (alice_browser, bob_browser),
        api(tmp_path, better_auth_url=issuer.base_url) as (_app, client),
    ):
        alice = await sign_up(issuer, alice_browser, unique("Alice"))
        bob = await sign_up(issuer, bob_browser, unique("Bob"))
        token = await alice.jwt()

        # What the plugin signs with its defaults: iss = aud = the origin, 15 minutes, no jti.
        header = jwt.get_unverified_header(token)
        assert header["alg"] == algorithm
        claims = claims_of(token)
        assert claims["sub"] == alice.id
        assert claims["iss"] == claims["aud"] == issuer.origin
        assert claims["exp"] - claims["iat"] == TOKEN_LIFETIME_SECONDS
        assert "jti" not in claims
        published = (await alice_browser.get(issuer.jwks_url)).json()["keys"]
        (key,) = [key for key in published if key["kid"] == header["kid"]]
        assert key["alg"] == algorithm
        assert key.get("crv") == PLUGIN_ALGORITHMS[algorithm]

        alice_tasks = f"/api/{alice.id}/tasks"
        created = await client.post(
            alice_tasks, json={"title": f"signed with {algorithm}"}, headers=bearer(token)
        )
        assert created.status_code == 201, created.text
        assert created.json()["user_id"] == alice.id
        listed = await client.get(alice_tasks, headers=bearer(token))
        assert listed.status_code == 200, listed.text
        assert [task["title"] for task in listed.json()] == [f"signed with {algorithm}"]
        me = await client.get("/api/auth/me", headers=bearer(token))
        assert me.json()["id"] == alice.id
        assert me.json()["email"] == alice.email

        # Another user's path: 403, with a valid token.
        bobs = await client.get(f"/api/{bob.id}/tasks", headers=bearer(token))
        assert bobs.status_code == 403, bobs.text
        bob_token = await bob.jwt_from_session()
        assert jwt.get_unverified_header(bob_token)["alg"] == algorithm
        own = await client.get(f"/api/{bob.id}/tasks", headers=bearer(bob_token))
        assert (own.status_code, own.json()) == (200, [])

        # Logout revokes this token (it has no jti: its digest is the key), not the next one.
        logout = await client.post("/api/auth/logout", headers=bearer(token))
        assert logout.status_code == 200, logout.text
        await assert_401(client, alice_tasks, token, "Token has been revoked")
        fresh = await a_new_jwt(alice, token)
        assert fresh != token
        assert (await client.get(alice_tasks, headers=bearer(fresh))).status_code == 200


async def test_tampered_foreign_and_session_tokens(issuers: IssuerFactory, tmp_path: Path) -> None:
    issuer = issuers(ISSUER_ALG="EdDSA")
    stranger = issuers(ISSUER_ALG="ES256")
    async with (
        browsers(3) as (alice_browser, bob_browser, mallory_browser),
        api(tmp_path, better_auth_url=issuer.base_url) as (_app, client),
    ):
        alice = await sign_up(issuer, alice_browser, unique("Alice"))
        bob = await sign_up(issuer, bob_browser, unique("Bob"))
        token = await alice.jwt()
        path = f"/api/{alice.id}/tasks"
        assert (await client.get(path, headers=bearer(token))).status_code == 200

        await assert_401(client, path, tampered(token), "Invalid token")
        # Alice's signature on a payload that names Bob.
        forged = with_payload(token, sub=bob.id)
        await assert_401(client, f"/api/{bob.id}/tasks", forged, "Invalid token")
        # A token of another Better Auth (its own keys): its kid is not in our issuer's set.
        mallory = await sign_up(stranger, mallory_browser, unique("Mallory"))
        foreign = await mallory.jwt()
        await assert_401(
            client, f"/api/{mallory.id}/tasks", foreign, "Token is signed with an unknown key"
        )
        # The opaque session token (sign-up's `token`, and the signed cookie value).
        await assert_401(client, path, alice.session_token, NOT_A_JWT)
        await assert_401(client, path, unquote(alice.session_cookie), NOT_A_JWT)


async def test_better_auth_sign_out_stops_new_tokens_and_our_logout_revokes(
    issuers: IssuerFactory, tmp_path: Path
) -> None:
    """Better Auth's sign-out ends the session (no new JWTs) but cannot recall a JWT already
    issued: it stays valid until `exp` unless our `POST /api/auth/logout` revokes it."""
    issuer = issuers(ISSUER_ALG="EdDSA")
    async with (
        browsers(1) as (browser,),
        api(tmp_path, better_auth_url=issuer.base_url) as (_app, client),
    ):
        alice = await sign_up(issuer, browser, unique("Alice"))
        token = await alice.jwt()
        path = f"/api/{alice.id}/tasks"
        await alice.sign_out()
        assert (await browser.get(f"{issuer.auth_url}/token")).status_code == 401
        assert (await client.get(path, headers=bearer(token))).status_code == 200
        assert (await client.post("/api/auth/logout", headers=bearer(token))).status_code == 200
        await assert_401(client, path, token, "Token has been revoked")


async def test_the_two_settings_of_the_issue(issuers: IssuerFactory, tmp_path: Path) -> None:
    """What issue 15 saw, now a 401 that says what to configure, and accepted once configured."""
    es512 = issuers(ISSUER_ALG="ES512")
    api_audience = issuers(ISSUER_JWT_AUDIENCE=CUSTOM_AUDIENCES[0])
    async with browsers(2) as (first, second):
        alice = await sign_up(es512, first, unique("Alice"))
        bob = await sign_up(api_audience, second, unique("Bob"))
        es512_token, audience_token = await alice.jwt(), await bob.jwt()
        alice_path, bob_path = f"/api/{alice.id}/tasks", f"/api/{bob.id}/tasks"

    async with api(tmp_path) as (_app, client):
        await assert_401(client, alice_path, es512_token, no_key_set("ES512"))
    async with api(tmp_path, better_auth_url=es512.base_url) as (_app, client):
        assert (await client.get(alice_path, headers=bearer(es512_token))).status_code == 200

    async with api(tmp_path, better_auth_url=api_audience.base_url) as (_app, client):
        await assert_401(client, bob_path, audience_token, "Token has the wrong audience")
    async with api(
        tmp_path, better_auth_url=api_audience.base_url, better_auth_audience=CUSTOM_AUDIENCES[0]
    ) as (_app, client):
        assert (await client.get(bob_path, headers=bearer(audience_token))).status_code == 200


@pytest.mark.parametrize("audience", [",".join(CUSTOM_AUDIENCES), CUSTOM_AUDIENCES[1]])
async def test_custom_issuer_and_audience(
    issuers: IssuerFactory, tmp_path: Path, audience: str
) -> None:
    """`jwt: { issuer, audience: [api, urn] }` on the frontend; the API lists one or both."""
    issuer = issuers(
        ISSUER_ALG="ES512",
        ISSUER_JWT_ISSUER=CUSTOM_ISSUER,
        ISSUER_JWT_AUDIENCE=",".join(CUSTOM_AUDIENCES),
    )
    async with (
        browsers(1) as (browser,),
        api(
            tmp_path,
            better_auth_url=issuer.base_url,
            better_auth_issuer=CUSTOM_ISSUER,
            better_auth_audience=audience,
        ) as (_app, client),
    ):
        alice = await sign_up(issuer, browser, unique("Alice"))
        token = await alice.jwt()
        claims = claims_of(token)
        assert claims["iss"] == CUSTOM_ISSUER
        assert claims["aud"] == list(CUSTOM_AUDIENCES)
        path = f"/api/{alice.id}/tasks"
        created = await client.post(path, json={"title": "custom"}, headers=bearer(token))
        assert created.status_code == 201, created.text
        assert (await client.get(path, headers=bearer(token))).status_code == 200


async def test_base_url_with_a_path(issuers: IssuerFactory, tmp_path: Path) -> None:
    """`baseURL: http://host/api/auth`: routes (and keys) there, `iss` and `aud` the origin."""
    issuer = issuers(ISSUER_ALG="RS256", ISSUER_BASE_PATH="/api/auth")
    assert issuer.auth_url == issuer.base_url
    async with (
        browsers(1) as (browser,),
        api(tmp_path, better_auth_url=issuer.base_url) as (app, client),
    ):
        assert app.state.settings.jwks_url == issuer.jwks_url
        alice = await sign_up(issuer, browser, unique("Alice"))
        token = await alice.jwt()
        assert claims_of(token)["iss"] == issuer.origin != issuer.base_url
        path = f"/api/{alice.id}/tasks"
        assert (await client.get(path, headers=bearer(token))).status_code == 200


async def test_key_rotation_keeps_old_tokens_valid(issuers: IssuerFactory, tmp_path: Path) -> None:
    """`jwks.rotationInterval`: the next signature after it makes a new key pair; the old key stays
    published for `jwks.gracePeriod` (30 days), so tokens it signed keep working."""
    issuer = issuers(ISSUER_ALG="ES256", ISSUER_ROTATION_SECONDS=str(ROTATION_SECONDS))
    async with (
        browsers(1) as (browser,),
        api(tmp_path, better_auth_url=issuer.base_url) as (app, client),
    ):
        # In production an unknown kid refetches the key set at most once a minute (proven with
        # a fake clock in tests/auth/test_jwks.py); here the rotation comes within seconds.
        app.state.token_verifier.key_set.min_refetch_seconds = 1.0
        alice = await sign_up(issuer, browser, unique("Alice"))
        old = await alice.jwt()
        old_kid = jwt.get_unverified_header(old)["kid"]
        path = f"/api/{alice.id}/tasks"
        assert (await client.get(path, headers=bearer(old))).status_code == 200

        deadline = time.monotonic() + ROTATION_SECONDS + 5
        new = old
        while jwt.get_unverified_header(new)["kid"] == old_kid:
            assert time.monotonic() < deadline, "the issuer did not rotate its key"
            await asyncio.sleep(0.5)
            new = await alice.jwt()
        new_kid = jwt.get_unverified_header(new)["kid"]
        published = {key["kid"] for key in (await browser.get(issuer.jwks_url)).json()["keys"]}
        assert {old_kid, new_kid} <= published

        assert (await client.get(path, headers=bearer(new))).status_code == 200
        assert (await client.get(path, headers=bearer(old))).status_code == 200

    # A freshly started API (empty cache) takes both as well.
    async with api(tmp_path, better_auth_url=issuer.base_url) as (_app, client):
        for token in (old, new):
            assert (await client.get(path, headers=bearer(token))).status_code == 200


async def test_uvicorn_process_takes_plugin_tokens(issuers: IssuerFactory, tmp_path: Path) -> None:
    """The production shape: `uvicorn main:app` with BETTER_AUTH_URL in its environment."""
    issuer = issuers(ISSUER_ALG="EdDSA")
    with running_app(
        f"sqlite+aiosqlite:///{tmp_path / 'uvicorn.db'}",
        tmp_path,
        BETTER_AUTH_URL=issuer.base_url,
        BETTER_AUTH_AUDIENCE=f"{issuer.origin},{CUSTOM_AUDIENCES[0]}",
    ) as server:
        async with browsers(1) as (browser,), httpx.AsyncClient(timeout=30) as client:
            alice = await sign_up(issuer, browser, unique("Alice"))
            token = await alice.jwt()
            path = f"{server.base_url}/api/{alice.id}/tasks"
            created = await client.post(path, json={"title": "over HTTP"}, headers=bearer(token))
            assert created.status_code == 201, created.text
            assert (
                await client.post(f"{server.base_url}/api/auth/logout", headers=bearer(token))
            ).status_code == 200
            assert (await client.get(path, headers=bearer(token))).status_code == 401
