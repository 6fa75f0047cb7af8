"""Python SDK for realtime-hub.

>>> from realtime_hub import Hub
>>> hub = Hub("http://127.0.0.1:8080", api_key="...")
>>> hub.publish("alerts", "alert_raised", {"level": "high"})   # doctest: +SKIP
Published(room='alerts', epoch='...', seq=1, delivered=0, duplicate=False)
"""

from ._version import __version__
from .aio import AsyncHub
from .client import Hub
from .errors import (
    BadRequest,
    DeadlineExceeded,
    EpochChanged,
    Forbidden,
    ForbiddenOrigin,
    HubConnectionError,
    HubError,
    HubTimeout,
    InternalError,
    LimitExceeded,
    MethodNotAllowed,
    NotFound,
    OverCapacity,
    PublishDisabled,
    RateLimited,
    SessionClosed,
    TooLarge,
    Unauthorized,
    Unavailable,
    UnknownRoom,
    UnknownSession,
)
from .models import (
    BatchResult,
    Event,
    HistoryPage,
    Message,
    Presence,
    PresenceUser,
    Published,
    PublishFailed,
    RoomInfo,
    RoomState,
    SocketInfo,
    SocketStatus,
)
from .retry import RetryPolicy
from .subscriber import (
    AsyncSubscription,
    Item,
    Position,
    PresenceChange,
    Resync,
    StatusUpdate,
    Subscription,
    UserMessage,
)
from .tokens import make_token

__all__ = [
    "AsyncHub",
    "AsyncSubscription",
    "BadRequest",
    "BatchResult",
    "DeadlineExceeded",
    "EpochChanged",
    "Event",
    "Forbidden",
    "ForbiddenOrigin",
    "HistoryPage",
    "Hub",
    "HubConnectionError",
    "HubError",
    "HubTimeout",
    "InternalError",
    "Item",
    "LimitExceeded",
    "Message",
    "MethodNotAllowed",
    "NotFound",
    "OverCapacity",
    "Position",
    "Presence",
    "PresenceChange",
    "PresenceUser",
    "PublishDisabled",
    "PublishFailed",
    "Published",
    "RateLimited",
    "Resync",
    "RetryPolicy",
    "RoomInfo",
    "RoomState",
    "SessionClosed",
    "SocketInfo",
    "SocketStatus",
    "StatusUpdate",
    "Subscription",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "UnknownRoom",
    "UnknownSession",
    "UserMessage",
    "__version__",
    "make_token",
]
