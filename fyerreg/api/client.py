"""``Client``: call a service's methods by service name, through discovery, with failover."""

from __future__ import annotations

import dataclasses
import http.client
import socket
import time
from typing import TYPE_CHECKING, Any, Collection, List, Mapping, Optional, Tuple, Type, TypeVar

from .. import _fork, tracing
from ..errors import CallConnectionError, CallTimeoutError, NoInstanceAvailableError, RemoteError
from ..metrics import Metrics, Stats, StatsBuilder
from ..naming import Instance
from ..retry import Failover
from . import _codec
from ._pool import ConnectionPool, set_timeout

if TYPE_CHECKING:
    from ..discovery import Discovery

__all__ = ["ClientOptions", "Client"]

T = TypeVar("T")

_COUNTERS = ("calls", "retries", "timeouts", "failures", "remote_errors")
DEFAULT_MAX_RESPONSE = 16 * 1024 * 1024
_HEADERS = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "fyerreg-client"}


@dataclasses.dataclass(frozen=True)
class ClientOptions:
    """How a :class:`Client` finds and calls a service (the Go ``api.ClientOptions``, plus a few).

    ``timeout`` (seconds) bounds a whole call, retries included: connecting, sending
    and every read of the answer, however slowly an instance sends it. ``retries`` is how
    many more instances a failed call may be tried on. A call is always retried
    elsewhere when its request was never delivered (connection refused, connect
    timeout, a pooled connection found closed); when it may have been processed (the
    connection broke after the request was sent) it is retried only if the method is
    idempotent: named ``"Service.Method"`` in ``idempotent_methods`` or called with
    ``idempotent=True``. Those two options make the :attr:`failover` policy.
    ``connect_timeout`` caps each connection attempt, so an unreachable instance does
    not eat the whole timeout. ``pool_size`` idle
    keep-alive connections are kept per instance, for at most ``max_idle`` seconds.
    An answer over ``max_response`` bytes is refused (a ``RemoteError`` of type
    ``ResponseTooLarge``) rather than buffered.
    """

    discovery: Discovery
    service_name: str
    service_version: Optional[str] = None
    timeout: float = 5.0
    retries: int = 2
    idempotent_methods: Collection[str] = frozenset()
    connect_timeout: float = 1.0
    pool_size: int = 8
    max_idle: float = 30.0
    max_response: int = DEFAULT_MAX_RESPONSE

    def __post_init__(self) -> None:
        from ..discovery import Discovery

        if not isinstance(self.discovery, Discovery):
            raise TypeError(f"discovery must be a fyerreg Discovery, got {type(self.discovery).__name__}")
        if not isinstance(self.service_name, str) or not self.service_name:
            raise ValueError("service_name must be a non-empty str")
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise ValueError("timeout and connect_timeout must be > 0")
        if self.pool_size < 0 or self.max_idle < 0:
            raise ValueError("pool_size and max_idle must be >= 0")
        self.failover  # noqa: B018 - raises on a bad retries or idempotent_methods
        if isinstance(self.max_response, bool) or not isinstance(self.max_response, int) or self.max_response < 1:
            raise ValueError(f"max_response must be an int >= 1, got {self.max_response!r}")

    @property
    def failover(self) -> Failover:
        """The failover policy of ``retries`` and ``idempotent_methods`` (``"Service.Method"`` names)."""
        return Failover(self.retries, self.idempotent_methods)


class _Undelivered(Exception):
    """The request did not reach the instance: safe to send elsewhere."""


class _Lost(Exception):
    """The request was sent but no complete answer came back: it may have been processed."""


class Client:
    """Calls methods of ``options.service_name`` on instances picked through discovery.

    Thread-safe; keeps keep-alive connections per instance. Close it (or use it as a
    context manager) to release them; the discovery is not closed.
    """

    def __init__(self, options: ClientOptions) -> None:
        self.options = options
        _fork.track(self)  # renews its locks in a forked child
        self._pool = ConnectionPool(maxsize=options.pool_size, max_idle=options.max_idle)
        self._metrics = Metrics()
        self._failover = options.failover

    def call(
        self,
        service: str,
        method: str,
        request: Any = None,
        *,
        response_type: Optional[Type[T]] = None,
        timeout: Optional[float] = None,
        idempotent: Optional[bool] = None,
        key: Optional[str] = None,
    ) -> Any:
        """Call ``service.method`` (``POST /<service>/<method>``) with ``request``; return the response.

        ``request`` is a dict, a dataclass or anything JSON-able. The response is the
        decoded JSON, or a ``response_type`` dataclass built from it. ``key`` routes
        with key-based balancers. Raises :class:`~fyerreg.errors.RemoteError` when the
        instance answered with an error, :class:`~fyerreg.errors.CallTimeoutError`
        when ``timeout`` (default ``options.timeout``) ran out,
        :class:`~fyerreg.errors.CallConnectionError` when every allowed attempt
        failed to connect, and :class:`~fyerreg.errors.NoInstanceAvailableError`.
        """
        limit = self.options.timeout if timeout is None else timeout
        if limit <= 0:
            raise ValueError("timeout must be > 0")
        body = _codec.encode(request)
        path = f"/{service}/{method}"
        resend = idempotent if idempotent is not None else self._failover.is_idempotent(f"{service}.{method}")
        deadline = time.monotonic() + limit
        tried: List[Instance] = []
        opts = self.options
        self._metrics.inc("calls")
        name = f"{service}/{method}"
        with tracing.rpc_call(opts.service_name, opts.service_version, "fyerreg", name) as span:
            while True:
                if time.monotonic() >= deadline:
                    self._metrics.inc("timeouts")
                    raise CallTimeoutError(f"{path} on {opts.service_name} did not complete within {limit}s "
                                           f"({len(tried)} attempts)")
                try:
                    with opts.discovery.pick(opts.service_name, opts.service_version, key=key,
                                             exclude=tried) as inst:
                        tried.append(inst)
                        with span.attempt(name, inst) as attempt:
                            status, data = self._attempt(inst, path, body, deadline, attempt)
                except CallTimeoutError:
                    self._metrics.inc("timeouts")
                    raise
                except (_Undelivered, _Lost) as exc:
                    delivered = isinstance(exc, _Lost)
                    if not self._failover.allows(len(tried), delivered=delivered, idempotent=resend):
                        self._metrics.inc("failures")
                        raise self._gave_up(path, tried, exc, delivered=delivered, resend=resend) from exc.__cause__
                    self._metrics.inc("retries")
                    continue
                except NoInstanceAvailableError:
                    self._metrics.inc("failures")
                    raise
                return self._result(status, data, inst, response_type)

    def _gave_up(self, path: str, tried: List[Instance], exc: Exception, *, delivered: bool,
                 resend: bool) -> CallConnectionError:
        if not delivered:
            return CallConnectionError(f"{path} on {self.options.service_name}: {len(tried)} attempts failed, "
                                       f"last on {tried[-1].address}: {exc}")
        hint = "" if resend else " (not retried: the method is not marked idempotent)"
        return CallConnectionError(f"{path} on {tried[-1].address}: {exc}{hint}")

    def _attempt(self, inst: Instance, path: str, body: bytes, deadline: float,
                 attempt: tracing.Attempt) -> Tuple[int, bytes]:
        try:
            status, data = self._send(inst, path, body, deadline, attempt.headers(_HEADERS))
        except (_Undelivered, _Lost) as exc:
            attempt.fail(exc.__cause__ or exc)
            raise
        attempt.answered(status)
        return status, data

    def _send(self, inst: Instance, path: str, body: bytes, deadline: float,
              headers: Mapping[str, str]) -> Tuple[int, bytes]:
        address = inst.address
        conn, reused = self._pool.get(address, max(deadline - time.monotonic(), 0.001))
        try:
            if not reused:
                set_timeout(conn, min(self._left(deadline), self.options.connect_timeout))
                try:
                    conn.connect()
                except (socket.timeout, OSError) as exc:
                    raise _Undelivered(f"cannot connect: {exc}") from exc
            set_timeout(conn, self._left(deadline))
            try:
                conn.request("POST", path, body=body, headers=headers)
            except socket.timeout:
                raise
            except OSError as exc:
                # The peer closed before taking the request: nothing was processed.
                self._pool.discard(address)
                raise _Undelivered(f"connection closed before the request was sent: {exc}") from exc
            conn.deadline = deadline
            set_timeout(conn, self._left(deadline))
            try:
                resp = conn.getresponse()
                try:
                    data = self._read_body(resp, address)
                except BaseException:
                    resp.close()  # on "Connection: close" http.client handed the socket over to the response
                    raise
            except socket.timeout:
                raise
            except (OSError, http.client.HTTPException) as exc:
                self._pool.discard(address)
                raise _Lost(f"connection broke after the request was sent: {exc!r}") from exc
        except socket.timeout:
            conn.close()
            raise CallTimeoutError(f"{path} on {address} did not answer in time") from None
        except BaseException:
            conn.close()
            raise
        if resp.will_close:
            conn.close()
        else:
            self._pool.put(address, conn)
        return resp.status, data

    def _read_body(self, resp: http.client.HTTPResponse, address: str) -> bytes:
        limit = self.options.max_response
        if resp.length is not None and resp.length > limit:
            raise self._too_large(resp, address, f"announces {resp.length} bytes, over")
        data = resp.read(limit + 1)
        if len(data) > limit:
            raise self._too_large(resp, address, "runs past")
        return data

    def _too_large(self, resp: http.client.HTTPResponse, address: str, what: str) -> RemoteError:
        self._metrics.inc("remote_errors")
        return RemoteError("ResponseTooLarge", f"the answer {what} max_response={self.options.max_response} bytes",
                           status=resp.status, address=address)

    def _result(self, status: int, data: bytes, inst: Instance, response_type: Optional[Type[T]]) -> Any:
        try:
            payload = _codec.decode(data)
        except ValueError:
            payload = None
            if status == 200:
                raise RemoteError("InvalidResponse", "the response is not JSON", status=status,
                                  address=inst.address) from None
        if status != 200:
            self._metrics.inc("remote_errors")
            if isinstance(payload, dict) and isinstance(payload.get("type"), str):
                raise RemoteError(payload["type"], str(payload.get("message", "")), status=status,
                                  address=inst.address)
            text = data[:200].decode("utf-8", "replace")
            raise RemoteError(f"HTTP{status}", text, status=status, address=inst.address)
        try:
            return _codec.from_jsonable(payload, response_type)
        except ValueError as exc:
            raise RemoteError("InvalidResponse", str(exc), status=status, address=inst.address) from None

    @staticmethod
    def _left(deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("call deadline reached")
        return left

    def stats(self) -> Stats:
        """Counters calls, retries, timeouts, failures, remote_errors; gauge idle_connections."""
        stats = StatsBuilder()
        for name in _COUNTERS:
            stats.counter(name, self._metrics.counter(name))
        stats.gauge("idle_connections", self._pool.idle_count())
        return stats.build()

    def close(self) -> None:
        """Close pooled connections. Calls made afterwards open new ones."""
        self._pool.close()
        self._pool = ConnectionPool(maxsize=self.options.pool_size, max_idle=self.options.max_idle)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Client {self.options.service_name}/{self.options.service_version or '*'}>"
