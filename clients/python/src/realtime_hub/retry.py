"""When to retry, how long to wait, and when to stop."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable

from .errors import DeadlineExceeded, HubConnectionError, HubError, Unavailable

#: Gateway answers (no hub code) that a load balancer gives while a hub restarts.
_GATEWAY_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by a deadline.

    ``deadline`` bounds a whole call, every attempt and every wait included
    (a call may pass its own). The n-th wait is ``min(max_backoff,
    initial_backoff * factor**n)``, of which the fraction ``jitter`` is random,
    so many publishers dropped at once do not come back in lockstep.
    ``max_attempts`` (None = only the deadline) also bounds the attempts.
    """

    deadline: float = 15.0
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    factor: float = 2.0
    jitter: float = 0.5
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if not self.deadline > 0:
            raise ValueError(f"deadline must be > 0, got {self.deadline}")
        if not 0 <= self.initial_backoff <= self.max_backoff:
            raise ValueError("need 0 <= initial_backoff <= max_backoff")
        if not self.factor >= 1:
            raise ValueError(f"factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1], got {self.jitter}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")

    def backoff(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """The wait before retry number ``retry`` (0 for the first)."""
        nominal = min(self.max_backoff, self.initial_backoff * self.factor**retry)
        return nominal * (1 - self.jitter * rand())


#: Retry on any transient failure: reads, and publishes (they carry an idempotency key).
SAFE = "safe"
#: Retry only when the request surely did not take effect: it was never sent, or
#: the hub answered 503 (user messages and disconnects carry no idempotency key).
UNSENT_ONLY = "unsent_only"


#: Never retry (probes that should answer what they see now).
NEVER = "never"


def retriable(error: HubError, safety: str) -> bool:
    """Whether another attempt may follow ``error``. 4xx answers never are."""
    if safety == NEVER:
        return False
    if isinstance(error, HubConnectionError):
        return safety == SAFE or not error.sent
    if isinstance(error, Unavailable):
        return True
    return safety == SAFE and error.code is None and error.status in _GATEWAY_STATUSES


class Attempts:
    """The retry bookkeeping of one call."""

    def __init__(self, policy: RetryPolicy, safety: str, deadline: float | None) -> None:
        self.policy = policy
        self.safety = safety
        self.made = 0
        self._deadline_s = policy.deadline if deadline is None else deadline
        if not self._deadline_s > 0:
            raise ValueError(f"deadline must be > 0, got {self._deadline_s}")
        self._until = time.monotonic() + self._deadline_s

    def timeout(self, per_attempt: float) -> float:
        """The timeout of the next attempt: never past the deadline."""
        self.made += 1
        return max(0.001, min(per_attempt, self._until - time.monotonic()))

    def wait_after(self, error: HubError) -> float:
        """How long to wait before the next attempt; raises when there is none."""
        if not retriable(error, self.safety):
            raise error
        if self.policy.max_attempts is not None and self.made >= self.policy.max_attempts:
            raise DeadlineExceeded(
                f"gave up after {self.made} attempts: {error}", last_error=error, attempts=self.made
            ) from error
        delay = self.policy.backoff(self.made - 1)
        if time.monotonic() + delay >= self._until:
            raise DeadlineExceeded(
                f"deadline of {self._deadline_s:g}s passed after {self.made} attempts: {error}",
                last_error=error,
                attempts=self.made,
            ) from error
        return delay
