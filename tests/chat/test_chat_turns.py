"""What a chat turn survives: a model that fails, rate-limits or times out (the conversation
stays whole), a retry with an `Idempotency-Key` (no tool call runs twice), other instances and
restarts (the state is in the database), and the limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from main import create_app
from settings import Settings
from tests.chat.helpers import conversation_of, say, sse_events
from tests.chat.model_server import Failure, ScriptedModel, Stall, call, reply
from tests.conftest import serving
from tests.helpers import Account

KEY = '"turn-1"'


async def _conversations(client: AsyncClient, account: Account) -> list[dict[str, Any]]:
    response = await client.get(f"/api/{account.id}/conversations", headers=account.headers)
    return response.json()


async def _titles(client: AsyncClient, account: Account) -> list[str]:
    response = await client.get(account.tasks_url, headers=account.headers)
    return [task["title"] for task in response.json()]


class TestModelFailures:
    @pytest.mark.parametrize(
        ("failure", "status", "retry_after"),
        [
            (Failure(500), 502, None),
            (Failure(401), 502, None),
            (Failure(404), 502, None),
            (Failure(429, {"Retry-After": "7"}), 503, "7"),
            (Failure(503), 503, "30"),
        ],
    )
    async def test_is_a_gateway_error_and_stores_nothing(
        self,
        client: AsyncClient,
        alice: Account,
        model: ScriptedModel,
        failure: Failure,
        status: int,
        retry_after: str | None,
    ) -> None:
        model.script(failure)
        response = await say(client, alice, "hello")
        assert response.status_code == status, response.text
        assert response.headers.get("Retry-After") == retry_after
        assert "model" in response.json()["detail"]
        assert "Error code" not in response.json()["detail"]  # never the provider's own text
        assert await _conversations(client, alice) == []

    async def test_a_failed_turn_leaves_an_existing_conversation_whole(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(reply("Hi."), Failure(500), reply("Hello again."))
        conversation = (await say(client, alice, "hi")).json()["conversation_id"]
        assert (await say(client, alice, "are you there?", conversation)).status_code == 502
        assert (await say(client, alice, "hello?", conversation)).status_code == 200
        assert conversation_of(model.requests[2]) == [
            ("user", "hi"),
            ("assistant", "Hi."),
            ("user", "hello?"),
        ]

    async def test_a_tool_call_that_is_not_valid_unicode_is_502(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(call("add_task", title="Tea\ud800"))
        response = await say(client, alice, "add tea")
        assert (response.status_code, response.json()) == (
            502,
            {"detail": "The model answered with text that is not valid Unicode"},
        )
        assert await _conversations(client, alice) == []
        assert await _titles(client, alice) == []

    async def test_a_model_that_loops_is_stopped_after_max_turns(
        self, client: AsyncClient, alice: Account, model: ScriptedModel, settings: Settings
    ) -> None:
        model.script(*[call("list_tasks")] * settings.chat_max_turns)
        response = await say(client, alice, "list forever")
        assert response.status_code == 502
        assert "CHAT_MAX_TURNS" in response.json()["detail"]


class TestModelTimeout:
    @pytest.fixture
    def settings_overrides(self, chat_settings: dict[str, Any]) -> dict[str, object]:
        return {**chat_settings, "chat_model_timeout": 3.0}

    async def test_is_504(self, client: AsyncClient, alice: Account, model: ScriptedModel) -> None:
        model.script(Stall())
        response = await say(client, alice, "hello")
        assert response.status_code == 504
        assert response.json()["detail"] == (
            "The model (scripted-model) did not answer within 3 seconds; try again"
        )
        assert await _conversations(client, alice) == []

    async def test_mid_stream_is_an_error_event(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(call("add_task", title="Before the stall"), Stall())
        response = await say(client, alice, "add it", Accept="text/event-stream")
        names = [name for name, _ in sse_events(response.text)]
        assert names == ["tool_call", "tool_result", "error"]
        assert sse_events(response.text)[-1][1]["status"] == 504
        assert await _titles(client, alice) == ["Before the stall"]
        assert await _conversations(client, alice) == []


class TestIdempotencyKey:
    async def test_a_retry_replays_the_answer_without_the_model(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(call("add_task", title="Once"), reply("Added 'Once'."))
        first = await say(client, alice, "add once", **{"Idempotency-Key": KEY})
        again = await say(client, alice, "add once", **{"Idempotency-Key": KEY})
        assert (again.status_code, again.json()) == (200, first.json())
        assert again.headers["Idempotent-Replayed"] == "true"
        assert len(model.requests) == 2
        assert await _titles(client, alice) == ["Once"]
        streamed = await say(
            client, alice, "add once", **{"Idempotency-Key": KEY, "Accept": "text/event-stream"}
        )
        assert sse_events(streamed.text) == [("done", first.json())]

    async def test_a_retry_after_the_model_failed_does_not_run_a_tool_twice(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(call("add_task", title="Buy milk"), Failure(500))
        failed = await say(client, alice, "add buy milk", **{"Idempotency-Key": KEY})
        assert failed.status_code == 502
        assert await _titles(client, alice) == ["Buy milk"]
        # The retry: the model sees the call that already ran, and makes it again anyway.
        model.script(call("add_task", title="Buy milk"), reply("Added 'Buy milk'."))
        retried = await say(client, alice, "add buy milk", **{"Idempotency-Key": KEY})
        assert retried.status_code == 200, retried.text
        assert await _titles(client, alice) == ["Buy milk"]
        resumed = conversation_of(model.requests[2])
        assert resumed == [
            ("user", "add buy milk"),
            ("tool_calls", [("add_task", {"title": "Buy milk"})]),
            ("tool", '{"task_id": 1, "title": "Buy milk", "status": "created"}'),
        ]
        body = retried.json()
        assert [c["name"] for c in body["tool_calls"]] == ["add_task"]  # the one that ran
        messages = await client.get(
            f"/api/{alice.id}/conversations/{body['conversation_id']}/messages",
            headers=alice.headers,
        )
        assert [m["role"] for m in messages.json()] == ["user", "assistant"]

    async def test_a_failure_before_any_tool_releases_the_key(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(Failure(500), reply("Hi."))
        assert (await say(client, alice, "hi", **{"Idempotency-Key": KEY})).status_code == 502
        retried = await say(client, alice, "hi", **{"Idempotency-Key": KEY})
        assert retried.status_code == 200
        assert "Idempotent-Replayed" not in retried.headers
        assert conversation_of(model.requests[1]) == [("user", "hi")]

    async def test_the_key_with_another_message_is_422(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(reply("Hi."))
        await say(client, alice, "hi", **{"Idempotency-Key": KEY})
        response = await say(client, alice, "something else", **{"Idempotency-Key": KEY})
        assert response.status_code == 422
        assert len(model.requests) == 1
        assert (
            await say(client, alice, "hi", **{"Idempotency-Key": "unquoted"})
        ).status_code == 400


class TestLimits:
    async def test_without_a_key_the_chat_is_503_saying_what_to_set(
        self, client: AsyncClient, alice: Account, model: ScriptedModel, settings: Settings
    ) -> None:
        app = create_app(settings.model_copy(update={"openai_api_key": None}))
        async with (
            serving(app),
            AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as other,
        ):
            response = await say(other, alice, "hello")
            assert response.status_code == 503
            assert "OPENAI_API_KEY" in response.json()["detail"]
            streamed = await say(other, alice, "hello", Accept="text/event-stream")
            assert streamed.status_code == 503
            assert (await _conversations(other, alice)) == []
        assert model.requests == []

    async def test_a_message_longer_than_the_limit_is_422(
        self, client: AsyncClient, alice: Account, model: ScriptedModel, settings: Settings
    ) -> None:
        response = await say(client, alice, "x" * (settings.chat_max_message_chars + 1))
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "message"]
        assert (await say(client, alice, "  ")).status_code == 422
        assert model.requests == []

    async def test_a_body_over_the_size_limit_is_413(
        self, client: AsyncClient, alice: Account, settings: Settings
    ) -> None:
        response = await say(client, alice, "x" * settings.max_body_bytes)
        assert response.status_code == 413

    @pytest.fixture
    def settings_overrides(self, chat_settings: dict[str, Any]) -> dict[str, object]:
        return {**chat_settings, "chat_turns_per_window": 2, "chat_turn_window_seconds": 600}

    async def test_turns_per_user_are_limited_in_the_database(
        self, client: AsyncClient, alice: Account, bob: Account, model: ScriptedModel
    ) -> None:
        model.script(reply("1"), reply("2"), reply("bob"))
        assert (await say(client, alice, "one")).status_code == 200
        assert (await say(client, alice, "two")).status_code == 200
        refused = await say(client, alice, "three")
        assert refused.status_code == 429
        assert 590 <= int(refused.headers["Retry-After"]) <= 600
        assert "Too many chat turns" in refused.json()["detail"]
        assert (await say(client, bob, "mine")).status_code == 200
        assert len(model.requests) == 3


@pytest.fixture
async def second_app(settings: Settings, app: FastAPI) -> AsyncIterator[FastAPI]:
    """Another instance of the API on the same database."""
    async with serving(create_app(settings)) as other:
        yield other


class TestStatelessness:
    async def test_another_instance_continues_the_conversation(
        self, client: AsyncClient, alice: Account, model: ScriptedModel, second_app: FastAPI
    ) -> None:
        model.script(call("add_task", title="Buy milk"), reply("Added."), reply("You have one."))
        conversation = (await say(client, alice, "add buy milk")).json()["conversation_id"]
        async with AsyncClient(
            transport=ASGITransport(app=second_app), base_url="http://test"
        ) as other:
            response = await say(other, alice, "how many do I have?", conversation)
        assert response.status_code == 200
        assert conversation_of(model.requests[2]) == [
            ("user", "add buy milk"),
            ("tool_calls", [("add_task", {"title": "Buy milk"})]),
            ("tool", '{"task_id": 1, "title": "Buy milk", "status": "created"}'),
            ("assistant", "Added."),
            ("user", "how many do I have?"),
        ]

    async def test_a_restart_loses_nothing(
        self, alice: Account, client: AsyncClient, model: ScriptedModel, settings: Settings
    ) -> None:
        model.script(reply("Noted."), reply("You said hello."))
        conversation = (await say(client, alice, "hello")).json()["conversation_id"]
        restarted = create_app(settings)
        async with (
            serving(restarted),
            AsyncClient(transport=ASGITransport(app=restarted), base_url="http://test") as after,
        ):
            response = await say(after, alice, "what did I say?", conversation)
        assert response.status_code == 200
        assert ("user", "hello") in conversation_of(model.requests[1])

    async def test_the_history_is_the_latest_messages_only(
        self, client: AsyncClient, alice: Account, model: ScriptedModel, settings: Settings
    ) -> None:
        window = settings.chat_history_messages
        model.script(*[reply(f"answer {n}") for n in range(window // 2 + 2)])
        conversation = (await say(client, alice, "message 0")).json()["conversation_id"]
        for n in range(1, window // 2 + 2):
            await say(client, alice, f"message {n}", conversation)
        sent = conversation_of(model.requests[-1])
        assert len(sent) == window + 1
        assert sent[0] == ("user", "message 1")


class TestDeletedMeanwhile:
    async def test_a_conversation_deleted_while_the_model_answers_is_404(
        self, client: AsyncClient, alice: Account, model: ScriptedModel, app: FastAPI
    ) -> None:
        model.script(reply("Hi."))
        conversation = (await say(client, alice, "hi")).json()["conversation_id"]
        turn = await app.state.chat.begin(
            (await _owner(app, alice)), conversation, "still there?", None
        )
        url = f"/api/{alice.id}/conversations/{conversation}"
        assert (await client.delete(url, headers=alice.headers)).status_code == 204
        model.script(reply("Yes."))
        from chat.failures import ChatFailure

        with pytest.raises(ChatFailure) as refused:
            await app.state.chat.answer(turn)
        assert refused.value.status == 404

    async def test_a_conversation_deleted_as_the_turn_begins_is_404(
        self,
        client: AsyncClient,
        alice: Account,
        model: ScriptedModel,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Deleted by another request between the turn's check and its insert (a race the
        test makes certain by deleting it right after the history is read)."""
        from chat import conversations

        model.script(reply("Hi."))
        conversation = (await say(client, alice, "hi")).json()["conversation_id"]
        read_history = conversations.recent_messages

        async def deleted_meanwhile(connection: Any, conversation_id: int, limit: int) -> Any:
            rows = await read_history(connection, conversation_id, limit)
            await conversations.delete(connection, alice.id, conversation_id)
            return rows

        monkeypatch.setattr(conversations, "recent_messages", deleted_meanwhile)
        response = await say(client, alice, "still there?", conversation)
        assert (response.status_code, response.json()) == (
            404,
            {"detail": "Conversation not found"},
        )
        assert len(model.requests) == 1


async def _owner(app: FastAPI, account: Account):
    from auth.scope import OwnerScope

    return OwnerScope.of(await app.state.token_verifier.verify(account.token))
