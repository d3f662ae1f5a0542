"""``fyerreg register`` (a sidecar keeping one instance registered) and ``fyerreg deregister``."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import threading
from typing import Any, Dict, List, Optional, Tuple

from ..config import advertise_address_from_env, node_ip_from_env
from ..logging import escape_control
from ..naming import Instance
from ..registry.base import MAX_TTL
from ..serving import InstanceSpec, ServingRegistration
from ..serving.address import advertise_address, is_unspecified, split_host_port
from ..serving.health import HealthCheck, command_check, http_check
from ._connect import open_registry
from ._errors import EXIT_NOT_FOUND, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, CommandError
from ._json import add_json_option
from ._output import emit, emit_json, instance_dict
from ._signals import ignore_interrupts, interrupt_on_sigterm

__all__ = ["add_register_parser", "add_deregister_parser", "run_register", "run_deregister", "parse_metadata",
           "advertised_address", "health_from_args"]

_SHUTDOWN_TIMEOUT = 10.0


def _non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer")
    return int(text)


def _lease_ttl(text: str) -> int:
    ttl = _non_negative_int(text)
    if ttl > MAX_TTL:
        raise argparse.ArgumentTypeError(f"{text} is above {MAX_TTL} seconds, etcd's maximum lease TTL")
    return ttl


def _instance_command(subparsers: Any, parents: List[argparse.ArgumentParser], name: str, *, help: str,
                      description: str) -> Tuple[argparse.ArgumentParser, Any]:
    """A command naming one instance: the parser and its "required" group, holding --service and --version."""
    parser = subparsers.add_parser(name, parents=parents, help=help, description=description)
    required = parser.add_argument_group("required")
    required.add_argument("--service", required=True, help="service name, as clients look it up")
    required.add_argument("--version", required=True, help="service version, e.g. v1")
    return parser, required


def add_register_parser(subparsers: Any, parents: List[argparse.ArgumentParser]) -> None:
    """Add ``register --service S --version V --address HOST:PORT [...]``."""
    parser, required = _instance_command(
        subparsers, parents, "register",
        help="register an instance and keep it alive until Ctrl-C/SIGTERM, then deregister it",
        description="Register an instance and keep its lease alive until Ctrl-C or SIGTERM, then "
        "deregister it: a sidecar for processes that are not written in Python. "
        "--service, --version and --address are required.",
    )
    required.add_argument("--address", required=True, metavar="HOST:PORT",
                          help="where clients dial the instance; a 0.0.0.0, :: or empty host is replaced "
                          "by $FYERREG_ADVERTISE_ADDRESS, $POD_IP, $HOST_IP or this host's outbound address "
                          "(printed)")
    parser.add_argument("--id", help="instance id (default: a random one, printed)")
    parser.add_argument("--weight", type=_non_negative_int, default=None, help="weight (default 100)")
    parser.add_argument("--meta", action="append", nargs="+", default=[], metavar="KEY=VALUE",
                        help="metadata entries (repeatable)")
    parser.add_argument("--ttl", type=_lease_ttl, default=None,
                        help=f"lease TTL in seconds, 2 to {MAX_TTL} [$FYERREG_TTL, default 30]")
    add_json_option(parser, 'one JSON object per line: {"event": "registered" or "deregistered", "instance": ...}')
    _add_health_options(parser)
    parser.set_defaults(func=run_register, default_log_level="info")


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _add_health_options(parser: argparse.ArgumentParser) -> None:
    from ._parser import positive_float

    group = parser.add_argument_group(
        "health", "advertise the instance disabled while its health check fails (and while "
        "'fyerreg maint on' holds it), enabled again once it passes")
    checks = group.add_mutually_exclusive_group()
    checks.add_argument("--health-url", metavar="URL", help="healthy when an HTTP GET of URL answers 2xx")
    checks.add_argument("--health-cmd", metavar="CMD",
                        help="healthy when CMD exits 0 (split like a shell line, run without a shell; "
                        "killed at --health-timeout)")
    group.add_argument("--health-interval", type=positive_float, default=5.0, metavar="SECONDS",
                       help="seconds between checks (default 5)")
    group.add_argument("--health-timeout", type=positive_float, default=2.0, metavar="SECONDS",
                       help="a check taking longer fails (default 2)")
    group.add_argument("--health-failures", type=_positive_int, default=3, metavar="K",
                       help="consecutive failures that disable the instance (default 3)")
    group.add_argument("--health-successes", type=_positive_int, default=2, metavar="M",
                       help="consecutive successes that enable it again (default 2)")


def health_from_args(args: argparse.Namespace) -> Optional[HealthCheck]:
    """The health check ``--health-url`` / ``--health-cmd`` describe (None without either)."""
    try:
        if args.health_url:
            check = http_check(args.health_url, args.health_timeout)
        elif args.health_cmd:
            check = command_check(shlex.split(args.health_cmd), args.health_timeout)
        else:
            return None
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    return HealthCheck(check, interval=args.health_interval, timeout=args.health_timeout,
                       failures=args.health_failures, successes=args.health_successes)


def add_deregister_parser(subparsers: Any, parents: List[argparse.ArgumentParser]) -> None:
    """Add ``deregister --service S --version V --id ID``."""
    parser, required = _instance_command(
        subparsers, parents, "deregister",
        help="remove an instance from the registry (operator action)",
        description="Remove one instance's record. A process still running keeps its lease alive and "
        "writes its record again: stop the process to take it out for good. "
        "--service, --version and --id are required.",
    )
    required.add_argument("--id", required=True, help="instance id (the ID column of 'fyerreg list SERVICE')")
    add_json_option(parser, "a JSON array of the instance removed ([] when there was none)")
    parser.set_defaults(func=run_deregister)


def parse_metadata(groups: List[List[str]]) -> Dict[str, str]:
    """``[["a=1", "b=2"], ["c=3"]]`` -> ``{"a": "1", "b": "2", "c": "3"}``."""
    metadata: Dict[str, str] = {}
    for item in (entry for group in groups for entry in group):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"--meta {item!r}: expected KEY=VALUE", EXIT_USAGE)
        metadata[key] = value
    return metadata


def advertised_address(address: str) -> str:
    """``--address`` as others dial it.

    An unspecified host (``0.0.0.0``, ``::``, empty) becomes ``FYERREG_ADVERTISE_ADDRESS``,
    else ``POD_IP``, else ``HOST_IP``, else the outbound IP (said on stderr).
    """
    try:
        host, port = split_host_port(address, field="--address")
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    if not is_unspecified(host):
        return advertise_address(host, port, None)
    source, advertise = "this host's outbound address", advertise_address_from_env()
    if advertise is not None:
        source = "$FYERREG_ADVERTISE_ADDRESS"
    else:
        advertise = node_ip_from_env()
        if advertise is not None:
            source = "$POD_IP" if os.environ.get("POD_IP", "").strip() else "$HOST_IP"
    advertised = advertise_address(host, port, advertise)
    sys.stderr.write(f"fyerreg: note: --address {address} cannot be dialled; advertising {advertised} "
                     f"({source}) instead\n")
    return advertised


def run_register(args: argparse.Namespace) -> int:
    """Register, wait for Ctrl-C/SIGTERM, deregister; exit 0 when the record was removed.

    A registration lost for good (another registry took the record over) ends the
    sidecar with exit status 1 and one line on stderr, so a supervisor can restart it.
    """
    options: Dict[str, Any] = {"metadata": parse_metadata(args.meta)}
    if args.weight is not None:
        options["weight"] = args.weight
    # The address given is the one clients dial: nothing to drain, the process is not ours.
    advertised = advertised_address(args.address)
    spec = InstanceSpec(args.service, args.version, advertised, advertise_address=advertised, instance_id=args.id,
                        drain_delay=0.0, **options)
    spec.validate()  # before connecting: bad input is a usage error
    health = health_from_args(args)
    instance = spec.instance()
    extra = {"ttl": args.ttl} if args.ttl is not None else {}
    name = f"{instance.service}/{instance.version}/{instance.id}"
    registry: Optional[Any] = None
    registration: Optional[ServingRegistration] = None
    registered = False
    code = EXIT_OK
    try:
        with interrupt_on_sigterm():
            registry = open_registry(args, **extra)
            registration = ServingRegistration(registry, spec, wait_ready=False, deregister_at_exit=False,
                                               deregister_timeout=_SHUTDOWN_TIMEOUT, health_check=health)
            registration.start()
            registered = True
            if args.json:
                emit_json({"event": "registered", "instance": instance_dict(registration.instance)})
            else:
                emit(f"registered {name} at {instance.address}; Ctrl-C or SIGTERM deregisters it")
            lost = _wait_until_lost(registry, instance)
            registered = False
            sys.stderr.write(f"fyerreg: {name} is no longer registered by this sidecar "
                             f"({escape_control(lost)}); exiting\n")
            code = EXIT_NOT_FOUND
    except KeyboardInterrupt:
        pass
    finally:
        if registry is not None:
            with ignore_interrupts():
                if registered and registration is not None:
                    code = _deregister(registration, name, args.json)
                registry.close(timeout=_SHUTDOWN_TIMEOUT)
    return code


def _wait_until_lost(registry: Any, instance: Instance) -> str:
    """Block while ``instance`` stays registered; then say why it is not."""
    # The keepalive notices a takeover at its next heartbeat (every ttl/3): checking
    # more often than that would learn nothing sooner.
    every = registry.options.ttl / 3.0
    idle = threading.Event()
    while True:
        idle.wait(every)
        state = registry.registration_state(instance)
        if not state.registered:
            return state.last_error or "its registration was lost"


def _deregister(registration: ServingRegistration, name: str, as_json: bool) -> int:
    if not registration.registry.registration_state(registration.instance).registered:
        sys.stderr.write(f"fyerreg: {name} is not registered by this process any more "
                         "(taken over by another, or its lease was lost); nothing to remove\n")
        return EXIT_OK
    registration.stop()
    if registration.last_error is not None:
        sys.stderr.write(f"fyerreg: could not deregister {name} ({escape_control(str(registration.last_error))}); "
                         "its lease expires on its own\n")
        return EXIT_UNAVAILABLE
    if as_json:
        emit_json({"event": "deregistered", "instance": instance_dict(registration.instance)})
    else:
        emit(f"deregistered {name}")
    return EXIT_OK


def run_deregister(args: argparse.Namespace) -> int:
    """Remove the instance's record and revoke its lease; exit 1 when there is none."""
    registry = open_registry(args)
    from ..registry.etcd.admin import remove

    try:
        removed = remove(registry, args.service, args.version, args.id)
    finally:
        registry.close()
    name = f"{args.service}/{args.version}/{args.id}"
    if args.json:  # also when nothing was removed: a script reading stdout always gets JSON
        emit_json([instance_dict(removed.instance)] if removed is not None else [], indent=2)
    if removed is None:
        raise CommandError(f"no instance {name} in namespace {args.namespace!r}", EXIT_NOT_FOUND)
    if not args.json:
        emit(f"deregistered {name} ({removed.instance.address})")
    if removed.lease_id:
        sys.stderr.write("fyerreg: note: a process still running with this instance registers it again "
                         "within a third of its TTL; stop that process to remove it for good\n")
    return EXIT_OK
