"""Public endpoints: `/`, `/health`, `/docs`, `/openapi.json`."""

from __future__ import annotations

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import create_async_engine


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
