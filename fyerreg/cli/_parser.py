"""The ``fyerreg`` argument parser: shared connection and logging options, one subparser per command.

Shared options are accepted before or after the command name; each falls back to a
``FYERREG_*`` environment variable, then to its default (see :data:`ENV_DEFAULTS`).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from typing import Any, Callable, Dict, List, Mapping, NoReturn, Optional, Sequence, Tuple

from ..config import read_environment
from ..errors import ConfigurationError
from ..registry.layouts import LAYOUTS
from ._errors import EXIT_USAGE

__all__ = [
    "build_parser", "apply_environment", "add_service_selector", "positive_float", "ENV_DEFAULTS", "Command",
    "AddParser", "package_version",
]

Command = Callable[[argparse.Namespace], int]

# dest -> (environment variable, default, help). The connection options' variables are
# read by fyerreg.config, as every integration reads them; the old names FYERREG_USER,
# FYERREG_CACERT, FYERREG_CERT and FYERREG_KEY still work (deprecated).
ENV_DEFAULTS: Dict[str, Tuple[str, Any, str]] = {
    "endpoints": ("FYERREG_ENDPOINTS", "127.0.0.1:2379",
                  "etcd endpoints, host:port or http(s)://host:port, comma-separated or repeated"),
    "namespace": ("FYERREG_NAMESPACE", "fyerrpc", "key namespace: keys are /NAMESPACE/services/..."),
    "layout": ("FYERREG_LAYOUT", "fyer-rpc", "how records sit in etcd (see fyerreg.registry.layouts)"),
    "user": ("FYERREG_USERNAME", None, "etcd user name"),
    "password": ("FYERREG_PASSWORD", None, "etcd password (prefer the environment variable, or "
                 "$FYERREG_PASSWORD_FILE: argv is visible)"),
    "cacert": ("FYERREG_TLS_CA", None, "CA certificate file: connect with TLS and verify the server"),
    "cert": ("FYERREG_TLS_CERT", None, "client certificate file (TLS client authentication)"),
    "key": ("FYERREG_TLS_KEY", None, "client private key file (TLS client authentication)"),
    "dial_timeout": ("FYERREG_DIAL_TIMEOUT", "5", "seconds to wait for etcd before giving up"),
    "log_format": ("FYERREG_LOG_FORMAT", "text", "log lines on stderr as text or JSON"),
    "log_level": ("FYERREG_LOG_LEVEL", None, "debug, info, warning or error (default: per command)"),
}
# The fyerreg.config option each connection dest is read from.
_OPTION_OF = {"endpoints": "endpoints", "namespace": "namespace", "layout": "layout", "user": "username",
              "password": "password", "cacert": "tls.ca", "cert": "tls.cert", "key": "tls.key",
              "dial_timeout": "dial_timeout"}
_CONNECTION = ("endpoints", "namespace", "layout", "user", "password", "cacert", "cert", "key", "dial_timeout")
_LOGGING = ("log_format", "log_level")
_LOG_LEVELS = ("debug", "info", "warning", "error")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        sys.exit(EXIT_USAGE)


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def add_service_selector(parser: argparse.ArgumentParser, json_help: str) -> None:
    """``SERVICE [--version V] [--json]``, shared by the commands that read one service."""
    parser.add_argument("service")
    parser.add_argument("--version", help="only this version (default: every version)")
    parser.add_argument("--json", action="store_true", help=json_help)


def package_version() -> str:
    """The installed fyerreg distribution's version (``fyerreg.__version__`` when not installed)."""
    try:
        return importlib.metadata.version("fyerreg")
    except importlib.metadata.PackageNotFoundError:
        from .. import __version__

        return __version__


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _help(dest: str) -> str:
    env, default, text = ENV_DEFAULTS[dest]
    return f"{text} [${env}" + (f", default {default}]" if default is not None else "]")


def _logging_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("logging")
    group.add_argument("--log-format", choices=("text", "json"), default=argparse.SUPPRESS, help=_help("log_format"))
    group.add_argument("--log-level", type=str.lower, choices=_LOG_LEVELS, default=argparse.SUPPRESS,
                       help=_help("log_level"))
    return parent


def _connection_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument("--endpoints", action="append", metavar="HOST:PORT[,...]", default=argparse.SUPPRESS,
                       help=_help("endpoints"))
    for dest in ("namespace", "user", "password", "cacert", "cert", "key"):
        group.add_argument(_flag(dest), metavar=dest.upper(), default=argparse.SUPPRESS, help=_help(dest))
    group.add_argument("--layout", choices=sorted(LAYOUTS), default=argparse.SUPPRESS, help=_help("layout"))
    group.add_argument("--dial-timeout", metavar="SECONDS", default=argparse.SUPPRESS, help=_help("dial_timeout"))
    return parent


AddParser = Callable[[Any, List[argparse.ArgumentParser]], None]


def build_parser(commands: Sequence[Tuple[AddParser, bool]]) -> argparse.ArgumentParser:
    """The full parser. ``commands`` are ``(add_parser, needs_connection)``; each
    ``add_parser(subparsers, parents)`` adds one subcommand that sets ``func``."""
    logging_parent = _logging_parent()
    connection_parent = _connection_parent()
    parser = _Parser(
        prog="fyerreg",
        description="Inspect and operate a fyerreg service registry on etcd.",
        parents=[connection_parent, logging_parent],
    )
    parser.add_argument("-V", "--version", action="version", version=f"fyerreg {package_version()}",
                        help="print fyerreg's version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for add_parser, needs_connection in commands:
        parents = [connection_parent, logging_parent] if needs_connection else [logging_parent]
        add_parser(subparsers, parents)
    return parser


def apply_environment(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """Fill every shared option not given on the command line from its variable, then its default.

    The connection options' variables are read by :func:`fyerreg.config.read_environment`
    (so are ``FYERREG_TTL`` for a command's ``--ttl`` and ``FYERREG_PASSWORD_FILE``).
    Raises ``argparse.ArgumentTypeError`` naming the variable when its value is invalid.
    """
    given = {_OPTION_OF[dest] for dest in _CONNECTION if hasattr(args, dest)}
    if getattr(args, "ttl", None) is not None:
        given.add("ttl")
    try:
        found = read_environment(environ, skip=given)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    for dest in _CONNECTION:
        if not hasattr(args, dest):
            setattr(args, dest, found.get(_OPTION_OF[dest], ENV_DEFAULTS[dest][1]))
    if hasattr(args, "ttl") and args.ttl is None:
        args.ttl = found.get("ttl")
    for dest in _LOGGING:
        if hasattr(args, dest):
            continue
        env, default, _ = ENV_DEFAULTS[dest]
        value: Any = environ.get(env) or None
        if value is None:
            value = default
        elif dest == "log_format" and value not in ("text", "json"):
            raise argparse.ArgumentTypeError(f"${env}={value!r}: expected text or json")
        elif dest == "log_level" and value.lower() not in _LOG_LEVELS:
            raise argparse.ArgumentTypeError(f"${env}={value!r}: expected one of {', '.join(_LOG_LEVELS)}")
        setattr(args, dest, value)
    if isinstance(args.endpoints, str):
        args.endpoints = [args.endpoints]
    args.endpoints = _split_endpoints(args.endpoints)
    if isinstance(args.log_level, str):
        args.log_level = args.log_level.lower()
    if "dial_timeout" in vars(args):
        try:
            args.dial_timeout = positive_float(str(args.dial_timeout))
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"--dial-timeout: {exc}") from None


def _split_endpoints(values: Optional[List[str]]) -> List[str]:
    out: List[str] = []
    for value in values or ():
        out.extend(part.strip() for part in value.split(",") if part.strip())
    if not out:
        raise argparse.ArgumentTypeError("--endpoints: at least one endpoint is required")
    return out
