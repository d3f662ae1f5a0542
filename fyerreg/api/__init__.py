"""Serve an object's methods over JSON/HTTP and call them by service name (the seed's ``api`` package)."""

from ..errors import CallConnectionError, CallError, CallTimeoutError, RemoteError
from .server import Server, ServerOptions

__all__ = [
    "CallConnectionError",
    "CallError",
    "CallTimeoutError",
    "RemoteError",
    "Server",
    "ServerOptions",
]
