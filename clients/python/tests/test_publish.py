"""The blocking client's calls against a real hub: every method, every result."""

from __future__ import annotations

import datetime
import re
import uuid
from typing import Callable

import pytest

from realtime_hub import (
    BadRequest,
    Event,
    Hub,
    Message,
    Published,
    PublishFailed,
    SessionClosed,
    UnknownSession,
)

from .support.hub import HubProcess
from .support.proxy import TcpProxy


def test_publish_answers_where_the_event_landed(client: Hub, room: str) -> None:
    first = client.publish(room, "alert_raised", {"level": "high", "zone": 4})
    second = client.publish(room, "alert_raised", {"level": "low"})
    assert isinstance(first, Published)
    assert (first.room, first.seq, first.delivered, first.duplicate) == (room, 1, 0, False)
    assert second.seq == 2
    assert second.epoch == first.epoch != ""
    page = client.history(room)
    assert [(e.seq, e.type, e.data) for e in page.events] == [
        (1, "alert_raised", {"level": "high", "zone": 4}),
        (2, "alert_raised", {"level": "low"}),
    ]
    assert (page.room, page.epoch, page.seq) == (room, first.epoch, 2)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", page.events[0].ts)


def test_data_may_be_any_json_value_and_json_default_encodes_the_rest(
    hub: HubProcess, room: str
) -> None:
    when = datetime.datetime(2026, 11, 22, 15, 55, 9, tzinfo=datetime.timezone.utc)
    ident = uuid.UUID(int=7)

    def default(value: object) -> object:
        if isinstance(value, (datetime.datetime, uuid.UUID)):
            return str(value)
        raise TypeError(f"cannot encode {value!r}")

    with Hub(hub.url, trust_env=False, json_default=default) as c:
        c.publish(room, "t", None)
        c.publish(room, "t", [1, "zwei", 3.5])
        c.publish(room, "t", {"at": when, "id": ident, "name": "Zürich"})
        assert [e.data for e in c.iter_history(room)] == [
            None,
            [1, "zwei", 3.5],
            {"at": str(when), "id": str(ident), "name": "Zürich"},
        ]


def test_the_same_idempotency_key_publishes_once(client: Hub, room: str) -> None:
    first = client.publish(room, "job_done", {"job": 1}, idempotency_key="job-1-done")
    again = client.publish(room, "job_done", {"job": 1}, idempotency_key="job-1-done")
    assert again.duplicate is True
    assert (again.seq, again.epoch) == (first.seq, first.epoch)
    other = client.publish(room, "job_done", {"job": 2})
    assert other.seq == first.seq + 1
    assert len(client.history(room).events) == 2


def test_publish_many_answers_each_item_in_order(client: Hub, room: str) -> None:
    results = client.publish_many(
        [
            Message(room, "hotspot_detected", {"id": 7}),
            {"room": room, "type": "welcome", "data": {}},  # reserved: refused alone
            Message(room, "hotspot_detected", {"id": 8}, idempotency_key="hs-8"),
        ]
    )
    assert [type(r) for r in results] == [Published, PublishFailed, Published]
    ok1, failed, ok2 = results
    assert isinstance(ok1, Published)
    assert isinstance(ok2, Published)
    assert (ok1.seq, ok2.seq) == (1, 2)
    assert isinstance(failed, PublishFailed)
    assert (failed.room, failed.code) == (room, "bad_request")
    assert isinstance(failed.error, BadRequest)
    # The explicit key of the third item makes a re-run of it a duplicate.
    rerun = client.publish_many(
        [Message(room, "hotspot_detected", {"id": 8}, idempotency_key="hs-8")]
    )
    assert rerun == [Published(room, ok2.epoch, ok2.seq, 0, duplicate=True)]
    assert [e.data for e in client.history(room).events] == [{"id": 7}, {"id": 8}]


def test_history_pages_and_iterates(client: Hub, room: str) -> None:
    for i in range(25):
        client.publish(room, "tick", {"i": i})
    pages = list(client.history_pages(room, page_size=10))
    assert [len(p.events) for p in pages] == [10, 10, 5]
    assert [e.seq for e in client.iter_history(room, page_size=7)] == list(range(1, 26))
    assert [e.seq for e in client.iter_history(room, since=20)] == [21, 22, 23, 24, 25]
    assert list(client.iter_history(room, since=25)) == []
    limited = client.history(room, since=3, limit=2)
    assert [e.seq for e in limited.events] == [4, 5]
    assert limited.seq == 25
    assert all(isinstance(e, Event) and e.room == room for e in limited.events)


def test_rooms_and_socket_status(client: Hub, room: str) -> None:
    published = client.publish(room, "t", 1)
    info = {r.room: r for r in client.rooms()}
    assert info[room].seq == 1
    assert info[room].epoch == published.epoch
    assert {"hotspots", "alerts", "recommendations"} <= info.keys()
    status = client.socket_status()
    assert status.active is True
    assert status.ws_endpoints["connect"] == "/ws"
    assert status.node != ""
    assert client.ready() is True


def test_sockets_list_and_disconnect(client: Hub, hub: HubProcess, room: str) -> None:
    with client.subscribe(room) as sub:
        client.publish(room, "t", "hello")
        item = sub.get(timeout=10)
        assert isinstance(item, Event)
        assert item.data == "hello"
        assert sub.session is not None
        listed = {s.id: s for s in client.sockets()}
        assert room in listed[sub.session].rooms
        assert sub.session in {s.id for s in client.sockets(type="connect")}
        client.disconnect(sub.session)
        with pytest.raises(SessionClosed) as closed:
            sub.get(timeout=10)
        assert closed.value.close_code == 4009
    with pytest.raises(UnknownSession) as unknown:
        client.disconnect("no-such-session")
    assert unknown.value.status == 404


def test_publish_to_user_without_sessions_delivers_to_none(client: Hub) -> None:
    assert client.publish_to_user("nobody-here", "note", {"x": 1}) == 0


def test_requests_are_json_and_carry_no_origin(
    hub: HubProcess, room: str, proxy: Callable[[HubProcess], TcpProxy]
) -> None:
    p = proxy(hub)
    with Hub(p.url, trust_env=False) as c:
        c.publish(room, "t", {"a": 1})
        c.publish_many([Message(room, "t", 2)])
        c.publish_to_user("someone", "t", 3)
        with pytest.raises(UnknownSession):
            c.disconnect("nope")
    sent = b"".join(p.requests()).decode().lower()
    posts = sent.count("post /")
    assert posts == 4
    assert sent.count("content-type: application/json\r\n") == posts
    assert "\r\norigin:" not in sent
    assert sent.count("idempotency-key: ") == 1  # the single publish; batch items carry theirs
