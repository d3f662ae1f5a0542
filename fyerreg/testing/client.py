"""A raw etcd client for tests that poke etcd from outside fyerreg."""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple, Union

if TYPE_CHECKING:
    import pyetcd

__all__ = ["parse_endpoint", "raw_client"]

# Keepalive plus a ping timeout, so a frozen (SIGSTOPped) member fails a stream instead of
# stalling it forever; pings only under a call, as etcd answers pings on an idle connection,
# or more often than its --grpc-keepalive-min-time (5 s), with GOAWAY "too_many_pings"; and
# never through an HTTP proxy taken from the environment.
_GRPC_OPTIONS: List[Tuple[str, Union[int, str]]] = [
    ("grpc.keepalive_time_ms", 10000),
    ("grpc.keepalive_timeout_ms", 2000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.ping_timeout_ms", 2000),
    ("grpc.enable_http_proxy", 0),
]


def parse_endpoint(endpoint: str) -> Tuple[str, int]:
    """Split ``host:port`` (or ``http://host:port``; IPv6 as ``[::1]:2379``) into host and port.

    Raises ValueError naming the endpoint when it is not of that form.
    """
    text = endpoint.strip()
    if text.startswith("http://"):
        text = text[len("http://"):]
    elif "://" in text:
        raise ValueError(f"etcd endpoint {endpoint!r}: only plain host:port or http://host:port is supported here")
    text = text.rstrip("/")
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"etcd endpoint {endpoint!r} is not host:port")
    return host, int(port)


def raw_client(
    endpoints: Sequence[str],
    *,
    timeout: float = 5.0,
    user: Optional[str] = None,
    password: Optional[str] = None,
) -> pyetcd.MultiEndpointEtcd3Client:
    """A plain ``pyetcd.MultiEndpointEtcd3Client`` on ``endpoints`` (failover on, plaintext).

    For tests that read or write etcd directly; the caller closes it. A failed endpoint
    is retried after one second, so the client recovers once a restarted etcd answers.
    With ``user`` and ``password`` it authenticates (etcd auth on); its token is not renewed.
    """
    if isinstance(endpoints, str):
        raise TypeError("endpoints must be a list of 'host:port' strings, not a str")
    if not endpoints:
        raise ValueError("endpoints must not be empty")
    import pyetcd

    eps = []
    for text in endpoints:
        host, port = parse_endpoint(text)
        if ":" in host:
            host = f"[{host}]"
        eps.append(pyetcd.Endpoint(host, port, secure=False, time_retry=1.0, opts=list(_GRPC_OPTIONS)))
    client = pyetcd.MultiEndpointEtcd3Client(
        endpoints=eps, failover=True, timeout=timeout, user=user, password=password
    )
    # The token travels as request metadata; call credentials would demand TLS on the channel.
    client.call_credentials = None
    return client
