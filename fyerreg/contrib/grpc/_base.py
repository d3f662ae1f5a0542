"""What the sync and the asyncio channel share: the arguments, the pool, the feedback of one attempt."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Collection, Generic, Iterator, List, Optional, Sequence, Tuple, TypeVar

import grpc

from ... import tracing
from ...naming import Endpoint, Instance
from ...retry import Failover
from ._pool import CLOSED_MESSAGE, ChannelPool, Entry
from ._status import ENDPOINT, CallPolicy, Failed

if TYPE_CHECKING:
    from ...discovery import Discovery
    from ...discovery._pick import Pick

__all__ = ["Routing", "call_kwargs", "graded"]

C = TypeVar("C")


class Routing(Generic[C]):
    """The instances of one (service, version) behind a channel: one gRPC channel each, the policy, the feedback."""

    def __init__(
        self,
        discovery: Discovery,
        service: str,
        version: Optional[str],
        *,
        retries: int,
        idempotent_methods: Collection[str],
        failure_codes: Collection[grpc.StatusCode],
        options: Sequence[Tuple[str, Any]],
        credentials: Optional[grpc.ChannelCredentials],
        compression: Optional[grpc.Compression],
    ) -> None:
        from ...discovery import Discovery

        if not isinstance(discovery, Discovery):
            raise TypeError(f"discovery must be a fyerreg Discovery, got {type(discovery).__name__}")
        if not isinstance(service, str) or not service:
            raise ValueError(f"service must be a non-empty str, got {service!r}")
        if isinstance(options, dict):
            raise TypeError("options must be a sequence of (name, value) pairs, as grpc takes them, not a dict")
        self.discovery = discovery
        self.service = service
        self.version = version
        self.policy = CallPolicy(Failover(retries, idempotent_methods), failure_codes)
        self.options = list(options)
        self.credentials = credentials
        self.compression = compression
        self.pool: ChannelPool[C] = ChannelPool(discovery, service, version, self.open_channel)

    @property
    def failover(self) -> Failover:
        """The failover policy: ``retries`` more instances at most; ``idempotent_methods`` by full name."""
        return self.policy.failover

    def open_channel(self, endpoint: Endpoint) -> C:
        """A new channel to ``endpoint`` (TLS when the endpoint says so)."""
        raise NotImplementedError

    def pick(self, tried: List[Instance]) -> Pick:
        if self.pool.closed:
            raise ValueError(CLOSED_MESSAGE)
        return self.discovery.pick(self.service, self.version, exclude=tried, endpoint=ENDPOINT)

    def finish(self, pick: Pick, entry: Entry[C], error: Optional[BaseException]) -> Optional[C]:
        """Report one attempt (``error``: its exception, None when it worked); a channel to close now, if any."""
        try:
            if self.policy.failed(error):
                failed = Failed(error)  # type: ignore[arg-type]
                pick.__exit__(Failed, failed, None)
            else:
                pick.__exit__(None, None, None)
        finally:
            channel = self.pool.release(entry)
        return channel

    def call(self, method: str) -> tracing.Call:
        """The trace span of one call of ``method`` (``/package.Service/Method``)."""
        return tracing.rpc_call(self.service, self.version, "grpc", method)

    def addresses(self) -> List[str]:
        """The instance addresses a channel is open to now, sorted."""
        return self.pool.addresses()

    def describe(self) -> str:
        return f"{self.service}/{self.version or '*'}"

    @property
    def closed(self) -> bool:
        return self.pool.closed


@contextlib.contextmanager
def graded(traced: tracing.Attempt) -> Iterator[None]:
    """Gives the attempt span the status of the call made in the block: its RpcError's code, or OK."""
    try:
        yield
    except grpc.RpcError as exc:
        traced.grpc_code(exc)
        raise
    traced.grpc_code(None)


def call_kwargs(metadata: Any, credentials: Any, wait_for_ready: Any, compression: Any) -> dict:  # type: ignore[type-arg]
    """The per-call arguments every multicallable passes on as given."""
    return {"metadata": metadata, "credentials": credentials, "wait_for_ready": wait_for_ready,
            "compression": compression}
