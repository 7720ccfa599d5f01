"""`POST /api/{user_id}/chat` against a scripted Chat Completions model: the real Agents SDK,
the real `/mcp` tools and the real database. Each test scripts what the model answers and
checks what the app sent it and what the tools changed."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from tests.chat.helpers import chat_url, conversation_of, say, sse_events, tool_messages
from tests.chat.model_server import ScriptedModel, call, calls, reply
from tests.helpers import Account, create_task


async def _titles(client: AsyncClient, account: Account, **params: Any) -> list[str]:
    response = await client.get(account.tasks_url, headers=account.headers, params=params)
    return [task["title"] for task in response.json()]


class TestTheContract:
    async def test_a_first_message_starts_a_conversation(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(call("add_task", title="Buy groceries"), reply("Added 'Buy groceries'."))
        response = await say(client, alice, "Add a task to buy groceries")
        assert response.status_code == 200, response.text
        body = response.json()
        (task,) = (await client.get(alice.tasks_url, headers=alice.headers)).json()
        assert body == {
            "conversation_id": body["conversation_id"],
            "response": "Added 'Buy groceries'.",
            "tool_calls": [
                {
                    "name": "add_task",
                    "arguments": {"title": "Buy groceries"},
                    "result": {
                        "task_id": task["id"],
                        "status": "created",
                        "title": "Buy groceries",
                    },
                    "is_error": False,
                }
            ],
        }
        conversations = (
            await client.get(f"/api/{alice.id}/conversations", headers=alice.headers)
        ).json()
        assert [(c["id"], c["title"]) for c in conversations] == [
            (body["conversation_id"], "Add a task to buy groceries")
        ]
        messages = await client.get(
            f"/api/{alice.id}/conversations/{body['conversation_id']}/messages",
            headers=alice.headers,
        )
        assert messages.headers["X-Total-Count"] == "2"
        assert [(m["role"], m["content"], len(m["tool_calls"])) for m in messages.json()] == [
            ("user", "Add a task to buy groceries", 0),
            ("assistant", "Added 'Buy groceries'.", 1),
        ]

    async def test_text_no_database_stores_is_made_storable_in_the_answer(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        """PostgreSQL's text cannot hold NUL, and no UTF-8 holds a lone surrogate (a model's
        `\\ud800` escape): NUL is dropped, a lone surrogate becomes U+FFFD, in the answer, its
        stream and what is stored alike."""
        model.script(reply("Done\u0000."), reply("Done\ud800 again."))
        answer = (await say(client, alice, "hi")).json()
        assert answer["response"] == "Done."
        streamed = sse_events((await say(client, alice, "hi", Accept="text/event-stream")).text)
        assert streamed[-1][1]["response"] == "Done\ufffd again."
        deltas = "".join(data["text"] for name, data in streamed if name == "delta")
        assert deltas == "Done\ufffd again."
        for conversation in (answer["conversation_id"], answer["conversation_id"] + 1):
            messages = await client.get(
                f"/api/{alice.id}/conversations/{conversation}/messages", headers=alice.headers
            )
            assert messages.json()[1]["content"] in ("Done.", "Done\ufffd again.")

    async def test_the_tools_offered_do_not_ask_for_a_user_id(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(reply("Hello!"))
        assert (await say(client, alice, "hi")).status_code == 200
        (request,) = model.requests
        tools = {
            tool["function"]["name"]: tool["function"]["parameters"] for tool in request["tools"]
        }
        assert set(tools) == {
            "add_task",
            "list_tasks",
            "complete_task",
            "delete_task",
            "update_task",
        }
        assert all("user_id" not in schema["properties"] for schema in tools.values())
        assert request["model"] == "scripted-model"
        assert conversation_of(request) == [("user", "hi")]

    async def test_the_tool_changes_are_task_changes_like_any_other(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(call("add_task", title="Water the plants"), reply("Added."))
        await say(client, alice, "Add water the plants")
        feed = (await client.get(f"{alice.tasks_url}/changes", headers=alice.headers)).json()
        assert [task["title"] for task in feed["changes"]] == ["Water the plants"]


class TestTheBehaviourTable:
    @pytest.mark.parametrize(
        ("message", "arguments", "expected"),
        [
            ("Show me all my tasks", {"status": "all"}, ["Call mom", "Buy milk"]),
            ("What's pending?", {"status": "pending"}, ["Call mom"]),
            ("What have I completed?", {"status": "completed"}, ["Buy milk"]),
        ],
    )
    async def test_listing_with_the_right_filter(
        self,
        client: AsyncClient,
        alice: Account,
        model: ScriptedModel,
        message: str,
        arguments: dict[str, Any],
        expected: list[str],
    ) -> None:
        milk = await create_task(client, alice, title="Buy milk")
        await client.patch(f"{alice.tasks_url}/{milk['id']}/complete", headers=alice.headers)
        await create_task(client, alice, title="Call mom")
        model.script(call("list_tasks", **arguments), reply("Here they are."))
        response = await say(client, alice, message)
        (listed,) = response.json()["tool_calls"]
        assert [task["title"] for task in listed["result"]] == expected
        assert '"title": "Call mom"' in tool_messages(model.requests[1])[0] or expected == [
            "Buy milk"
        ]

    async def test_complete(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        task = await create_task(client, alice, title="Pay rent")
        model.script(call("complete_task", task_id=task["id"]), reply("Marked 'Pay rent' done."))
        await say(client, alice, f"Mark task {task['id']} as complete")
        assert await _titles(client, alice, status="completed") == ["Pay rent"]

    async def test_update(self, client: AsyncClient, alice: Account, model: ScriptedModel) -> None:
        task = await create_task(client, alice, title="Call mom")
        model.script(
            call("update_task", task_id=task["id"], title="Call mom tonight"), reply("Renamed.")
        )
        await say(client, alice, f"Change task {task['id']} to 'Call mom tonight'")
        assert await _titles(client, alice) == ["Call mom tonight"]

    async def test_delete_by_name_lists_first_then_deletes(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        await create_task(client, alice, title="Buy milk")
        meeting = await create_task(client, alice, title="Team meeting")
        model.script(
            call("list_tasks", search="meeting"),
            call("delete_task", task_id=meeting["id"]),
            reply("Deleted 'Team meeting'."),
        )
        response = await say(client, alice, "Delete the meeting task")
        assert [c["name"] for c in response.json()["tool_calls"]] == ["list_tasks", "delete_task"]
        assert f'"id": {meeting["id"]}' in tool_messages(model.requests[1])[0]
        assert await _titles(client, alice) == ["Buy milk"]

    async def test_a_task_not_found_reaches_the_model_as_a_sentence(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(call("complete_task", task_id=999), reply("I could not find task 999."))
        response = await say(client, alice, "Complete task 999")
        assert tool_messages(model.requests[1]) == ['{"error": "Task not found"}']
        assert response.json()["tool_calls"][0] | {"arguments": None} == {
            "name": "complete_task",
            "arguments": None,
            "result": "Task not found",
            "is_error": True,
        }
        assert response.json()["response"] == "I could not find task 999."

    async def test_two_actions_in_one_answer(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(
            calls(("add_task", {"title": "Buy eggs"}), ("add_task", {"title": "Buy bread"})),
            reply("Added both."),
        )
        await say(client, alice, "Add buy eggs and buy bread")
        assert sorted(await _titles(client, alice)) == ["Buy bread", "Buy eggs"]


class TestOnlyTheCallersTasks:
    async def test_a_user_id_argument_is_refused(
        self, client: AsyncClient, alice: Account, bob: Account, model: ScriptedModel
    ) -> None:
        model.script(call("add_task", title="Sneaky", user_id=bob.id), reply("Sorry."))
        await say(client, alice, "Add a task for bob")
        (refusal,) = tool_messages(model.requests[1])
        assert refusal.startswith('{"error": "Unknown argument user_id: add_task takes title,')
        assert await _titles(client, bob) == []
        assert await _titles(client, alice) == []

    async def test_an_unknown_argument_is_refused_naming_only_the_arguments_offered(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(call("add_task", title="Tea", colour="green"), reply("Sorry."))
        await say(client, alice, "Add a green tea task")
        (refusal,) = tool_messages(model.requests[1])
        offered = model.requests[0]["tools"]
        (add_task,) = [tool for tool in offered if tool["function"]["name"] == "add_task"]
        takes = ", ".join(add_task["function"]["parameters"]["properties"])
        assert refusal == f'{{"error": "Unknown argument colour: add_task takes {takes}"}}'
        assert "user_id" not in refusal
        assert await _titles(client, alice) == []

    async def test_another_users_task_id_is_not_found(
        self, client: AsyncClient, alice: Account, bob: Account, model: ScriptedModel
    ) -> None:
        theirs = await create_task(client, bob, title="Bob's")
        model.script(call("delete_task", task_id=theirs["id"]), reply("Not found."))
        await say(client, alice, f"Delete task {theirs['id']}")
        assert tool_messages(model.requests[1]) == ['{"error": "Task not found"}']
        assert await _titles(client, bob) == ["Bob's"]

    async def test_the_history_sent_is_the_callers_conversation_only(
        self, client: AsyncClient, alice: Account, bob: Account, model: ScriptedModel
    ) -> None:
        model.script(reply("Hi Bob."), reply("Hi Alice."), reply("Still here."))
        await say(client, bob, "I am bob, my secret is swordfish-kumquat")
        first = (await say(client, alice, "I am alice")).json()
        await say(client, alice, "Anything else?", first["conversation_id"])
        assert conversation_of(model.requests[2]) == [
            ("user", "I am alice"),
            ("assistant", "Hi Alice."),
            ("user", "Anything else?"),
        ]
        assert all(
            "swordfish-kumquat" not in str(request["messages"]) for request in model.requests[1:]
        )


class TestIsolation:
    async def test_another_users_path_is_403_before_anything_runs(
        self, client: AsyncClient, alice: Account, bob: Account, model: ScriptedModel
    ) -> None:
        response = await client.post(chat_url(alice), json={"message": "hi"}, headers=bob.headers)
        assert response.status_code == 403
        for path in ("conversations", "conversations/1/messages"):
            assert (
                await client.get(f"/api/{alice.id}/{path}", headers=bob.headers)
            ).status_code == 403
        assert model.requests == []

    async def test_another_users_conversation_is_404(
        self, client: AsyncClient, alice: Account, bob: Account, model: ScriptedModel
    ) -> None:
        model.script(reply("Hi Bob."))
        theirs = (await say(client, bob, "hello")).json()["conversation_id"]
        response = await say(client, alice, "hello", theirs)
        assert (response.status_code, response.json()) == (
            404,
            {"detail": "Conversation not found"},
        )
        base = f"/api/{alice.id}/conversations"
        assert (
            await client.get(f"{base}/{theirs}/messages", headers=alice.headers)
        ).status_code == 404
        assert (await client.delete(f"{base}/{theirs}", headers=alice.headers)).status_code == 404
        assert (await client.get(base, headers=alice.headers)).json() == []
        assert (await say(client, alice, "hello", 424242)).status_code == 404
        assert len(model.requests) == 1

    async def test_deleting_a_conversation_keeps_its_tasks(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(call("add_task", title="Stay"), reply("Added."))
        conversation = (await say(client, alice, "add stay")).json()["conversation_id"]
        url = f"/api/{alice.id}/conversations/{conversation}"
        assert (await client.delete(url, headers=alice.headers)).status_code == 204
        assert (await client.get(f"{url}/messages", headers=alice.headers)).status_code == 404
        assert await _titles(client, alice) == ["Stay"]

    async def test_deleting_the_account_deletes_its_conversations(
        self, client: AsyncClient, alice: Account, bob: Account, model: ScriptedModel
    ) -> None:
        model.script(reply("Hi."), reply("Hi."))
        await say(client, alice, "hello")
        await say(client, bob, "hello")
        response = await client.request(
            "DELETE", "/api/auth/me", json={"password": alice.password}, headers=alice.headers
        )
        assert response.status_code == 204
        app = client._transport.app  # type: ignore[attr-defined]
        async with app.state.database.read() as connection:
            from sqlalchemy import select

            from models import conversations

            owners = (await connection.execute(select(conversations.c.user_id))).scalars().all()
        assert owners == [bob.id]


class TestStreaming:
    async def test_text_tool_calls_and_results_then_the_stored_answer(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(call("add_task", title="Buy milk"), reply("Added 'Buy milk' for you."))
        response = await say(client, alice, "Add buy milk", Accept="text/event-stream")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.text)
        names = [name for name, _ in events]
        assert names[:2] == ["tool_call", "tool_result"]
        assert names[-1] == "done" and set(names[2:-1]) == {"delta"}
        assert events[0][1] | {"call_id": None} == {
            "call_id": None,
            "name": "add_task",
            "arguments": {"title": "Buy milk"},
        }
        assert events[1][1]["result"]["status"] == "created"
        assert events[1][1]["call_id"] == events[0][1]["call_id"]
        assert "".join(data["text"] for name, data in events if name == "delta") == (
            "Added 'Buy milk' for you."
        )
        done = events[-1][1]
        assert done["response"] == "Added 'Buy milk' for you."
        assert [c["name"] for c in done["tool_calls"]] == ["add_task"]
        messages = await client.get(
            f"/api/{alice.id}/conversations/{done['conversation_id']}/messages",
            headers=alice.headers,
        )
        assert [m["content"] for m in messages.json()] == ["Add buy milk", done["response"]]
        assert all(request["stream"] for request in model.requests)

    async def test_a_model_failure_mid_stream_is_an_error_event(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        from tests.chat.model_server import Failure

        model.script(Failure(500))
        response = await say(client, alice, "hi", Accept="text/event-stream")
        assert response.status_code == 200
        ((name, data),) = sse_events(response.text)
        assert name == "error"
        assert data["status"] == 502
        assert (
            await client.get(f"/api/{alice.id}/conversations", headers=alice.headers)
        ).json() == []
