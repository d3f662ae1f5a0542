"""Serve an object's methods over JSON/HTTP and call them by service name (Go fyer-rpc's ``api`` shape)."""

from ..errors import CallConnectionError, CallError, CallTimeoutError, RemoteError
from .client import Client, ClientOptions
from .server import Server, ServerOptions

__all__ = [
    "CallConnectionError",
    "CallError",
    "CallTimeoutError",
    "Client",
    "ClientOptions",
    "RemoteError",
    "Server",
    "ServerOptions",
]
