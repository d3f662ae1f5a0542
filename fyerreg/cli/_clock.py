"""etcd's clock, as ``fyerreg doctor`` reads it: the HTTP ``Date`` header of its ``/version``.

etcd's gRPC API carries no server time (response headers hold cluster id, member id,
revision and raft term; leases count down on the server). Its client port also serves
HTTP/1.1, and ``GET /version`` answers with a ``Date`` header (checked with etcd 3.5.1,
plaintext and TLS): the server's clock to the second. The skew is bounded, not guessed: the server's
time lay in ``[Date, Date + 1)`` while the request was in flight on this host's clock.
"""

from __future__ import annotations

import dataclasses
import email.utils
import http.client
import json
import ssl
import time
from typing import Any, Optional, Tuple

__all__ = ["ServerClock", "read_server_clock", "skew_bounds"]


@dataclasses.dataclass(frozen=True)
class ServerClock:
    """What one ``GET /version`` said: the server's ``date`` (whole seconds since the epoch),
    this host's time when the request was ``sent`` and the answer ``received``, and the
    ``version`` of etcd (None when the body did not name one)."""

    date: float
    sent: float
    received: float
    version: Optional[str]


def read_server_clock(netloc: str, *, secure: bool, tls: Any = None, timeout: float = 5.0) -> ServerClock:
    """``GET /version`` from the etcd member at ``netloc`` (``host:port``), over TLS when ``secure``.

    ``tls`` is the registry's ``TLSOptions`` (CA and client certificate) or None.
    Raises ``OSError``, ``http.client.HTTPException`` or ``ValueError`` (no usable ``Date``).
    """
    host, _, port = netloc.rpartition(":")
    host = host.strip("[]")
    conn: http.client.HTTPConnection
    if secure:
        context = ssl.create_default_context(cafile=getattr(tls, "ca", None))
        if getattr(tls, "cert", None):
            context.load_cert_chain(tls.cert, tls.key)
        conn = http.client.HTTPSConnection(host, int(port), timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.connect()  # the connection (and TLS handshake) is not part of the interval measured
        sent = time.time()
        conn.request("GET", "/version")
        response = conn.getresponse()
        received = time.time()
        body = response.read(4096)
        header = response.getheader("Date")
    finally:
        conn.close()
    if response.status != 200:
        raise ValueError(f"GET /version answered HTTP {response.status}")
    if not header:
        raise ValueError("GET /version answered without a Date header")
    try:
        date = email.utils.parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        raise ValueError(f"GET /version answered an unreadable Date header {header!r}") from None
    return ServerClock(date, sent, received, _version(body))


def _version(body: bytes) -> Optional[str]:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    value = data.get("etcdserver") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def skew_bounds(clock: ServerClock) -> Tuple[float, float]:
    """``(low, high)``: the server's clock minus this host's lies between them (0 inside: no skew measurable)."""
    return clock.date - clock.received, clock.date + 1.0 - clock.sent
