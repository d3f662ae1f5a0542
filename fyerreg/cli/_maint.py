"""``fyerreg maint on|off SERVICE``: put instances in maintenance (advertised disabled) and take them out.

The command never rewrites a record: another process owns it and its keepalive would
write it back. It writes (``on``) or deletes (``off``) the instance's maintenance key,
``/NAMESPACE/maintenance/SERVICE/VERSION/ID``, and the owning process (a fyerreg
``ServingRegistration``: the integrations, ``api.Server``, ``fyerreg register``) watches
its key and writes its own record's status. ``on`` then waits until every record it
keyed reads disabled, and fails when an owner does not apply it (a process that does not
watch maintenance keys, e.g. a Go one).
"""

from __future__ import annotations

import argparse
import queue
import time
from typing import Any, Dict, List, Tuple

from ..naming import Instance, Status
from ._connect import open_registry
from ._errors import EXIT_NOT_FOUND, EXIT_OK, CommandError
from ._json import add_json_option
from ._output import emit_json, emit_line, instance_dict

__all__ = ["add_parser", "run"]

_DEFAULT_WAIT = 10.0


def _wait_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def add_parser(subparsers: Any, parents: List[argparse.ArgumentParser]) -> None:
    """Add ``maint on|off SERVICE [--version V] [--id ID] [--reason TEXT] [--wait SECONDS]``."""
    parser = subparsers.add_parser(
        "maint", parents=parents,
        help="put instances in maintenance (advertised disabled) or take them out, through their owners",
        description="on: write the maintenance key of every instance of SERVICE (of --version, of --id) "
        "registered now; each owning process advertises its instance disabled, whatever its health, and "
        "this waits until all read disabled. off: delete those keys; each instance's health decides again. "
        "A key outlives its process: an instance restarted with the same id stays in maintenance.",
    )
    parser.add_argument("action", choices=("on", "off"))
    parser.add_argument("service")
    parser.add_argument("--version", help="only this version (default: every version)")
    parser.add_argument("--id", help="only this instance id")
    parser.add_argument("--reason", default="", help="why (stored in the key, for whoever reads it)")
    parser.add_argument("--wait", type=_wait_seconds, default=_DEFAULT_WAIT, metavar="SECONDS",
                        help=f"on: how long to wait for the owners to apply it (default {_DEFAULT_WAIT:g}; 0: no wait)")
    add_json_option(parser, 'one JSON array: off, {"key": ...} per key deleted; on, {"instance": ..., '
                    '"disabled": true, false or null without a wait} per instance, after the wait '
                    '([] when nothing matched)')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write or delete the maintenance keys; exit 1 when nothing matched or an owner did not apply it."""
    from ..registry.etcd.admin import list_records
    from ..registry.kv._maintenance import delete_maintenance, put_maintenance

    registry = open_registry(args)
    try:
        if args.action == "off":
            keys = delete_maintenance(registry, args.service, args.version, args.id)
            if args.json:
                emit_json([{"key": key} for key in keys])
            if not keys:
                raise CommandError(f"no maintenance key matched {_selected(args)}", EXIT_NOT_FOUND)
            if not args.json:
                for key in keys:
                    emit_line(f"maintenance off: {key}")
            return EXIT_OK
        instances = [record.instance for record in list_records(registry, args.service, args.version)
                     if args.id is None or record.instance.id == args.id]
        if not instances:
            if args.json:
                emit_json([])
            raise CommandError(f"no instance matched {_selected(args)}", EXIT_NOT_FOUND)
        for instance in instances:
            put_maintenance(registry, instance, args.reason)
            if not args.json:
                emit_line(f"maintenance on: {_name(instance)} ({instance.address})")
        pending = _wait_disabled(registry, args.service, args.version, instances, args.wait) if args.wait > 0 else []
        if args.json:
            emit_json([{"instance": instance_dict(i), "disabled": _name(i) not in pending if args.wait > 0 else None}
                       for i in instances])
        if pending:
            raise CommandError(
                f"{', '.join(sorted(pending))} did not turn disabled within {args.wait:g}s: its process does "
                "not apply maintenance keys (not a fyerreg serving registration?); the key stays set "
                "('fyerreg maint off' removes it)", EXIT_NOT_FOUND)
        return EXIT_OK
    finally:
        registry.close()


def _wait_disabled(registry: Any, service: str, version: Any, instances: List[Instance],
                   wait: float) -> List[str]:
    """Names of ``instances`` still enabled after ``wait`` seconds (gone ones count as done)."""
    wanted: Dict[Tuple[str, str], str] = {(i.version, i.id): _name(i) for i in instances}
    deadline = time.monotonic() + wait
    pending = list(wanted.values())
    subscription = registry.subscribe(service, version)
    try:
        while pending:
            try:
                snapshot = subscription.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return pending
            if snapshot is None:  # the subscription ended (the registry is closing)
                return pending
            current = {(i.version, i.id): i for i in snapshot}
            pending = [name for key, name in wanted.items()
                       if key in current and current[key].status != Status.DISABLED]
        return []
    finally:
        subscription.close()


def _name(instance: Instance) -> str:
    return f"{instance.service}/{instance.version}/{instance.id}"


def _selected(args: argparse.Namespace) -> str:
    name = args.service + (f" version {args.version}" if args.version else "") + (f" id {args.id}" if args.id else "")
    return f"{name} in namespace {args.namespace!r}"
