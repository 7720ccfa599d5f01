"""Token verification, exercised through a protected route: every failure is 401 + Bearer."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from httpx import AsyncClient

from tests.helpers import TEST_SECRET, bearer, frontend_token

URL = "/api/u1/tasks"


def _unsigned(payload: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


def _future(hours: int = 1) -> int:
    return int((datetime.now(UTC) + timedelta(hours=hours)).timestamp())


async def _assert_401(client: AsyncClient, headers: dict[str, str], detail: str | None = None):
    response = await client.get(URL, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    if detail is not None:
        assert response.json() == {"detail": detail}
    else:
        assert isinstance(response.json()["detail"], str)


class TestAcceptedTokens:
    async def test_frontend_token_with_only_sub_and_exp(self, client: AsyncClient) -> None:
        token = jwt.encode({"sub": "u1", "exp": _future()}, TEST_SECRET, algorithm="HS256")
        response = await client.get(URL, headers=bearer(token))
        assert response.status_code == 200
        assert response.json() == []

    async def test_lowercase_bearer_scheme(self, client: AsyncClient) -> None:
        response = await client.get(
            URL, headers={"Authorization": f"bearer {frontend_token('u1')}"}
        )
        assert response.status_code == 200

    async def test_nbf_in_the_past(self, client: AsyncClient) -> None:
        token = frontend_token("u1", nbf=int(datetime.now(UTC).timestamp()) - 10)
        assert (await client.get(URL, headers=bearer(token))).status_code == 200


class TestRejectedTokens:
    async def test_no_header(self, client: AsyncClient) -> None:
        await _assert_401(client, {}, "Not authenticated")

    @pytest.mark.parametrize("value", ["", "Bearer", "Bearer ", "Bearer    ", "   "])
    async def test_blank(self, client: AsyncClient, value: str) -> None:
        await _assert_401(client, {"Authorization": value}, "Not authenticated")

    @pytest.mark.parametrize("scheme", ["Basic", "Token", "JWT"])
    async def test_not_bearer(self, client: AsyncClient, scheme: str) -> None:
        await _assert_401(client, {"Authorization": f"{scheme} {frontend_token('u1')}"})

    async def test_garbage(self, client: AsyncClient) -> None:
        await _assert_401(client, bearer("not.a.jwt"), "Invalid token")

    async def test_bad_signature(self, client: AsyncClient) -> None:
        token = frontend_token("u1", secret="another-secret-another-secret-another")
        await _assert_401(client, bearer(token), "Invalid token")

    async def test_alg_none(self, client: AsyncClient) -> None:
        await _assert_401(client, bearer(_unsigned({"sub": "u1", "exp": _future()})))

    @pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
    async def test_another_algorithm(self, client: AsyncClient, algorithm: str) -> None:
        token = frontend_token("u1", algorithm=algorithm)
        await _assert_401(client, bearer(token), "Invalid token")

    async def test_expired(self, client: AsyncClient) -> None:
        token = frontend_token("u1", exp=int(datetime.now(UTC).timestamp()) - 1)
        await _assert_401(client, bearer(token), "Token has expired")

    async def test_not_yet_valid(self, client: AsyncClient) -> None:
        token = frontend_token("u1", nbf=_future())
        await _assert_401(client, bearer(token), "Token is not valid yet")

    async def test_missing_sub(self, client: AsyncClient) -> None:
        await _assert_401(client, bearer(frontend_token(None)), "Token is missing the 'sub' claim")

    async def test_missing_exp(self, client: AsyncClient) -> None:
        token = jwt.encode({"sub": "u1"}, TEST_SECRET, algorithm="HS256")
        await _assert_401(client, bearer(token), "Token is missing the 'exp' claim")

    @pytest.mark.parametrize("sub", ["", 42, ["u1"]])
    async def test_malformed_sub(self, client: AsyncClient, sub: object) -> None:
        token = jwt.encode({"sub": sub, "exp": _future()}, TEST_SECRET, algorithm="HS256")
        await _assert_401(client, bearer(token))

    async def test_absurd_exp_does_not_break_revocation(self, client: AsyncClient) -> None:
        token = jwt.encode({"sub": "u1", "exp": 10**15}, TEST_SECRET, algorithm="HS256")
        assert (await client.get(URL, headers=bearer(token))).status_code == 200
        assert (await client.post("/api/auth/logout", headers=bearer(token))).status_code == 200
        await _assert_401(client, bearer(token), "Token has been revoked")
