"""Zero loss across restarts (issue acceptance): a publisher sends 2,000 events
while the hub, with its durable store, is restarted twice with SIGTERM and once
with SIGKILL. Every call succeeds, history holds seq 1..2000 once each, and a
subscriber running throughout yields each exactly once, in order.

Needs the durable store (PROTOCOL section 10): skipped on a hub without it."""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path

import pytest

from realtime_hub import AsyncHub, Event, Hub, Item, Resync, RetryPolicy

from .conftest import StartHub, start_or_skip
from .support.hub import HubProcess

TOTAL = 2000
#: After how many acknowledged publishes each restart happens, and how.
RESTARTS = {500: signal.SIGTERM, 1000: signal.SIGKILL, 1500: signal.SIGTERM}
PATIENT = RetryPolicy(deadline=60.0, initial_backoff=0.05, max_backoff=0.5)


@pytest.fixture
def durable_hub(start_hub: StartHub, tmp_path: Path) -> HubProcess:
    return start_or_skip(
        start_hub,
        "the durable store (PROTOCOL section 10)",
        "storage",
        env={
            "HUB_STORAGE__PATH": str(tmp_path / "store"),
            "HUB_STORAGE__FSYNC": "true",
            "HUB_ROOMS__HISTORY": str(TOTAL + 100),
        },
    )


def check(durable_hub: HubProcess, room: str, received: list[Item]) -> None:
    with Hub(durable_hub.url, trust_env=False) as c:
        history = list(c.iter_history(room, page_size=500))
    assert [e.seq for e in history] == list(range(1, TOTAL + 1))
    assert [e.data for e in history] == list(range(TOTAL))
    assert all(isinstance(e, Event) for e in received), [
        e for e in received if not isinstance(e, Event)
    ][:3]
    assert [(e.seq, e.data) for e in received if isinstance(e, Event)] == [
        (e.seq, e.data) for e in history
    ]


def test_sync_publisher_and_subscriber_lose_nothing(durable_hub: HubProcess, room: str) -> None:
    received: list[Item] = []
    failures: list[BaseException] = []
    with Hub(durable_hub.url, trust_env=False, retry=PATIENT) as c:
        c.publish(room, "t", 0)
        sub = c.subscribe(room, reconnect=PATIENT)

        def listen() -> None:
            try:
                while len([e for e in received if isinstance(e, Event)]) < TOTAL:
                    received.append(sub.get(timeout=60))
            except BaseException as exc:  # reported by the assertion below
                failures.append(exc)

        listener = threading.Thread(target=listen)
        listener.start()
        for i in range(1, TOTAL):
            if i in RESTARTS:
                durable_hub.restart(RESTARTS[i])
            c.publish(room, "t", i)
        listener.join(120)
        sub.close()
    assert not failures, failures
    check(durable_hub, room, received)


@pytest.mark.asyncio
async def test_async_publisher_and_subscriber_lose_nothing(
    durable_hub: HubProcess, room: str
) -> None:
    received: list[Item] = []
    async with AsyncHub(durable_hub.url, trust_env=False, retry=PATIENT) as c:
        await c.publish(room, "t", 0)
        async with c.subscribe(room, reconnect=PATIENT) as sub:

            async def listen() -> None:
                while len([e for e in received if isinstance(e, Event)]) < TOTAL:
                    received.append(await sub.get(timeout=60))

            listener = asyncio.ensure_future(listen())
            for i in range(1, TOTAL):
                if i in RESTARTS:
                    await asyncio.to_thread(durable_hub.restart, RESTARTS[i])
                await c.publish(room, "t", i)
            await asyncio.wait_for(listener, 120)
    check(durable_hub, room, received)


def test_publishing_through_restarts_that_lose_history(start_hub: StartHub, room: str) -> None:
    """Without a store (or with its disk lost) a restart starts a new epoch:
    every publish still returns success (retried while the hub is down), the
    new epoch holds each event published into it once, and the subscriber is
    told with a Resync and follows the new epoch with no gap or repeat."""
    hub = start_hub()
    total, restarts = 300, {100: signal.SIGTERM, 200: signal.SIGKILL}
    received: list[Item] = []
    with Hub(hub.url, trust_env=False, retry=PATIENT) as c:
        sub = c.subscribe(room, reconnect=PATIENT)
        sub.wait_subscribed(timeout=10)

        def listen() -> None:
            while not (
                received and isinstance(received[-1], Event) and received[-1].data == total - 1
            ):
                received.append(sub.get(timeout=30))

        listener = threading.Thread(target=listen)
        listener.start()
        for i in range(total):
            if i in restarts:
                hub.restart(restarts[i], lose_store=True)
            assert c.publish(room, "t", i).seq >= 1
        listener.join(60)
        sub.close()
        last = c.history(room)
    assert not listener.is_alive()
    after_last_restart = [e.data for e in last.events]
    assert after_last_restart == list(range(total - len(last.events), total))
    assert [e.seq for e in last.events] == list(range(1, len(last.events) + 1))
    assert len(last.events) >= total - max(restarts)
    resyncs = [r for r in received if isinstance(r, Resync)]
    assert 1 <= len(resyncs) <= len(restarts)
    assert all(r.reason == "epoch_changed" for r in resyncs)
    # Between resyncs, one epoch: seqs contiguous, never repeated.
    segment: list[int] = []
    for item in [*received, None]:
        if item is None or isinstance(item, Resync):
            assert (
                segment == list(range(segment[0], segment[0] + len(segment))) if segment else True
            )
            segment = []
        elif isinstance(item, Event):
            segment.append(item.seq)
