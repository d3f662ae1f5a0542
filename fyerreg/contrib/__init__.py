"""Integrations with the servers, clients and tools Python services already use
(WSGI, ASGI, Flask, Django, gunicorn, requests, httpx, Prometheus, gRPC).

Each submodule imports its framework only when imported itself; install the matching extra.
"""

from .._grpc_quiet import quiet_grpc

quiet_grpc()  # every integration is imported through here, before it (or its registry) imports grpc
