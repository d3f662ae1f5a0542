"""Integrations with the servers, clients and tools Python services already use
(WSGI, ASGI, Flask, Django, gunicorn, requests, httpx, Prometheus, gRPC).

Each submodule imports its framework only when imported itself; install the matching extra.
"""
