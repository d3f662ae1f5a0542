"""Endpoint selection and failover over pyetcd's ``MultiEndpointEtcd3Client``.

Always the multi-endpoint client with failover, even for one endpoint: pyetcd's plain
client marks its only endpoint failed for 300 s after one timeout. This is the only code
that reads or sets pyetcd's endpoint state (its private attributes included); the
rest of the backend gets a :class:`Conn` per call and reports failures on it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Dict, List, Mapping, Optional, Tuple

import grpc
import pyetcd
from pyetcd import etcdrpc
from pyetcd import exceptions as etcd_exceptions

from ...errors import RegistryClosedError, RegistryUnavailableError
from .options import Endpoint, EtcdOptions

__all__ = ["Conn", "EndpointPool", "KEEPALIVE_TIMEOUT_MS", "ENDPOINT_RETRY_AFTER", "MAX_MESSAGE_BYTES"]

log = logging.getLogger("fyerreg.registry.etcd")

KEEPALIVE_TIMEOUT_MS = 2000
"""How long a gRPC keepalive ping may go unanswered before the connection is declared dead."""
ENDPOINT_RETRY_AFTER = 2.0
"""Seconds a failed endpoint is skipped while another one is available."""
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class Conn:
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
        """The endpoint's ``host:port``."""
        return str(self.endpoint.netloc)

    def fail(self) -> None:
        """Mark the endpoint failed: it is skipped for ``ENDPOINT_RETRY_AFTER`` while another one works."""
        self.endpoint.fail()


def _grpc_options(options: EtcdOptions) -> List[Tuple[str, Any]]:
    # A list of tuples: pyetcd hands it to grpc, which rejects a dict.
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


def _channel_credentials(options: EtcdOptions) -> Any:
    tls = options.tls
    if tls is None:
        return grpc.ssl_channel_credentials()
    try:
        return grpc.ssl_channel_credentials(
            root_certificates=_read(tls.ca), private_key=_read(tls.key), certificate_chain=_read(tls.cert))
    except OSError as exc:
        raise ValueError(f"tls: cannot read {exc.filename!r}: {exc.strerror}") from None


class EndpointPool:
    """The channels to a cluster's endpoints and the choice of the one to call.

    Construction makes no call. :meth:`acquire` hands out the endpoint in use, moving
    to a working one when it failed; :meth:`replace` changes the set of endpoints.
    """

    def __init__(self, options: EtcdOptions) -> None:
        self._options = options
        self._lock = threading.Lock()
        self._closed = False
        self._conns: Dict[str, Conn] = {}
        self._grpc_opts = _grpc_options(options)
        self._creds = _channel_credentials(options) if options.uses_tls else None
        endpoints = [self._make_endpoint(ep) for ep in options.endpoints]
        try:
            self._client = pyetcd.MultiEndpointEtcd3Client(
                endpoints=endpoints, timeout=options.dial_timeout, failover=True)
        except Exception as exc:  # pyetcd's constructor makes no calls; stay safe anyway
            for endpoint in endpoints:
                endpoint.close()
            raise RegistryUnavailableError(f"cannot set up an etcd client: {exc}") from None
        # The token goes as metadata: call credentials are refused over plaintext.
        self._client.call_credentials = None

    def _make_endpoint(self, ep: Endpoint) -> Any:
        secure = self._options.endpoint_is_secure(ep)
        return pyetcd.Endpoint(ep.host, ep.port, secure=secure, creds=self._creds if secure else None,
                               time_retry=ENDPOINT_RETRY_AFTER, opts=self._grpc_opts)

    def conns(self) -> List[Conn]:
        """One connection per endpoint, in the configured order (for connecting)."""
        with self._lock:
            endpoints = list(self._client.endpoints.values())
        return [self._conn_for(endpoint) for endpoint in endpoints]

    def netlocs(self) -> List[str]:
        """The ``host:port`` of every endpoint calls may fail over to."""
        with self._lock:
            return list(self._client.endpoints)

    @property
    def current(self) -> str:
        """The ``host:port`` currently in use."""
        with self._lock:
            return str(self._client.endpoint_in_use.netloc)

    def use(self, netloc: str) -> None:
        """Make the endpoint ``netloc`` (known to work) the one in use."""
        with self._lock:
            self._client.endpoints[netloc].last_failed = 0
            self._client._current_endpoint_label = netloc

    def _conn_for(self, endpoint: Any) -> Conn:
        with self._lock:
            conn = self._conns.get(endpoint.netloc)
            if conn is None or conn.endpoint is not endpoint:
                conn = self._conns[endpoint.netloc] = Conn(endpoint, endpoint.channel)
            return conn

    def acquire(self) -> Conn:
        """The connection to call now: the endpoint in use, or the next one when it failed."""
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

    def replace(self, wanted: Mapping[str, Endpoint]) -> Optional[List[str]]:
        """Use the endpoints ``wanted`` (by ``host:port``), keeping the channels of those kept.

        Returns the new ``host:port`` list, or None when nothing changed (or the pool is closed).
        """
        with self._lock:
            if self._closed:
                return None
            current = self._client.endpoints
            if set(wanted) == set(current):
                return None
            new = {netloc: current.get(netloc) or self._make_endpoint(ep) for netloc, ep in wanted.items()}
            dropped = [ep for netloc, ep in current.items() if netloc not in new]
            self._client.endpoints = new
            if self._client._current_ep_label not in new:
                self._client._current_endpoint_label = next(iter(new))
            for ep in dropped:
                self._conns.pop(ep.netloc, None)
        for ep in dropped:
            ep.close()
        return list(new)

    def close(self) -> None:
        """Close every channel, which ends the calls in flight (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._client.close()
        except Exception:
            log.debug("closing the etcd channels failed", exc_info=True)
