"""What a gRPC status says about the instance that returned it, and the error when none can be picked."""

from __future__ import annotations

import time
from typing import Any, Collection, FrozenSet, Optional

import grpc

from ...errors import NoInstanceAvailableError
from ...retry import Failover

__all__ = ["INSTANCE_FAILURES", "CallPolicy", "NoInstanceError", "Failed", "undelivered", "code_of"]

ENDPOINT = "grpc"
"""The endpoint name the channels pick and the servers register."""

INSTANCE_FAILURES: FrozenSet[grpc.StatusCode] = frozenset({
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.DATA_LOSS,
})
"""Status codes that count against the instance (it is down, slow or broken): the
balancers and outlier ejection hear of them as failed calls. Every other code
(NOT_FOUND, INVALID_ARGUMENT, PERMISSION_DENIED, RESOURCE_EXHAUSTED, CANCELLED...) is
the application's answer, or the caller's doing, and counts as a call that worked."""

# gRPC's message when the call never got a connection (refused, reset or timed out while
# connecting): it was not sent, so no instance processed it.
_NOT_CONNECTED = "failed to connect to all addresses"


def code_of(error: BaseException) -> Optional[grpc.StatusCode]:
    """The status code of a gRPC error, None for anything else."""
    code = getattr(error, "code", None)
    if isinstance(error, grpc.RpcError) and callable(code):
        value = code()
        return value if isinstance(value, grpc.StatusCode) else None
    return None


def undelivered(error: BaseException) -> bool:
    """True when the call failed before it was sent: UNAVAILABLE because no connection could be made.

    An UNAVAILABLE on a connection that broke later ("Socket closed") may have been
    processed, and is not undelivered.
    """
    if code_of(error) is not grpc.StatusCode.UNAVAILABLE:
        return False
    details: Any = getattr(error, "details", None)
    text = details() if callable(details) else None
    return isinstance(text, str) and text.startswith(_NOT_CONNECTED)


class Failed(Exception):
    """Raised inside a pick so discovery counts the call as failed; never leaves this package."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(repr(error))
        self.error = error


class NoInstanceError(grpc.RpcError, NoInstanceAvailableError):  # type: ignore[misc]
    """No instance of the service can be picked: a gRPC error with status UNAVAILABLE, and a
    :class:`~fyerreg.errors.NoInstanceAvailableError`."""

    def __init__(self, cause: NoInstanceAvailableError) -> None:
        NoInstanceAvailableError.__init__(self, str(cause), service=cause.service, version=cause.version,
                                          reason=cause.reason)

    def code(self) -> grpc.StatusCode:
        """``UNAVAILABLE``, as gRPC says when it has nowhere to send a call."""
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        """Which service and why none of its instances can be picked."""
        return str(self)

    def initial_metadata(self) -> tuple:  # type: ignore[type-arg]
        return ()

    def trailing_metadata(self) -> tuple:  # type: ignore[type-arg]
        return ()


class CallPolicy:
    """Which outcomes count against an instance and which failed calls go to another one.

    ``failover`` (the one :class:`~fyerreg.retry.Failover` policy) names idempotent
    methods by their full gRPC name, ``"/package.Service/Method"``. Only UNAVAILABLE is
    ever retried: always when the call was never sent (:func:`undelivered`), otherwise
    only for idempotent methods; never once the call's deadline has passed.
    """

    __slots__ = ("failover", "failure_codes")

    def __init__(self, failover: Failover, failure_codes: Collection[grpc.StatusCode]) -> None:
        if isinstance(failure_codes, grpc.StatusCode) or not all(
                isinstance(code, grpc.StatusCode) for code in failure_codes):
            raise TypeError("failure_codes must be a collection of grpc.StatusCode")
        self.failover = failover
        self.failure_codes: FrozenSet[grpc.StatusCode] = frozenset(failure_codes)

    def failed(self, error: Optional[BaseException]) -> bool:
        """True when ``error`` (None: the call worked) counts as a failed call of the instance."""
        return error is not None and code_of(error) in self.failure_codes

    def retry(self, error: BaseException, attempts: int, method: str, deadline: Optional[float]) -> bool:
        """True when a call of ``method`` that failed with ``error`` on ``attempts`` instances goes to another."""
        if code_of(error) is not grpc.StatusCode.UNAVAILABLE:
            return False
        if deadline is not None and time.monotonic() >= deadline:
            return False
        return self.failover.allows(attempts, delivered=not undelivered(error),
                                    idempotent=self.failover.is_idempotent(method))


def time_left(deadline: Optional[float]) -> Optional[float]:
    """The timeout for the next attempt of a call due by ``deadline`` (None: no deadline)."""
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)
