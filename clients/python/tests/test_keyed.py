"""Keyed rooms (PROTOCOL section 11): publish with key/delete, state(), the
state on subscribe, max_keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from realtime_hub import BadRequest, Event, Hub, LimitExceeded

from .conftest import StartHub
from .support.hub import HubProcess

CONFIG = """
[rooms]
allow_dynamic = true

[[rooms.declare]]
name = "board"
keyed = true
max_keys = 2

[[rooms.declare]]
name = "plain"
"""


@pytest.fixture
def keyed_hub(start_hub: StartHub, tmp_path: Path) -> HubProcess:
    config = tmp_path / "hub.toml"
    config.write_text(CONFIG)
    return start_hub(config=config)


def test_state_holds_the_latest_event_per_key(keyed_hub: HubProcess) -> None:
    with Hub(keyed_hub.url, trust_env=False) as c:
        c.publish("board", "cell", {"v": 1}, key="a")
        c.publish("board", "cell", {"v": 2}, key="b")
        c.publish("board", "cell", {"v": 3}, key="a")
        state = c.state("board")
        assert state.values == {"a": {"v": 3}, "b": {"v": 2}}
        assert [e.seq for e in state.events] == [2, 3]
        assert state.seq == 3
        c.publish("board", "cell", key="b", delete=True)
        assert c.state("board").values == {"a": {"v": 3}}
        events = c.history("board").events
        assert (events[-1].key, events[-1].delete) == ("b", True)


def test_a_new_key_beyond_max_keys_is_limit_exceeded(keyed_hub: HubProcess) -> None:
    with Hub(keyed_hub.url, trust_env=False) as c:
        c.publish("board", "cell", 1, key="a")
        c.publish("board", "cell", 2, key="b")
        with pytest.raises(LimitExceeded) as err:
            c.publish("board", "cell", 3, key="c")
        assert err.value.status == 409
        assert c.publish("board", "cell", 4, key="a").seq == 3  # updates always pass


def test_a_key_in_a_room_that_is_not_keyed_is_bad_request(keyed_hub: HubProcess) -> None:
    with Hub(keyed_hub.url, trust_env=False) as c:
        with pytest.raises(BadRequest):
            c.publish("plain", "t", 1, key="a")
        with pytest.raises(BadRequest):
            c.state("plain")


def test_a_fresh_subscriber_gets_the_state(keyed_hub: HubProcess) -> None:
    with Hub(keyed_hub.url, trust_env=False) as c:
        c.publish("board", "cell", 1, key="a")
        c.publish("board", "cell", 2, key="b")
        c.publish("board", "cell", 3, key="a")
        with c.subscribe("board") as sub:
            got = [sub.get(timeout=10) for _ in range(2)]
            assert all(isinstance(e, Event) for e in got)
            assert [(e.key, e.data) for e in got if isinstance(e, Event)] == [("b", 2), ("a", 3)]


def test_delete_needs_a_key() -> None:
    with Hub("http://127.0.0.1:9", trust_env=False) as c, pytest.raises(ValueError, match="key"):
        c.publish("board", "cell", delete=True)
