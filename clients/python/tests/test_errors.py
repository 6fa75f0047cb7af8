"""Every error class from a real hub answer, and which of them are retried."""

from __future__ import annotations

import time
from typing import Callable

import pytest

from realtime_hub import (
    BadRequest,
    DeadlineExceeded,
    Forbidden,
    Hub,
    HubError,
    NotFound,
    RetryPolicy,
    TooLarge,
    Unauthorized,
    Unavailable,
    UnknownRoom,
)

from .conftest import StartHub
from .support.hub import HubProcess
from .support.proxy import TcpProxy

QUICK = RetryPolicy(deadline=1.5, initial_backoff=0.05, max_backoff=0.2)


def test_400_bad_request(client: Hub, room: str) -> None:
    with pytest.raises(BadRequest) as reserved:
        client.publish(room, "welcome", {})
    assert reserved.value.status == 400
    assert reserved.value.code == "bad_request"
    assert "welcome" in reserved.value.message
    with pytest.raises(BadRequest):
        client.publish(room, "t", {}, idempotency_key="has a space")
    assert client.history(room).events == []


def test_401_unauthorized_without_or_with_a_wrong_api_key(start_hub: StartHub, room: str) -> None:
    secured = start_hub({"HUB_AUTH__API_KEYS": "key-one-0000,key-two-0000"})
    for api_key in (None, "key-three-000"):
        with Hub(secured.url, api_key, trust_env=False) as c, pytest.raises(Unauthorized) as err:
            c.publish(room, "t", 1)
        assert err.value.status == 401
    with Hub(secured.url, "key-two-0000", trust_env=False) as c:
        assert c.publish(room, "t", 1).seq == 1
        assert [s.id for s in c.sockets()] == []


def test_403_forbidden_for_a_system_room(client: Hub) -> None:
    with pytest.raises(Forbidden) as err:
        client.publish("$status", "note", {})
    assert (err.value.status, err.value.code) == (403, "forbidden")


def test_404_unknown_room_and_not_found(start_hub: StartHub) -> None:
    fixed = start_hub({"HUB_ROOMS__ALLOW_DYNAMIC": "false"})
    with Hub(fixed.url, trust_env=False) as c:
        with pytest.raises(UnknownRoom) as err:
            c.publish("not-declared", "t", 1)
        assert (err.value.status, err.value.code) == (404, "unknown_room")
        with pytest.raises(UnknownRoom):
            c.history("not-declared")
        assert c.publish("alerts", "t", 1).seq == 1


def test_413_too_large(start_hub: StartHub, room: str) -> None:
    small = start_hub({"HUB_SERVER__MAX_BODY_BYTES": "1024"})
    with Hub(small.url, trust_env=False) as c:
        with pytest.raises(TooLarge) as err:
            c.publish(room, "t", "x" * 2000)
        assert err.value.status == 413
        assert c.publish(room, "t", "x" * 500).seq == 1


def test_4xx_is_never_retried(
    hub: HubProcess, room: str, proxy: Callable[[HubProcess], TcpProxy]
) -> None:
    p = proxy(hub)
    with Hub(p.url, trust_env=False, retry=QUICK) as c:
        for call in (
            lambda: c.publish(room, "welcome", {}),
            lambda: c.publish("Not A Room!", "t", {}),
            lambda: c.disconnect("no-such-session"),
        ):
            with pytest.raises(HubError) as err:
                call()
            assert err.value.status is not None
            assert 400 <= err.value.status < 500
    sent = b"".join(p.requests()).decode()
    assert sent.count("POST /") == 3, sent


def test_503_is_retried_until_the_deadline(start_hub: StartHub) -> None:
    # One declared room fills the room limit: a new dynamic room answers 503.
    full = start_hub({"HUB_ROOMS__DECLARE": "alpha", "HUB_ROOMS__MAX_ROOMS": "1"})
    with Hub(full.url, trust_env=False, retry=QUICK) as c:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as err:
            c.publish("beta", "t", 1)
        elapsed = time.monotonic() - started
        assert isinstance(err.value.last_error, Unavailable)
        assert err.value.last_error.status == 503
        assert err.value.attempts >= 3
        assert elapsed < QUICK.deadline + 1.0
        assert c.publish("alpha", "t", 1).seq == 1


def test_a_feature_this_hub_lacks_is_not_found(client: Hub, room: str) -> None:
    """``state()`` against a hub without keyed rooms answers 404 ``not_found``
    (when keyed rooms land, the room is simply not keyed: 400)."""
    client.publish(room, "t", 1)
    with pytest.raises((NotFound, BadRequest)):
        client.state(room)
