"""Turning etcd authentication on, with users confined to key prefixes (for tests of permissions)."""

from __future__ import annotations

from typing import Mapping, Sequence, Tuple

from .client import raw_client

__all__ = ["enable_auth", "prefix_range_end"]


def prefix_range_end(prefix: bytes) -> bytes:
    """The exclusive end of etcd's key range holding every key that starts with ``prefix``."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"  # etcd's "to the end of the keyspace"


def enable_auth(
    endpoints: Sequence[str],
    *,
    root_password: str,
    users: Mapping[str, Tuple[str, str]] = {},
    timeout: float = 5.0,
) -> None:
    """Create ``root`` (etcd's superuser) and ``users``, then turn authentication on.

    ``users`` maps a user name to ``(password, prefix)``: the user gets a role of its own
    name that may read and write only keys starting with ``prefix``. Call it on an etcd
    whose authentication is still off (a fresh one).
    """
    from pyetcd import etcdrpc
    from pyetcd.etcdrpc import auth_pb2

    client = raw_client(endpoints, timeout=timeout)
    try:
        stub = client.authstub
        stub.UserAdd(etcdrpc.AuthUserAddRequest(name="root", password=root_password), timeout)
        stub.UserGrantRole(etcdrpc.AuthUserGrantRoleRequest(user="root", role="root"), timeout)
        for name, (password, prefix) in users.items():
            key = prefix.encode("utf-8")
            stub.RoleAdd(etcdrpc.AuthRoleAddRequest(name=name), timeout)
            permission = auth_pb2.Permission(
                permType=auth_pb2.Permission.READWRITE, key=key, range_end=prefix_range_end(key)
            )
            stub.RoleGrantPermission(etcdrpc.AuthRoleGrantPermissionRequest(name=name, perm=permission), timeout)
            stub.UserAdd(etcdrpc.AuthUserAddRequest(name=name, password=password), timeout)
            stub.UserGrantRole(etcdrpc.AuthUserGrantRoleRequest(user=name, role=name), timeout)
        stub.AuthEnable(etcdrpc.AuthEnableRequest(), timeout)
    finally:
        client.close()
