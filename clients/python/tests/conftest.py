"""Fixtures: real hub processes, proxies in front of them, unique room names."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

from realtime_hub import Hub

from .support.hub import HubProcess, HubRefused
from .support.proxy import TcpProxy

_rooms = itertools.count(1)

StartHub = Callable[..., HubProcess]


@pytest.fixture(scope="session")
def hub() -> Iterator[HubProcess]:
    """One hub for the tests that need nothing special (dynamic rooms on)."""
    proc = HubProcess().start()
    yield proc
    proc.close()


@pytest.fixture
def room() -> str:
    """A room name no other test uses."""
    return f"py-{os.getpid()}-{next(_rooms)}"


@pytest.fixture
def client(hub: HubProcess) -> Iterator[Hub]:
    with Hub(hub.url, trust_env=False) as c:
        yield c


@pytest.fixture
def start_hub() -> Iterator[StartHub]:
    """Starts hubs with extra env / a config file; stops them after the test."""
    started: list[HubProcess] = []

    def start(
        env: dict[str, str] | None = None,
        config: Path | None = None,
        cwd: Path | None = None,
    ) -> HubProcess:
        proc = HubProcess(env, config, cwd)
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.close()


def start_or_skip(start: StartHub, feature: str, key: str, **kwargs: object) -> HubProcess:
    """Starts a hub whose config uses ``key``; skips the test when this hub
    refuses the key (exit 2 naming it): the feature has not landed in it."""
    try:
        return start(**kwargs)
    except HubRefused as refused:
        if refused.code == 2 and key.lower() in refused.output.lower():
            pytest.skip(f"this hub does not support {feature}: it refused `{key}` at start")
        raise


@pytest.fixture
def proxy() -> Iterator[Callable[[HubProcess], TcpProxy]]:
    made: list[TcpProxy] = []

    def make(target: HubProcess) -> TcpProxy:
        p = TcpProxy(target.port)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()
