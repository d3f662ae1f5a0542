"""etcd's failures as fyerreg errors: one table, read top to bottom, first match wins.

A failure is a gRPC status code and its message, or an exception raised before any
call was made (grpc refusing a closed channel, pyetcd's failover finding no endpoint).
The table also says which failures the endpoint is to blame for (the client then
fails over) and which mean an expired auth token (the client renews it and repeats
the call once; :class:`TokenExpiredError` says so inside the client and never leaves it).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple, Type, Union

import grpc
from pyetcd import exceptions as etcd_exceptions

from ...errors import AuthenticationError, PermissionDeniedError, RegistryError, RegistryUnavailableError
from ..kv._surface import LeaseNotFoundError

__all__ = ["LeaseNotFoundError", "TokenExpiredError", "ErrorType", "Rule", "RULES", "Failure", "rule_for", "classify",
           "untrusted_server_hint", "EndedCall"]


class TokenExpiredError(Exception):
    """The auth token expired and has been renewed: repeat the call once.

    The client's own signal, not a fyerreg error: it never leaves the client, where a
    second expiry in a row becomes a :class:`RegistryUnavailableError`.
    """

    def unavailable(self) -> RegistryUnavailableError:
        """The fyerreg error this expiry is to whoever is outside the client."""
        return RegistryUnavailableError(str(self))


ErrorType = Union[Type[RegistryError], Type[TokenExpiredError]]
"""What a row of the table raises: a fyerreg error, or the client's signal to renew and repeat."""


@dataclasses.dataclass(frozen=True)
class Rule:
    """One row: a failure that is ``raised`` (with ``code``, whose message contains ``pattern``) is an ``error``.

    ``code`` and ``pattern`` None match any; ``pattern`` is matched case-insensitively.
    ``blames_endpoint``: the endpoint is marked failed. ``with_credentials``: the row
    applies only to a client that has credentials to log in again with.
    """

    error: ErrorType
    code: Optional[grpc.StatusCode] = None
    pattern: Optional[str] = None
    raised: Type[BaseException] = grpc.RpcError
    blames_endpoint: bool = False
    with_credentials: bool = False


_S = grpc.StatusCode
_Unavailable = RegistryUnavailableError

RULES: Tuple[Rule, ...] = (
    # A call the client itself cancelled tells nothing about the endpoint.
    Rule(_Unavailable, _S.UNAVAILABLE, "context canceled"),
    Rule(_Unavailable, _S.DEADLINE_EXCEEDED, "context canceled"),
    Rule(_Unavailable, _S.UNAVAILABLE, blames_endpoint=True),
    Rule(_Unavailable, _S.DEADLINE_EXCEEDED, blames_endpoint=True),
    Rule(_Unavailable, _S.RESOURCE_EXHAUSTED),
    Rule(_Unavailable, _S.ABORTED),
    Rule(_Unavailable, _S.CANCELLED),
    # etcd reports a lost quorum or leader, and its own timeouts, as UNKNOWN.
    Rule(_Unavailable, _S.UNKNOWN, "context deadline exceeded"),
    Rule(_Unavailable, _S.UNKNOWN, "leader changed"),
    Rule(_Unavailable, _S.UNKNOWN, "no leader"),
    Rule(_Unavailable, _S.UNKNOWN, "timed out"),
    Rule(_Unavailable, _S.UNKNOWN, "stopped"),
    Rule(_Unavailable, _S.UNKNOWN, "transport is closing"),
    # Tokens expire when idle (etcd's --auth-token-ttl): log in again, when we can.
    Rule(TokenExpiredError, _S.UNAUTHENTICATED, "invalid auth token", with_credentials=True),
    Rule(PermissionDeniedError, _S.PERMISSION_DENIED),
    Rule(AuthenticationError, _S.UNAUTHENTICATED),
    Rule(AuthenticationError, pattern="authentication failed"),
    Rule(AuthenticationError, pattern="user name"),
    Rule(AuthenticationError, pattern="authentication is not enabled"),
    Rule(LeaseNotFoundError, _S.NOT_FOUND, "lease not found"),
    # etcd's grpc-proxy passes etcd's answer on with its message but as UNKNOWN.
    Rule(LeaseNotFoundError, _S.UNKNOWN, "requested lease not found"),
    # Raised before a call: grpc's "Cannot invoke RPC on closed channel!", pyetcd's
    # "Trying to use a failed node" and its connection errors.
    Rule(_Unavailable, raised=ValueError),
    Rule(_Unavailable, raised=etcd_exceptions.Etcd3Exception),
)
"""Every failure the client translates; anything else is a plain :class:`RegistryError`."""


@dataclasses.dataclass(frozen=True)
class Failure:
    """What a failure is: the error to raise, its message, and whether the endpoint is to blame."""

    error: ErrorType
    details: str
    blames_endpoint: bool


class EndedCall(grpc.RpcError):  # type: ignore[misc]
    """How a streaming gRPC call ended (its code and details), kept without the call.

    A call raises itself as its error, and the frames of that error's traceback hold the
    call: passed on, it would live until a garbage collection, at worst the one at
    interpreter exit, where gRPC's finalizer of a call can wait forever for a lock that a
    thread stopped by the exit still holds.
    """

    def __init__(self, call: grpc.RpcError) -> None:
        super().__init__()
        code, details = _code_and_details(call)
        self._code = code or grpc.StatusCode.UNKNOWN
        self._details = details
        call.__traceback__ = None

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def __str__(self) -> str:
        return f"{self._code.name}: {self._details}"


def _code_and_details(exc: BaseException) -> Tuple[Optional[grpc.StatusCode], str]:
    if not isinstance(exc, grpc.RpcError):
        return None, str(exc)
    code = exc.code() if callable(getattr(exc, "code", None)) else grpc.StatusCode.UNKNOWN
    details = exc.details() if callable(getattr(exc, "details", None)) else None
    return code, details or str(code)


def rule_for(exc: BaseException, *, has_credentials: bool) -> Optional[Rule]:
    """The first row of :data:`RULES` that ``exc`` matches (None: no row does)."""
    code, details = _code_and_details(exc)
    lowered = details.lower()
    for rule in RULES:
        if not isinstance(exc, rule.raised):
            continue
        if rule.code is not None and rule.code != code:
            continue
        if rule.pattern is not None and rule.pattern not in lowered:
            continue
        if rule.with_credentials and not has_credentials:
            continue
        return rule
    return None


def classify(exc: BaseException, *, has_credentials: bool) -> Failure:
    """What ``exc`` is, by the first row of :data:`RULES` it matches (a plain RegistryError when none does)."""
    rule = rule_for(exc, has_credentials=has_credentials)
    details = _code_and_details(exc)[1]
    if rule is None:
        return Failure(RegistryError, details, False)
    return Failure(rule.error, details, rule.blames_endpoint)


# What BoringSSL says (inside gRPC's "Tls handshake failed") when the server's certificate
# does not chain to a trusted CA.
_UNTRUSTED = ("certificate_verify_failed", "certificate signature failure", "bad_signature",
              "unable to get local issuer", "self signed certificate", "self-signed certificate")


def untrusted_server_hint(details: str, ca: Optional[str]) -> Optional[str]:
    """A sentence naming the CA problem when ``details`` say etcd's TLS certificate was not trusted; else None."""
    lowered = details.lower()
    if "handshake" not in lowered or not any(mark in lowered for mark in _UNTRUSTED):
        return None
    trusted = f"the CA in tls.ca={ca!r}" if ca else "this system's trusted CAs (no tls.ca given)"
    return f"etcd's TLS certificate is not trusted: it is not signed by {trusted}"
