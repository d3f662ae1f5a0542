"""Username/password authentication over plaintext: wrong credentials, permissions, token renewal."""

from __future__ import annotations

import logging
import time
from typing import Iterator

import grpc
import pytest

from fyerreg import AuthenticationError, PermissionDeniedError
from fyerreg.testing import EtcdServer, raw_client
from tests.helpers import ids, next_snapshot

from .support import SERVICE, make_instance

pytestmark = pytest.mark.etcd

TOKEN_TTL = 2


@pytest.fixture
def auth_server() -> Iterator[EtcdServer]:
    """A private etcd with auth on: ``root``/``rootpw`` may do anything, ``reader``/``readerpw`` only read.

    Its simple tokens expire after TOKEN_TTL idle seconds.
    """
    from pyetcd import etcdrpc
    from pyetcd.etcdrpc import auth_pb2

    with EtcdServer(extra_args=["--auth-token-ttl", str(TOKEN_TTL)]) as server:
        client = raw_client(server.endpoints)
        try:
            stub = client.authstub
            stub.UserAdd(etcdrpc.AuthUserAddRequest(name="root", password="rootpw"), 5)
            stub.UserGrantRole(etcdrpc.AuthUserGrantRoleRequest(user="root", role="root"), 5)
            stub.RoleAdd(etcdrpc.AuthRoleAddRequest(name="readonly"), 5)
            stub.RoleGrantPermission(etcdrpc.AuthRoleGrantPermissionRequest(
                name="readonly", perm=auth_pb2.Permission(permType=auth_pb2.Permission.READ, key=b"/",
                                                          range_end=b"\x00")), 5)
            stub.UserAdd(etcdrpc.AuthUserAddRequest(name="reader", password="readerpw"), 5)
            stub.UserGrantRole(etcdrpc.AuthUserGrantRoleRequest(user="reader", role="readonly"), 5)
            stub.AuthEnable(etcdrpc.AuthEnableRequest(), 5)
        finally:
            client.close()
        yield server


def test_wrong_password_or_no_credentials_raise_authenticationerror(auth_server, registries):
    with pytest.raises(AuthenticationError, match="authentication failed"):
        registries.new(endpoints=auth_server.endpoints, username="root", password="wrong")
    with pytest.raises(AuthenticationError, match="user name"):
        registries.new(endpoints=auth_server.endpoints)


def test_a_user_without_write_permission_gets_permissiondeniederror(auth_server, registries):
    reader = registries.new(endpoints=auth_server.endpoints, username="reader", password="readerpw")
    with pytest.raises(PermissionDeniedError):
        reader.register(make_instance("r"))
    assert reader.list_services(SERVICE) == []


def test_expired_tokens_are_renewed_transparently(auth_server, registries, caplog):
    caplog.set_level(logging.INFO, logger="fyerreg")
    owner = registries.new(endpoints=auth_server.endpoints, username="root", password="rootpw", ttl=30)
    watcher = registries.new(endpoints=auth_server.endpoints, username="root", password="rootpw")
    sub = watcher.subscribe(SERVICE)
    assert sub.get(timeout=5) == []
    owner.register(make_instance("a"))
    next_snapshot(sub, lambda s: ids(s) == ["a"])
    time.sleep(TOKEN_TTL + 1.5)  # idle: both tokens expire (the condition under test, not a synchronisation)
    owner.register(make_instance("b"))
    assert ids(watcher.list_services(SERVICE)) == ["a", "b"]
    next_snapshot(sub, lambda s: ids(s) == ["a", "b"])
    assert any("renewed the etcd auth token" in r.getMessage() for r in caplog.records)


def test_a_token_that_expires_again_after_renewal_surfaces_as_unavailable_and_is_retried(auth_server):
    from fyerreg.errors import FyerregError, RegistryUnavailableError
    from fyerreg.registry.etcd._client import EtcdClient
    from fyerreg.registry.etcd._errors import TokenExpiredError
    from fyerreg.registry.etcd.options import EtcdOptions

    class Failed(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.UNAUTHENTICATED

        def details(self) -> str:
            return "etcdserver: invalid auth token"

    options = EtcdOptions.from_kwargs(endpoints=auth_server.endpoints, username="root", password="rootpw",
                                      max_retry=1, retry_interval=0.01)
    client = EtcdClient(options)
    calls = []

    def always_expired(conn, timeout, metadata):
        calls.append(metadata)
        raise Failed()

    try:
        with pytest.raises(RegistryUnavailableError, match="invalid auth token") as raised:
            client.call("probe", always_expired)
    finally:
        client.close()
    assert not isinstance(raised.value, TokenExpiredError)
    assert not issubclass(TokenExpiredError, FyerregError)
    assert len(calls) == 4  # each of the two tries is repeated once after renewing the token
