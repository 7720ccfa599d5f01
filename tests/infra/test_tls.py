"""TLS against a server that accepts nothing else: each `sslmode` means what libpq means.

The server has a self-signed certificate for `localhost` (made with openssl for this run) and
`hostssl`-only SCRAM rules, like Neon. The whole API suite also runs through its Neon-style URL
(`TEST_POSTGRES=tls uv run pytest`); these tests pin down the individual modes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text

from db import create_engine_for
from main import create_app
from settings import load_settings
from tests.helpers import TEST_SECRET
from tests.infra.conftest import require_tools
from tests.infra.servers import PostgresServer, postgres_server

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def tls_postgres() -> Iterator[PostgresServer]:
    require_tools(openssl=True)
    with postgres_server(tls=True) as server:
        yield server


async def _session_facts(database_url: str) -> dict[str, Any]:
    engine = create_engine_for(load_settings(database_url=database_url, db_connect_timeout=10))
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text(
                        "SELECT ssl, version, current_user AS role FROM pg_stat_ssl"
                        " WHERE pid = pg_backend_pid()"
                    )
                )
            ).one()
            return dict(row._mapping)
    finally:
        await engine.dispose()


def _with_host(url: str, host: str) -> str:
    return url.replace("@127.0.0.1:", f"@{host}:")


async def test_the_neon_console_url_connects_over_tls(tls_postgres: PostgresServer) -> None:
    facts = await _session_facts(tls_postgres.neon_url())

    assert facts["ssl"] is True
    assert facts["version"].startswith("TLS")
    assert facts["role"] == "todo_owner"


@pytest.mark.parametrize(
    ("host", "sslmode", "with_root_certificate"),
    [
        ("127.0.0.1", "require", False),
        ("127.0.0.1", "verify-ca", True),
        ("localhost", "verify-full", True),
    ],
)
async def test_modes_that_connect(
    tls_postgres: PostgresServer, host: str, sslmode: str, with_root_certificate: bool
) -> None:
    query = {"sslmode": sslmode}
    if with_root_certificate:
        query["sslrootcert"] = str(tls_postgres.certificate)
    url = _with_host(tls_postgres.url(**query), host)

    assert (await _session_facts(url))["ssl"] is True


@pytest.mark.parametrize(
    ("host", "with_root_certificate", "reason"),
    [
        # verify-full checks the name: the certificate is for localhost, not 127.0.0.1.
        ("127.0.0.1", True, "IP address mismatch"),
        # Without sslrootcert the system CAs decide, and none of them signed this certificate.
        ("localhost", False, "self-signed certificate"),
    ],
)
async def test_verify_full_rejects(
    tls_postgres: PostgresServer, host: str, with_root_certificate: bool, reason: str
) -> None:
    query = {"sslmode": "verify-full"}
    if with_root_certificate:
        query["sslrootcert"] = str(tls_postgres.certificate)

    with pytest.raises(Exception, match="certificate verify failed") as failure:
        await _session_facts(_with_host(tls_postgres.url(**query), host))
    assert reason in str(failure.value)


async def test_a_non_tls_url_fails_with_a_clear_error(tls_postgres: PostgresServer) -> None:
    with pytest.raises(Exception, match=r"no pg_hba\.conf entry") as failure:
        await _session_facts(tls_postgres.url(sslmode="disable"))
    assert "no encryption" in str(failure.value)


async def test_the_app_answers_503_when_tls_is_refused(
    tls_postgres: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(
        database_url=tls_postgres.url(sslmode="disable"),
        better_auth_secret=TEST_SECRET,
        bcrypt_rounds=4,
    )
    application = create_app(settings)
    async with (
        application.router.lifespan_context(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://test") as client,
    ):
        health = await client.get("/health")
        signup = await client.post(
            "/api/auth/signup", json={"email": "tls@example.com", "password": "password123"}
        )

    assert health.status_code == 503
    assert signup.status_code == 503
    assert signup.json() == {"detail": "Database unavailable"}
    assert "no encryption" in caplog.text
