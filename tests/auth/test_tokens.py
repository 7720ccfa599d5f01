"""Token verification, exercised through a protected route: every failure is 401 + Bearer."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import jwt
import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from models import RevokedToken
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


def _signed(**claims: object) -> str:
    return jwt.encode(claims, TEST_SECRET, algorithm="HS256")


# Claims PyJWT lets through (it checks `exp`, `nbf` and `iat` with `int(...)`, so a numeric
# string passes) but that the app cannot use: one validation refuses them on every surface.
MALFORMED_CLAIMS = {
    "exp as a numeric string": {"sub": "u1", "exp": str(_future())},
    "exp as true": {"sub": "u1", "exp": True},
    "exp as Infinity": {"sub": "u1", "exp": float("inf")},
    # JSON's integers have no limit; past the float range Python cannot compare them to a time.
    "exp past the float range": {"sub": "u1", "exp": 10**400},
    "iat past the float range": {"sub": "u1", "exp": _future(), "iat": -(10**400)},
    "nbf past the float range": {"sub": "u1", "exp": _future(), "nbf": -(10**400)},
    "iat as NaN": {"sub": "u1", "exp": _future(), "iat": float("nan")},
    "iat as a numeric string": {"sub": "u1", "exp": _future(), "iat": "1"},
    "nbf as a numeric string": {"sub": "u1", "exp": _future(), "nbf": "1"},
    "jti as a number": {"sub": "u1", "exp": _future(), "jti": 42},
    "jti as an object": {"sub": "u1", "exp": _future(), "jti": {"a": 1}},
    "sub of 256 characters": {"sub": "u" * 256, "exp": _future()},
    "sub with a newline": {"sub": "u1\n2026-01-01 INFO todo.access: forged", "exp": _future()},
    "sub with a carriage return": {"sub": "u1\r", "exp": _future()},
    "sub with a tab": {"sub": "u\t1", "exp": _future()},
    "sub with DEL": {"sub": "u1\x7f", "exp": _future()},
    "sub with a C1 control": {"sub": "u1\x85", "exp": _future()},
    "sub with a line separator": {"sub": "u1\u2028", "exp": _future()},
    "sub with a slash": {"sub": "u1/tasks", "exp": _future()},
    "sub with a lone surrogate": {"sub": "u1\ud800", "exp": _future()},
}


class TestClaimTypes:
    """Types as well as presence, and `sub` within the rules of a `{user_id}`: 401 with a
    detail naming the claim, on every authenticated route (REST, tickets, events)."""

    @pytest.mark.parametrize("claims", MALFORMED_CLAIMS.values(), ids=MALFORMED_CLAIMS.keys())
    async def test_refused_everywhere(self, client: AsyncClient, claims: dict) -> None:
        token = _signed(**claims)
        sub = claims["sub"]
        own = "u1" if "/" in sub or "\ud800" in sub else quote(sub, safe="")
        for method, path in (
            ("GET", URL),
            ("GET", "/api/auth/me"),
            ("POST", "/api/auth/logout"),
            ("POST", "/api/u1/events/tickets"),
            ("GET", "/api/u1/events"),
            ("GET", f"/api/{own}/tasks"),
        ):
            response = await client.request(method, path, headers=bearer(token))
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert isinstance(response.json()["detail"], str)

    async def test_the_detail_names_the_claim(self, client: AsyncClient) -> None:
        await _assert_401(
            client,
            bearer(_signed(sub="u1", exp=str(_future()))),
            "Token claim 'exp' must be a number",
        )
        await _assert_401(
            client,
            bearer(_signed(sub="u" * 256, exp=_future())),
            "Token claim 'sub' must be 1 to 255 characters, without control characters or '/'",
        )

    @pytest.mark.parametrize(
        "sub", ["u" * 255, "ünïcödé user", "auth0|abc", "a b", "x@example.com"]
    )
    async def test_subjects_a_user_id_can_be_are_accepted(
        self, client: AsyncClient, sub: str
    ) -> None:
        token = _signed(sub=sub, exp=_future(), iat=1.5, nbf=0, jti="j1")
        response = await client.get(f"/api/{quote(sub, safe='')}/tasks", headers=bearer(token))
        assert response.status_code == 200, response.text


class TestTokenLength:
    async def test_a_longer_token_is_refused_before_it_is_parsed(
        self, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def never(*_args: object, **_kwargs: object) -> None:
            raise AssertionError("parsed")

        monkeypatch.setattr(jwt, "get_unverified_header", never)
        token = "a" * 8193
        await _assert_401(client, bearer(token), "Token is longer than 8192 characters")

    async def test_a_long_but_allowed_token_is_verified(self, client: AsyncClient) -> None:
        token = _signed(sub="u1", exp=_future(), padding="p" * 6000)
        assert len(token) <= 8192
        assert (await client.get(URL, headers=bearer(token))).status_code == 200


class TestRevocationBySubjectAndJti:
    async def test_two_subjects_sharing_a_jti_do_not_revoke_each_other(
        self, client: AsyncClient
    ) -> None:
        first = _signed(sub="u1", exp=_future(), jti="shared-jti")
        second = _signed(sub="u2", exp=_future(), jti="shared-jti")
        assert (await client.post("/api/auth/logout", headers=bearer(first))).status_code == 200
        await _assert_401(client, bearer(first), "Token has been revoked")
        response = await client.get("/api/u2/tasks", headers=bearer(second))
        assert response.status_code == 200, response.text

    @pytest.mark.parametrize(
        "jti", ["a\x00b", "\udfff", "j" * 129], ids=["nul", "surrogate", "long"]
    )
    async def test_a_jti_no_column_can_hold_is_still_revoked_by_itself(
        self, client: AsyncClient, jti: str
    ) -> None:
        """Its key from before keys named the subject is the token's digest (no bare `jti`
        row can exist): checking it binds nothing the database refuses."""
        token = _signed(sub="u1", exp=_future(), jti=jti)
        other = _signed(sub="u1", exp=_future(), jti=jti, iat=1)
        assert (await client.get(URL, headers=bearer(token))).status_code == 200
        assert (await client.post("/api/auth/logout", headers=bearer(token))).status_code == 200
        await _assert_401(client, bearer(token), "Token has been revoked")
        # The same subject and `jti` in another token: the same revocation key.
        await _assert_401(client, bearer(other), "Token has been revoked")

    async def test_a_revocation_stored_before_keys_named_the_subject_still_holds(
        self, app: FastAPI, client: AsyncClient
    ) -> None:
        """A row keyed by the bare `jti` (as logout wrote it before) keeps refusing the token."""
        async with app.state.sessionmaker() as session:
            session.add(
                RevokedToken(jti="old-jti", expires_at=datetime.now(UTC) + timedelta(hours=1))
            )
            await session.commit()
        token = _signed(sub="u1", exp=_future(), jti="old-jti")
        await _assert_401(client, bearer(token), "Token has been revoked")
        for path in ("/api/auth/me", "/api/u1/tasks/stats"):
            assert (await client.get(path, headers=bearer(token))).status_code == 401
        assert (
            await client.post("/api/u1/events/tickets", headers=bearer(token))
        ).status_code == 401
