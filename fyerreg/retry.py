"""Retry policies as small value objects: :class:`Retry` (when to try the same call again)
and :class:`Failover` (when a call that failed on one instance may go to another)."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from typing import Callable, Collection, FrozenSet, Optional, Tuple, Type, TypeVar

__all__ = ["Retry", "Failover"]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Retry:
    """How often and how long to retry a failing call.

    ``max_tries`` counts every attempt (the first included; ``None`` = until ``deadline``
    or until stopped); the n-th wait is ``delay * backoff**(n-1)`` capped at
    ``max_delay``, with up to ``jitter`` (a fraction) of it added at random; ``deadline``
    (seconds) bounds the whole call, waits included.
    """

    max_tries: Optional[int] = 4
    delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.2
    deadline: Optional[float] = None

    def __post_init__(self) -> None:
        if self.max_tries is not None and self.max_tries < 1:
            raise ValueError("max_tries must be >= 1 or None")
        if self.delay < 0 or self.max_delay < 0:
            raise ValueError("delay and max_delay must be >= 0")
        if self.backoff < 1:
            raise ValueError("backoff must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be in 0..1")
        if self.deadline is not None and self.deadline <= 0:
            raise ValueError("deadline must be > 0")

    def wait_time(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.delay * self.backoff ** max(attempt - 1, 0), self.max_delay)
        return base + base * self.jitter * random.random()

    def call(
        self,
        func: Callable[[], T],
        *,
        retry_on: Tuple[Type[BaseException], ...],
        stop: Optional[threading.Event] = None,
        on_retry: Optional[Callable[[int, BaseException, float], None]] = None,
        deadline: Optional[float] = None,
    ) -> T:
        """Call ``func`` until it returns, retrying the exceptions in ``retry_on``.

        ``deadline`` (seconds, overriding the policy's) bounds the whole call. ``stop``
        set during a wait ends it early. The last exception is re-raised when tries,
        deadline or ``stop`` run out. ``on_retry(attempt, exc, wait)`` is called before
        each wait.
        """
        limit = self.deadline if deadline is None else deadline
        end = None if limit is None else time.monotonic() + limit
        attempt = 0
        while True:
            attempt += 1
            try:
                return func()
            except retry_on as exc:
                if self.max_tries is not None and attempt >= self.max_tries:
                    raise
                wait = self.wait_time(attempt)
                if end is not None:
                    left = end - time.monotonic()
                    if left <= 0:
                        raise
                    wait = min(wait, left)
                if stop is not None and stop.is_set():
                    raise
                if on_retry is not None:
                    on_retry(attempt, exc, wait)
                if stop is not None:
                    if stop.wait(wait):
                        raise
                else:
                    time.sleep(wait)


@dataclasses.dataclass(frozen=True, init=False)
class Failover:
    """When a call that failed on one instance is sent to another.

    A request that was never delivered (refused, connect timeout, a connection closed
    before it was sent) may always go elsewhere: nothing was processed. One that may have
    been processed (the connection broke after it was sent) goes elsewhere only when its
    method is idempotent: named in ``idempotent_methods`` (compared as given: the caller
    says what a method name is, e.g. ``"Service.Method"`` or an upper-case HTTP method).
    Either way at most ``retries`` more instances are tried. Whether a request was
    delivered is the transport's to say; this policy only decides.
    """

    retries: int
    idempotent_methods: FrozenSet[str]

    def __init__(self, retries: int = 2, idempotent_methods: Collection[str] = frozenset()) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, got {retries!r}")
        if isinstance(idempotent_methods, str):
            raise TypeError("idempotent_methods must be a collection of method names, not a str")
        methods = frozenset(idempotent_methods)
        if not all(isinstance(name, str) and name for name in methods):
            raise ValueError(f"idempotent_methods must hold non-empty str names, got {sorted(map(repr, methods))}")
        object.__setattr__(self, "retries", retries)
        object.__setattr__(self, "idempotent_methods", methods)

    def is_idempotent(self, method: str) -> bool:
        """True when ``method`` is named in ``idempotent_methods``."""
        return method in self.idempotent_methods

    def allows(self, attempts: int, *, delivered: bool, idempotent: bool) -> bool:
        """True when a call that has failed on ``attempts`` instances may be tried on another.

        ``delivered``: the last request may have reached its instance; ``idempotent``:
        repeating the call is harmless (usually :meth:`is_idempotent` of its method).
        """
        return attempts <= self.retries and (idempotent or not delivered)
