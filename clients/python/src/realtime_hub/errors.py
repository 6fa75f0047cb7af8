"""One exception per contract error code, all under :class:`HubError`.

The hub answers every failure as ``{"error": CODE, "message": TEXT}`` (HTTP) or an
``error`` frame (WebSocket); :func:`error_for` turns either into the class for
``CODE``, so callers write ``except UnknownRoom`` instead of comparing strings.
"""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    """Base of every error this package raises about the hub.

    ``code`` is the contract's code (``None`` when the hub never answered),
    ``message`` the hub's text, ``status`` the HTTP status (``None`` for socket
    errors and for failures before any answer).
    """

    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        parts = [p for p in (self.code, str(self.status) if self.status else None) if p]
        prefix = f"[{' '.join(parts)}] " if parts else ""
        return f"{prefix}{self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status!r}, code={self.code!r})"
        )


class BadRequest(HubError):
    """400 ``bad_request``: malformed body, reserved or empty type, bad key."""

    code = "bad_request"


class Unauthorized(HubError):
    """401 ``unauthorized``: missing or invalid API key or token."""

    code = "unauthorized"


class Forbidden(HubError):
    """403 ``forbidden``: the credentials do not allow this (or a system room)."""

    code = "forbidden"


class ForbiddenOrigin(Forbidden):
    """403 ``forbidden_origin``: an ``Origin`` the hub does not allow."""

    code = "forbidden_origin"


class PublishDisabled(Forbidden):
    """403 ``publish_disabled``: socket publishing is off in that room."""

    code = "publish_disabled"


class NotFound(HubError):
    """404 ``not_found``: no such path (e.g. a hub without that feature)."""

    code = "not_found"


class UnknownRoom(HubError):
    """404 ``unknown_room``: not declared (and dynamic rooms off), or an invalid name."""

    code = "unknown_room"


class UnknownSession(HubError):
    """404 ``unknown_session``: no node has that session."""

    code = "unknown_session"


class MethodNotAllowed(HubError):
    """405 ``method_not_allowed``."""

    code = "method_not_allowed"


class LimitExceeded(HubError):
    """409 ``limit_exceeded``: a new key beyond a keyed room's ``max_keys``."""

    code = "limit_exceeded"


class TooLarge(HubError):
    """413 ``too_large``: body over ``server.max_body_bytes``."""

    code = "too_large"


class RateLimited(HubError):
    """429 ``rate_limited``."""

    code = "rate_limited"


class Unavailable(HubError):
    """503 ``unavailable``: draining, store or Redis down, room limit reached.

    Publishes are retried on it (with their idempotency key) until the deadline.
    """

    code = "unavailable"


class OverCapacity(Unavailable):
    """503 ``over_capacity``: connection limits reached (socket upgrades)."""

    code = "over_capacity"


class InternalError(HubError):
    """500 ``internal``: a failure on the hub's side."""

    code = "internal"


class HubConnectionError(HubError):
    """The hub could not be reached, or the connection broke before an answer.

    Whether the hub processed the request is unknown; publishes are retried
    with the same idempotency key, so the event still lands at most once.
    ``sent`` is false when the request surely never left (the connection could
    not be opened).
    """

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class HubTimeout(HubConnectionError):
    """No answer within the attempt's timeout."""


class DeadlineExceeded(HubError):
    """Retrying stopped because the call's deadline ran out.

    ``last_error`` is the failure of the last attempt, ``attempts`` how many were
    made. For a publish, the event may or may not have landed; calling again with
    the same ``idempotency_key`` (within the hub's ``rooms.idempotency_ttl_s``)
    is still safe.
    """

    def __init__(self, message: str, *, last_error: HubError, attempts: int) -> None:
        super().__init__(message, status=last_error.status, code=last_error.code)
        self.last_error = last_error
        self.attempts = attempts


class EpochChanged(HubError):
    """A room's epoch changed while its history was being paged: its history was lost."""


class SessionClosed(HubError):
    """The hub closed the subscriber's socket for good (e.g. 4009 admin disconnect).

    ``close_code`` and ``reason`` are the WebSocket close frame's.
    """

    def __init__(self, message: str, *, close_code: int | None, reason: str = "") -> None:
        super().__init__(message)
        self.close_code = close_code
        self.reason = reason


_BY_CODE: dict[str, type[HubError]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        ForbiddenOrigin,
        PublishDisabled,
        NotFound,
        UnknownRoom,
        UnknownSession,
        MethodNotAllowed,
        LimitExceeded,
        TooLarge,
        RateLimited,
        Unavailable,
        OverCapacity,
        InternalError,
    )
    if cls.code is not None
}

_BY_STATUS: dict[int, type[HubError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: LimitExceeded,
    413: TooLarge,
    429: RateLimited,
    500: InternalError,
    503: Unavailable,
}


def error_for(code: str | None, message: str, status: int | None = None) -> HubError:
    """The exception for a hub error code (or, without a known code, for the status)."""
    cls = _BY_CODE.get(code or "")
    if cls is None and status is not None:
        cls = _BY_STATUS.get(status)
    if cls is None:
        return HubError(message, status=status, code=code)
    return cls(message, status=status, code=code)


def error_from_body(status: int, body: Any, text: str) -> HubError:
    """The exception for a non-2xx HTTP answer; ``body`` is its parsed JSON, if any."""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        message = body.get("message")
        return error_for(body["error"], message if isinstance(message, str) else text, status)
    return error_for(None, text.strip() or f"HTTP {status}", status)
