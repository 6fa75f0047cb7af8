"""The asyncio client, :class:`AsyncHub`: the same calls as :class:`Hub`, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx

from . import _core
from ._core import JsonDefault, MessageLike, Op
from .client import DEFAULT_URL, _Settings
from .errors import EpochChanged, HubError, Unavailable
from .models import (
    BatchResult,
    Event,
    HistoryPage,
    Presence,
    Published,
    RoomInfo,
    RoomState,
    SocketInfo,
    SocketStatus,
)
from .retry import Attempts, RetryPolicy
from .subscriber import RECONNECT, AsyncSubscription, Position, TokenSource

T = TypeVar("T")


class AsyncHub(_Settings):
    """Asyncio client of the hub's HTTP API, for FastAPI and other async services.

    Arguments and guarantees are those of :class:`Hub`; every call is a coroutine,
    and :meth:`subscribe` gives an async iterator. Use ``async with``, or
    ``await hub.aclose()``.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        json_default: JsonDefault | None = None,
        trust_env: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, api_key, timeout, retry, json_default, trust_env)
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=_core.base_headers(api_key),
            trust_env=trust_env,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncHub:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _run(self, op: Op[T], deadline: float | None = None) -> T:
        attempts = Attempts(self._retry, op.safety, deadline)
        while True:
            timeout = attempts.timeout(self._timeout)
            try:
                try:
                    response = await self._http.request(
                        op.method,
                        op.path,
                        content=op.body,
                        params=op.params or None,
                        headers=op.headers,
                        timeout=timeout,
                    )
                except httpx.HTTPError as exc:
                    raise _core.transport_error(exc) from exc
                return _core.answer(op, response)
            except HubError as error:
                delay = attempts.wait_after(error)
            await asyncio.sleep(delay)

    async def publish(
        self,
        room: str,
        type: str,
        data: Any = None,
        *,
        key: str | None = None,
        delete: bool = False,
        idempotency_key: str | None = None,
        deadline: float | None = None,
    ) -> Published:
        """See :meth:`Hub.publish`."""
        op = _core.publish(room, type, data, key, delete, idempotency_key, self._json_default)
        return await self._run(op, deadline)

    async def publish_many(
        self, items: Iterable[MessageLike], *, deadline: float | None = None
    ) -> list[BatchResult]:
        """See :meth:`Hub.publish_many`."""
        return await self._run(_core.publish_many(items, self._json_default), deadline)

    async def publish_to_user(
        self, user: str, type: str, data: Any = None, *, deadline: float | None = None
    ) -> int:
        """See :meth:`Hub.publish_to_user`."""
        op = _core.publish_to_user(user, type, data, self._json_default)
        return await self._run(op, deadline)

    async def history(self, room: str, since: int = 0, limit: int | None = None) -> HistoryPage:
        return await self._run(_core.history(room, since, limit))

    async def history_pages(
        self, room: str, since: int = 0, page_size: int = 100
    ) -> AsyncIterator[HistoryPage]:
        """See :meth:`Hub.history_pages`."""
        epoch: str | None = None
        cursor: int | None = since
        while cursor is not None:
            page = await self.history(room, cursor, page_size)
            if epoch is not None and page.epoch != epoch:
                raise EpochChanged(f"room {room!r} changed epoch from {epoch} to {page.epoch}")
            epoch = page.epoch
            yield page
            cursor = _core.next_since(page, cursor)

    async def iter_history(
        self, room: str, since: int = 0, page_size: int = 100
    ) -> AsyncIterator[Event]:
        async for page in self.history_pages(room, since, page_size):
            for event in page.events:
                yield event

    async def state(self, room: str) -> RoomState:
        return await self._run(_core.state(room))

    async def presence(self, room: str) -> Presence:
        return await self._run(_core.presence(room))

    async def socket_status(self) -> SocketStatus:
        return await self._run(_core.socket_status())

    async def sockets(self, type: str | None = None) -> list[SocketInfo]:
        return await self._run(_core.sockets(type))

    async def rooms(self) -> list[RoomInfo]:
        return await self._run(_core.rooms())

    async def ready(self) -> bool:
        try:
            return await self._run(_core.ready())
        except Unavailable:
            return False

    async def disconnect(self, session: str, *, deadline: float | None = None) -> None:
        await self._run(_core.disconnect(session), deadline)

    def subscribe(
        self,
        *rooms: str,
        token: TokenSource | None = None,
        positions: Mapping[str, Position] | None = None,
        reconnect: RetryPolicy = RECONNECT,
    ) -> AsyncSubscription:
        """``async for item in hub.subscribe("alerts")``: see :class:`AsyncSubscription`."""
        return self._subscription(rooms, token, positions, reconnect)
