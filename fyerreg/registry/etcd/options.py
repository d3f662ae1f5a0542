"""The validated, immutable options of an :class:`~fyerreg.registry.etcd.EtcdRegistry`."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Optional, Sequence, Tuple

from ...errors import InvalidInstanceError
from ...naming import _check_segment
from ..base import MAX_TTL

__all__ = ["EtcdOptions", "TLSOptions", "CacheOptions", "Endpoint", "MIN_TTL", "MAX_TTL", "MIN_DIAL_KEEPALIVE"]

MIN_TTL = 2
"""etcd's own floor for lease TTLs, in seconds."""
MIN_DIAL_KEEPALIVE = 5.0
"""etcd refuses gRPC keepalive pings more frequent than this by default (``--grpc-keepalive-min-time``)."""

@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One parsed etcd endpoint: ``host`` (IPv6 in brackets), ``port`` and whether it uses TLS.

    ``secure`` is None when the endpoint named no scheme: TLS is then used only if
    the ``tls`` option is given.
    """

    host: str
    port: int
    secure: Optional[bool]

    @property
    def netloc(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """Parse ``host:port``, ``http://host:port`` or ``https://host:port``; ValueError when malformed."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"endpoints: {text!r} is not a 'host:port' string")
        if "@" in text:  # never echoed: what precedes the @ may be a password
            raise ValueError("endpoints: an endpoint carries credentials (user:password@host); "
                             "pass username= and password= instead")
        raw = text.strip()
        secure: Optional[bool] = None
        scheme, sep, rest = raw.partition("://")
        if sep:
            if scheme.lower() not in ("http", "https"):
                raise ValueError(f"endpoints: {text!r} has scheme {scheme!r}; use http:// or https://")
            secure = scheme.lower() == "https"
            raw = rest[:-1] if rest.endswith("/") else rest
        bad = ValueError(f"endpoints: {text!r} is not 'host:port' (write IPv6 hosts as [::1]:2379)")
        if raw.startswith("["):
            end = raw.find("]")
            if end < 0:
                raise bad
            host, after = raw[: end + 1], raw[end + 1 :]
            if not after.startswith(":"):
                raise bad
            port_text = after[1:]
        else:
            if raw.count(":") != 1:
                raise bad
            host, _, port_text = raw.partition(":")
        if not host or any(c.isspace() or c in "/?#@" for c in host):
            raise ValueError(f"endpoints: {text!r} has an invalid host")
        if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"endpoints: {text!r} has no port in 1..65535")
        return cls(host=host, port=int(port_text), secure=secure)


@dataclasses.dataclass(frozen=True)
class TLSOptions:
    """TLS to etcd: ``ca`` verifies the server; ``cert`` with ``key`` authenticates the client.

    Paths to PEM files. ``ca`` alone gives server-verified TLS; without ``ca`` the
    system's trusted roots are used.
    """

    ca: Optional[str] = None
    cert: Optional[str] = None
    key: Optional[str] = None

    def __post_init__(self) -> None:
        for name in ("ca", "cert", "key"):
            path = getattr(self, name)
            if path is None:
                continue
            if not isinstance(path, (str, os.PathLike)):
                raise TypeError(f"tls.{name} must be a path, got {type(path).__name__}")
            path = os.fspath(path)
            object.__setattr__(self, name, path)
            if not os.path.isfile(path) or not os.access(path, os.R_OK):
                raise ValueError(f"tls.{name}: {path!r} is not a readable file")
        if (self.cert is None) != (self.key is None):
            raise ValueError("tls: cert and key must be given together")


@dataclasses.dataclass(frozen=True)
class CacheOptions:
    """A local, watch-kept copy of the services ``list_services`` was asked about.

    ``ttl``: seconds a cached service lives without being listed (its watch then stops).
    While etcd is unreachable, the last known state is served with a warning.
    """

    enabled: bool = False
    ttl: float = 300.0

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise TypeError(f"cache.enabled must be a bool, got {type(self.enabled).__name__}")
        _check_number("cache.ttl", self.ttl, minimum=0.0, inclusive=False)


def _check_number(name: str, value: object, *, minimum: float, inclusive: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if value < minimum or (not inclusive and value == minimum):
        bound = ">=" if inclusive else ">"
        raise ValueError(f"{name} must be {bound} {minimum:g}, got {value!r}")


def _coerce_endpoints(value: object) -> Tuple[Endpoint, ...]:
    items: Sequence[object]
    if isinstance(value, (str, Endpoint)):
        items = [value]
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise TypeError(f"endpoints must be a list of 'host:port' strings, got {type(value).__name__}")
    if not items:
        raise ValueError("endpoints must name at least one etcd endpoint")
    parsed = []
    for item in items:
        if isinstance(item, Endpoint):
            parsed.append(item)
        elif isinstance(item, str):
            parsed.append(Endpoint.parse(item))
        else:
            raise TypeError(f"endpoints: {item!r} is not a 'host:port' string")
    if len({ep.netloc for ep in parsed}) != len(parsed):
        raise ValueError(f"endpoints: duplicate endpoint in {list(items)!r}")
    return tuple(parsed)


def _coerce_tls(value: object) -> Optional[TLSOptions]:
    if value is None or isinstance(value, TLSOptions):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"ca", "cert", "key"}
        if unknown:
            raise ValueError(f"tls: unknown keys {sorted(unknown)!r}; use ca, cert, key")
        return TLSOptions(**value)
    raise TypeError(f"tls must be a TLSOptions or a mapping with ca/cert/key, got {type(value).__name__}")


def _coerce_cache(value: object) -> CacheOptions:
    if isinstance(value, CacheOptions):
        return value
    if isinstance(value, bool):
        return CacheOptions(enabled=value)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return CacheOptions(enabled=value[0], ttl=value[1])
    if isinstance(value, Mapping):
        return CacheOptions(**value)
    raise TypeError(f"cache must be a CacheOptions, a bool or an (enabled, ttl) pair, got {value!r}")


@dataclasses.dataclass(frozen=True)
class EtcdOptions:
    """Every option of the etcd backend, validated on construction (ValueError/TypeError naming it).

    Durations are in seconds. ``endpoints`` accepts ``host:port`` and
    ``http(s)://host:port``; ``tls`` a :class:`TLSOptions` or ``{"ca":..,"cert":..,"key":..}``;
    ``cache`` a :class:`CacheOptions`, a bool or an ``(enabled, ttl)`` pair.
    """

    endpoints: Tuple[Endpoint, ...] = (Endpoint("127.0.0.1", 2379, None),)
    dial_timeout: float = 5.0
    ttl: int = 30
    namespace: str = "fyerrpc"
    max_retry: int = 3
    retry_interval: float = 1.0
    username: Optional[str] = None
    password: Optional[str] = dataclasses.field(default=None, repr=False)
    tls: Optional[TLSOptions] = None
    auto_sync_interval: float = 0.0
    dial_keepalive: float = 10.0
    cache: CacheOptions = CacheOptions()

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "endpoints", _coerce_endpoints(self.endpoints))
        _check_number("dial_timeout", self.dial_timeout, minimum=0.0, inclusive=False)
        ttl: object = self.ttl
        if isinstance(ttl, float) and ttl.is_integer():
            set_(self, "ttl", int(ttl))
        elif isinstance(ttl, bool) or not isinstance(ttl, int):
            raise TypeError(f"ttl must be a whole number of seconds, got {ttl!r}")
        if self.ttl < MIN_TTL:
            raise ValueError(f"ttl must be >= {MIN_TTL} seconds (etcd's minimum), got {self.ttl}")
        if self.ttl > MAX_TTL:
            raise ValueError(f"ttl must be <= {MAX_TTL} seconds (etcd's maximum lease TTL), got {self.ttl}")
        try:
            _check_segment("namespace", self.namespace)
        except InvalidInstanceError as exc:
            raise ValueError(str(exc)) from None
        if isinstance(self.max_retry, bool) or not isinstance(self.max_retry, int):
            raise TypeError(f"max_retry must be an int, got {type(self.max_retry).__name__}")
        if self.max_retry < 0:
            raise ValueError(f"max_retry must be >= 0, got {self.max_retry}")
        _check_number("retry_interval", self.retry_interval, minimum=0.0, inclusive=False)
        for name in ("username", "password"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be given together")
        if self.username == "":
            raise ValueError("username must not be empty")
        set_(self, "tls", _coerce_tls(self.tls))
        _check_number("auto_sync_interval", self.auto_sync_interval, minimum=0.0)
        _check_number("dial_keepalive", self.dial_keepalive, minimum=0.0)
        if 0 < self.dial_keepalive < MIN_DIAL_KEEPALIVE:
            raise ValueError(
                f"dial_keepalive must be 0 (off) or >= {MIN_DIAL_KEEPALIVE:g} seconds: etcd closes "
                f"connections that ping more often, got {self.dial_keepalive!r}"
            )
        set_(self, "cache", _coerce_cache(self.cache))

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> EtcdOptions:
        """Build options from keyword arguments; an unknown keyword raises TypeError naming it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"unknown etcd option(s): {', '.join(unknown)}")
        return cls(**kwargs)

    def replace(self, **changes: Any) -> EtcdOptions:
        """A copy with the given options changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def uses_tls(self) -> bool:
        """True when at least one endpoint is reached over TLS."""
        return any(self.endpoint_is_secure(ep) for ep in self.endpoints)

    def endpoint_is_secure(self, endpoint: Endpoint) -> bool:
        """Whether ``endpoint`` is reached over TLS (its scheme, else whether ``tls`` is set)."""
        return endpoint.secure if endpoint.secure is not None else self.tls is not None

    @property
    def prefix(self) -> str:
        """The key prefix every record lives under: ``/{namespace}/services/``."""
        return f"/{self.namespace}/services/"
