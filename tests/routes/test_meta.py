"""Public endpoints: `/`, `/health`, `/livez`, `/readyz`, `/docs`, `/openapi.json`."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from main import create_app
from settings import Settings
from tests.conftest import serving

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class TestRoot:
    async def test_describes_the_service(self, client: AsyncClient) -> None:
        response = await client.get("/")
        assert response.status_code == 200
        body = response.json()
        assert body["name"] == "Todo API"
        assert body["version"]
        assert body["docs"] == "/docs"


class TestHealth:
    async def test_ok_when_the_database_answers(self, client: AsyncClient) -> None:
        response = await client.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok"}

    async def test_503_when_the_database_does_not_answer(
        self, app: FastAPI, client: AsyncClient
    ) -> None:
        working = app.state.engine
        app.state.engine = create_async_engine(
            "postgresql+asyncpg://nobody@127.0.0.1:9/none", connect_args={"timeout": 2}
        )
        try:
            response = await client.get("/health")
        finally:
            await app.state.engine.dispose()
            app.state.engine = working
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["database"] == "unavailable"
        assert body["detail"] == "Database unavailable"


class TestDocs:
    async def test_swagger_ui_is_served(self, client: AsyncClient) -> None:
        response = await client.get("/docs")
        assert response.status_code == 200
        assert "swagger-ui" in response.text

    async def test_openapi_declares_bearer_security(self, client: AsyncClient) -> None:
        spec = (await client.get("/openapi.json")).json()
        schemes = spec["components"]["securitySchemes"]
        assert any(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes.values())
        list_tasks = spec["paths"]["/api/{user_id}/tasks"]["get"]
        assert list_tasks["security"]
        assert {"401", "403"} <= set(list_tasks["responses"])

    async def test_unknown_route_is_json_404(self, client: AsyncClient) -> None:
        response = await client.get("/nope")
        assert response.status_code == 404
        assert response.json() == {"detail": "Not Found"}


def unreachable_engine() -> AsyncEngine:
    return create_async_engine(
        "postgresql+asyncpg://nobody@127.0.0.1:9/none", connect_args={"timeout": 2}
    )


@asynccontextmanager
async def database_gone(app: FastAPI) -> AsyncIterator[None]:
    """The app's engine pointed at a port where nothing listens, for the block."""
    working = app.state.engine
    app.state.engine = unreachable_engine()
    try:
        yield
    finally:
        await app.state.engine.dispose()
        app.state.engine = working


def script_head() -> str:
    """The head of the revision scripts, read as Alembic's CLI does."""
    head = ScriptDirectory.from_config(Config(str(PROJECT_ROOT / "alembic.ini"))).get_current_head()
    assert head is not None
    return head


RecordRevisions = Callable[..., Awaitable[None]]


@pytest.fixture
async def record_revisions(
    app: FastAPI, postgres_url: str | None
) -> AsyncIterator[RecordRevisions]:
    """Write `alembic_version` as a migration would have left it; back at the head afterwards
    (where the suite's PostgreSQL database stands)."""
    if not postgres_url:
        pytest.skip("PostgreSQL only: on SQLite the app builds the schema from the models")

    async def record(*revisions: str) -> None:
        async with app.state.engine.begin() as connection:
            await connection.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS alembic_version "
                    "(version_num VARCHAR(32) PRIMARY KEY)"
                )
            )
            await connection.execute(text("DELETE FROM alembic_version"))
            for revision in revisions:
                await connection.execute(
                    text("INSERT INTO alembic_version VALUES (:revision)"), {"revision": revision}
                )

    yield record
    await record(script_head())


class TestLivez:
    async def test_the_process_answers(self, client: AsyncClient) -> None:
        response = await client.get("/livez")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        assert response.headers["cache-control"] == "no-store"

    async def test_touches_no_database(self, app: FastAPI, client: AsyncClient) -> None:
        async with database_gone(app):
            response = await client.get("/livez")
        assert response.status_code == 200


class TestReadyz:
    async def test_ready_on_sqlite_without_a_revision(
        self, client: AsyncClient, postgres_url: str | None
    ) -> None:
        if postgres_url:
            pytest.skip("SQLite: the schema is the models', not a revision's")
        response = await client.get("/readyz")
        assert response.status_code == 200
        assert response.json() == {"status": "ready", "database": "ok", "revision": None}
        assert response.headers["cache-control"] == "no-store"

    async def test_ready_at_the_scripts_head(
        self, client: AsyncClient, record_revisions: RecordRevisions
    ) -> None:
        await record_revisions(script_head())
        response = await client.get("/readyz")
        assert response.status_code == 200
        assert response.json() == {"status": "ready", "database": "ok", "revision": script_head()}

    async def test_503_on_a_database_never_migrated(
        self, client: AsyncClient, record_revisions: RecordRevisions, app: FastAPI
    ) -> None:
        async with app.state.engine.begin() as connection:
            await connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        response = await client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["reason"] == "schema_not_at_head"
        assert body["revision"] is None
        assert body["detail"] == (
            f"Database schema not migrated (head is {script_head()}): run `alembic upgrade head`"
        )

    async def test_503_on_an_empty_version_table(
        self, client: AsyncClient, record_revisions: RecordRevisions
    ) -> None:
        await record_revisions()
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert "not migrated" in response.json()["detail"]

    async def test_503_on_a_schema_behind_the_head(
        self, client: AsyncClient, record_revisions: RecordRevisions
    ) -> None:
        scripts = ScriptDirectory.from_config(Config(str(PROJECT_ROOT / "alembic.ini")))
        previous = scripts.get_revision(script_head()).down_revision
        assert isinstance(previous, str), "needs two revisions"
        await record_revisions(previous)
        response = await client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["reason"] == "schema_not_at_head"
        assert body["revision"] == previous
        assert body["detail"] == (
            f"Database schema at revision {previous}, this version needs {script_head()}: "
            "run `alembic upgrade head`"
        )

    async def test_503_on_a_revision_this_version_does_not_know(
        self, client: AsyncClient, record_revisions: RecordRevisions
    ) -> None:
        await record_revisions("9999_from_the_future")
        response = await client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["revision"] == "9999_from_the_future"
        assert "which this version does not know" in body["detail"]
        assert f"its head is {script_head()}" in body["detail"]

    async def test_503_when_the_database_does_not_answer(
        self, app: FastAPI, client: AsyncClient
    ) -> None:
        async with database_gone(app):
            response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {
            "status": "unavailable",
            "reason": "database_unavailable",
            "detail": "Database unavailable",
            "revision": None,
        }
        assert response.headers["cache-control"] == "no-store"

    async def test_back_to_200_when_the_database_is(
        self, app: FastAPI, client: AsyncClient
    ) -> None:
        async with database_gone(app):
            assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/readyz")).status_code == 200

    async def test_503_from_the_first_sigterm_while_liveness_stays(
        self, settings: Settings
    ) -> None:
        """The app's SIGTERM hook (which then hands the signal on, here to a no-op in place of
        uvicorn's) turns readiness off before anything else stops."""
        signals: list[int] = []
        previous = signal.signal(signal.SIGTERM, lambda signum, _frame: signals.append(signum))
        try:
            async with serving(create_app(settings)) as application:
                transport = ASGITransport(app=application)
                async with AsyncClient(transport=transport, base_url="http://test") as client:
                    signal.raise_signal(signal.SIGTERM)
                    await asyncio.sleep(0)  # the hook runs on the loop
                    response = await client.get("/readyz")
                    liveness = await client.get("/livez")
        finally:
            signal.signal(signal.SIGTERM, previous)
        assert signals == [signal.SIGTERM]
        assert response.status_code == 503
        assert response.json() == {
            "status": "unavailable",
            "reason": "shutting_down",
            "detail": "Shutting down",
            "revision": None,
        }
        assert liveness.status_code == 200

    async def test_documented_with_its_503(self, client: AsyncClient) -> None:
        spec = (await client.get("/openapi.json")).json()
        readyz = spec["paths"]["/readyz"]["get"]["responses"]
        assert readyz["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Ready")
        assert readyz["503"]["content"]["application/json"]["schema"]["$ref"].endswith("/NotReady")
        assert "/livez" in spec["paths"]


class TestReadyzCached:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"readiness_cache_seconds": 60}

    async def test_the_last_answer_is_reused_within_the_cache_time(
        self, app: FastAPI, client: AsyncClient
    ) -> None:
        assert (await client.get("/readyz")).status_code == 200
        async with database_gone(app):
            response = await client.get("/readyz")
        assert response.status_code == 200

    async def test_shutting_down_is_never_cached(self, app: FastAPI, client: AsyncClient) -> None:
        await client.get("/readyz")
        app.state.readiness.begin_shutdown()
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["reason"] == "shutting_down"
