"""The WSGI app of gunicorn_env.conf.py: answers 200 to everything."""

from typing import Any, Callable, Iterable


def app(environ: Any, start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]
