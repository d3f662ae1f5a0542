"""Integrations with the servers and clients Python services already use (WSGI, Flask, Django, gunicorn, requests).

Each submodule imports its framework only when imported itself.
"""
