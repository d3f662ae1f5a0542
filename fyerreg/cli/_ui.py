"""``fyerreg ui``: serve a live, read-only web dashboard of the namespace until Ctrl-C/SIGTERM."""

from __future__ import annotations

import argparse
import os
import threading
from typing import Any, List, Optional, Tuple

from ..serving.address import split_host_port
from ._connect import open_registry
from ._errors import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, CommandError
from ._output import emit
from ._signals import ignore_interrupts, interrupt_on_sigterm

__all__ = ["add_parser", "run", "DEFAULT_BIND", "TOKEN_ENV"]

DEFAULT_PORT = 8379
DEFAULT_BIND = f"127.0.0.1:{DEFAULT_PORT}"
TOKEN_ENV = "FYERREG_UI_TOKEN"
_SHUTDOWN_TIMEOUT = 5.0


def _bind(text: str) -> Tuple[str, int]:
    try:
        host, port = split_host_port(text, field="--bind", default_port=DEFAULT_PORT)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"--bind {text!r}: port must be in 0..65535")
    return host or "127.0.0.1", port


def _history(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"{text!r} must be in 1..10000")
    return value


def add_parser(subparsers: Any, parents: List[argparse.ArgumentParser]) -> None:
    """Add ``ui [--bind HOST:PORT] [--token TOKEN] [--history N]``."""
    parser = subparsers.add_parser(
        "ui",
        parents=parents,
        help="serve a live, read-only web dashboard of the namespace until Ctrl-C",
        description="Serve a web page showing every service of the namespace with its instances "
        "(address, status, weight, metadata, version, lease time left, stale records) and a timeline of "
        "recent changes, pushed to the page as they happen. Read-only. Binds 127.0.0.1 by default; "
        "binding any other address needs a token.",
    )
    parser.add_argument("--bind", type=_bind, default=_bind(DEFAULT_BIND), metavar="HOST:PORT",
                        help=f"where to listen (default {DEFAULT_BIND}; port 0 picks a free one)")
    parser.add_argument("--token", default=None,
                        help=f"require this token on every request (at least 16 characters); needed to bind "
                        f"beyond loopback [${TOKEN_ENV}; prefer the variable: argv is visible]")
    parser.add_argument("--history", type=_history, default=50, metavar="N",
                        help="changes kept in each service's timeline (default 50)")
    parser.set_defaults(func=run)


def _token(args: argparse.Namespace) -> Optional[str]:
    from ..ui._auth import check_token, is_loopback

    token: Optional[str] = args.token or os.environ.get(TOKEN_ENV) or None
    host, port = args.bind
    if token is None and not is_loopback(host):
        raise CommandError(f"--bind {host}:{port} is reachable from other hosts: give a token with "
                           f"${TOKEN_ENV} or --token (at least 16 characters), or bind 127.0.0.1", EXIT_USAGE)
    if token is not None:
        try:
            check_token(token)
        except ValueError as exc:
            raise CommandError(f"--token: {exc}", EXIT_USAGE) from None
    return token


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C/SIGTERM (exit 0); a bind or etcd failure exits at once."""
    from ..ui import Dashboard

    token = _token(args)  # before connecting: a refused bind is a usage error
    host, port = args.bind
    registry: Optional[Any] = None
    dashboard: Optional[Dashboard] = None
    try:
        with interrupt_on_sigterm():
            registry = open_registry(args)
            try:
                dashboard = Dashboard(registry, host=host, port=port, token=token, history=args.history)
            except OSError as exc:
                raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_NOT_FOUND) from None
            dashboard.start()
            how = "; open it once with ?token=<the token>, or send 'Authorization: Bearer <the token>'" \
                if token else ""
            emit(f"dashboard of namespace {args.namespace!r} at {dashboard.url}{how}; Ctrl-C stops it")
            threading.Event().wait()  # until Ctrl-C or SIGTERM (KeyboardInterrupt)
    except KeyboardInterrupt:
        pass
    finally:
        with ignore_interrupts():
            if dashboard is not None:
                dashboard.close(_SHUTDOWN_TIMEOUT)
            if registry is not None:
                registry.close(timeout=_SHUTDOWN_TIMEOUT)
    return EXIT_OK
