"""The only module that talks gRPC: etcd calls with failover, retries and error translation.

Built on pyetcd's ``MultiEndpointEtcd3Client`` (always with failover, even for one
endpoint: its plain client locks itself out for 300 s after one timeout). Calls go
through the generated stubs directly, so every call has its own timeout, the auth
token travels as metadata (FACTS #6) and the watch stream is driven by the caller's
thread. Nothing outside this module sees a gRPC or pyetcd type or exception.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, TypeVar, Union

import grpc
import pyetcd
from pyetcd import etcdrpc
from pyetcd import exceptions as etcd_exceptions

from ..._threads import join_thread, start_thread
from ...errors import (
    AuthenticationError,
    PermissionDeniedError,
    RegistryClosedError,
    RegistryError,
    RegistryUnavailableError,
)
from ...retry import Retry
from .options import Endpoint, EtcdOptions

__all__ = [
    "EtcdClient",
    "KeyValue",
    "Compare",
    "Put",
    "Delete",
    "Get",
    "Txn",
    "TxnResult",
    "RangeResult",
    "WatchBatch",
    "WatchEvent",
    "WatchStream",
    "LeaseNotFoundError",
    "Deadline",
    "Timeout",
]

log = logging.getLogger("fyerreg.registry.etcd")

T = TypeVar("T")

KEEPALIVE_TIMEOUT_MS = 2000
"""How long a gRPC keepalive ping may go unanswered before the connection is declared dead."""
ENDPOINT_RETRY_AFTER = 2.0
"""Seconds a failed endpoint is skipped while another one is available."""
MAX_MESSAGE_BYTES = 256 * 1024 * 1024

_TRANSIENT_CODES = frozenset({
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.CANCELLED,
})
_ENDPOINT_FAILURE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
_TRANSIENT_UNKNOWN = ("context deadline exceeded", "leader changed", "no leader", "timed out", "stopped",
                      "transport is closing")


class Deadline:
    """A time limit shared by the several calls of one operation (``seconds=None``: none)."""

    __slots__ = ("end",)

    def __init__(self, seconds: Optional[float]) -> None:
        self.end = None if seconds is None else time.monotonic() + seconds

    def left(self) -> Optional[float]:
        """Seconds left (at least a millisecond: a call still gets its one attempt), None when unlimited."""
        return None if self.end is None else max(self.end - time.monotonic(), 0.001)


Timeout = Union[float, Deadline, None]
"""Seconds for this call alone, a shared :class:`Deadline`, or None (retries bound it)."""


class LeaseNotFoundError(RegistryError):
    """etcd does not know the lease (it expired, was revoked, or the data was wiped)."""


class _TokenExpiredError(RegistryUnavailableError):
    """The auth token expired; it has been renewed and the call may be repeated at once."""


# -- plain values returned to the rest of the backend ---------------------------------------


@dataclasses.dataclass(frozen=True)
class KeyValue:
    """One key as stored in etcd."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int

    @classmethod
    def _from_proto(cls, kv: Any) -> KeyValue:
        return cls(
            # Lossless: a key that is not UTF-8 must not read as the key of a valid record
            # (b"\xff" would read as the key of id "\ufffd" with errors="replace").
            key=bytes(kv.key).decode("utf-8", errors="surrogateescape"),
            value=bytes(kv.value),
            create_revision=kv.create_revision,
            mod_revision=kv.mod_revision,
            lease=kv.lease,
        )


@dataclasses.dataclass(frozen=True)
class RangeResult:
    """The keys read and the store revision they were read at."""

    revision: int
    kvs: Tuple[KeyValue, ...]


@dataclasses.dataclass(frozen=True)
class Compare:
    """A transaction guard: ``target`` of ``key`` (``lease``, ``mod`` or ``create``) equals ``value``.

    A missing key compares as 0 for every target.
    """

    key: str
    target: str
    value: int


@dataclasses.dataclass(frozen=True)
class Put:
    """Write ``value`` at ``key`` bound to ``lease`` (0: no lease); the result is the previous KeyValue."""

    key: str
    value: bytes
    lease: int = 0


@dataclasses.dataclass(frozen=True)
class Delete:
    """Delete ``key``; the result is the number of keys deleted."""

    key: str


@dataclasses.dataclass(frozen=True)
class Get:
    """Read ``key``; the result is its KeyValue or None."""

    key: str


@dataclasses.dataclass(frozen=True)
class Txn:
    """A nested transaction; the result is its TxnResult."""

    compare: Sequence[Compare]
    success: Sequence[Op] = ()
    failure: Sequence[Op] = ()


Op = Union[Put, Delete, Get, Txn]
OpResult = Union[Optional[KeyValue], int, "TxnResult"]


@dataclasses.dataclass(frozen=True)
class TxnResult:
    """Whether the guards held, the store revision after the transaction, one result per op run."""

    succeeded: bool
    revision: int
    results: Tuple[OpResult, ...]


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    """A put or delete of one key."""

    deleted: bool
    kv: KeyValue


@dataclasses.dataclass(frozen=True)
class WatchBatch:
    """One watch response: its events share the store revision ``revision``.

    ``created`` marks the first response of a stream (``revision`` is then the
    store's current revision); a non-zero ``compact_revision`` means the start
    revision was compacted and the stream is over; ``canceled`` that the server
    ended the watch (``cancel_reason``).
    """

    revision: int
    events: Tuple[WatchEvent, ...]
    created: bool
    canceled: bool
    compact_revision: int
    cancel_reason: str


# -- request building -----------------------------------------------------------------------

_COMPARE_TARGETS = {
    "lease": (etcdrpc.Compare.LEASE, "lease"),
    "mod": (etcdrpc.Compare.MOD, "mod_revision"),
    "create": (etcdrpc.Compare.CREATE, "create_revision"),
}


def _b(text: str) -> bytes:
    return text.encode("utf-8")


def _prefix_end(prefix: bytes) -> bytes:
    end = pyetcd.utils.prefix_range_end(prefix)
    return bytes(end)


def _compare_proto(cmp: Compare) -> Any:
    target, field = _COMPARE_TARGETS[cmp.target]
    msg = etcdrpc.Compare(key=_b(cmp.key), result=etcdrpc.Compare.EQUAL, target=target)
    setattr(msg, field, cmp.value)
    return msg


def _txn_proto(txn: Txn) -> Any:
    return etcdrpc.TxnRequest(
        compare=[_compare_proto(c) for c in txn.compare],
        success=[_op_proto(op) for op in txn.success],
        failure=[_op_proto(op) for op in txn.failure],
    )


def _op_proto(op: Op) -> Any:
    if isinstance(op, Put):
        return etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(
            key=_b(op.key), value=op.value, lease=op.lease, prev_kv=True))
    if isinstance(op, Delete):
        return etcdrpc.RequestOp(request_delete_range=etcdrpc.DeleteRangeRequest(key=_b(op.key)))
    if isinstance(op, Get):
        return etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=_b(op.key)))
    return etcdrpc.RequestOp(request_txn=_txn_proto(op))


def _txn_result(resp: Any, revision: int) -> TxnResult:
    results: List[OpResult] = []
    for item in resp.responses:
        kind = item.WhichOneof("response")
        if kind == "response_put":
            prev = item.response_put.prev_kv
            results.append(KeyValue._from_proto(prev) if item.response_put.HasField("prev_kv") else None)
        elif kind == "response_delete_range":
            results.append(int(item.response_delete_range.deleted))
        elif kind == "response_range":
            kvs = item.response_range.kvs
            results.append(KeyValue._from_proto(kvs[0]) if kvs else None)
        else:
            results.append(_txn_result(item.response_txn, revision))
    return TxnResult(succeeded=bool(resp.succeeded), revision=revision, results=tuple(results))


def _batch(resp: Any) -> WatchBatch:
    events = tuple(
        WatchEvent(deleted=ev.type == 1, kv=KeyValue._from_proto(ev.kv)) for ev in resp.events
    )
    return WatchBatch(
        revision=resp.header.revision,
        events=events,
        created=bool(resp.created),
        canceled=bool(resp.canceled),
        compact_revision=resp.compact_revision,
        cancel_reason=resp.cancel_reason,
    )


# -- connections ----------------------------------------------------------------------------


class _Conn:
    """The stubs of one endpoint's channel."""

    def __init__(self, endpoint: Any, channel: Any) -> None:
        self.endpoint = endpoint
        self.kv = etcdrpc.KVStub(channel)
        self.lease = etcdrpc.LeaseStub(channel)
        self.watch = etcdrpc.WatchStub(channel)
        self.auth = etcdrpc.AuthStub(channel)
        self.cluster = etcdrpc.ClusterStub(channel)

    @property
    def netloc(self) -> str:
        return str(self.endpoint.netloc)


def _grpc_options(options: EtcdOptions) -> List[Tuple[str, Any]]:
    # A list of tuples: pyetcd hands it to grpc, which rejects a dict (FACTS #2).
    opts: List[Tuple[str, Any]] = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # gRPC's own reconnect backoff grows to 120 s: etcd back after an outage would
        # then stay unreachable for minutes. Our retry policy does the backing off.
        # (Not grpc.min_reconnect_backoff_ms: gRPC uses it as the connect timeout.)
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 500),
        # etcd is reached directly, never through an HTTP proxy taken from the environment.
        ("grpc.enable_http_proxy", 0),
    ]
    if options.dial_keepalive > 0:
        opts += [
            ("grpc.keepalive_time_ms", int(options.dial_keepalive * 1000)),
            ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
            ("grpc.http2.ping_timeout_ms", KEEPALIVE_TIMEOUT_MS),
            ("grpc.http2.max_pings_without_data", 0),
            # etcd answers pings on idle connections with GOAWAY: ping only under a call.
            ("grpc.keepalive_permit_without_calls", 0),
        ]
    return opts


def _read(path: Optional[str]) -> Optional[bytes]:
    if path is None:
        return None
    with open(path, "rb") as fh:
        return fh.read()


class EtcdClient:
    """A connection to an etcd cluster for one registry.

    Construction connects (and authenticates) within ``dial_timeout`` or raises
    :class:`RegistryUnavailableError` (:class:`AuthenticationError` for rejected
    credentials). Unary calls are retried on transient failures per ``max_retry``
    and ``retry_interval``; every method raises only fyerreg errors.
    """

    def __init__(self, options: EtcdOptions) -> None:
        self.options = options
        self.retry = Retry(
            max_tries=options.max_retry + 1,
            delay=options.retry_interval,
            backoff=2.0,
            max_delay=max(options.retry_interval, 10.0),
            jitter=0.2,
        )
        self._lock = threading.RLock()
        self._closed = False
        self._token: Optional[str] = None
        self._token_renewed_at = 0.0
        self._last_answered: Optional[str] = None
        self._conns: Dict[str, _Conn] = {}
        self._grpc_opts = _grpc_options(options)
        self._creds = self._channel_credentials() if options.uses_tls else None
        self._sync_stop = threading.Event()
        self._sync_thread: Optional[threading.Thread] = None
        endpoints = [self._make_endpoint(ep.host, ep.port, options.endpoint_is_secure(ep))
                     for ep in options.endpoints]
        try:
            self._client = pyetcd.MultiEndpointEtcd3Client(
                endpoints=endpoints, timeout=options.dial_timeout, failover=True)
        except Exception as exc:  # pyetcd's constructor makes no calls; stay safe anyway
            for ep in endpoints:
                ep.close()
            raise RegistryUnavailableError(f"cannot set up an etcd client: {exc}") from None
        self._client.call_credentials = None  # the token goes as metadata (FACTS #6)
        try:
            self._connect()
        except BaseException:
            self._client.close()
            raise
        if options.auto_sync_interval > 0:
            self._sync_thread = start_thread("etcd-autosync", self._auto_sync)

    # -- setup ------------------------------------------------------------------------------

    def _channel_credentials(self) -> Any:
        tls = self.options.tls
        if tls is None:
            return grpc.ssl_channel_credentials()
        try:
            return grpc.ssl_channel_credentials(
                root_certificates=_read(tls.ca), private_key=_read(tls.key), certificate_chain=_read(tls.cert))
        except OSError as exc:
            raise ValueError(f"tls: cannot read {exc.filename!r}: {exc.strerror}") from None

    def _make_endpoint(self, host: str, port: int, secure: bool) -> Any:
        return pyetcd.Endpoint(host, port, secure=secure, creds=self._creds if secure else None,
                               time_retry=ENDPOINT_RETRY_AFTER, opts=self._grpc_opts)

    def _connect(self) -> None:
        """Reach one endpoint (authenticating when asked to) before ``dial_timeout`` runs out."""
        dial = self.options.dial_timeout
        deadline = time.monotonic() + dial
        endpoints = list(self._client.endpoints.values())
        # A black-holed endpoint must not use up the whole dial_timeout of the others.
        per_attempt = max(1.0, dial / len(endpoints))
        probe = etcdrpc.RangeRequest(key=_b(self.options.prefix), range_end=_prefix_end(_b(self.options.prefix)),
                                     count_only=True)
        last: Optional[BaseException] = None
        pause = 0.05
        while True:
            for endpoint in endpoints:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                conn = self._conn_for(endpoint)
                end = time.monotonic() + min(left, per_attempt)
                try:
                    if self.options.username is not None:
                        self._authenticate(conn, end - time.monotonic())
                    conn.kv.Range(probe, max(0.01, end - time.monotonic()), metadata=self._metadata())
                except grpc.RpcError as exc:
                    err = self._translate(exc, conn, "connect")
                    if not isinstance(err, RegistryUnavailableError):
                        raise err from None
                    last = err
                    continue
                except ValueError as exc:  # grpc refusing the call itself (a closed channel)
                    last = exc
                    continue
                with self._lock:
                    endpoint.last_failed = 0
                    self._client._current_endpoint_label = endpoint.netloc
                return
            left = deadline - time.monotonic()
            if left <= 0:
                names = ", ".join(ep.netloc for ep in self.options.endpoints)
                raise RegistryUnavailableError(f"etcd at {names} unreachable within dial_timeout={dial:g}s: {last}")
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.5)

    def _authenticate(self, conn: _Conn, timeout: float) -> None:
        request = etcdrpc.AuthenticateRequest(name=self.options.username, password=self.options.password)
        response = conn.auth.Authenticate(request, timeout)
        with self._lock:
            self._token = response.token

    def _metadata(self, *extra: Tuple[str, str]) -> Optional[Tuple[Tuple[str, str], ...]]:
        token = self._token
        items = ((("token", token),) if token else ()) + extra
        return items or None

    # -- endpoint choice ----------------------------------------------------------------------

    def _conn_for(self, endpoint: Any) -> _Conn:
        with self._lock:
            conn = self._conns.get(endpoint.netloc)
            if conn is None or conn.endpoint is not endpoint:
                conn = self._conns[endpoint.netloc] = _Conn(endpoint, endpoint.channel)
            return conn

    def _acquire(self) -> _Conn:
        with self._lock:
            if self._closed:
                raise RegistryClosedError("the etcd client is closed")
            client = self._client
            try:
                client.channel  # noqa: B018 - failover: moves to a working endpoint or raises
            except (etcd_exceptions.NoServerAvailableError, ValueError):
                # Every endpoint failed recently: try again the one that failed longest ago
                # rather than refusing to call at all (pyetcd's lock-out).
                endpoint = min(client.endpoints.values(), key=lambda ep: ep.last_failed)
                endpoint.last_failed = 0
                client._current_endpoint_label = endpoint.netloc
            endpoint = client.endpoint_in_use
            endpoint.in_use = True
            return self._conn_for(endpoint)

    @property
    def endpoint(self) -> str:
        """The ``host:port`` currently in use."""
        with self._lock:
            return str(self._client.endpoint_in_use.netloc)

    # -- errors -----------------------------------------------------------------------------

    def _translate(self, exc: grpc.RpcError, conn: _Conn, what: str) -> RegistryError:
        """The fyerreg error for a failed call; marks the endpoint failed when it is at fault."""
        code = exc.code() if callable(getattr(exc, "code", None)) else grpc.StatusCode.UNKNOWN
        details = (exc.details() if callable(getattr(exc, "details", None)) else None) or str(code)
        text = f"etcd {what} at {conn.netloc} failed: {details}"
        lowered = details.lower()
        if code in _ENDPOINT_FAILURE_CODES and "context canceled" not in lowered:
            conn.endpoint.fail()
        if code in _TRANSIENT_CODES:
            return RegistryUnavailableError(text)
        if code == grpc.StatusCode.UNKNOWN and any(s in lowered for s in _TRANSIENT_UNKNOWN):
            return RegistryUnavailableError(text)
        if code == grpc.StatusCode.UNAUTHENTICATED and "invalid auth token" in lowered and self.options.username:
            self._renew_token(conn)
            return _TokenExpiredError(text)
        if code == grpc.StatusCode.PERMISSION_DENIED:
            return PermissionDeniedError(text)
        if code == grpc.StatusCode.UNAUTHENTICATED or "authentication failed" in lowered or (
            "user name" in lowered
        ) or "authentication is not enabled" in lowered:
            return AuthenticationError(text)
        if code == grpc.StatusCode.NOT_FOUND and "lease not found" in lowered:
            return LeaseNotFoundError(text)
        return RegistryError(text)

    def _renew_token(self, conn: _Conn) -> None:
        with self._lock:
            if time.monotonic() - self._token_renewed_at < 1.0:
                return  # another thread has just renewed it
            try:
                self._authenticate(conn, self.options.dial_timeout)
            except grpc.RpcError as exc:
                log.warning("renewing the etcd auth token failed: %s", exc, extra={"endpoint": conn.netloc})
                return
            self._token_renewed_at = time.monotonic()
        log.info("renewed the etcd auth token", extra={"endpoint": conn.netloc})

    # -- calls ------------------------------------------------------------------------------

    def call(
        self,
        what: str,
        func: Callable[[_Conn, float, Any], T],
        *,
        deadline: Timeout = None,
        retry: Optional[Retry] = None,
        stop: Optional[threading.Event] = None,
    ) -> T:
        """Run ``func(conn, timeout, metadata)`` with retries; ``deadline`` bounds it all."""
        if isinstance(deadline, Deadline):
            deadline = deadline.left()
        end = None if deadline is None else time.monotonic() + deadline

        def attempt() -> T:
            conn = self._acquire()
            timeout = self.options.dial_timeout
            if end is not None:
                timeout = max(0.05, min(timeout, end - time.monotonic()))
            try:
                result = func(conn, timeout, self._metadata())
            except grpc.RpcError as exc:
                if self._closed:  # ended by close(): no retry
                    raise RegistryClosedError("the etcd client is closed") from None
                raise self._translate(exc, conn, what) from None
            except ValueError as exc:  # grpc: "Cannot invoke RPC on closed channel!"
                if self._closed:
                    raise RegistryClosedError("the etcd client is closed") from None
                raise RegistryUnavailableError(f"etcd {what} at {conn.netloc} failed: {exc}") from None
            if conn.netloc != self._last_answered:
                self._answered_from(conn.netloc)
            return result

        def once_renewed() -> T:
            try:
                return attempt()
            except _TokenExpiredError:
                return attempt()

        def on_retry(attempt_no: int, exc: BaseException, wait: float) -> None:
            log.debug("etcd %s failed (attempt %d), retrying in %.2fs: %s", what, attempt_no, wait, exc,
                      extra={"attempt": attempt_no})

        policy = retry or self.retry
        return policy.call(once_renewed, retry_on=(RegistryUnavailableError,), stop=stop,
                           on_retry=on_retry, deadline=deadline)

    def _answered_from(self, netloc: str) -> None:
        with self._lock:
            previous, self._last_answered = self._last_answered, netloc
        if previous is not None and previous != netloc:
            log.warning("etcd failover: %s answers now, instead of %s", netloc, previous,
                        extra={"endpoint": netloc, "previous_endpoint": previous})

    def get_prefix(self, prefix: str, *, deadline: Timeout = None,
                   stop: Optional[threading.Event] = None) -> RangeResult:
        """Every key under ``prefix`` and the revision of the read."""
        key = _b(prefix)
        request = etcdrpc.RangeRequest(key=key, range_end=_prefix_end(key))

        def run(conn: _Conn, timeout: float, md: Any) -> RangeResult:
            resp = conn.kv.Range(request, timeout, metadata=md)
            return RangeResult(resp.header.revision, tuple(KeyValue._from_proto(kv) for kv in resp.kvs))

        return self.call("range", run, deadline=deadline, stop=stop)

    def get(self, key: str, *, deadline: Timeout = None,
            retry: Optional[Retry] = None) -> Tuple[int, Optional[KeyValue]]:
        """The store revision and ``key``'s KeyValue (None when absent)."""
        request = etcdrpc.RangeRequest(key=_b(key))

        def run(conn: _Conn, timeout: float, md: Any) -> Tuple[int, Optional[KeyValue]]:
            resp = conn.kv.Range(request, timeout, metadata=md)
            return resp.header.revision, (KeyValue._from_proto(resp.kvs[0]) if resp.kvs else None)

        return self.call("get", run, deadline=deadline, retry=retry)

    def txn(self, txn: Txn, *, deadline: Timeout = None) -> TxnResult:
        """Run a transaction (retried on transient failures: keep guards idempotent)."""
        request = _txn_proto(txn)

        def run(conn: _Conn, timeout: float, md: Any) -> TxnResult:
            resp = conn.kv.Txn(request, timeout, metadata=md)
            return _txn_result(resp, resp.header.revision)

        return self.call("txn", run, deadline=deadline)

    def grant(self, ttl: int, *, deadline: Timeout = None) -> int:
        """A new lease of ``ttl`` seconds; its id."""
        request = etcdrpc.LeaseGrantRequest(TTL=ttl, ID=0)

        def run(conn: _Conn, timeout: float, md: Any) -> int:
            resp = conn.lease.LeaseGrant(request, timeout, metadata=md)
            if resp.error:
                raise RegistryError(f"etcd refused a lease: {resp.error}")
            return int(resp.ID)

        return self.call("lease grant", run, deadline=deadline)

    def refresh(self, lease_id: int, *, deadline: Timeout = None,
                retry: Optional[Retry] = None) -> int:
        """Refresh a lease; its remaining TTL, 0 when etcd no longer knows it (FACTS #5)."""
        request = etcdrpc.LeaseKeepAliveRequest(ID=lease_id)

        def run(conn: _Conn, timeout: float, md: Any) -> int:
            call = conn.lease.LeaseKeepAlive(iter((request,)), timeout, metadata=md)
            try:
                for resp in call:
                    return int(resp.TTL)
            finally:
                call.cancel()
            raise RegistryUnavailableError(f"etcd at {conn.netloc} ended the lease keepalive without an answer")

        return self.call("lease keepalive", run, deadline=deadline, retry=retry)

    def revoke(self, lease_id: int, *, deadline: Timeout = None) -> bool:
        """Revoke a lease (its keys go with it); False when it was already gone."""
        request = etcdrpc.LeaseRevokeRequest(ID=lease_id)

        def run(conn: _Conn, timeout: float, md: Any) -> bool:
            conn.lease.LeaseRevoke(request, timeout, metadata=md)
            return True

        try:
            return self.call("lease revoke", run, deadline=deadline)
        except LeaseNotFoundError:
            return False

    def time_to_live(self, lease_id: int, *, deadline: Timeout = None) -> int:
        """Seconds left on a lease; -1 when etcd does not know it (expired or revoked)."""
        request = etcdrpc.LeaseTimeToLiveRequest(ID=lease_id, keys=False)

        def run(conn: _Conn, timeout: float, md: Any) -> int:
            resp = conn.lease.LeaseTimeToLive(request, timeout, metadata=md)
            return int(resp.TTL)

        try:
            return self.call("lease time-to-live", run, deadline=deadline)
        except LeaseNotFoundError:
            return -1

    def member_urls(self, *, deadline: Timeout = None) -> List[str]:
        """The client URLs of every cluster member."""
        request = etcdrpc.MemberListRequest()

        def run(conn: _Conn, timeout: float, md: Any) -> List[str]:
            resp = conn.cluster.MemberList(request, timeout, metadata=md)
            return [str(url) for member in resp.members for url in member.clientURLs]

        return self.call("member list", run, deadline=deadline)

    def watch(self, prefix: str, start_revision: int) -> WatchStream:
        """Open a watch of every key under ``prefix`` from ``start_revision`` (no retries)."""
        return WatchStream(self, prefix, start_revision)

    # -- member list refresh ------------------------------------------------------------------

    def _auto_sync(self) -> None:
        interval = self.options.auto_sync_interval
        while not self._sync_stop.wait(interval):
            try:
                self.sync_endpoints()
            except RegistryError as exc:
                if self._sync_stop.is_set():
                    return  # closed during the call
                log.warning("refreshing the etcd member list failed: %s", exc)
            except Exception:
                log.exception("refreshing the etcd member list failed")

    def sync_endpoints(self) -> None:
        """Use the configured endpoints and the cluster's current members (new members are added,
        removed ones dropped)."""
        urls = self.member_urls(deadline=self.options.dial_timeout)
        # The configured endpoints stay (a load balancer's address is no member's URL).
        wanted: Dict[str, Endpoint] = {ep.netloc: ep for ep in self.options.endpoints}
        for url in urls:
            try:
                ep = Endpoint.parse(url)
            except ValueError:
                log.warning("ignoring etcd member URL %r", url)
                continue
            wanted[ep.netloc] = ep
        with self._lock:
            if self._closed:
                return
            current = self._client.endpoints
            if set(wanted) == set(current):
                return
            new = {}
            for netloc, ep in wanted.items():
                new[netloc] = current.get(netloc) or self._make_endpoint(
                    ep.host, ep.port, self.options.endpoint_is_secure(ep))
            dropped = [ep for netloc, ep in current.items() if netloc not in new]
            self._client.endpoints = new
            if self._client._current_ep_label not in new:
                self._client._current_endpoint_label = next(iter(new))
            for ep in dropped:
                self._conns.pop(ep.netloc, None)
        for ep in dropped:
            ep.close()
        log.info("etcd endpoints are now %s", ", ".join(new))

    def close(self) -> None:
        """Close every channel, which ends the calls in flight, and stop the member-list thread (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._sync_stop.set()
        try:
            self._client.close()
        except Exception:
            log.debug("closing the etcd channels failed", exc_info=True)
        if self._sync_thread is not None:
            join_thread(self._sync_thread, self.options.dial_timeout + 1)


class WatchStream:
    """One gRPC watch stream of a key prefix, iterated by the caller's thread.

    Iterating yields :class:`WatchBatch` until :meth:`cancel` (then it just ends)
    or until the stream breaks, which raises a fyerreg error
    (:class:`RegistryUnavailableError` for a lost connection).
    """

    def __init__(self, client: EtcdClient, prefix: str, start_revision: int) -> None:
        self._client = client
        self._cancelled = threading.Event()
        self._conn = client._acquire()
        key = _b(prefix)
        create = etcdrpc.WatchCreateRequest(
            key=key, range_end=_prefix_end(key), start_revision=start_revision, progress_notify=True)
        first = etcdrpc.WatchRequest(create_request=create)

        def requests() -> Iterator[Any]:
            yield first
            # Keep the request side open (closing it ends the stream) until cancelled.
            self._cancelled.wait()

        # hasleader: a member cut off from the quorum cancels the watch instead of
        # leaving it silent forever.
        metadata = client._metadata(("hasleader", "true"))
        try:
            self._call = self._conn.watch.Watch(requests(), metadata=metadata)
        except ValueError as exc:
            self._cancelled.set()
            raise RegistryUnavailableError(f"cannot watch at {self._conn.netloc}: {exc}") from None

    @property
    def endpoint(self) -> str:
        """The ``host:port`` this stream is connected to."""
        return self._conn.netloc

    def __iter__(self) -> Iterator[WatchBatch]:
        error: Optional[RegistryError] = None
        try:
            for resp in self._call:
                yield _batch(resp)
        except grpc.RpcError as exc:
            if not self._cancelled.is_set():
                error = self._client._translate(exc, self._conn, "watch")
        else:
            if not self._cancelled.is_set():
                error = RegistryUnavailableError(f"etcd at {self._conn.netloc} ended the watch stream")
        finally:
            self.cancel()
        if error is not None:
            raise error

    def cancel(self) -> None:
        """End the stream; an iteration in progress stops (idempotent, thread-safe)."""
        self._cancelled.set()
        try:
            self._call.cancel()
        except Exception:
            log.debug("cancelling a watch failed", exc_info=True)
