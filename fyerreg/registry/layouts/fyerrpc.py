"""The Go fyer-rpc layout, fyerreg's own: ``/{namespace}/services/{service}/{version}/{id}`` holding the
instance's JSON record (see :mod:`fyerreg.naming`)."""

from __future__ import annotations

from typing import Optional, Tuple

from ...errors import InvalidInstanceError
from ...naming import Instance
from .base import Layout

__all__ = ["FyerRpcLayout"]


class FyerRpcLayout(Layout):
    """The keys of one namespace (``"fyerrpc"``: what Go fyer-rpc uses), versioned, leased."""

    name = "fyer-rpc"

    def __init__(self, namespace: str = "fyerrpc") -> None:
        self.namespace = namespace
        self._root = f"/{namespace}/services/"

    @property
    def root(self) -> str:
        return self._root

    def instance_key(self, instance: Instance, lease_id: int = 0) -> str:
        return f"{self._root}{instance.service}/{instance.version}/{instance.id}"

    def prefix(self, service: str, version: Optional[str]) -> str:
        if version is None:
            return f"{self._root}{service}/"
        return f"{self._root}{service}/{version}/"

    def split(self, key: str) -> Tuple[str, str, str]:
        """``(service, version, id)`` of a record key; InvalidInstanceError when the key is not one."""
        if not key.startswith(self._root):
            raise InvalidInstanceError(f"key {key!r} is outside {self._root!r}")
        parts = key[len(self._root):].split("/")
        if len(parts) != 3 or not all(parts):
            raise InvalidInstanceError(f"key {key!r} is not {self._root}<service>/<version>/<id>")
        return parts[0], parts[1], parts[2]

    def service_of(self, key: str) -> Optional[str]:
        try:
            return self.split(key)[0]
        except InvalidInstanceError:
            return None

    def encode(self, instance: Instance) -> bytes:
        return instance.to_json().encode("utf-8")

    def decode(self, key: str, value: bytes) -> Instance:
        """The instance at ``key``; InvalidInstanceError when the record is malformed or names
        another service, version or id than its key."""
        service, version, id_ = self.split(key)
        instance = Instance.from_json(value)
        if (instance.service, instance.version, instance.id) != (service, version, id_):
            raise InvalidInstanceError(
                f"record at {key!r} names {instance.service}/{instance.version}/{instance.id}, not its key"
            )
        return instance

    def __repr__(self) -> str:
        return f"FyerRpcLayout(namespace={self.namespace!r})"
