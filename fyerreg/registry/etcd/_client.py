"""The etcd calls of one registry: connecting, authenticating, retries and error translation.

Calls go through etcd's generated stubs directly, so every call has its own timeout,
the auth token travels as metadata (pyetcd's call credentials are refused over
plaintext) and the watch stream is driven by the caller's thread. Requests and results
are the plain values of ``_ops`` (converted in ``_convert``); the endpoint to call
comes from ``_endpoints``; failures become fyerreg errors by the table in ``_errors``.
Nothing above this module sees a gRPC or pyetcd type or exception.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar, Union

import grpc
from pyetcd import etcdrpc
from pyetcd import exceptions as etcd_exceptions

from ..._threads import join_thread, start_thread
from ...errors import RegistryClosedError, RegistryError, RegistryUnavailableError
from ...retry import Retry
from ..kv._ops import Deadline, KeyValue, RangeResult, Txn, TxnResult
from . import _convert
from ._endpoints import Conn, EndpointPool
from ._errors import LeaseNotFoundError, TokenExpiredError, classify, untrusted_server_hint
from ._keepalive import KeepAliveStream
from ._stream import Deliver, WatchHub, WatchStream
from .options import Endpoint, EtcdOptions

__all__ = ["EtcdClient"]

log = logging.getLogger("fyerreg.registry.etcd")

T = TypeVar("T")

_NOT_CALLED = (ValueError, etcd_exceptions.Etcd3Exception)
"""Raised instead of a call being made (grpc: "Cannot invoke RPC on closed channel!")."""


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
        self._renew_lock = threading.Lock()
        self._closed = False
        self._token: Optional[str] = None
        self._token_fresh_until = 0.0
        self._last_answered: Optional[str] = None
        self._sync_stop = threading.Event()
        self._sync_thread: Optional[threading.Thread] = None
        self._pool = EndpointPool(options)
        # hasleader: a member cut off from the quorum cancels the watches instead of
        # leaving them silent forever.
        self._watches = WatchHub(self._acquire, lambda: self._metadata(("hasleader", "true")), self._translate)
        self._keepalives = KeepAliveStream(self._metadata)
        try:
            self._connect()
        except BaseException:
            self._pool.close()
            raise
        if options.auto_sync_interval > 0:
            self._sync_thread = start_thread("etcd-autosync", self._auto_sync)

    # -- setup ------------------------------------------------------------------------------

    def _connect(self) -> None:
        """Reach one endpoint (authenticating when asked to) before ``dial_timeout`` runs out."""
        dial = self.options.dial_timeout
        deadline = time.monotonic() + dial
        conns = self._pool.conns()
        # A black-holed endpoint must not use up the whole dial_timeout of the others.
        per_attempt = max(1.0, dial / len(conns))
        probe = _convert.prefix_request(self.options.prefix, count_only=True)
        last: Optional[BaseException] = None
        pause = 0.05
        while True:
            for conn in conns:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                attempt_deadline = time.monotonic() + min(left, per_attempt)
                try:
                    if self.options.username is not None:
                        self._authenticate(conn, attempt_deadline - time.monotonic())
                    conn.kv.Range(probe, max(0.01, attempt_deadline - time.monotonic()), metadata=self._metadata())
                except grpc.RpcError as exc:
                    err = self._translate(exc, conn, "connect")
                    if not isinstance(err, RegistryUnavailableError):
                        raise err from None
                    last = err
                    continue
                except ValueError as exc:  # grpc refusing the call itself (a closed channel)
                    last = exc
                    continue
                self._pool.use(conn.netloc)
                return
            left = deadline - time.monotonic()
            if left <= 0:
                names = ", ".join(ep.netloc for ep in self.options.endpoints)
                tls = self.options.tls
                hint = untrusted_server_hint(str(last), tls.ca if tls is not None else None)
                raise RegistryUnavailableError(f"etcd at {names} unreachable within dial_timeout={dial:g}s: "
                                               + (f"{hint} ({last})" if hint else str(last)))
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.5)

    def _authenticate(self, conn: Conn, timeout: float) -> None:
        request = etcdrpc.AuthenticateRequest(name=self.options.username, password=self.options.password)
        response = conn.auth.Authenticate(request, timeout)
        with self._lock:
            self._token = response.token

    def _metadata(self, *extra: Tuple[str, str]) -> Optional[Tuple[Tuple[str, str], ...]]:
        token = self._token
        items = ((("token", token),) if token else ()) + extra
        return items or None

    def _acquire(self) -> Conn:
        if self._closed:
            raise RegistryClosedError("the etcd client is closed")
        return self._pool.acquire()

    @property
    def endpoint(self) -> str:
        """The ``host:port`` currently in use."""
        return self._pool.current

    # -- errors -----------------------------------------------------------------------------

    def _classify(self, exc: BaseException, conn: Conn, what: str) -> Union[RegistryError, TokenExpiredError]:
        """What a failed call is (see ``_errors.RULES``), acting on what it says: the endpoint
        is marked failed, an expired token renewed."""
        failure = classify(exc, has_credentials=bool(self.options.username))
        if failure.blames_endpoint:
            conn.fail()
        if failure.error is TokenExpiredError:
            self._renew_token(conn)
        return failure.error(f"etcd {what} at {conn.netloc} failed: {failure.details}")

    def _translate(self, exc: BaseException, conn: Conn, what: str) -> RegistryError:
        """The fyerreg error for a failed call that is not repeated here (an expired token is
        renewed and the call reads as unavailable, for the caller to retry)."""
        error = self._classify(exc, conn, what)
        return error.unavailable() if isinstance(error, TokenExpiredError) else error

    def _renew_token(self, conn: Conn) -> None:
        # One renewal at a time, under a lock of its own: close() and every call's bookkeeping
        # take _lock, and must not wait for this network call.
        with self._renew_lock:
            if time.monotonic() < self._token_fresh_until:
                return  # another thread has just renewed it
            try:
                self._authenticate(conn, self.options.dial_timeout)
            except grpc.RpcError as exc:
                log.warning("renewing the etcd auth token failed: %s", exc, extra={"endpoint": conn.netloc})
                return
            self._token_fresh_until = time.monotonic() + 1.0
        log.info("renewed the etcd auth token", extra={"endpoint": conn.netloc})

    # -- calls ------------------------------------------------------------------------------

    def call(
        self,
        what: str,
        func: Callable[[Conn, float, Any], T],
        *,
        deadline: Optional[Deadline] = None,
        retry: Optional[Retry] = None,
        stop: Optional[threading.Event] = None,
    ) -> T:
        """Run ``func(conn, timeout, metadata)`` with retries; ``deadline`` bounds it all (None:
        the retry policy does)."""

        def attempt() -> T:
            conn = self._acquire()
            timeout = self.options.dial_timeout
            left = None if deadline is None else deadline.left()
            if left is not None:
                timeout = max(0.05, min(timeout, left))
            try:
                result = func(conn, timeout, self._metadata())
            except (grpc.RpcError, *_NOT_CALLED) as exc:
                if self._closed:  # ended by close(): no retry
                    raise RegistryClosedError("the etcd client is closed") from None
                raise self._classify(exc, conn, what) from None
            if conn.netloc != self._last_answered:
                self._answered_from(conn.netloc)
            return result

        def once_renewed() -> T:
            try:
                return attempt()
            except TokenExpiredError:
                pass
            try:
                return attempt()
            except TokenExpiredError as again:
                raise again.unavailable() from None

        def on_retry(attempt_no: int, exc: BaseException, wait: float) -> None:
            log.debug("etcd %s failed (attempt %d), retrying in %.2fs: %s", what, attempt_no, wait, exc,
                      extra={"attempt": attempt_no})

        policy = retry or self.retry
        return policy.call(once_renewed, retry_on=(RegistryUnavailableError,), stop=stop,
                           on_retry=on_retry, deadline=None if deadline is None else deadline.left())

    def _answered_from(self, netloc: str) -> None:
        with self._lock:
            previous, self._last_answered = self._last_answered, netloc
        if previous is not None and previous != netloc:
            log.warning("etcd failover: %s answers now, instead of %s", netloc, previous,
                        extra={"endpoint": netloc, "previous_endpoint": previous})

    def get_prefix(self, prefix: str, *, deadline: Optional[Deadline] = None,
                   stop: Optional[threading.Event] = None) -> RangeResult:
        """Every key under ``prefix`` and the revision of the read."""
        request = _convert.prefix_request(prefix)

        def run(conn: Conn, timeout: float, md: Any) -> RangeResult:
            return _convert.range_result(conn.kv.Range(request, timeout, metadata=md))

        return self.call("range", run, deadline=deadline, stop=stop)

    def get(self, key: str, *, deadline: Optional[Deadline] = None,
            retry: Optional[Retry] = None) -> Tuple[int, Optional[KeyValue]]:
        """The store revision and ``key``'s KeyValue (None when absent)."""
        request = _convert.range_request(key)

        def run(conn: Conn, timeout: float, md: Any) -> Tuple[int, Optional[KeyValue]]:
            result = _convert.range_result(conn.kv.Range(request, timeout, metadata=md))
            return result.revision, (result.kvs[0] if result.kvs else None)

        return self.call("get", run, deadline=deadline, retry=retry)

    def txn(self, txn: Txn, *, deadline: Optional[Deadline] = None) -> TxnResult:
        """Run a transaction (retried on transient failures: keep guards idempotent)."""
        request = _convert.txn_request(txn)

        def run(conn: Conn, timeout: float, md: Any) -> TxnResult:
            resp = conn.kv.Txn(request, timeout, metadata=md)
            return _convert.txn_result(resp, resp.header.revision)

        return self.call("txn", run, deadline=deadline)

    def grant(self, ttl: float, *, deadline: Optional[Deadline] = None) -> int:
        """A new lease of ``ttl`` seconds (whole seconds: etcd's unit); its id."""
        request = etcdrpc.LeaseGrantRequest(TTL=int(ttl), ID=0)

        def run(conn: Conn, timeout: float, md: Any) -> int:
            resp = conn.lease.LeaseGrant(request, timeout, metadata=md)
            if resp.error:
                raise RegistryError(f"etcd refused a lease: {resp.error}")
            return int(resp.ID)

        return self.call("lease grant", run, deadline=deadline)

    def granted_ttl(self, ttl: int, *, deadline: Optional[Deadline] = None) -> int:
        """The TTL etcd grants when asked for ``ttl`` seconds (it raises one below its minimum); revoked at once."""
        request = etcdrpc.LeaseGrantRequest(TTL=int(ttl), ID=0)

        def run(conn: Conn, timeout: float, md: Any) -> Tuple[int, int]:
            resp = conn.lease.LeaseGrant(request, timeout, metadata=md)
            if resp.error:
                raise RegistryError(f"etcd refused a lease: {resp.error}")
            return int(resp.ID), int(resp.TTL)

        lease_id, granted = self.call("lease grant", run, deadline=deadline)
        self.revoke(lease_id, deadline=deadline)
        return granted

    def refresh(self, lease_id: int, *, deadline: Optional[Deadline] = None,
                retry: Optional[Retry] = None) -> int:
        """Refresh a lease on the client's one keepalive stream; its remaining TTL, 0 when etcd no
        longer knows it (etcd raises nothing then)."""
        def run(conn: Conn, timeout: float, md: Any) -> int:
            return self._keepalives.refresh(conn, lease_id, timeout)

        return self.call("lease keepalive", run, deadline=deadline, retry=retry)

    def revoke(self, lease_id: int, *, deadline: Optional[Deadline] = None) -> bool:
        """Revoke a lease (its keys go with it); False when it was already gone."""
        request = etcdrpc.LeaseRevokeRequest(ID=lease_id)

        def run(conn: Conn, timeout: float, md: Any) -> bool:
            conn.lease.LeaseRevoke(request, timeout, metadata=md)
            return True

        try:
            return self.call("lease revoke", run, deadline=deadline)
        except LeaseNotFoundError:
            return False

    def time_to_live(self, lease_id: int, *, deadline: Optional[Deadline] = None) -> int:
        """Seconds left on a lease; -1 when etcd does not know it (expired or revoked)."""
        request = etcdrpc.LeaseTimeToLiveRequest(ID=lease_id, keys=False)

        def run(conn: Conn, timeout: float, md: Any) -> int:
            resp = conn.lease.LeaseTimeToLive(request, timeout, metadata=md)
            return int(resp.TTL)

        try:
            return self.call("lease time-to-live", run, deadline=deadline)
        except LeaseNotFoundError:
            return -1

    def member_urls(self, *, deadline: Optional[Deadline] = None) -> List[str]:
        """The client URLs of every cluster member."""
        request = etcdrpc.MemberListRequest()

        def run(conn: Conn, timeout: float, md: Any) -> List[str]:
            resp = conn.cluster.MemberList(request, timeout, metadata=md)
            return [str(url) for member in resp.members for url in member.clientURLs]

        return self.call("member list", run, deadline=deadline)

    def watch(self, prefix: str, start_revision: int) -> WatchStream:
        """Open a watch of every key under ``prefix`` from ``start_revision`` (no retries), on the
        client's one watch stream."""
        return self._watches.watch(prefix, start_revision)

    def watch_key(self, key: str, start_revision: int, on_batch: Deliver) -> Callable[[], None]:
        """Watch ``key`` alone from ``start_revision`` on the client's watch stream, handing each
        response (or the stream's error, which ends it) to ``on_batch``; returns what cancels it."""
        return self._watches.watch(key, start_revision, exact=True, on_deliver=on_batch).cancel

    @property
    def watch_streams(self) -> int:
        """How many watch streams this client has open (every watch shares one)."""
        return self._watches.streams

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
        urls = self.member_urls(deadline=Deadline(self.options.dial_timeout))
        # The configured endpoints stay (a load balancer's address is no member's URL).
        wanted: Dict[str, Endpoint] = {ep.netloc: ep for ep in self.options.endpoints}
        for url in urls:
            try:
                ep = Endpoint.parse(url)
            except ValueError:
                log.warning("ignoring etcd member URL %r", url)
                continue
            wanted[ep.netloc] = ep
        if self._closed:
            return
        new = self._pool.replace(wanted)
        if new is not None:
            log.info("etcd endpoints are now %s", ", ".join(new))

    def close(self) -> None:
        """Close every channel, which ends the calls in flight, and stop the member-list thread (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._sync_stop.set()
        self._watches.close(self.options.dial_timeout)
        self._keepalives.close(self.options.dial_timeout)
        self._pool.close()
        if self._sync_thread is not None:
            join_thread(self._sync_thread, self.options.dial_timeout + 1)
