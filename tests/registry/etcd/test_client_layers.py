"""The etcd client's layers: plain operation values without gRPC, and one table of error translation."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap
from typing import Optional, Type

import grpc
import pytest
from pyetcd import exceptions as etcd_exceptions

import fyerreg
from fyerreg import AuthenticationError, PermissionDeniedError, RegistryError, RegistryUnavailableError
from fyerreg.registry.etcd._errors import RULES, LeaseNotFoundError, Rule, TokenExpiredError, classify, rule_for

ETCD_PACKAGE = pathlib.Path(fyerreg.__file__).parent / "registry" / "etcd"


class Failed(grpc.RpcError):
    """A failed call as grpc raises it: a status code and its details."""

    def __init__(self, code: grpc.StatusCode, details: Optional[str]) -> None:
        super().__init__(details)
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> Optional[str]:
        return self._details


def test_the_operation_values_import_neither_grpc_nor_pyetcd() -> None:
    # The packages above _ops are stood in for by bare ones, so only _ops and what it imports run.
    script = textwrap.dedent(f"""
        import importlib, sys, types
        root = {str(pathlib.Path(fyerreg.__file__).parent)!r}
        for name, path in [("fyerreg", root), ("fyerreg.registry", root + "/registry"),
                           ("fyerreg.registry.kv", root + "/registry/kv")]:
            package = types.ModuleType(name)
            package.__path__ = [path]
            sys.modules[name] = package
        ops = importlib.import_module("fyerreg.registry.kv._ops")
        assert ops.Txn([ops.Compare("k", "create", 0)], [ops.Put("k", b"v")]).success[0].value == b"v"
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("grpc", "pyetcd", "google")))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_only_the_endpoint_module_touches_pyetcds_endpoint_state() -> None:
    private = ("_current_endpoint_label", "_current_ep_label", "last_failed", "endpoint_in_use",
               "call_credentials", ".in_use")
    touching = sorted(path.name for path in ETCD_PACKAGE.glob("*.py")
                      if any(name in path.read_text(encoding="utf-8") for name in private))
    assert touching == ["_endpoints.py"]


def matching(rule: Rule) -> BaseException:
    """A failure that ``rule`` is written for (the pattern in another case: matching ignores it)."""
    if rule.raised is not grpc.RpcError:
        if rule.raised is ValueError:
            return ValueError("Cannot invoke RPC on closed channel!")
        return etcd_exceptions.ConnectionFailedError()
    details = f"etcdserver: {rule.pattern.upper()}" if rule.pattern else "etcdserver: something"
    return Failed(rule.code or grpc.StatusCode.INVALID_ARGUMENT, details)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.raised.__name__}-{r.code and r.code.name}-{r.pattern}")
def test_every_row_of_the_error_table_is_the_one_its_failure_meets_first(rule: Rule) -> None:
    exc = matching(rule)
    assert rule_for(exc, has_credentials=True) is rule
    failure = classify(exc, has_credentials=True)
    assert (failure.error, failure.blames_endpoint) == (rule.error, rule.blames_endpoint)
    assert failure.details == (exc.details() if isinstance(exc, Failed) else str(exc))


@pytest.mark.parametrize("code, details, error, blamed", [
    (grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses", RegistryUnavailableError, True),
    (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", RegistryUnavailableError, True),
    (grpc.StatusCode.UNAVAILABLE, "context canceled", RegistryUnavailableError, False),
    (grpc.StatusCode.UNAVAILABLE, "etcdserver: leader changed", RegistryUnavailableError, True),
    (grpc.StatusCode.UNKNOWN, "context deadline exceeded", RegistryUnavailableError, False),
    (grpc.StatusCode.UNKNOWN, "etcdserver: request timed out", RegistryUnavailableError, False),
    (grpc.StatusCode.UNKNOWN, "etcdserver: server stopped", RegistryUnavailableError, False),
    (grpc.StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token", TokenExpiredError, False),
    (grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied", PermissionDeniedError, False),
    (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: authentication failed, invalid user ID or password",
     AuthenticationError, False),
    (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: user name is empty", AuthenticationError, False),
    (grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: authentication is not enabled", AuthenticationError, False),
    (grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found", LeaseNotFoundError, False),
    (grpc.StatusCode.UNKNOWN, "etcdserver: requested lease not found", LeaseNotFoundError, False),  # via grpc-proxy
    (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided", RegistryError, False),
    (grpc.StatusCode.UNKNOWN, "some other failure", RegistryError, False),
])
def test_etcds_own_messages_translate_to_fyerregs_errors(
        code: grpc.StatusCode, details: str, error: Type[RegistryError], blamed: bool) -> None:
    failure = classify(Failed(code, details), has_credentials=True)
    assert (failure.error, failure.blames_endpoint, failure.details) == (error, blamed, details)


def test_an_expired_token_without_credentials_to_renew_it_is_an_authentication_error() -> None:
    exc = Failed(grpc.StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token")
    assert classify(exc, has_credentials=False).error is AuthenticationError


def test_a_failure_without_details_is_described_by_its_status_code() -> None:
    failure = classify(Failed(grpc.StatusCode.INTERNAL, None), has_credentials=False)
    assert (failure.error, failure.details) == (RegistryError, str(grpc.StatusCode.INTERNAL))
