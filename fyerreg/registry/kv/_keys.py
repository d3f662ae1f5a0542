"""The etcd key layout: ``/{namespace}/services/{service}/{version}/{id}`` (the Go fyer-rpc layout)."""

from __future__ import annotations

from typing import Optional, Tuple

from ...errors import InvalidInstanceError
from ...naming import Instance

__all__ = ["KeyLayout"]


class KeyLayout:
    """Builds and parses the keys of one namespace."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.root = f"/{namespace}/services/"

    def instance_key(self, instance: Instance) -> str:
        """The key of ``instance``'s record."""
        return f"{self.root}{instance.service}/{instance.version}/{instance.id}"

    def prefix(self, service: str, version: Optional[str]) -> str:
        """The prefix holding every record of ``service`` (of ``version``, or of every version)."""
        if version is None:
            return f"{self.root}{service}/"
        return f"{self.root}{service}/{version}/"

    def split(self, key: str) -> Tuple[str, str, str]:
        """``(service, version, id)`` of a record key; InvalidInstanceError when the key is not one."""
        if not key.startswith(self.root):
            raise InvalidInstanceError(f"key {key!r} is outside {self.root!r}")
        parts = key[len(self.root):].split("/")
        if len(parts) != 3 or not all(parts):
            raise InvalidInstanceError(f"key {key!r} is not {self.root}<service>/<version>/<id>")
        return parts[0], parts[1], parts[2]

    def decode(self, key: str, value: bytes) -> Instance:
        """The instance stored at ``key``; InvalidInstanceError when the record is malformed
        or names another service, version or id than its key."""
        service, version, id_ = self.split(key)
        instance = Instance.from_json(value)
        if (instance.service, instance.version, instance.id) != (service, version, id_):
            raise InvalidInstanceError(
                f"record at {key!r} names {instance.service}/{instance.version}/{instance.id}, not its key"
            )
        return instance
