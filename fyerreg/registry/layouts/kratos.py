"""The layout of Kratos' etcd registry (``github.com/go-kratos/kratos/contrib/registry/etcd``):
``{namespace}/{name}/{id}`` (namespace ``/microservices``) holding the JSON of Kratos'
``registry.ServiceInstance``: ``id``, ``name``, ``version``, ``metadata`` (str -> str) and
``endpoints``, a list of URIs such as ``grpc://10.0.0.5:9000`` or ``https://10.0.0.5:8000``.

How a record maps onto an :class:`~fyerreg.naming.Instance`:

- each endpoint URI ``scheme://host:port`` is the named endpoint ``scheme`` at ``host:port``;
  ``grpcs`` and ``https`` (what Kratos writes for a server with TLS) are ``grpc`` and ``http``
  with TLS, as is any scheme with Kratos' older ``?isSecure=true``. The primary ``address``
  is the ``grpc`` endpoint's, else the first one's.
- ``metadata["weight"]`` is the weight (Kratos' balancers read it there; 100 when absent or
  not an integer) and ``metadata["fyerreg.status"]`` the status code (absent: enabled);
  both are taken out of ``Instance.metadata``.
- an empty version is :data:`~.base.NO_VERSION`, and back.

Written, an instance names each endpoint as such a URI (TLS ``grpc``/``http`` as ``grpcs``/
``https``, any other with ``?isSecure=true``); one that names none is announced at its
address under the layout's ``scheme`` (``grpc`` unless told); an endpoint *named* ``grpcs`` or
``https`` therefore reads back as ``grpc``/``http`` with TLS. Two fields Go ignores keep
what Kratos' record has no place for: ``updated_at``, and ``address`` where the endpoints
alone do not give it back.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from ...errors import InvalidInstanceError
from ...naming import DEFAULT_WEIGHT, MAX_RECORD_BYTES, MAX_WEIGHT, Endpoint, Instance, Status
from .base import NO_VERSION, Layout

__all__ = ["KratosLayout", "WEIGHT_KEY", "STATUS_KEY"]

WEIGHT_KEY = "weight"
"""The metadata key holding the weight (Kratos' ``selector.NewNode`` reads it)."""
STATUS_KEY = "fyerreg.status"
"""The metadata key holding a status other than enabled, as its number (``"0"``: disabled)."""

_SECURE_SCHEMES = {"grpcs": "grpc", "https": "http"}
_PLAIN_TO_SECURE = {plain: secure for secure, plain in _SECURE_SCHEMES.items()}
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}  # Go's strconv.ParseBool
_INT = re.compile(r"^[+-]?[0-9]+$")  # Go's strconv.ParseInt, base 10


class KratosLayout(Layout):
    """Kratos' keys under ``namespace`` (Kratos' ``Namespace`` option: ``"/microservices"`` unless told);
    versions in the records, records bound to leases. ``scheme``: under which an instance naming
    no endpoints is announced."""

    name = "kratos"
    versioned = False

    def __init__(self, namespace: str = "/microservices", scheme: str = "grpc") -> None:
        if not namespace or namespace.endswith("/"):
            raise ValueError(f"namespace {namespace!r} must be non-empty and not end with '/' (as Kratos' "
                             "\"/microservices\")")
        if not re.match(r"^[a-z][a-z0-9+.-]*$", scheme):
            raise ValueError(f"scheme {scheme!r} is not a URI scheme such as 'grpc' or 'http'")
        self.namespace = namespace
        self.scheme = scheme
        self._root = f"{namespace}/"

    @classmethod
    def for_namespace(cls, namespace: str) -> KratosLayout:
        """The layout for fyerreg's ``namespace`` option: Kratos' default for fyerreg's default
        (``"fyerrpc"``), else keys under ``/{namespace}/``."""
        return cls() if namespace == "fyerrpc" else cls(f"/{namespace.strip('/')}")

    @property
    def root(self) -> str:
        return self._root

    def instance_key(self, instance: Instance, lease_id: int = 0) -> str:
        return f"{self._root}{instance.service}/{instance.id}"

    def prefix(self, service: str, version: Optional[str]) -> str:
        return f"{self._root}{service}/"

    def service_of(self, key: str) -> Optional[str]:
        if not key.startswith(self._root):
            return None
        parts = key[len(self._root):].split("/")
        return parts[0] if len(parts) == 2 and all(parts) else None

    def encode(self, instance: Instance) -> bytes:
        uris = [_uri(name, e) for name, e in instance.endpoints.items()] or [f"{self.scheme}://{instance.address}"]
        metadata = {k: v for k, v in instance.metadata.items() if k not in (WEIGHT_KEY, STATUS_KEY)}
        metadata[WEIGHT_KEY] = str(instance.weight)
        if instance.status != Status.ENABLED:
            metadata[STATUS_KEY] = str(int(instance.status))
        record: Dict[str, Any] = {
            "id": instance.id,
            "name": instance.service,
            "version": "" if instance.version == NO_VERSION else instance.version,
            "metadata": metadata,
            "endpoints": uris,
        }
        if not instance.endpoints or _primary(list(instance.endpoints.items())) != instance.address:
            record["address"] = instance.address
        record["updated_at"] = instance.updated_at
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def decode(self, key: str, value: bytes) -> Instance:
        """The instance at ``key``; InvalidInstanceError when the value is not a Kratos service
        instance (one Go's encoding/json would not fill in), has no endpoint, or names another
        service or id than its key."""
        data = _load(key, value)
        id_, name, version = (_string(data, f, key) for f in ("id", "name", "version"))
        if key != f"{self._root}{name}/{id_}":
            raise InvalidInstanceError(f"record at {key!r} names {name}/{id_}, not its key")
        metadata = _metadata(data.get("metadata"), key)
        named = _endpoints(data.get("endpoints"), key)
        if not named:
            raise InvalidInstanceError(f"record at {key!r} has no endpoint", field="endpoints")
        address = data.get("address")
        if address is None:
            address = _primary(named)
        elif not isinstance(address, str):
            raise InvalidInstanceError(f"record at {key!r}: address must be a string", field="address")
        endpoints: Mapping[str, Endpoint] = dict(named)
        if "address" in data and named == [(self.scheme, Endpoint(address))]:
            endpoints = {}  # fyerreg's own instance that names none: the URI is its address, announced
        updated_at = data.get("updated_at", 0)
        instance = Instance(
            id=id_, service=name, version=version or NO_VERSION, address=address,
            status=_status(metadata.pop(STATUS_KEY, None), key), weight=_weight(metadata),
            metadata=metadata, updated_at=0 if updated_at is None else updated_at, endpoints=endpoints,
        )
        instance.validate()
        return instance

    def __repr__(self) -> str:
        return f"KratosLayout(namespace={self.namespace!r}, scheme={self.scheme!r})"


def _uri(name: str, endpoint: Endpoint) -> str:
    if not endpoint.tls:
        return f"{name}://{endpoint.address}"
    if name in _PLAIN_TO_SECURE:
        return f"{_PLAIN_TO_SECURE[name]}://{endpoint.address}"
    return f"{name}://{endpoint.address}?isSecure=true"


def _primary(named: List[Tuple[str, Endpoint]]) -> str:
    for name, endpoint in named:
        if name == "grpc":
            return endpoint.address
    return named[0][1].address


def _load(key: str, value: bytes) -> Dict[str, Any]:
    if len(value) > MAX_RECORD_BYTES:
        raise InvalidInstanceError(f"record at {key!r} is {len(value)} bytes; at most {MAX_RECORD_BYTES} are allowed")
    try:
        data = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidInstanceError(f"record at {key!r} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInstanceError(f"record at {key!r} is not a JSON object")
    return data


def _string(data: Dict[str, Any], field: str, key: str) -> str:
    value = data.get(field)
    if value is None and field == "version":
        return ""  # Go reads a missing or null string as ""
    if not isinstance(value, str):
        raise InvalidInstanceError(f"record at {key!r}: {field} must be a string", field=field)
    return value


def _metadata(value: object, key: str) -> Dict[str, str]:
    if value is None:
        return {}  # Go writes a nil map as null
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidInstanceError(f"record at {key!r}: metadata must map strings to strings", field="metadata")
    return dict(value)


def _endpoints(value: object, key: str) -> List[Tuple[str, Endpoint]]:
    """``(name, endpoint)`` of each URI, the first of each name (as Kratos' resolvers take the first)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(uri, str) for uri in value):
        raise InvalidInstanceError(f"record at {key!r}: endpoints must be a list of strings", field="endpoints")
    named: Dict[str, Endpoint] = {}
    for uri in value:
        try:
            parts = urlsplit(uri)
        except ValueError:
            parts = None
        address = None if parts is None else parts.netloc.rpartition("@")[2]
        if parts is None or not parts.scheme or not address:
            raise InvalidInstanceError(f"record at {key!r}: endpoint {uri!r} is not scheme://host:port",
                                       field="endpoints")
        scheme = parts.scheme.lower()
        tls = scheme in _SECURE_SCHEMES or bool(set(parse_qs(parts.query).get("isSecure", [])[:1]) & _TRUE)
        named.setdefault(_SECURE_SCHEMES.get(scheme, scheme), Endpoint(address, tls))
    return list(named.items())


def _status(value: Optional[str], key: str) -> Status:
    if value is None:
        return Status.ENABLED
    if not _INT.match(value) or not 0 <= int(value) <= 255:
        raise InvalidInstanceError(f"record at {key!r}: metadata {STATUS_KEY!r} {value!r} is not a status 0..255",
                                   field="status")
    return Status(int(value))


def _weight(metadata: Dict[str, str]) -> int:
    """The weight ``metadata`` gives, taken out of it; a value that is no integer stays metadata."""
    value = metadata.get(WEIGHT_KEY)
    if value is None or not _INT.match(value):
        return DEFAULT_WEIGHT
    del metadata[WEIGHT_KEY]
    return min(max(int(value), 0), MAX_WEIGHT)
