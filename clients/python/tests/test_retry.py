"""Retries that cannot duplicate: answers lost after the hub processed the
request (a proxy drops or holds them), and deadlines that stop retrying."""

from __future__ import annotations

import re
import time
from typing import Callable

import pytest

from realtime_hub import (
    DeadlineExceeded,
    Hub,
    HubConnectionError,
    Message,
    Published,
    RetryPolicy,
)

from .support.hub import HubProcess, free_port
from .support.proxy import TcpProxy

FAST = RetryPolicy(deadline=10.0, initial_backoff=0.05, max_backoff=0.2)


def idempotency_keys(proxy: TcpProxy) -> list[str]:
    sent = b"".join(proxy.requests()).decode()
    return re.findall(r"(?im)^idempotency-key: (\S+)\r$", sent)


def test_a_dropped_answer_is_retried_and_the_event_lands_once(
    hub: HubProcess, room: str, proxy: Callable[[HubProcess], TcpProxy]
) -> None:
    p = proxy(hub)
    p.drop(2)
    with Hub(p.url, trust_env=False, retry=FAST) as c:
        result = c.publish(room, "alert_raised", {"zone": 4})
    assert p.answers_lost == 2
    assert p.connections == 3
    keys = idempotency_keys(p)
    assert len(keys) == 3, keys
    assert len(set(keys)) == 1, keys
    assert result == Published(room, result.epoch, 1, 0, duplicate=True)
    with Hub(hub.url, trust_env=False) as direct:
        events = direct.history(room).events
    assert [(e.seq, e.data) for e in events] == [(1, {"zone": 4})]


def test_an_attempt_that_times_out_is_retried_without_duplicate(
    hub: HubProcess, room: str, proxy: Callable[[HubProcess], TcpProxy]
) -> None:
    p = proxy(hub)
    p.stall(1)
    with Hub(p.url, trust_env=False, timeout=0.5, retry=FAST) as c:
        first = c.publish(room, "t", "once")
        second = c.publish(room, "t", "twice")
    assert p.answers_lost == 1
    assert (first.seq, first.duplicate) == (1, True)
    assert (second.seq, second.duplicate) == (2, False)
    with Hub(hub.url, trust_env=False) as direct:
        assert [e.data for e in direct.history(room).events] == ["once", "twice"]


def test_every_answer_lost_ends_at_the_deadline_and_the_event_still_lands_once(
    hub: HubProcess, room: str, proxy: Callable[[HubProcess], TcpProxy]
) -> None:
    p = proxy(hub)
    p.drop(1000)
    with Hub(p.url, trust_env=False, retry=FAST) as c:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as err:
            c.publish(room, "t", {"n": 1}, deadline=1.0)
        elapsed = time.monotonic() - started
    assert isinstance(err.value.last_error, HubConnectionError)
    assert err.value.attempts >= 3
    assert err.value.attempts == p.connections
    assert 0.3 < elapsed < 2.0
    with Hub(hub.url, trust_env=False) as direct:
        assert [e.seq for e in direct.history(room).events] == [1]


def test_a_hub_that_is_down_is_retried_until_the_deadline() -> None:
    nothing = f"http://127.0.0.1:{free_port()}"
    policy = RetryPolicy(deadline=1.0, initial_backoff=0.05, max_backoff=0.2)
    with Hub(nothing, trust_env=False, retry=policy) as c:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as err:
            c.publish("alerts", "t", 1)
        elapsed = time.monotonic() - started
    assert err.value.attempts >= 3
    assert isinstance(err.value.last_error, HubConnectionError)
    assert err.value.last_error.sent is False
    assert elapsed < 2.0


def test_max_attempts_bounds_the_attempts() -> None:
    nothing = f"http://127.0.0.1:{free_port()}"
    policy = RetryPolicy(deadline=30.0, initial_backoff=0.01, max_attempts=3)
    with Hub(nothing, trust_env=False, retry=policy) as c, pytest.raises(DeadlineExceeded) as err:
        c.rooms()
    assert err.value.attempts == 3


def test_a_batch_retried_after_a_lost_answer_publishes_each_item_once(
    hub: HubProcess, room: str, proxy: Callable[[HubProcess], TcpProxy]
) -> None:
    p = proxy(hub)
    p.drop(1)
    with Hub(p.url, trust_env=False, retry=FAST) as c:
        results = c.publish_many([Message(room, "t", i) for i in range(5)])
    assert p.answers_lost == 1
    assert all(isinstance(r, Published) and r.duplicate for r in results)
    assert [r.seq for r in results if isinstance(r, Published)] == [1, 2, 3, 4, 5]
    with Hub(hub.url, trust_env=False) as direct:
        assert [e.data for e in direct.history(room).events] == [0, 1, 2, 3, 4]


def test_a_user_message_is_not_retried_once_sent(
    hub: HubProcess, proxy: Callable[[HubProcess], TcpProxy]
) -> None:
    """User messages carry no idempotency key: after a lost answer a retry
    could deliver twice, so the error goes to the caller instead."""
    p = proxy(hub)
    p.drop(1)
    with Hub(p.url, trust_env=False, retry=FAST) as c, pytest.raises(HubConnectionError) as err:
        c.publish_to_user("alice", "note", {})
    assert err.value.sent is True
    assert p.connections == 1


def test_backoff_grows_is_capped_and_jittered() -> None:
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=1.0, factor=2, jitter=0.5)
    assert [policy.backoff(n, lambda: 0.0) for n in range(6)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    )
    assert policy.backoff(2, lambda: 0.999999) == pytest.approx(0.2, rel=1e-3)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=2)
    with pytest.raises(ValueError, match="deadline"):
        RetryPolicy(deadline=0)
