"""`live/broker.py`: who is woken, and the per-owner limit (no database, no HTTP)."""

from __future__ import annotations

import asyncio

import pytest

from live.broker import ChangeBroker, TooManyStreams


async def _woken(subscription: object) -> bool:
    try:
        async with asyncio.timeout(0.05):
            await subscription.wait()  # type: ignore[attr-defined]
    except TimeoutError:
        return False
    return True


async def test_a_publication_wakes_only_that_owners_streams() -> None:
    broker = ChangeBroker(max_streams_per_owner=5)
    alice, other_alice, bob = (
        broker.subscribe("alice"),
        broker.subscribe("alice"),
        broker.subscribe("bob"),
    )
    broker.publish("alice")
    assert [await _woken(s) for s in (alice, other_alice, bob)] == [True, True, False]
    assert not await _woken(alice), "a wake-up is consumed once"


async def test_wake_all_and_close() -> None:
    broker = ChangeBroker(max_streams_per_owner=5)
    streams = [broker.subscribe(owner) for owner in ("a", "b")]
    broker.wake_all()
    assert [await _woken(s) for s in streams] == [True, True]
    broker.close()
    assert broker.closing.is_set()
    assert [await _woken(s) for s in streams] == [True, True]


async def test_the_limit_per_owner_and_the_demand_for_listening() -> None:
    broker = ChangeBroker(max_streams_per_owner=2)
    assert not broker.in_demand.is_set()
    first, second = broker.subscribe("alice"), broker.subscribe("alice")
    assert broker.in_demand.is_set()
    with pytest.raises(TooManyStreams):
        broker.subscribe("alice")
    bob = broker.subscribe("bob")
    for subscription in (first, second, bob):
        broker.unsubscribe(subscription)
    assert broker.open_streams("alice") == 0
    assert not broker.in_demand.is_set()
    broker.unsubscribe(bob)  # twice is harmless
