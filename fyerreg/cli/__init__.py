"""The ``fyerreg`` command: inspect, watch and operate a registry on etcd from a terminal.

Exit status: 0 ok, 1 not found / nothing matched / failed, 2 usage error,
3 etcd unreachable (or a server that is not etcd), credentials rejected or permission denied;
every failure is one line on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import List, Mapping, Optional, Sequence, Tuple

from .. import logging as fyerreg_logging
from .._grpc_quiet import quiet_grpc
from ..errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidInstanceError,
    PermissionDeniedError,
    RegistryError,
    RegistryUnavailableError,
)
from . import _doctor, _etcd, _maint, _query, _sidecar, _ui, _watch
from ._errors import EXIT_NOT_FOUND, EXIT_UNAVAILABLE, EXIT_USAGE, CommandError
from ._parser import AddParser, apply_environment, build_parser

__all__ = ["main"]

_COMMANDS: List[Tuple[AddParser, bool]] = [
    (_query.add_services_parser, True),
    (_query.add_list_parser, True),
    (_watch.add_parser, True),
    (_sidecar.add_register_parser, True),
    (_sidecar.add_deregister_parser, True),
    (_etcd.add_parser, False),
    (_doctor.add_parser, True),
    (_ui.add_parser, True),
    (_maint.add_parser, True),
]


def main(argv: Optional[Sequence[str]] = None, environ: Optional[Mapping[str, str]] = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    quiet_grpc()  # before any command imports grpc: the variable is read then, and only then
    env = os.environ if environ is None else environ
    parser = build_parser(_COMMANDS)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already reported on stderr
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        apply_environment(args, env)
    except argparse.ArgumentTypeError as exc:
        return _fail(f"error: {exc} (see 'fyerreg --help')", EXIT_USAGE)
    _configure_logging(args)
    try:
        code: int = args.func(args)
        return code
    except CommandError as exc:
        return _fail(str(exc), exc.code)
    except ConfigurationError as exc:  # an environment variable read after parsing (an advertise address)
        return _fail(str(exc), EXIT_USAGE)
    except AuthenticationError as exc:
        return _fail(f"etcd rejected the credentials: {exc}", EXIT_UNAVAILABLE)
    except PermissionDeniedError as exc:
        return _fail(f"etcd refused: {exc}", EXIT_UNAVAILABLE)
    except RegistryUnavailableError as exc:
        text = str(exc)
        return _fail(text if "unreachable" in text.lower() else f"etcd unreachable: {text}", EXIT_UNAVAILABLE)
    except InvalidInstanceError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except RegistryError as exc:
        return _fail(str(exc), EXIT_NOT_FOUND)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout went away (`fyerreg list x | head`): not an error; silence the exit-time flush.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: still one line, the traceback only at debug level
        if args.log_level == "debug":
            traceback.print_exc()
        return _fail(f"internal error: {type(exc).__name__}: {exc}", EXIT_NOT_FOUND)


def _fail(message: str, code: int) -> int:
    first_line = message.strip().split("\n")[0] if message.strip() else "failed"
    sys.stderr.write(f"fyerreg: {fyerreg_logging.escape_control(first_line)}\n")
    sys.stderr.flush()
    return code


def _configure_logging(args: argparse.Namespace) -> None:
    level = args.log_level or getattr(args, "default_log_level", "warning")
    fyerreg_logging.configure(json=args.log_format == "json", level=level, stream=sys.stderr)
