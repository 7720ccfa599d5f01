"""Brute-force limits, counted in the database: per email, per client address, on signup, and the
client address behind trusted proxies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlmodel import select
from starlette.requests import Request

from auth.rate_limit import Limit, hit, limit_key
from database.types import utcnow
from models import RateLimitCounter
from settings import load_settings
from tests.helpers import PASSWORD, sign_up
from web.client_address import client_address

WRONG = "not the password"
ClientFrom = Callable[[str], AsyncClient]


def _login(email: str, password: str = WRONG) -> dict[str, str]:
    return {"email": email, "password": password}


def _assert_429(response, window: int = 900) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["detail"].startswith("Too many attempts")
    assert 1 <= int(response.headers["retry-after"]) <= window


@pytest.fixture
def bcrypt_calls(app: FastAPI) -> list[str]:
    """Every password verification the app runs (real or dummy)."""
    hasher = app.state.password_hasher
    calls: list[str] = []
    original = hasher.verify

    async def counting_verify(password: str, password_hash: str) -> bool:
        calls.append(password)
        return await original(password, password_hash)

    hasher.verify = counting_verify
    return calls


async def _age_all_counters(app: FastAPI, seconds: int) -> None:
    """Move every window into the past, as if `seconds` had gone by."""
    async with app.state.sessionmaker() as session:
        for counter in (await session.exec(select(RateLimitCounter))).all():
            counter.window_started_at -= timedelta(seconds=seconds)
            session.add(counter)
        await session.commit()


class TestLoginLimitPerEmail:
    async def test_sixth_attempt_is_429_without_bcrypt(
        self, client: AsyncClient, client_from: ClientFrom, bcrypt_calls: list[str]
    ) -> None:
        account = await sign_up(client)
        for _ in range(5):
            response = await client.post("/api/auth/login", json=_login(account.email))
            assert response.status_code == 401
        bcrypt_calls.clear()
        # Another address, and even the right password: the email is locked.
        async with client_from("198.51.100.20") as elsewhere:
            blocked = await elsewhere.post("/api/auth/login", json=_login(account.email, PASSWORD))
        _assert_429(blocked)
        assert bcrypt_calls == []

    async def test_unknown_emails_are_counted_too(self, client: AsyncClient) -> None:
        for _ in range(5):
            response = await client.post("/api/auth/login", json=_login("ghost@example.com"))
            assert response.status_code == 401
        _assert_429(await client.post("/api/auth/login", json=_login("ghost@example.com")))

    async def test_email_case_does_not_escape_the_limit(self, client: AsyncClient) -> None:
        variants = (
            "a@example.com",
            "A@example.com",
            "a@EXAMPLE.com",
            "A@Example.Com",
            "a@Example.COM",
        )
        for email in variants:
            await client.post("/api/auth/login", json=_login(email))
        _assert_429(await client.post("/api/auth/login", json=_login("A@EXAMPLE.COM")))

    async def test_success_resets_the_email_count(self, client: AsyncClient) -> None:
        account = await sign_up(client)
        for _ in range(4):
            await client.post("/api/auth/login", json=_login(account.email))
        ok = await client.post("/api/auth/login", json=_login(account.email, PASSWORD))
        assert ok.status_code == 200
        for _ in range(5):
            response = await client.post("/api/auth/login", json=_login(account.email))
            assert response.status_code == 401
        _assert_429(await client.post("/api/auth/login", json=_login(account.email)))

    async def test_window_expiry_lifts_the_limit(self, app: FastAPI, client: AsyncClient) -> None:
        account = await sign_up(client)
        for _ in range(5):
            await client.post("/api/auth/login", json=_login(account.email))
        _assert_429(await client.post("/api/auth/login", json=_login(account.email, PASSWORD)))
        await _age_all_counters(app, 15 * 60)
        response = await client.post("/api/auth/login", json=_login(account.email, PASSWORD))
        assert response.status_code == 200

    async def test_wrong_current_passwords_count_too(self, client: AsyncClient) -> None:
        account = await sign_up(client)
        for _ in range(5):
            response = await client.put(
                "/api/auth/password",
                json={"current_password": WRONG, "new_password": "new password 1"},
                headers=account.headers,
            )
            assert response.status_code == 403
        _assert_429(await client.post("/api/auth/login", json=_login(account.email, PASSWORD)))
        blocked = await client.request(
            "DELETE", "/api/auth/me", json={"password": PASSWORD}, headers=account.headers
        )
        _assert_429(blocked)


class TestLoginLimitPerAddress:
    async def test_twenty_first_attempt_from_one_address_is_429(
        self, client: AsyncClient, client_from: ClientFrom, bcrypt_calls: list[str]
    ) -> None:
        account = await sign_up(client)
        for n in range(20):
            response = await client.post("/api/auth/login", json=_login(f"guess{n}@example.com"))
            assert response.status_code == 401
        bcrypt_calls.clear()
        _assert_429(await client.post("/api/auth/login", json=_login(account.email, PASSWORD)))
        assert bcrypt_calls == []
        async with client_from("198.51.100.21") as elsewhere:
            ok = await elsewhere.post("/api/auth/login", json=_login(account.email, PASSWORD))
        assert ok.status_code == 200

    async def test_success_does_not_reset_the_address_count(self, client: AsyncClient) -> None:
        account = await sign_up(client)
        for n in range(19):
            await client.post("/api/auth/login", json=_login(f"guess{n}@example.com"))
        ok = await client.post("/api/auth/login", json=_login(account.email, PASSWORD))
        assert ok.status_code == 200
        await client.post("/api/auth/login", json=_login("last@example.com"))
        _assert_429(await client.post("/api/auth/login", json=_login(account.email, PASSWORD)))


class TestLimitsAreSettings:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {
            "login_max_failures_per_email": 2,
            "login_max_failures_per_address": 3,
            "login_failure_window_seconds": 60,
            "signup_max_per_address": 1,
            "signup_window_seconds": 120,
        }

    async def test_configured_limits_apply(self, client: AsyncClient) -> None:
        for _ in range(2):
            await client.post("/api/auth/login", json=_login("x@example.com"))
        _assert_429(await client.post("/api/auth/login", json=_login("x@example.com")), 60)
        await client.post("/api/auth/login", json=_login("y@example.com"))
        _assert_429(await client.post("/api/auth/login", json=_login("z@example.com")), 60)
        await sign_up(client)
        second = await client.post("/api/auth/signup", json=_login("s@example.com", PASSWORD))
        _assert_429(second, 120)


class TestSignupLimit:
    async def test_twenty_first_signup_from_one_address_is_429(
        self, app: FastAPI, client: AsyncClient, client_from: ClientFrom
    ) -> None:
        for _ in range(20):
            await sign_up(client)
        hashed: list[str] = []
        original = app.state.password_hasher.hash

        async def counting_hash(password: str) -> str:
            hashed.append(password)
            return await original(password)

        app.state.password_hasher.hash = counting_hash
        response = await client.post("/api/auth/signup", json=_login("late@example.com", PASSWORD))
        _assert_429(response, 3600)
        assert hashed == []
        async with client_from("198.51.100.22") as elsewhere:
            ok = await elsewhere.post("/api/auth/signup", json=_login("late@example.com", PASSWORD))
        assert ok.status_code == 201

    async def test_failed_signups_count(self, client: AsyncClient) -> None:
        await sign_up(client, email="taken@example.com")
        for _ in range(19):
            response = await client.post(
                "/api/auth/signup", json=_login("taken@example.com", PASSWORD)
            )
            assert response.status_code == 409
        _assert_429(
            await client.post("/api/auth/signup", json=_login("new@example.com", PASSWORD)), 3600
        )


class TestCountersAreAtomic:
    async def test_concurrent_hits_are_all_counted(self, app: FastAPI) -> None:
        limit = Limit(limit_key("test", "concurrent"), max_hits=1000, window_seconds=60)

        async def one_hit() -> int:
            async with app.state.sessionmaker() as session:
                hits, _ = await hit(session, limit)
                await session.commit()
                return hits

        results = await asyncio.gather(*(one_hit() for _ in range(20)))
        assert sorted(results) == list(range(1, 21))

    async def test_concurrent_failed_logins_are_all_counted(
        self, app: FastAPI, client: AsyncClient
    ) -> None:
        responses = await asyncio.gather(
            *(client.post("/api/auth/login", json=_login("race@example.com")) for _ in range(5))
        )
        assert [r.status_code for r in responses] == [401] * 5
        async with app.state.sessionmaker() as session:
            hits = (
                await session.exec(
                    select(RateLimitCounter.hits).where(
                        RateLimitCounter.key == limit_key("login-email", "race@example.com")
                    )
                )
            ).one()
        assert hits == 5
        _assert_429(await client.post("/api/auth/login", json=_login("race@example.com")))

    async def test_an_expired_window_restarts_at_one(self, app: FastAPI) -> None:
        limit = Limit(limit_key("test", "window"), max_hits=10, window_seconds=60)
        async with app.state.sessionmaker() as session:
            for _ in range(3):
                await hit(session, limit)
            await session.commit()
        await _age_all_counters(app, 61)
        async with app.state.sessionmaker() as session:
            hits, started = await hit(session, limit)
            await session.commit()
        assert hits == 1
        assert utcnow() - started < timedelta(seconds=60)


class TestClientAddressBehindProxies:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"trusted_proxies": "10.0.0.0/8", "login_max_failures_per_address": 2}

    async def test_forwarded_clients_are_counted_separately(self, client_from: ClientFrom) -> None:
        async with client_from("10.0.0.1") as proxy:
            for n in range(2):
                await proxy.post(
                    "/api/auth/login",
                    json=_login(f"a{n}@example.com"),
                    headers={"X-Forwarded-For": "203.0.113.1"},
                )
            _assert_429(
                await proxy.post(
                    "/api/auth/login",
                    json=_login("a9@example.com"),
                    headers={"X-Forwarded-For": "203.0.113.1"},
                )
            )
            other = await proxy.post(
                "/api/auth/login",
                json=_login("b@example.com"),
                headers={"X-Forwarded-For": "203.0.113.2"},
            )
            assert other.status_code == 401

    async def test_untrusted_peers_cannot_spoof_the_header(self, client_from: ClientFrom) -> None:
        async with client_from("203.0.113.50") as attacker:
            for n in range(2):
                await attacker.post(
                    "/api/auth/login",
                    json=_login(f"a{n}@example.com"),
                    headers={"X-Forwarded-For": f"192.0.2.{n}"},
                )
            _assert_429(
                await attacker.post(
                    "/api/auth/login",
                    json=_login("a9@example.com"),
                    headers={"X-Forwarded-For": "192.0.2.99"},
                )
            )


def _request(peer: str, *forwarded: str) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "headers": headers, "client": (peer, 1234)})


class TestClientAddress:
    PROXIES = load_settings(trusted_proxies="10.0.0.0/8, 2001:db8::/32").trusted_proxies

    def test_socket_peer_without_trusted_proxies(self) -> None:
        assert client_address(_request("10.0.0.1", "1.2.3.4"), []) == "10.0.0.1"

    def test_untrusted_peer_ignores_the_header(self) -> None:
        assert client_address(_request("8.8.8.8", "1.2.3.4"), self.PROXIES) == "8.8.8.8"

    def test_right_to_left_skipping_trusted_proxies(self) -> None:
        request = _request("10.0.0.1", "6.6.6.6, 1.2.3.4, 10.0.0.7")
        assert client_address(request, self.PROXIES) == "1.2.3.4"

    def test_several_headers_are_one_list(self) -> None:
        request = _request("10.0.0.1", "6.6.6.6", "1.2.3.4")
        assert client_address(request, self.PROXIES) == "1.2.3.4"

    def test_ipv6(self) -> None:
        request = _request("2001:db8::1", "2001:db8::2, 2a00:1450::1")
        assert client_address(request, self.PROXIES) == "2a00:1450::1"

    def test_all_trusted_gives_the_leftmost(self) -> None:
        assert client_address(_request("10.0.0.1", "10.0.0.2"), self.PROXIES) == "10.0.0.2"

    def test_garbage_entry_is_blamed_on_the_proxy(self) -> None:
        request = _request("10.0.0.1", "1.2.3.4, not-an-ip")
        assert client_address(request, self.PROXIES) == "10.0.0.1"

    def test_no_header_gives_the_proxy(self) -> None:
        assert client_address(_request("10.0.0.1"), self.PROXIES) == "10.0.0.1"
