"""AsyncHub and the async subscriber against a real hub."""

from __future__ import annotations

from typing import Callable

import pytest

from realtime_hub import (
    AsyncHub,
    BadRequest,
    DeadlineExceeded,
    Event,
    Message,
    Position,
    Published,
    PublishFailed,
    RetryPolicy,
    SessionClosed,
    UnknownRoom,
    UnknownSession,
)

from .conftest import StartHub
from .support.hub import HubProcess
from .support.proxy import TcpProxy

FAST = RetryPolicy(deadline=10.0, initial_backoff=0.05, max_backoff=0.2)


@pytest.mark.asyncio
async def test_async_calls(hub: HubProcess, room: str) -> None:
    async with AsyncHub(hub.url, trust_env=False) as c:
        first = await c.publish(room, "alert_raised", {"zone": 1})
        assert (first.room, first.seq, first.duplicate) == (room, 1, False)
        again = await c.publish(room, "alert_raised", {"zone": 1}, idempotency_key="a-1")
        dup = await c.publish(room, "alert_raised", {"zone": 1}, idempotency_key="a-1")
        assert (dup.seq, dup.duplicate) == (again.seq, True)
        results = await c.publish_many([Message(room, "t", i) for i in range(3)])
        assert [r.seq for r in results if isinstance(r, Published)] == [3, 4, 5]
        bad = await c.publish_many([{"room": room, "type": "", "data": 1}])
        assert isinstance(bad[0], PublishFailed)
        assert bad[0].code == "bad_request"
        pages = [p async for p in c.history_pages(room, page_size=2)]
        assert [len(p.events) for p in pages] == [2, 2, 1]
        assert [e.seq async for e in c.iter_history(room, since=1)] == [2, 3, 4, 5]
        assert (await c.history(room, since=4)).events[0].seq == 5
        assert room in {r.room for r in await c.rooms()}
        assert (await c.socket_status()).active is True
        assert await c.ready() is True
        assert await c.publish_to_user("nobody", "note", 1) == 0
        assert isinstance(await c.sockets(), list)
        with pytest.raises(BadRequest):
            await c.publish(room, "pong", 1)
        with pytest.raises(UnknownSession):
            await c.disconnect("nope")
        with pytest.raises(UnknownRoom):
            await c.publish("Bad Name", "t", 1)


@pytest.mark.asyncio
async def test_async_retry_after_a_dropped_answer_lands_once(
    hub: HubProcess, room: str, proxy: Callable[[HubProcess], TcpProxy]
) -> None:
    p = proxy(hub)
    p.drop(1)
    p.stall(1)
    async with AsyncHub(p.url, trust_env=False, timeout=0.5, retry=FAST) as c:
        result = await c.publish(room, "t", "x")
        assert (result.seq, result.duplicate) == (1, True)
        assert p.answers_lost == 2
        assert [e.data for e in (await c.history(room)).events] == ["x"]


@pytest.mark.asyncio
async def test_async_deadline(
    hub: HubProcess, room: str, proxy: Callable[[HubProcess], TcpProxy]
) -> None:
    p = proxy(hub)
    p.drop(1000)
    async with AsyncHub(p.url, trust_env=False, retry=FAST) as c:
        with pytest.raises(DeadlineExceeded) as err:
            await c.publish(room, "t", 1, deadline=0.8)
        assert err.value.attempts >= 2
    async with AsyncHub(hub.url, trust_env=False) as direct:
        assert [e.seq for e in (await direct.history(room)).events] == [1]


@pytest.mark.asyncio
async def test_async_subscriber_receives_in_order_and_resumes(
    hub: HubProcess, room: str, proxy: Callable[[HubProcess], TcpProxy]
) -> None:
    p = proxy(hub)
    async with AsyncHub(hub.url, trust_env=False) as c, AsyncHub(p.url, trust_env=False) as via:
        await c.publish(room, "before", None)
        head = await c.history(room)
        start = {room: Position(head.epoch, head.seq)}
        async with via.subscribe(room, positions=start, reconnect=FAST) as sub:
            for i in range(5):
                await c.publish(room, "t", i)
            got = [await sub.get(timeout=10) for _ in range(5)]
            p.cut()  # the socket drops; events keep coming
            for i in range(5, 10):
                await c.publish(room, "t", i)
            got += [await sub.get(timeout=10) for _ in range(5)]
            assert all(isinstance(e, Event) for e in got)
            assert [e.data for e in got if isinstance(e, Event)] == list(range(10))
            assert [e.seq for e in got if isinstance(e, Event)] == list(range(2, 12))
            assert sub.connects == 2
            assert sub.positions[room] == Position(head.epoch, 11)


@pytest.mark.asyncio
async def test_async_subscriber_admin_disconnect_ends_it(start_hub: StartHub, room: str) -> None:
    own = start_hub()
    async with AsyncHub(own.url, trust_env=False) as c:
        sub = c.subscribe(room)
        await c.publish(room, "t", 1)
        assert isinstance(await sub.get(timeout=10), Event)
        assert sub.session is not None
        await c.disconnect(sub.session)
        with pytest.raises(SessionClosed) as closed:
            await sub.get(timeout=10)
        assert closed.value.close_code == 4009
        with pytest.raises(StopAsyncIteration):
            await sub.__anext__()
