"""The blocking client, :class:`Hub` (and the settings it shares with :class:`AsyncHub`)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx

from . import _core
from ._core import JsonDefault, MessageLike, Op
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
from .subscriber import RECONNECT, AsyncSubscription, Position, Subscription, TokenSource

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8080"


class _Settings:
    """Constructor arguments of both clients."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        timeout: float,
        retry: RetryPolicy | None,
        json_default: JsonDefault | None,
        trust_env: bool,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be http:// or https://, got {url!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        self.url = url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._json_default = json_default
        self._trust_env = trust_env

    def _subscription(
        self,
        rooms: Iterable[str],
        token: TokenSource | None,
        positions: Mapping[str, Position] | None,
        reconnect: RetryPolicy,
    ) -> AsyncSubscription:
        return AsyncSubscription(
            self.url,
            rooms,
            token=token,
            positions=positions,
            reconnect=reconnect,
            trust_env=self._trust_env,
        )


class Hub(_Settings):
    """Blocking client of the hub's HTTP API, for Django views, scripts, workers.

    ``url`` is the hub's base URL; ``api_key`` one of its ``auth.api_keys``
    (without keys the hub takes writes from loopback only). ``timeout`` bounds
    each attempt, ``retry`` the whole call (see :class:`RetryPolicy`). One
    instance holds a connection pool: share it, and :meth:`close` it (or use
    ``with``). ``json_default`` is passed to ``json.dumps`` for values it cannot
    encode (datetimes, UUIDs, ...).

    Publishes are safe to retry: each call carries an idempotency key (a fresh
    one unless given), the same on every retry of that call, so an event lands
    once however many attempts it takes.
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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, api_key, timeout, retry, json_default, trust_env)
        self._http = httpx.Client(
            base_url=self.url,
            headers=_core.base_headers(api_key),
            trust_env=trust_env,
            transport=transport,
        )

    def __enter__(self) -> Hub:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _run(self, op: Op[T], deadline: float | None = None) -> T:
        attempts = Attempts(self._retry, op.safety, deadline)
        while True:
            timeout = attempts.timeout(self._timeout)
            try:
                try:
                    response = self._http.request(
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
                time.sleep(attempts.wait_after(error))

    # --- publishing -----------------------------------------------------------

    def publish(
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
        """Publishes one event into ``room``; retried (without duplicates) on
        connection errors, timeouts and 503 until ``deadline`` seconds.

        ``key``/``delete`` address a keyed room's state (contract section 11).
        Pass your own ``idempotency_key`` to make retries across calls (a
        re-run job) safe too.
        """
        op = _core.publish(room, type, data, key, delete, idempotency_key, self._json_default)
        return self._run(op, deadline)

    def publish_many(
        self, items: Iterable[MessageLike], *, deadline: float | None = None
    ) -> list[BatchResult]:
        """Publishes several events in one request, applied in order; one result
        per item (:class:`Published` or :class:`PublishFailed`). Each item gets
        its own idempotency key, so retrying the batch duplicates none."""
        return self._run(_core.publish_many(items, self._json_default), deadline)

    def publish_to_user(
        self, user: str, type: str, data: Any = None, *, deadline: float | None = None
    ) -> int:
        """Sends to every open session of ``user`` (not kept in history); the
        number of sessions it was queued for. Retried only when it surely was
        not delivered (no idempotency key exists for user messages)."""
        return self._run(_core.publish_to_user(user, type, data, self._json_default), deadline)

    # --- reading --------------------------------------------------------------

    def history(self, room: str, since: int = 0, limit: int | None = None) -> HistoryPage:
        """Events of ``room`` after ``since`` still in history (at most ``limit``)."""
        return self._run(_core.history(room, since, limit))

    def history_pages(
        self, room: str, since: int = 0, page_size: int = 100
    ) -> Iterator[HistoryPage]:
        """Pages of ``room``'s history after ``since``, up to the head as of each
        page. Raises :class:`EpochChanged` if the room's history is lost midway."""
        epoch: str | None = None
        cursor: int | None = since
        while cursor is not None:
            page = self.history(room, cursor, page_size)
            if epoch is not None and page.epoch != epoch:
                raise EpochChanged(f"room {room!r} changed epoch from {epoch} to {page.epoch}")
            epoch = page.epoch
            yield page
            cursor = _core.next_since(page, cursor)

    def iter_history(self, room: str, since: int = 0, page_size: int = 100) -> Iterator[Event]:
        """Every event of ``room`` after ``since`` still in history, paged."""
        for page in self.history_pages(room, since, page_size):
            yield from page.events

    def state(self, room: str) -> RoomState:
        """The live state of a keyed room (contract section 11)."""
        return self._run(_core.state(room))

    def presence(self, room: str) -> Presence:
        """Who is in a presence room (admin; contract section 13)."""
        return self._run(_core.presence(room))

    def socket_status(self) -> SocketStatus:
        return self._run(_core.socket_status())

    def sockets(self, type: str | None = None) -> list[SocketInfo]:
        """Every open session (admin), optionally of one socket ``type``."""
        return self._run(_core.sockets(type))

    def rooms(self) -> list[RoomInfo]:
        return self._run(_core.rooms())

    def ready(self) -> bool:
        """Whether ``/readyz`` answers 200 (False on 503, e.g. while draining)."""
        try:
            return self._run(_core.ready())
        except Unavailable:
            return False

    # --- admin ----------------------------------------------------------------

    def disconnect(self, session: str, *, deadline: float | None = None) -> None:
        """Closes a session (with 4009); :class:`UnknownSession` if no node has it."""
        self._run(_core.disconnect(session), deadline)

    # --- listening ------------------------------------------------------------

    def subscribe(
        self,
        *rooms: str,
        token: TokenSource | None = None,
        positions: Mapping[str, Position] | None = None,
        reconnect: RetryPolicy = RECONNECT,
    ) -> Subscription:
        """A blocking iterator over ``rooms``' events (see :class:`AsyncSubscription`)."""
        return Subscription(lambda: self._subscription(rooms, token, positions, reconnect))
