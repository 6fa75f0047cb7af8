"""Listening to rooms over WebSocket: reconnect, backoff, resume, resyncs.

One socket (``/ws``) for all the rooms. The subscriber keeps, per room, the
epoch and the seq of the last event it handed out; after every reconnect it
subscribes with them (``since`` + ``epoch``), so it yields every event still in
the hub's history exactly once, in order. When the hub cannot resume a room
(its history was lost, or the gap is longer than it holds) the subscriber yields
a :class:`Resync` first, then the room's snapshot, then live events again.

It is pull-based: nothing is read while the caller does not iterate. The hub
closes a socket that falls behind (4008) and the subscriber resumes from its
position, so a slow consumer loses nothing still in history.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import inspect
import json
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Callable, Literal, Union

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from ._core import USER_AGENT
from .errors import DeadlineExceeded, HubConnectionError, HubError, SessionClosed, error_for
from .errors import error_from_body as _error_from_body
from .models import Event, SocketStatus
from .retry import RetryPolicy

#: A token, or a function giving a fresh one for every connection (then a
#: 4001 "token expired" close is followed by a reconnect with a new token).
TokenSource = Union[str, Callable[[], Union[str, Awaitable[str]]]]

#: Default reconnect policy: never give up; waits from 0.2 s up to 10 s.
RECONNECT = RetryPolicy(deadline=math.inf, initial_backoff=0.2, max_backoff=10.0)

_CLOSE_ADMIN = 4009
_CLOSE_TOKEN_EXPIRED = 4001


@dataclass(frozen=True)
class Position:
    """Where a room resumes from: its epoch and the last seq handed out."""

    epoch: str
    seq: int


@dataclass(frozen=True)
class Resync:
    """The hub could not resume ``room`` from ``previous``: what the caller
    built from earlier events must be rebuilt (from the snapshot that follows,
    HTTP history, or its own source of truth).

    ``reason`` is ``epoch_changed`` (the room's history was lost, e.g. a hub
    restart without a durable store) or ``history_gap`` (more was missed than
    the hub keeps). ``epoch``/``seq`` are the room's new epoch and head.
    """

    room: str
    epoch: str
    seq: int
    reason: str
    previous: Position


@dataclass(frozen=True)
class UserMessage:
    """A message sent to the token's user (``POST /api/users/{user}/events``)."""

    user: str
    type: str
    ts: str
    data: Any


@dataclass(frozen=True)
class StatusUpdate:
    """A ``status_update`` of the ``$status`` room."""

    status: SocketStatus


@dataclass(frozen=True)
class PresenceChange:
    """``presence_join`` / ``presence_leave`` of a presence room (section 13)."""

    room: str
    user: str
    joined: bool


Item = Union[Event, Resync, UserMessage, StatusUpdate, PresenceChange]


class _Room:
    """What the subscriber knows of one room."""

    def __init__(self, position: Position | None) -> None:
        self.epoch: str | None = position.epoch if position else None
        # Seq of the last event handed out; None until one is (after a fresh subscribe).
        self.last: int | None = position.seq if position else None
        # Head at the last non-recovered subscribe: where to resume if no event came since.
        self.head = 0

    def position(self) -> Position | None:
        if self.epoch is None:
            return None
        return Position(self.epoch, self.last if self.last is not None else self.head)


def ws_url(http_url: str) -> str:
    """The ``/ws`` URL next to an HTTP base URL."""
    base = http_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :] + "/ws"
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :] + "/ws"
    if base.startswith(("ws://", "wss://")):
        return base if base.endswith("/ws") else base + "/ws"
    raise ValueError(f"not an http(s) or ws(s) URL: {http_url!r}")


def _is_system(room: str) -> bool:
    return room.startswith("$")


class AsyncSubscription:
    """``async for item in hub.subscribe("alerts", "hotspots")``.

    Yields :class:`Event`, and :class:`Resync`, :class:`UserMessage`,
    :class:`StatusUpdate`, :class:`PresenceChange` when they happen. Raises
    :class:`UnknownRoom`, :class:`Forbidden`, :class:`Unauthorized` when the hub
    refuses a room or the token, :class:`SessionClosed` on an admin disconnect
    (4009) or an expired static token (4001), and :class:`DeadlineExceeded` when
    reconnecting fails for longer than ``reconnect.deadline``.
    """

    def __init__(
        self,
        url: str,
        rooms: Iterable[str],
        *,
        token: TokenSource | None = None,
        positions: Mapping[str, Position] | None = None,
        reconnect: RetryPolicy = RECONNECT,
        open_timeout: float = 10.0,
        max_size: int | None = 16 * 1024 * 1024,
        trust_env: bool = False,
    ) -> None:
        names = list(dict.fromkeys(rooms))
        if not names:
            raise ValueError("subscribe needs at least one room")
        known = dict(positions or {})
        self._url = ws_url(url)
        self._rooms = {name: _Room(known.get(name)) for name in names}
        self._token = token
        self._reconnect = reconnect
        self._open_timeout = open_timeout
        self._max_size = max_size
        self._proxy: Literal[True] | None = True if trust_env else None
        self._ws: ClientConnection | None = None
        self._pending: collections.deque[Item] = collections.deque()
        self._failures = 0
        self._failing_since: float | None = None
        self._last_error: HubError = HubConnectionError("not connected yet")
        self._closed = False
        self._acked: set[str] = set()
        self.session: str | None = None
        """The hub's id of the current session (from ``welcome``), for admin calls."""
        self.connects = 0
        """How many sockets have been opened (1 + reconnects)."""

    @property
    def positions(self) -> dict[str, Position]:
        """Per room, where it would resume: keep these to resume a later subscriber."""
        out = {}
        for name, room in self._rooms.items():
            pos = room.position()
            if pos is not None and not _is_system(name):
                out[name] = pos
        return out

    def __aiter__(self) -> AsyncIterator[Item]:
        return self

    async def __aenter__(self) -> AsyncSubscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the socket; iteration ends."""
        self._closed = True
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()

    async def get(self, timeout: float | None = None) -> Item:
        """The next item, waiting at most ``timeout`` seconds (``TimeoutError``)."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    async def __anext__(self) -> Item:
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            await self._step()
        return self._pending.popleft()

    async def wait_subscribed(self, timeout: float | None = None) -> None:
        """Connects if needed and waits until the hub has answered every room's
        subscribe (``TimeoutError`` after ``timeout`` seconds). What arrives
        meanwhile is kept for iteration. Use it to be sure that what is
        published next reaches this subscriber live."""

        async def until_subscribed() -> None:
            while self._ws is None or self._acked != self._rooms.keys():
                if self._closed:
                    raise StopAsyncIteration
                await self._step()

        await asyncio.wait_for(until_subscribed(), timeout)

    async def _step(self) -> None:
        """One thing: open the socket, or read and handle one frame."""
        ws = self._ws
        if ws is None:
            await self._open()
            return
        try:
            raw = await ws.recv()
        except ConnectionClosed as exc:
            self._dropped(exc)
            return
        if self._ws is ws:
            await self._handle(raw)

    async def _open(self) -> None:
        if self._failures:
            assert self._failing_since is not None
            delay = self._reconnect.backoff(self._failures - 1)
            if time.monotonic() + delay - self._failing_since >= self._reconnect.deadline:
                raise DeadlineExceeded(
                    f"could not reconnect to {self._url} within {self._reconnect.deadline:g}s",
                    last_error=self._last_error,
                    attempts=self._failures,
                )
            await asyncio.sleep(delay)
        headers = {"User-Agent": USER_AGENT}
        token = await self._fresh_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            ws = await connect(
                self._url,
                additional_headers=headers,
                user_agent_header=None,
                open_timeout=self._open_timeout,
                max_size=self._max_size,
                proxy=self._proxy,
                compression=None,
            )
        except InvalidStatus as exc:
            error = _refusal(exc)
            if error.status is not None and 400 <= error.status < 500:
                raise error from exc
            self._failed(error)
            return
        except (OSError, asyncio.TimeoutError, WebSocketException) as exc:
            self._failed(HubConnectionError(f"{type(exc).__name__}: {exc}"))
            return
        self._ws = ws
        self._acked = set()
        self.connects += 1
        self.session = None
        try:
            for name, room in self._rooms.items():
                cmd: dict[str, Any] = {"op": "subscribe", "room": name, "ref": f"sub:{name}"}
                pos = room.position()
                if pos is not None and not _is_system(name):
                    cmd["since"] = pos.seq
                    cmd["epoch"] = pos.epoch
                await ws.send(json.dumps(cmd))
        except ConnectionClosed as exc:
            self._dropped(exc)
        except BaseException:
            # Cancelled halfway (a timed-out get): start over on the next call.
            self._ws = None
            ws.transport.abort()
            raise

    async def _fresh_token(self) -> str | None:
        if self._token is None or isinstance(self._token, str):
            return self._token
        value = self._token()
        if inspect.isawaitable(value):
            value = await value
        return str(value)

    def _failed(self, error: HubError) -> None:
        if self._failures == 0:
            self._failing_since = time.monotonic()
        self._failures += 1
        self._last_error = error

    def _dropped(self, exc: ConnectionClosed) -> None:
        self._ws = None
        close = exc.rcvd
        code = close.code if close is not None else None
        reason = close.reason if close is not None else ""
        if self._closed:
            return
        if code == _CLOSE_ADMIN or (code == _CLOSE_TOKEN_EXPIRED and not callable(self._token)):
            self._closed = True
            raise SessionClosed(
                f"the hub closed the session: {code} {reason}".strip(),
                close_code=code,
                reason=reason,
            ) from exc
        self._failed(HubConnectionError(f"socket closed: {code} {reason}".strip()))

    async def _handle(self, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            return
        if not isinstance(frame, dict):
            return
        kind = frame.get("type")
        room_name = frame.get("room")
        room = self._rooms.get(room_name) if isinstance(room_name, str) else None
        if kind == "welcome":
            session = frame.get("session")
            self.session = session if isinstance(session, str) else None
        elif kind == "subscribed" and room is not None:
            self._subscribed(str(room_name), room, frame)
        elif kind == "error":
            await self._error(frame)
        elif kind == "status_update":
            data = frame.get("data")
            if isinstance(data, dict):
                self._pending.append(StatusUpdate(SocketStatus.from_json(data)))
        elif kind in ("presence_join", "presence_leave") and room is not None:
            self._pending.append(
                PresenceChange(str(room_name), str(frame.get("user", "")), kind == "presence_join")
            )
        elif room is not None and isinstance(frame.get("seq"), int):
            seq = frame["seq"]
            if room.last is not None and seq <= room.last:
                return  # already handed out (the hub promises none; cheap to be sure)
            room.last = seq
            self._pending.append(Event.from_json(frame))
        elif room_name is None and isinstance(frame.get("user"), str) and isinstance(kind, str):
            self._pending.append(
                UserMessage(
                    user=frame["user"],
                    type=kind,
                    ts=str(frame.get("ts", "")),
                    data=frame.get("data"),
                )
            )

    def _subscribed(self, name: str, room: _Room, frame: dict[str, Any]) -> None:
        epoch = str(frame.get("epoch", ""))
        head = frame.get("seq")
        head = head if isinstance(head, int) else 0
        previous = room.position()
        if frame.get("recovered") is True:
            room.epoch = epoch
        else:
            if previous is not None and not _is_system(name):
                reason = "history_gap" if previous.epoch == epoch else "epoch_changed"
                self._pending.append(Resync(name, epoch, head, reason, previous))
            room.epoch, room.last, room.head = epoch, None, head
        self._acked.add(name)
        self._failures = 0
        self._failing_since = None

    async def _error(self, frame: dict[str, Any]) -> None:
        ref = frame.get("ref")
        if not (isinstance(ref, str) and ref.startswith("sub:")):
            return  # not about a subscription: nothing the caller asked for failed
        code = frame.get("code")
        error = error_for(code if isinstance(code, str) else None, str(frame.get("message", "")))
        if code in ("unavailable", "internal"):
            ws, self._ws = self._ws, None
            self._failed(error)
            if ws is not None:
                await ws.close()
            return
        self._closed = True
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        raise error


def _refusal(exc: InvalidStatus) -> HubError:
    """The typed error of an upgrade the hub refused (JSON body with a code)."""
    response = exc.response
    text = response.body.decode("utf-8", "replace") if response.body else ""
    try:
        body: Any = json.loads(text) if text else None
    except ValueError:
        body = None
    return _error_from_body(response.status_code, body, text)


class Subscription:
    """The blocking form of :class:`AsyncSubscription`, for scripts:
    ``for item in hub.subscribe("alerts")``. Runs the socket on its own thread."""

    def __init__(self, inner: Callable[[], AsyncSubscription]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="realtime-hub-subscriber", daemon=True
        )
        self._thread.start()
        self._inner = self._call(_make(inner), None)

    def _call(self, coro: Awaitable[Any], timeout: float | None) -> Any:
        async def run() -> Any:
            return await asyncio.wait_for(coro, timeout)

        future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return future.result()

    @property
    def positions(self) -> dict[str, Position]:
        positions: dict[str, Position] = self._inner.positions
        return positions

    @property
    def session(self) -> str | None:
        session: str | None = self._inner.session
        return session

    @property
    def connects(self) -> int:
        connects: int = self._inner.connects
        return connects

    def wait_subscribed(self, timeout: float | None = None) -> None:
        """See :meth:`AsyncSubscription.wait_subscribed`."""
        try:
            self._call(self._inner.wait_subscribed(), timeout)
        except StopAsyncIteration:
            raise StopIteration from None
        except asyncio.TimeoutError:
            raise TimeoutError(f"not subscribed within {timeout}s") from None

    def get(self, timeout: float | None = None) -> Item:
        """The next item, waiting at most ``timeout`` seconds (``TimeoutError``)."""
        try:
            item: Item = self._call(self._inner.__anext__(), timeout)
        except StopAsyncIteration:
            raise StopIteration from None
        except asyncio.TimeoutError:
            raise TimeoutError(f"no item within {timeout}s") from None
        return item

    def __iter__(self) -> Iterator[Item]:
        return self

    def __next__(self) -> Item:
        return self.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the socket and stops the thread."""
        if not self._loop.is_running():
            return
        try:
            self._call(self._inner.close(), 5.0)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)
            if not self._thread.is_alive():
                self._loop.close()


async def _make(factory: Callable[[], AsyncSubscription]) -> AsyncSubscription:
    # Built on the subscriber's loop, so its futures belong to that loop.
    return factory()
