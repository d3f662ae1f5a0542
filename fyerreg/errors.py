"""The one exception hierarchy of fyerreg: everything it raises derives from FyerregError.

::

    FyerregError
    ├── RegistryError            registering, watching, discovering (the registry or etcd said no)
    │   ├── InvalidInstanceError (also a ValueError)
    │   ├── NotRegisteredError, AlreadyRegisteredError, RegistryClosedError
    │   ├── RegistryUnavailableError, AuthenticationError, PermissionDeniedError
    │   └── NoInstanceAvailableError
    ├── CallError                calling an instance (fyerreg.api.Client, fyerreg.contrib.requests)
    │   └── RemoteError, CallTimeoutError, CallConnectionError
    ├── EtcdServerError          the test harness (fyerreg.testing.errors)
    └── ConfigurationError       a FYERREG_* environment variable is malformed (also a ValueError)
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "FyerregError",
    "RegistryError",
    "InvalidInstanceError",
    "NotRegisteredError",
    "AlreadyRegisteredError",
    "RegistryClosedError",
    "RegistryUnavailableError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NoInstanceAvailableError",
    "CallError",
    "RemoteError",
    "CallTimeoutError",
    "CallConnectionError",
    "ConfigurationError",
]


class FyerregError(Exception):
    """Base class of every error fyerreg raises."""


class RegistryError(FyerregError):
    """The registry (or the backend behind it) could not do what was asked; see the subclasses."""


class InvalidInstanceError(RegistryError, ValueError):
    """An instance (or a record read from the registry) is malformed.

    ``field`` names the offending field (``None`` when the whole record is unreadable).
    """

    def __init__(self, message: str, *, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.field = field


class NotRegisteredError(RegistryError):
    """The instance is not registered through this registry."""


class AlreadyRegisteredError(RegistryError):
    """``register(..., exclusive=True)`` found the instance's key held by another registry."""


class RegistryClosedError(RegistryError):
    """The registry (or discovery object) was closed; create a new one."""


class RegistryUnavailableError(RegistryError):
    """The backend could not be reached or did not answer in time (retries exhausted)."""


class AuthenticationError(RegistryError):
    """The backend rejected the credentials (wrong user/password, or a bad certificate)."""


class PermissionDeniedError(RegistryError):
    """The authenticated user may not read or write the keys involved."""


class NoInstanceAvailableError(RegistryError):
    """No instance of the service can be picked; the message says which and why.

    ``service``, ``version`` and ``reason`` carry the same facts for programs (None
    when not given).
    """

    def __init__(self, message: str, *, service: Optional[str] = None, version: Optional[str] = None,
                 reason: Optional[str] = None) -> None:
        super().__init__(message)
        self.service = service
        self.version = version
        self.reason = reason


class CallError(FyerregError):
    """A call to a service instance (``fyerreg.api.Client``, ``fyerreg.contrib.requests``) failed."""


class RemoteError(CallError):
    """The remote instance answered with an error.

    ``remote_type`` is the remote exception's type name (or ``BadRequest``,
    ``MethodNotFound``, ... for protocol errors), ``remote_message`` its message,
    ``status`` the HTTP status code and ``address`` the instance that answered.
    """

    def __init__(self, remote_type: str, remote_message: str, *, status: int, address: str = "") -> None:
        super().__init__(f"{remote_type}: {remote_message} (HTTP {status} from {address or 'remote'})")
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.status = status
        self.address = address


class CallTimeoutError(CallError):
    """The call did not complete within its timeout (which bounds the whole call, retries included)."""


class CallConnectionError(CallError):
    """The call could not be delivered, or its answer was lost, on every attempt allowed."""


# Configuration from the environment (fyerreg.config).
class ConfigurationError(FyerregError, ValueError):
    """An environment variable (``FYERREG_*``, ``POD_IP``, ``HOST_IP``) holds a value fyerreg cannot use.

    ``variable`` names it; the message names it too, and never holds a password.
    """

    def __init__(self, message: str, *, variable: str) -> None:
        super().__init__(message)
        self.variable = variable
