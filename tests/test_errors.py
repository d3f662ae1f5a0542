"""One exception hierarchy: FyerregError at the root, registry and call errors as siblings, the harness apart."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import List, Type

import pytest

import fyerreg
from fyerreg import errors
from fyerreg.errors import CallError, FyerregError, RegistryError
from fyerreg.testing import errors as harness_errors

REGISTRY_ERRORS = ["InvalidInstanceError", "NotRegisteredError", "AlreadyRegisteredError", "RegistryClosedError",
                   "RegistryUnavailableError", "AuthenticationError", "PermissionDeniedError",
                   "NoInstanceAvailableError"]
CALL_ERRORS = ["RemoteError", "CallTimeoutError", "CallConnectionError"]
OPTIONAL = ("fyerreg.contrib.django", "fyerreg.contrib.prometheus", "fyerreg.contrib.flask")


def _public_exceptions() -> List[Type[BaseException]]:
    """Every exception class a user can import from a public module of fyerreg."""
    found: List[Type[BaseException]] = []
    for info in pkgutil.walk_packages(fyerreg.__path__, "fyerreg."):
        if any(part.startswith("_") for part in info.name.split(".")) or info.name.startswith(OPTIONAL):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == info.name
                    and not name.startswith("_")):
                found.append(value)
    return found


def test_registry_errors_and_call_errors_are_siblings_under_one_root() -> None:
    assert issubclass(RegistryError, FyerregError) and issubclass(CallError, FyerregError)
    assert not issubclass(CallError, RegistryError) and not issubclass(RegistryError, CallError)
    assert fyerreg.FyerregError is FyerregError


@pytest.mark.parametrize("name", REGISTRY_ERRORS)
def test_every_registry_error_is_still_caught_by_except_registry_error(name: str) -> None:
    cls = getattr(errors, name)
    assert issubclass(cls, RegistryError) and not issubclass(cls, CallError)
    assert getattr(fyerreg, name) is cls


@pytest.mark.parametrize("name", CALL_ERRORS)
def test_a_failed_call_is_a_call_error_not_a_registry_error(name: str) -> None:
    cls = getattr(errors, name)
    assert issubclass(cls, CallError) and not issubclass(cls, RegistryError)


def test_the_test_harness_has_its_own_branch() -> None:
    for cls in (harness_errors.EtcdServerError, harness_errors.EtcdBinaryNotFoundError,
                harness_errors.EtcdPortInUseError):
        assert issubclass(cls, FyerregError)
        assert not issubclass(cls, (RegistryError, CallError))
    with pytest.raises(FyerregError):
        raise harness_errors.EtcdPortInUseError("port 2379 is taken")


def test_invalid_input_is_also_a_value_error_naming_the_field() -> None:
    exc = errors.InvalidInstanceError("weight must be >= 0", field="weight")
    assert isinstance(exc, ValueError) and isinstance(exc, RegistryError) and exc.field == "weight"


def test_no_instance_from_requests_is_both_a_requests_error_and_a_registry_error() -> None:
    requests = pytest.importorskip("requests")
    from fyerreg.contrib.requests import NoInstanceError

    assert issubclass(NoInstanceError, requests.ConnectionError)
    assert issubclass(NoInstanceError, errors.NoInstanceAvailableError)


def test_no_instance_from_httpx_is_both_an_httpx_connect_error_and_a_registry_error() -> None:
    httpx = pytest.importorskip("httpx")
    from fyerreg.contrib.httpx import NoInstanceError

    assert issubclass(NoInstanceError, httpx.ConnectError)
    assert issubclass(NoInstanceError, errors.NoInstanceAvailableError)


def test_every_public_exception_of_the_library_derives_from_the_root() -> None:
    found = _public_exceptions()
    assert errors.RemoteError in found and harness_errors.EtcdServerError in found
    assert [cls for cls in found if not issubclass(cls, FyerregError)] == []


def test_internal_control_flow_exceptions_are_not_registry_errors() -> None:
    from fyerreg.api import _app, client
    from fyerreg.contrib import _routing
    from fyerreg.registry.etcd import _errors
    from fyerreg.registry.kv import _resumable

    internal = [client._Undelivered, client._Lost, _routing.Failed, _app._HttpError, _resumable._Resync,
                _resumable._Cancelled, _errors.TokenExpiredError]
    assert [cls for cls in internal if issubclass(cls, FyerregError)] == []
