"""`POST /chatkit`: ChatKit's protocol on the same conversations, the same agent and tools,
against the scripted model."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient

from chat import conversations
from tests.chat.helpers import conversation_of
from tests.chat.model_server import ScriptedModel, call, reply
from tests.helpers import Account


def _input(text: str) -> dict[str, Any]:
    return {
        "content": [{"type": "input_text", "text": text}],
        "attachments": [],
        "inference_options": {},
    }


def _events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


async def _chatkit(client: AsyncClient, account: Account, kind: str, /, **params: Any):
    """A ChatKit request, its JSON ASCII-escaped (a lone surrogate travels as `\\ud800`)."""
    body = json.dumps({"type": kind, "params": params})
    return await client.post(
        "/chatkit",
        content=body,
        headers={**account.headers, "Content-Type": "application/json"},
    )


def _done_assistant_items(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        event["item"]
        for event in events
        if event["type"] == "thread.item.done" and event["item"]["type"] == "assistant_message"
    ]


class TestThreads:
    async def test_a_thread_is_a_conversation_and_a_second_turn_continues_it(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(call("add_task", title="Buy milk"), reply("Added 'Buy milk'."))
        created = await _chatkit(client, alice, "threads.create", input=_input("Add buy milk"))
        assert created.status_code == 200
        assert created.headers["content-type"].startswith("text/event-stream")
        events = _events(created.text)
        thread = events[0]["thread"]
        assert events[0]["type"] == "thread.created"
        (first,) = _done_assistant_items(events)
        assert first["content"][0]["text"] == "Added 'Buy milk'."
        tasks = (await client.get(alice.tasks_url, headers=alice.headers)).json()
        assert [task["title"] for task in tasks] == ["Buy milk"]

        model.script(reply("You're welcome!"))
        second = await _chatkit(
            client,
            alice,
            "threads.add_user_message",
            thread_id=thread["id"],
            input=_input("thanks"),
        )
        (answer,) = _done_assistant_items(_events(second.text))
        assert answer["id"] != first["id"]
        assert "__fake_id__" not in second.text + created.text
        # The history in a form a Chat Completions model takes: string contents, tool turns.
        assert conversation_of(model.requests[-1]) == [
            ("user", "Add buy milk"),
            ("tool_calls", [("add_task", {"title": "Buy milk"})]),
            ("tool", '{"task_id": 1, "title": "Buy milk", "status": "created"}'),
            ("assistant", "Added 'Buy milk'."),
            ("user", "thanks"),
        ]

        conversations = (
            await client.get(f"/api/{alice.id}/conversations", headers=alice.headers)
        ).json()
        assert [(str(c["id"]), c["title"]) for c in conversations] == [
            (thread["id"], "Add buy milk")
        ]
        messages = (
            await client.get(
                f"/api/{alice.id}/conversations/{thread['id']}/messages", headers=alice.headers
            )
        ).json()
        assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
        assert messages[1]["tool_calls"][0]["name"] == "add_task"

        items = (
            await _chatkit(client, alice, "items.list", thread_id=thread["id"], order="asc")
        ).json()
        assert [item["type"] for item in items["data"]] == [
            "user_message",
            "assistant_message",
            "user_message",
            "assistant_message",
        ]
        assert [item["id"] for item in items["data"]][1::2] == [first["id"], answer["id"]]
        page = (
            await _chatkit(
                client, alice, "items.list", thread_id=thread["id"], order="asc", limit=2
            )
        ).json()
        assert page["has_more"] is True
        rest = (
            await _chatkit(
                client,
                alice,
                "items.list",
                thread_id=thread["id"],
                order="asc",
                after=page["after"],
            )
        ).json()
        assert [item["id"] for item in page["data"] + rest["data"]] == [
            item["id"] for item in items["data"]
        ]
        threads = (await _chatkit(client, alice, "threads.list")).json()
        assert [t["id"] for t in threads["data"]] == [thread["id"]]
        loaded = (await _chatkit(client, alice, "threads.get_by_id", thread_id=thread["id"])).json()
        assert loaded["title"] == "Add buy milk"

    async def test_one_user_never_sees_anothers_threads(
        self, client: AsyncClient, alice: Account, bob: Account, model: ScriptedModel
    ) -> None:
        model.script(reply("Hi Alice."))
        created = await _chatkit(client, alice, "threads.create", input=_input("hello"))
        thread_id = _events(created.text)[0]["thread"]["id"]
        assert (await _chatkit(client, bob, "threads.list")).json()["data"] == []
        for kind, params in (
            ("items.list", {}),
            ("threads.get_by_id", {}),
            ("threads.delete", {}),
            ("threads.add_user_message", {"input": _input("mine now")}),
        ):
            response = await _chatkit(client, bob, kind, thread_id=thread_id, **params)
            assert (response.status_code, response.json()) == (404, {"detail": "Thread not found"})
        assert (await _chatkit(client, alice, "items.list", thread_id=thread_id)).status_code == 200
        assert len(model.requests) == 1

    async def test_deleting_a_thread_deletes_the_conversation(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(reply("Hi."))
        thread_id = _events(
            (await _chatkit(client, alice, "threads.create", input=_input("hi"))).text
        )[0]["thread"]["id"]
        assert (await _chatkit(client, alice, "threads.delete", thread_id=thread_id)).json() == {}
        assert (
            await client.get(f"/api/{alice.id}/conversations", headers=alice.headers)
        ).json() == []

    async def test_nul_characters_in_the_models_answer_are_dropped_before_it_is_stored(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(reply("Hi\u0000."))
        created = await _chatkit(client, alice, "threads.create", input=_input("hi"))
        assert not [event for event in _events(created.text) if event["type"] == "error"]
        thread_id = _events(created.text)[0]["thread"]["id"]
        items = (
            await _chatkit(client, alice, "items.list", thread_id=thread_id, order="asc")
        ).json()
        assert items["data"][1]["content"][0]["text"] == "Hi."

    async def test_a_lone_surrogate_in_the_models_answer_is_sent_and_stored_as_u_fffd(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        """No UTF-8 holds a lone surrogate (a model's `\\ud800` escape): written as it came, it
        broke the stream halfway."""
        model.script(reply("Hi\ud800.\u0000"))
        created = await _chatkit(client, alice, "threads.create", input=_input("hi"))
        events = _events(created.text)
        assert not [event for event in events if event["type"] == "error"]
        deltas = [
            event["update"]["delta"]
            for event in events
            if event["type"] == "thread.item.updated" and "delta" in event["update"]
        ]
        (answer,) = _done_assistant_items(events)
        assert "".join(deltas) == answer["content"][0]["text"] == "Hi\ufffd."
        items = (
            await _chatkit(client, alice, "items.list", thread_id=events[0]["thread"]["id"])
        ).json()
        assert items["data"][0]["content"][0]["text"] == "Hi\ufffd."


class TestPages:
    async def test_any_page_size_gets_at_most_200(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        """ChatKit clients ask for thousands; one past 64 bits reached LIMIT as it was (a 500 on
        SQLite and PostgreSQL). 0 or none is ChatKit's default page (20)."""
        model.script(reply("Hi."))
        created = await _chatkit(client, alice, "threads.create", input=_input("hi"))
        thread_id = _events(created.text)[0]["thread"]["id"]
        for limit in (None, 0, 1, 200, 201, 9999, 2**63 - 1, 2**64, 10**30):
            threads = await _chatkit(client, alice, "threads.list", limit=limit)
            assert threads.status_code == 200, (limit, threads.text)
            assert [thread["id"] for thread in threads.json()["data"]] == [thread_id]
            items = await _chatkit(client, alice, "items.list", thread_id=thread_id, limit=limit)
            assert items.status_code == 200, (limit, items.text)
            # The user's message and the answer (one of them on a page of 1).
            assert len(items.json()["data"]) == min(limit or 2, 2)

    async def test_a_page_holds_at_most_200_and_says_there_is_more(
        self, app: FastAPI, client: AsyncClient, alice: Account
    ) -> None:
        async with app.state.database.transaction() as connection:
            for number in range(201):
                await conversations.create(connection, alice.id, f"thread {number}")
        first = (await _chatkit(client, alice, "threads.list", limit=9999)).json()
        assert (len(first["data"]), first["has_more"]) == (200, True)
        rest = await _chatkit(client, alice, "threads.list", limit=9999, after=first["after"])
        assert (len(rest.json()["data"]), rest.json()["has_more"]) == (1, False)


class TestRefusals:
    async def test_what_this_assistant_does_not_offer_is_400(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(reply("Hi."))
        created = await _chatkit(client, alice, "threads.create", input=_input("hi"))
        thread_id = _events(created.text)[0]["thread"]["id"]
        response = await _chatkit(
            client, alice, "threads.add_client_tool_output", thread_id=thread_id, result={}
        )
        assert response.status_code == 400
        assert "threads.add_client_tool_output is not supported" in response.json()["detail"]
        renamed = await _chatkit(
            client, alice, "threads.update", thread_id=thread_id, title="Groceries"
        )
        assert renamed.json()["title"] == "Groceries"
        nul = await _chatkit(client, alice, "threads.update", thread_id=thread_id, title="a\x00")
        assert nul.status_code == 422
        too_long = await _chatkit(
            client, alice, "threads.update", thread_id=thread_id, title="t" * 81
        )
        assert too_long.status_code == 422
        assert "at most 80 characters" in too_long.json()["detail"][0]["msg"]
        longest = await _chatkit(
            client, alice, "threads.update", thread_id=thread_id, title="t" * 80
        )
        assert longest.json()["title"] == "t" * 80
        threads = (await _chatkit(client, alice, "threads.list")).json()["data"]
        assert [thread["title"] for thread in threads] == ["t" * 80]

    async def test_needs_a_valid_token(self, client: AsyncClient) -> None:
        response = await client.post("/chatkit", json={"type": "threads.list", "params": {}})
        assert response.status_code == 401

    async def test_what_is_not_a_chatkit_request_is_422(
        self, client: AsyncClient, alice: Account
    ) -> None:
        response = await client.post("/chatkit", json={"type": "nope"}, headers=alice.headers)
        assert response.status_code == 422
        response = await client.post("/chatkit", content=b"{", headers=alice.headers)
        assert response.status_code == 422

    async def test_a_negative_page_size_is_422(self, client: AsyncClient, alice: Account) -> None:
        """PostgreSQL refused the LIMIT (a 500); SQLite answered an empty page."""
        for limit in (-1, -(2**63), -(10**30)):
            for kind, params in (("threads.list", {}), ("items.list", {"thread_id": "1"})):
                response = await _chatkit(client, alice, kind, limit=limit, **params)
                assert response.status_code == 422, (kind, limit, response.text)
                [error] = response.json()["detail"]
                assert error["loc"] == ["body", "params", "limit"]
                assert error["msg"] == "Input should be greater than or equal to 0"

    async def test_a_model_failure_is_an_error_event_the_user_can_retry(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        from tests.chat.model_server import Failure

        model.script(Failure(500))
        response = await _chatkit(client, alice, "threads.create", input=_input("hello"))
        errors = [event for event in _events(response.text) if event["type"] == "error"]
        assert errors == [
            {
                "type": "error",
                "code": "custom",
                "message": "The model provider failed to answer (HTTP 500)",
                "allow_retry": True,
            }
        ]

    async def test_a_message_too_long_blank_or_with_nul_is_422_before_anything_is_stored(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        for text in ("x" * 4001, "  ", "a\x00b"):
            response = await _chatkit(client, alice, "threads.create", input=_input(text))
            assert response.status_code == 422, text
        assert (await _chatkit(client, alice, "threads.list")).json()["data"] == []
        assert model.requests == []


class TestClientMistakes:
    """What a client can get wrong in a ChatKit request is a 4xx, never a crash mid-stream."""

    async def test_a_negative_page_limit_is_422_and_a_huge_one_a_full_page(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(reply("Hi."))
        created = await _chatkit(client, alice, "threads.create", input=_input("hi"))
        thread_id = _events(created.text)[0]["thread"]["id"]
        for kind, params in (("threads.list", {}), ("items.list", {"thread_id": thread_id})):
            refused = await _chatkit(client, alice, kind, limit=-1, **params)
            assert refused.status_code == 422, (kind, refused.text)
            assert refused.json()["detail"][0]["loc"] == ["body", "params", "limit"]
            for limit in (2**63 - 1, 10**20):
                page = await _chatkit(client, alice, kind, limit=limit, **params)
                assert page.status_code == 200, (kind, limit, page.text)
                assert page.json()["has_more"] is False
        items = await _chatkit(client, alice, "items.list", thread_id=thread_id, limit=10**20)
        assert len(items.json()["data"]) == 2

    async def test_attachments_are_400_before_anything_is_stored(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(reply("Hi."))
        created = await _chatkit(client, alice, "threads.create", input=_input("hi"))
        thread_id = _events(created.text)[0]["thread"]["id"]
        attached = {**_input("look at this"), "attachments": ["atc_1"]}
        for kind, params in (
            ("threads.create", {}),
            ("threads.add_user_message", {"thread_id": thread_id}),
        ):
            response = await _chatkit(client, alice, kind, input=attached, **params)
            assert response.status_code == 400, (kind, response.text)
            assert "attachments are not supported" in response.json()["detail"]
        threads = (await _chatkit(client, alice, "threads.list")).json()["data"]
        assert [thread["id"] for thread in threads] == [thread_id]
        items = await _chatkit(client, alice, "items.list", thread_id=thread_id)
        assert len(items.json()["data"]) == 2
        assert len(model.requests) == 1

    async def test_a_retry_after_an_item_that_is_not_a_user_message_is_refused(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        model.script(reply("Hi."))
        created = await _chatkit(client, alice, "threads.create", input=_input("hi"))
        thread_id = _events(created.text)[0]["thread"]["id"]
        (answer,) = _done_assistant_items(_events(created.text))
        not_a_question = await _chatkit(
            client, alice, "threads.retry_after_item", thread_id=thread_id, item_id=answer["id"]
        )
        assert not_a_question.status_code == 422, not_a_question.text
        assert not_a_question.json()["detail"][0]["loc"] == ["body", "params", "item_id"]
        missing = await _chatkit(
            client, alice, "threads.retry_after_item", thread_id=thread_id, item_id="msg_nope"
        )
        assert (missing.status_code, missing.json()) == (404, {"detail": "Item not found"})
        items = await _chatkit(client, alice, "items.list", thread_id=thread_id)
        assert len(items.json()["data"]) == 2
        assert len(model.requests) == 1


class TestRetry:
    async def test_a_retry_after_a_failure_does_not_run_a_tool_twice(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        from tests.chat.model_server import Failure

        model.script(call("add_task", title="Buy milk"), Failure(500))
        created = _events(
            (await _chatkit(client, alice, "threads.create", input=_input("add milk"))).text
        )
        thread_id = created[0]["thread"]["id"]
        question = next(e["item"] for e in created if e["type"] == "thread.item.done")
        assert any(event["type"] == "error" for event in created)
        model.script(call("add_task", title="Buy milk"), reply("Added 'Buy milk'."))
        retried = await _chatkit(
            client, alice, "threads.retry_after_item", thread_id=thread_id, item_id=question["id"]
        )
        (answer,) = _done_assistant_items(_events(retried.text))
        assert answer["content"][0]["text"] == "Added 'Buy milk'."
        tasks = (await client.get(alice.tasks_url, headers=alice.headers)).json()
        assert [task["title"] for task in tasks] == ["Buy milk"]
        assert conversation_of(model.requests[2])[:2] == [
            ("user", "add milk"),
            ("tool_calls", [("add_task", {"title": "Buy milk"})]),
        ]
        messages = (
            await client.get(
                f"/api/{alice.id}/conversations/{thread_id}/messages", headers=alice.headers
            )
        ).json()
        assert [(m["role"], len(m["tool_calls"])) for m in messages] == [
            ("user", 0),
            ("assistant", 1),
        ]


async def _rate(
    client: AsyncClient, account: Account, thread_id: str, item_ids: list[str], kind: str
):
    return await _chatkit(
        client, account, "items.feedback", thread_id=thread_id, item_ids=item_ids, kind=kind
    )


class TestFeedback:
    async def _answered_thread(
        self, client: AsyncClient, account: Account, model: ScriptedModel
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """A thread with one question and its answer: (thread id, question, answer)."""
        model.script(reply("Hi."))
        events = _events(
            (await _chatkit(client, account, "threads.create", input=_input("hi"))).text
        )
        question = next(
            e["item"]
            for e in events
            if e["type"] == "thread.item.done" and e["item"]["type"] == "user_message"
        )
        (answer,) = _done_assistant_items(events)
        return events[0]["thread"]["id"], question, answer

    async def _ratings(
        self, client: AsyncClient, account: Account, thread_id: str
    ) -> list[tuple[str, str | None]]:
        url = f"/api/{account.id}/conversations/{thread_id}/messages"
        messages = (await client.get(url, headers=account.headers)).json()
        return [(m["role"], m["feedback"]) for m in messages]

    async def test_a_rating_is_kept_and_the_latest_wins(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        thread_id, _question, answer = await self._answered_thread(client, alice, model)
        assert await self._ratings(client, alice, thread_id) == [
            ("user", None),
            ("assistant", None),
        ]
        for kind in ("negative", "positive"):
            rated = await _rate(client, alice, thread_id, [answer["id"]], kind)
            assert (rated.status_code, rated.json()) == (200, {})
            assert await self._ratings(client, alice, thread_id) == [
                ("user", None),
                ("assistant", kind),
            ]

    async def test_another_users_thread_or_an_unknown_item_is_404_and_nothing_changes(
        self, client: AsyncClient, alice: Account, bob: Account, model: ScriptedModel
    ) -> None:
        thread_id, _question, answer = await self._answered_thread(client, alice, model)
        theirs = await _rate(client, bob, thread_id, [answer["id"]], "negative")
        assert (theirs.status_code, theirs.json()) == (404, {"detail": "Thread not found"})
        for item_ids in (["msg_nope"], [answer["id"], "msg_nope"], ["msg_\x00"], ["é"], ["x" * 65]):
            unknown = await _rate(client, alice, thread_id, item_ids, "positive")
            assert (unknown.status_code, unknown.json()) == (404, {"detail": "Item not found"})
        assert await self._ratings(client, alice, thread_id) == [
            ("user", None),
            ("assistant", None),
        ]

    async def test_a_user_message_no_item_or_too_many_items_is_422(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        thread_id, question, answer = await self._answered_thread(client, alice, model)
        for item_ids, message in (
            ([question["id"], answer["id"]], "must name the assistant's messages"),
            ([], "must name at least one item"),
            ([answer["id"]] * 101, "must name at most 100 items"),
        ):
            refused = await _rate(client, alice, thread_id, item_ids, "positive")
            assert refused.status_code == 422, refused.text
            (error,) = refused.json()["detail"]
            assert error["loc"] == ["body", "params", "item_ids"]
            assert message in error["msg"]
        unknown_kind = await _rate(client, alice, thread_id, [answer["id"]], "meh")
        assert unknown_kind.status_code == 422
        assert await self._ratings(client, alice, thread_id) == [
            ("user", None),
            ("assistant", None),
        ]

    async def test_a_retry_naming_an_impossible_item_id_is_404(
        self, client: AsyncClient, alice: Account, model: ScriptedModel
    ) -> None:
        thread_id, _question, _answer = await self._answered_thread(client, alice, model)
        for item_id in ("msg_\x00", "x" * 10_000):
            retried = await _chatkit(
                client, alice, "threads.retry_after_item", thread_id=thread_id, item_id=item_id
            )
            assert (retried.status_code, retried.json()) == (404, {"detail": "Item not found"})
