"""Who may use `/mcp`: the REST API's bearer tokens (ours, the frontend's, Better Auth's JWKS
ones) through the SDK's `token_verifier`, revocation included; the owner is the token's `sub`,
never an argument; Host and Origin allowlists from the settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from mcp.server.mcpserver.exceptions import ToolError

from mcp_server.errors import TOKEN_REVOKED
from tests.auth.test_jwks import SUB, JWKSServer, SigningKey, claims
from tests.helpers import PASSWORD, Account, bearer, create_task, frontend_token
from tests.mcp_server.conftest import (
    INITIALIZE,
    JSON_AND_SSE,
    call_past_the_door,
    error_text,
    mcp_http,
    mcp_session,
    structured,
)

POST_HEADERS = {"Accept": JSON_AND_SSE, "Content-Type": "application/json"}
METADATA_PATH = "/.well-known/oauth-protected-resource/mcp"


async def _initialize(app: FastAPI, token: str | None, **headers: str):
    async with mcp_http(app, token, **POST_HEADERS, **headers) as http:
        return await http.post("/mcp", content=INITIALIZE)


def _assert_refused(response) -> None:
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="invalid_token"')
    assert f'resource_metadata="http://localhost:8000{METADATA_PATH}"' in challenge
    assert response.json()["error"] == "invalid_token"


class TestRefused:
    async def test_no_token(self, app: FastAPI) -> None:
        _assert_refused(await _initialize(app, None))

    @pytest.mark.parametrize(
        "token",
        [
            "not-a-jwt",
            "abc.def.ghi",
            frontend_token("someone", secret="another-secret-that-is-long-enough-0123456789"),
            frontend_token("someone", exp=datetime.now(UTC) - timedelta(minutes=1)),
            frontend_token(None),
            frontend_token("u" * 256),
            frontend_token("someone\n2026-01-01 INFO todo.access: forged"),
            frontend_token("someone", exp=str(int(datetime.now(UTC).timestamp()) + 3600)),
            frontend_token("someone", exp=10**400),
            "a" * 8193,
        ],
        ids=[
            "opaque",
            "garbage",
            "wrong-secret",
            "expired",
            "no-sub",
            "sub-past-255",
            "sub-with-newline",
            "exp-as-string",
            "exp-past-the-float-range",
            "too-long",
        ],
    )
    async def test_bad_tokens(self, app: FastAPI, token: str) -> None:
        _assert_refused(await _initialize(app, token))

    async def test_a_logged_out_token(self, app: FastAPI, client: AsyncClient, alice: Account):
        assert (await _initialize(app, alice.token)).status_code == 200
        assert (await client.post("/api/auth/logout", headers=alice.headers)).status_code == 200
        _assert_refused(await _initialize(app, alice.token))

    async def test_tokens_from_before_a_password_change(
        self, app: FastAPI, client: AsyncClient, alice: Account
    ) -> None:
        changed = await client.put(
            "/api/auth/password",
            json={"current_password": PASSWORD, "new_password": "a new passphrase"},
            headers=alice.headers,
        )
        assert changed.status_code == 200
        _assert_refused(await _initialize(app, alice.token))
        assert (await _initialize(app, changed.json()["access_token"])).status_code == 200

    async def test_revoked_between_the_check_and_the_statement(
        self, app: FastAPI, client: AsyncClient, alice: Account
    ) -> None:
        """The guard rides in every task statement too: a tool call that passed the door with
        a token revoked a moment later writes nothing and says why."""
        assert (await client.post("/api/auth/logout", headers=alice.headers)).status_code == 200
        with pytest.raises(ToolError) as refused:
            await call_past_the_door(app, alice, "add_task", {"title": "Too late"})
        assert str(refused.value) == TOKEN_REVOKED
        fresh = await client.post(
            "/api/auth/login", json={"email": alice.email, "password": PASSWORD}
        )
        listed = await client.get(alice.tasks_url, headers=bearer(fresh.json()["access_token"]))
        assert listed.json() == []


class TestMetadata:
    async def test_protected_resource_metadata(self, client: AsyncClient) -> None:
        response = await client.get(METADATA_PATH)
        assert response.status_code == 200
        assert response.json()["resource"] == "http://localhost:8000/mcp"
        assert response.json()["authorization_servers"] == ["http://localhost:8000"]
        assert response.json()["bearer_methods_supported"] == ["header"]


class TestPublicUrl:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"mcp_resource_url": "https://todo.example.com/mcp"}

    async def test_the_challenge_and_metadata_name_the_public_url(
        self, app: FastAPI, client: AsyncClient
    ) -> None:
        response = await _initialize(app, None)
        assert response.status_code == 401
        assert (
            'resource_metadata="https://todo.example.com/.well-known/oauth-protected-resource/mcp"'
            in response.headers["www-authenticate"]
        )
        metadata = (await client.get(METADATA_PATH)).json()
        assert metadata["resource"] == "https://todo.example.com/mcp"
        assert metadata["authorization_servers"] == ["https://todo.example.com"]


class TestOwner:
    async def test_a_frontend_token_works_for_its_subject(
        self, app: FastAPI, client: AsyncClient
    ) -> None:
        token = frontend_token("frontend-user-1")
        async with mcp_session(app, token) as session:
            created = structured(await session.call_tool("add_task", {"title": "From the app"}))
            listed = structured(await session.call_tool("list_tasks", {}))
        assert [task["id"] for task in listed] == [created["task_id"]]
        rest = await client.get("/api/frontend-user-1/tasks", headers=bearer(token))
        assert [task["title"] for task in rest.json()] == ["From the app"]

    async def test_a_user_id_argument_for_someone_else_is_refused(
        self, app: FastAPI, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        async with mcp_session(app, alice.token) as session:
            for name, arguments in [
                ("add_task", {"title": "Sneaky"}),
                ("list_tasks", {}),
                ("complete_task", {"task_id": 1}),
                ("update_task", {"task_id": 1, "title": "Sneaky"}),
                ("delete_task", {"task_id": 1}),
            ]:
                result = await session.call_tool(name, {**arguments, "user_id": bob.id})
                assert "is not the signed-in user" in error_text(result), name
            own = await session.call_tool("add_task", {"title": "Mine", "user_id": alice.id})
            assert structured(own)["status"] == "created"
        assert (await client.get(bob.tasks_url, headers=bob.headers)).json() == []
        titles = [
            task["title"]
            for task in (await client.get(alice.tasks_url, headers=alice.headers)).json()
        ]
        assert titles == ["Mine"]

    async def test_one_users_token_never_reaches_anothers_tasks(
        self, app: FastAPI, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        task = await create_task(client, alice, title="Alice's")
        async with mcp_session(app, bob.token) as session:
            assert structured(await session.call_tool("list_tasks", {})) == []
            for name, arguments in [
                ("complete_task", {"task_id": task["id"]}),
                ("update_task", {"task_id": task["id"], "title": "Bob's now"}),
                ("delete_task", {"task_id": task["id"]}),
            ]:
                assert error_text(await session.call_tool(name, arguments)) == "Task not found"
        after = await client.get(f"{alice.tasks_url}/{task['id']}", headers=alice.headers)
        assert after.status_code == 200
        assert (after.json()["title"], after.json()["completed"]) == ("Alice's", False)


class TestBetterAuthTokens:
    @pytest.fixture
    def jwks_server(self):
        with JWKSServer() as server:
            yield server

    @pytest.fixture
    def signing_key(self, jwks_server: JWKSServer) -> SigningKey:
        key = SigningKey()
        jwks_server.keys = [key.jwk]
        return key

    @pytest.fixture
    def settings_overrides(self, jwks_server: JWKSServer) -> dict[str, object]:
        return {"better_auth_url": jwks_server.base_url}

    async def test_a_jwks_token_manages_its_subjects_tasks(
        self, app: FastAPI, client: AsyncClient, jwks_server: JWKSServer, signing_key: SigningKey
    ) -> None:
        token = signing_key.sign(claims(jwks_server.base_url))
        async with mcp_session(app, token) as session:
            created = structured(await session.call_tool("add_task", {"title": "Signed"}))
        assert created["status"] == "created"
        rest = await client.get(f"/api/{SUB}/tasks", headers=bearer(token))
        assert [task["title"] for task in rest.json()] == ["Signed"]
        metadata = (await client.get(METADATA_PATH)).json()
        assert metadata["authorization_servers"] == [jwks_server.base_url]

    async def test_keys_that_cannot_be_fetched_are_503_not_401(
        self, app: FastAPI, jwks_server: JWKSServer, signing_key: SigningKey
    ) -> None:
        jwks_server.status = 500
        response = await _initialize(app, signing_key.sign(claims(jwks_server.base_url)))
        assert response.status_code == 503
        assert response.json() == {"detail": "The keys to verify this token are unavailable"}
        assert int(response.headers["retry-after"]) > 0


class TestHostAndOrigin:
    async def test_a_foreign_host_is_421(self, app: FastAPI, alice: Account) -> None:
        response = await _initialize(app, alice.token, Host="evil.example.com")
        assert response.status_code == 421

    @pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:59999", "[::1]"])
    async def test_local_hosts_are_answered(self, app: FastAPI, alice: Account, host: str):
        assert (await _initialize(app, alice.token, Host=host)).status_code == 200

    async def test_a_foreign_origin_is_403(self, app: FastAPI, alice: Account) -> None:
        response = await _initialize(app, alice.token, Origin="https://evil.example.com")
        assert response.status_code == 403

    @pytest.mark.parametrize("origin", ["http://localhost:3000", "http://127.0.0.1:6274"])
    async def test_the_cors_origins_and_local_pages_are_answered(
        self, app: FastAPI, alice: Account, origin: str
    ) -> None:
        response = await _initialize(app, alice.token, Origin=origin)
        assert response.status_code == 200


class TestConfiguredHost:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {
            "mcp_allowed_hosts": "todo.example.com, todo.example.com:*",
            "mcp_allowed_origins": "https://agent.example.com",
        }

    async def test_the_configured_host_and_origin(self, app: FastAPI, alice: Account) -> None:
        ok = await _initialize(
            app, alice.token, Host="todo.example.com", Origin="https://agent.example.com"
        )
        assert ok.status_code == 200
        assert (await _initialize(app, alice.token, Host="todo.example.com:443")).status_code == 200
        assert (await _initialize(app, alice.token, Host="localhost")).status_code == 421
        local_page = await _initialize(
            app, alice.token, Host="todo.example.com", Origin="http://localhost:6274"
        )
        assert local_page.status_code == 403


class TestHostCheckOff:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"mcp_allowed_hosts": "*"}

    async def test_any_host_and_origin(self, app: FastAPI, alice: Account) -> None:
        response = await _initialize(
            app, alice.token, Host="behind.a.proxy", Origin="https://anywhere.example"
        )
        assert response.status_code == 200
