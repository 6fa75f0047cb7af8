"""The blocking subscriber: order, resume across drops, resyncs told, refusals typed."""

from __future__ import annotations

from typing import Callable

import pytest

from realtime_hub import (
    Event,
    Hub,
    Position,
    Resync,
    RetryPolicy,
    StatusUpdate,
    UnknownRoom,
)

from .conftest import StartHub
from .support.hub import HubProcess
from .support.proxy import TcpProxy

FAST = RetryPolicy(deadline=30.0, initial_backoff=0.05, max_backoff=0.3)


def events(sub_get: Callable[[], object], n: int) -> list[Event]:
    got = [sub_get() for _ in range(n)]
    assert all(isinstance(e, Event) for e in got), got
    return [e for e in got if isinstance(e, Event)]


def test_receives_every_room_in_order(client: Hub, room: str) -> None:
    other = room + "-b"
    with client.subscribe(room, other) as sub:
        for i in range(30):
            client.publish(room if i % 2 else other, "t", i)
        got = events(lambda: sub.get(timeout=10), 30)
    by_room = {r: [e.data for e in got if e.room == r] for r in (room, other)}
    assert by_room == {room: list(range(1, 30, 2)), other: list(range(0, 30, 2))}
    for r in (room, other):
        assert [e.seq for e in got if e.room == r] == list(range(1, 16))


def test_resumes_across_dropped_sockets_with_nothing_lost_or_repeated(
    start_hub: StartHub, room: str, proxy: Callable[[HubProcess], TcpProxy]
) -> None:
    hub = start_hub()
    p = proxy(hub)
    total, cuts = 200, (20, 90, 150)
    got: list[Event] = []
    with Hub(hub.url, trust_env=False) as client, Hub(p.url, trust_env=False) as via:
        client.publish(room, "t", -1)
        head = client.history(room)
        sub = via.subscribe(room, positions={room: Position(head.epoch, 1)}, reconnect=FAST)
        with sub:
            for i in range(total):
                if i in cuts:
                    p.cut()  # everything sent so far was read: the next events need a new socket
                client.publish(room, "t", i)
                if i % 10 == 9:  # read in batches: events pile up while the socket is down
                    got += events(lambda: sub.get(timeout=15), 10)
            assert sub.connects == 1 + len(cuts)
    assert [e.data for e in got] == list(range(total))
    assert [e.seq for e in got] == list(range(2, total + 2))


def test_a_restarted_hub_is_a_resync_then_the_new_epoch(start_hub: StartHub, room: str) -> None:
    own = start_hub()
    with Hub(own.url, trust_env=False) as c, c.subscribe(room, reconnect=FAST) as sub:
        c.publish(room, "t", "old")
        first = sub.get(timeout=10)
        assert isinstance(first, Event)
        old = sub.positions[room]
        own.restart(lose_store=True)  # memory only, or a lost disk: a new epoch
        new = c.publish(room, "t", "new")
        resync = sub.get(timeout=15)
        assert isinstance(resync, Resync)
        assert (resync.room, resync.reason, resync.previous) == (room, "epoch_changed", old)
        assert resync.epoch != old.epoch
        after = sub.get(timeout=10)
        assert isinstance(after, Event)
        assert (after.data, after.seq) == ("new", new.seq)
        assert sub.positions[room] == Position(new.epoch, new.seq)


def test_a_gap_longer_than_history_is_a_resync(start_hub: StartHub, room: str) -> None:
    short = start_hub({"HUB_ROOMS__HISTORY": "5", "HUB_ROOMS__SNAPSHOT": "2"})
    with Hub(short.url, trust_env=False) as c:
        first = c.publish(room, "t", 0)
        for i in range(1, 12):
            c.publish(room, "t", i)
        stale = Position(first.epoch, 1)
        with c.subscribe(room, positions={room: stale}) as sub:
            resync = sub.get(timeout=10)
            assert isinstance(resync, Resync)
            assert (resync.reason, resync.seq, resync.previous) == ("history_gap", 12, stale)
            snapshot = events(lambda: sub.get(timeout=10), 2)
            assert [e.data for e in snapshot] == [10, 11]


def test_a_position_still_in_history_resumes_without_resync(client: Hub, room: str) -> None:
    for i in range(5):
        client.publish(room, "t", i)
    head = client.history(room)
    with client.subscribe(room, positions={room: Position(head.epoch, 3)}) as sub:
        assert [e.data for e in events(lambda: sub.get(timeout=10), 2)] == [3, 4]
        client.publish(room, "t", 5)
        assert [e.seq for e in events(lambda: sub.get(timeout=10), 1)] == [6]


def test_status_room_yields_updates(client: Hub, room: str) -> None:
    with client.subscribe("$status") as sub:
        update = sub.get(timeout=10)
        assert isinstance(update, StatusUpdate)
        assert update.status.ws_endpoints["connect"] == "/ws"
        assert sub.positions == {}


def test_an_unknown_room_is_raised(start_hub: StartHub) -> None:
    fixed = start_hub({"HUB_ROOMS__ALLOW_DYNAMIC": "false"})
    with Hub(fixed.url, trust_env=False) as c, c.subscribe("alerts", "nope") as sub:
        with pytest.raises(UnknownRoom):
            sub.get(timeout=10)
        with pytest.raises(StopIteration):
            sub.get(timeout=10)
