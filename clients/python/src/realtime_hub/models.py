"""What the hub answers, as dataclasses (parsed once, here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from .errors import HubError, error_for


def _str(obj: dict[str, Any], key: str, default: str = "") -> str:
    value = obj.get(key, default)
    return value if isinstance(value, str) else str(value)


def _int(obj: dict[str, Any], key: str, default: int = 0) -> int:
    value = obj.get(key, default)
    return int(value) if isinstance(value, (int, float)) else default


@dataclass(frozen=True)
class Message:
    """One item of :meth:`Hub.publish_many`.

    ``idempotency_key`` defaults to a fresh one per call (reused by its retries).
    ``key``/``delete`` are for keyed rooms (contract section 11).
    """

    room: str
    type: str
    data: Any = None
    key: str | None = None
    delete: bool = False
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Published:
    """Where an event landed. ``duplicate`` is true when this answers a retry
    of a publish the hub had already taken (nothing was published again)."""

    room: str
    epoch: str
    seq: int
    delivered: int
    duplicate: bool = False

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Published:
        return cls(
            room=_str(obj, "room"),
            epoch=_str(obj, "epoch"),
            seq=_int(obj, "seq"),
            delivered=_int(obj, "delivered"),
            duplicate=obj.get("duplicate") is True,
        )


@dataclass(frozen=True)
class PublishFailed:
    """A batch item the hub refused; the other items are not affected."""

    room: str
    code: str
    message: str

    @property
    def error(self) -> HubError:
        """The typed exception for this item (to raise it, if wanted)."""
        return error_for(self.code, self.message)


BatchResult = Union[Published, PublishFailed]


@dataclass(frozen=True)
class Event:
    """A room event, as sockets and history carry it.

    ``raw`` is the whole frame (for fields a newer hub adds).
    """

    room: str
    type: str
    seq: int
    ts: str
    data: Any
    key: str | None = None
    delete: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Event:
        key = obj.get("key")
        return cls(
            room=_str(obj, "room"),
            type=_str(obj, "type"),
            seq=_int(obj, "seq"),
            ts=_str(obj, "ts"),
            data=obj.get("data"),
            key=key if isinstance(key, str) else None,
            delete=obj.get("delete") is True,
            raw=obj,
        )


@dataclass(frozen=True)
class HistoryPage:
    """``GET /api/rooms/{room}/history``: events after ``since``, oldest first;
    ``seq`` is the room's head."""

    room: str
    epoch: str
    seq: int
    events: list[Event]

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> HistoryPage:
        events = obj.get("events")
        return cls(
            room=_str(obj, "room"),
            epoch=_str(obj, "epoch"),
            seq=_int(obj, "seq"),
            events=[Event.from_json(e) for e in events if isinstance(e, dict)]
            if isinstance(events, list)
            else [],
        )


@dataclass(frozen=True)
class RoomState:
    """``GET /api/rooms/{room}/state`` of a keyed room: the latest event of
    every key, in seq order, consistent at ``seq``."""

    room: str
    epoch: str
    seq: int
    events: list[Event]

    @property
    def values(self) -> dict[str, Any]:
        """``key -> data`` of the live keys."""
        return {e.key: e.data for e in self.events if e.key is not None and not e.delete}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> RoomState:
        page = HistoryPage.from_json(obj)
        return cls(room=page.room, epoch=page.epoch, seq=page.seq, events=page.events)


@dataclass(frozen=True)
class RoomInfo:
    """One entry of ``GET /api/rooms``."""

    room: str
    subscribers: int
    epoch: str
    seq: int
    history: int

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> RoomInfo:
        return cls(
            room=_str(obj, "room"),
            subscribers=_int(obj, "subscribers"),
            epoch=_str(obj, "epoch"),
            seq=_int(obj, "seq"),
            history=_int(obj, "history"),
        )


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, (int, float))}


@dataclass(frozen=True)
class SocketStatus:
    """``GET /socket-status`` (and the ``data`` of ``$status`` updates)."""

    active: bool
    total_sockets: int
    sockets_by_type: dict[str, int]
    rooms: dict[str, int]
    timestamp: str
    ws_endpoints: dict[str, str]
    node: str
    uptime_s: int
    nodes: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SocketStatus:
        endpoints = obj.get("ws_endpoints")
        nodes = obj.get("nodes")
        return cls(
            active=obj.get("active") is True,
            total_sockets=_int(obj, "total_sockets"),
            sockets_by_type=_counts(obj.get("sockets_by_type")),
            rooms=_counts(obj.get("rooms")),
            timestamp=_str(obj, "timestamp"),
            ws_endpoints={str(k): str(v) for k, v in endpoints.items()}
            if isinstance(endpoints, dict)
            else {},
            node=_str(obj, "node"),
            uptime_s=_int(obj, "uptime_s"),
            nodes=nodes if isinstance(nodes, dict) else None,
            raw=obj,
        )


@dataclass(frozen=True)
class SocketInfo:
    """One session of ``GET /socket-status/sockets`` (admin)."""

    id: str
    type: str
    user: str | None
    rooms: list[str]
    remote: str
    connected_at: str
    last_seen: str
    msgs_in: int
    msgs_out: int
    node: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SocketInfo:
        user = obj.get("user")
        rooms = obj.get("rooms")
        node = obj.get("node")
        return cls(
            id=_str(obj, "id"),
            type=_str(obj, "type"),
            user=user if isinstance(user, str) else None,
            rooms=[str(r) for r in rooms] if isinstance(rooms, list) else [],
            remote=_str(obj, "remote"),
            connected_at=_str(obj, "connected_at"),
            last_seen=_str(obj, "last_seen"),
            msgs_in=_int(obj, "msgs_in"),
            msgs_out=_int(obj, "msgs_out"),
            node=node if isinstance(node, str) else None,
            raw=obj,
        )


@dataclass(frozen=True)
class PresenceUser:
    user: str
    sessions: int


@dataclass(frozen=True)
class Presence:
    """Who is in a presence room (contract section 13)."""

    room: str
    users: list[PresenceUser]
    anonymous: int

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Presence:
        users = obj.get("users")
        return cls(
            room=_str(obj, "room"),
            users=[
                PresenceUser(user=_str(u, "user"), sessions=_int(u, "sessions"))
                for u in users
                if isinstance(u, dict)
            ]
            if isinstance(users, list)
            else [],
            anonymous=_int(obj, "anonymous"),
        )
