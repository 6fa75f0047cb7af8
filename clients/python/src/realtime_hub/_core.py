"""What the sync and async clients share: building each request, and reading
each answer. Neither does any I/O here, so both clients behave the same."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar, Union
from urllib.parse import quote

import httpx

from ._version import __version__
from .errors import HubConnectionError, HubError, HubTimeout, error_from_body
from .models import (
    BatchResult,
    HistoryPage,
    Message,
    Presence,
    Published,
    PublishFailed,
    RoomInfo,
    RoomState,
    SocketInfo,
    SocketStatus,
)
from .retry import NEVER, SAFE, UNSENT_ONLY

T = TypeVar("T")

JsonDefault = Callable[[Any], Any]
#: Batch items: :class:`Message` or mappings with the same keys.
MessageLike = Union[Message, Mapping[str, Any]]

USER_AGENT = f"realtime-hub-python/{__version__}"


@dataclass(frozen=True)
class Op(Generic[T]):
    """One call: the request, how safe it is to retry, and how to read its answer."""

    method: str
    path: str
    decode: Callable[[Any], T]
    safety: str = SAFE
    body: bytes | None = None
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


def base_headers(api_key: str | None) -> dict[str, str]:
    # No Origin header, ever: the hub refuses browser origins on write endpoints.
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _segment(value: str) -> str:
    return quote(value, safe="")


def _json(obj: Any, default: JsonDefault | None) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=default).encode()


def _event_body(
    type: str, data: Any, key: str | None, delete: bool, room: str | None = None
) -> dict[str, Any]:
    if delete and key is None:
        raise ValueError("delete=True needs the key to delete")
    body: dict[str, Any] = {}
    if room is not None:
        body["room"] = room
    body["type"] = type
    if not (delete and data is None):
        body["data"] = data
    if key is not None:
        body["key"] = key
    if delete:
        body["delete"] = True
    return body


def _write(path: str, payload: Any, default: JsonDefault | None, **kw: Any) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": path,
        "body": _json(payload, default),
        "headers": {"Content-Type": "application/json", **kw.pop("headers", {})},
        **kw,
    }


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise HubError(f"unexpected answer from the hub: {value!r:.200}")
    return value


def _list(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise HubError(f"unexpected answer from the hub: {value!r:.200}")
    return [v for v in value if isinstance(v, dict)]


def publish(
    room: str,
    type: str,
    data: Any,
    key: str | None,
    delete: bool,
    idempotency_key: str | None,
    default: JsonDefault | None,
) -> Op[Published]:
    ikey = idempotency_key or new_idempotency_key()
    return Op(
        decode=lambda v: Published.from_json(_dict(v)),
        **_write(
            f"/api/rooms/{_segment(room)}/events",
            _event_body(type, data, key, delete),
            default,
            headers={"Idempotency-Key": ikey},
        ),
    )


def _item(item: MessageLike) -> Message:
    if isinstance(item, Message):
        return item
    return Message(
        room=item["room"],
        type=item["type"],
        data=item.get("data"),
        key=item.get("key"),
        delete=bool(item.get("delete", False)),
        idempotency_key=item.get("idempotency_key"),
    )


def _batch_result(obj: dict[str, Any]) -> BatchResult:
    if "error" in obj:
        return PublishFailed(
            room=str(obj.get("room", "")),
            code=str(obj["error"]),
            message=str(obj.get("message", "")),
        )
    return Published.from_json(obj)


def publish_many(
    items: Iterable[MessageLike], default: JsonDefault | None
) -> Op[list[BatchResult]]:
    payload = []
    for msg in map(_item, items):
        body = _event_body(msg.type, msg.data, msg.key, msg.delete, room=msg.room)
        body["idempotency_key"] = msg.idempotency_key or new_idempotency_key()
        payload.append(body)
    return Op(
        decode=lambda v: [_batch_result(o) for o in _list(v)],
        **_write("/api/events", payload, default),
    )


def publish_to_user(user: str, type: str, data: Any, default: JsonDefault | None) -> Op[int]:
    return Op(
        decode=lambda v: int(_dict(v).get("delivered", 0)),
        safety=UNSENT_ONLY,
        **_write(f"/api/users/{_segment(user)}/events", {"type": type, "data": data}, default),
    )


def disconnect(session: str) -> Op[None]:
    return Op(
        decode=lambda v: None,
        safety=UNSENT_ONLY,
        **_write(f"/api/sockets/{_segment(session)}/disconnect", {}, None),
    )


def history(room: str, since: int, limit: int | None) -> Op[HistoryPage]:
    params = {"since": str(since)}
    if limit is not None:
        params["limit"] = str(limit)
    return Op(
        "GET",
        f"/api/rooms/{_segment(room)}/history",
        lambda v: HistoryPage.from_json(_dict(v)),
        params=params,
    )


def state(room: str) -> Op[RoomState]:
    return Op("GET", f"/api/rooms/{_segment(room)}/state", lambda v: RoomState.from_json(_dict(v)))


def presence(room: str) -> Op[Presence]:
    return Op(
        "GET", f"/api/rooms/{_segment(room)}/presence", lambda v: Presence.from_json(_dict(v))
    )


def socket_status() -> Op[SocketStatus]:
    return Op("GET", "/socket-status", lambda v: SocketStatus.from_json(_dict(v)))


def sockets(type: str | None) -> Op[list[SocketInfo]]:
    return Op(
        "GET",
        "/socket-status/sockets",
        lambda v: [SocketInfo.from_json(o) for o in _list(v)],
        params={"type": type} if type is not None else {},
    )


def rooms() -> Op[list[RoomInfo]]:
    return Op("GET", "/api/rooms", lambda v: [RoomInfo.from_json(o) for o in _list(v)])


def ready() -> Op[bool]:
    return Op("GET", "/readyz", lambda v: True, safety=NEVER)


def next_since(page: HistoryPage, since: int) -> int | None:
    """Where the page after ``page`` starts, or None when it was the last."""
    if not page.events:
        return None
    last = page.events[-1].seq
    return last if since < last < page.seq else None


def transport_error(exc: httpx.HTTPError) -> HubError:
    """The typed error for a failure before any answer."""
    unsent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    cls = HubTimeout if isinstance(exc, httpx.TimeoutException) else HubConnectionError
    return cls(f"{type(exc).__name__}: {exc}", sent=not unsent)


def answer(op: Op[T], response: httpx.Response) -> T:
    """Reads an answer: the decoded value, or the typed error."""
    text = response.text
    try:
        body: Any = json.loads(text) if text else None
    except ValueError:
        body = None
    if response.is_success:
        return op.decode(body)
    raise error_from_body(response.status_code, body, text)
