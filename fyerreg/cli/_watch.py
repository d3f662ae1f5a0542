"""``fyerreg watch``: print every change of a service as it happens, until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Optional, Tuple

from ..naming import Instance
from ._connect import open_registry
from ._errors import EXIT_NOT_FOUND, EXIT_OK, CommandError
from ._output import emit_json, emit_line, instance_dict, metadata_text, status_text, timestamp
from ._parser import add_service_selector
from ._signals import ignore_interrupts, interrupt_on_sigterm

__all__ = ["add_parser", "run", "diff"]

Key = Tuple[str, str]
Change = Tuple[str, Instance, Dict[str, Tuple[Any, Any]]]

_COMPARED = ("address", "status", "weight", "metadata")


def add_parser(subparsers: Any, parents: List[argparse.ArgumentParser]) -> None:
    """Add ``watch SERVICE [--version V] [--json]``."""
    parser = subparsers.add_parser(
        "watch",
        parents=parents,
        help="print each change of a service (joined / left / changed) until Ctrl-C",
        description="Print the instances of SERVICE present now, then every instance that joins, "
        "leaves or changes, with a UTC timestamp, until Ctrl-C.",
    )
    add_service_selector(parser, "one JSON object per line")
    parser.set_defaults(func=run)


def diff(before: Dict[Key, Instance], after: Dict[Key, Instance]) -> List[Change]:
    """``(event, instance, changes)`` for every instance that joined, left or changed.

    ``changes`` maps a changed field to ``(old, new)``; a new ``updated_at`` alone is no change.
    """
    out: List[Change] = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old is None and new is not None:
            out.append(("joined", new, {}))
        elif new is None and old is not None:
            out.append(("left", old, {}))
        elif old is not None and new is not None:
            changes = {f: (getattr(old, f), getattr(new, f)) for f in _COMPARED if getattr(old, f) != getattr(new, f)}
            if changes:
                out.append(("changed", new, changes))
    return out


def _show(value: Any) -> str:
    if hasattr(value, "items"):
        return metadata_text(value)
    if hasattr(value, "name") and isinstance(value, int):
        return status_text(value)  # type: ignore[arg-type]
    return str(value)


def _print_change(event: str, inst: Instance, changes: Dict[str, Tuple[Any, Any]], when: float, revision: int,
                  as_json: bool) -> None:
    if as_json:
        record: Dict[str, Any] = {"time": timestamp(when), "event": event, "revision": revision,
                                  "instance": instance_dict(inst)}
        if changes:
            record["changes"] = {f: [_json_value(o), _json_value(n)] for f, (o, n) in changes.items()}
        emit_json(record)
        return
    name = f"{inst.service}/{inst.version}/{inst.id}"
    if event == "changed":
        detail = "  ".join(f"{f}: {_show(o)} -> {_show(n)}" for f, (o, n) in changes.items())
    elif event == "left":
        detail = inst.address
    else:
        detail = (f"{inst.address}  {status_text(inst.status)}  weight={inst.weight}  "
                  f"metadata={metadata_text(inst.metadata)}")
    emit_line(f"{timestamp(when)}  {event:<7}  {name}  {detail}")


def _json_value(value: Any) -> Any:
    if hasattr(value, "items"):
        return dict(value)
    if hasattr(value, "name") and isinstance(value, int):
        return status_text(value)  # type: ignore[arg-type]
    return value


def run(args: argparse.Namespace) -> int:
    """Subscribe and print changes until Ctrl-C/SIGTERM (exit 0) or the watch ends (exit 1)."""
    registry: Optional[Any] = None
    try:
        with interrupt_on_sigterm():
            registry = open_registry(args)
            subscription = registry.subscribe(args.service, args.version)
            known: Optional[Dict[Key, Instance]] = None
            stale = False
            for snapshot in subscription:
                if snapshot.stale != stale:
                    stale = snapshot.stale
                    sys.stderr.write("fyerreg: etcd unreachable; showing the last known state\n" if stale
                                     else "fyerreg: etcd reachable again\n")
                current = {(i.version, i.id): i for i in snapshot}
                if known is None:
                    for inst in snapshot:
                        _print_change("present", inst, {}, snapshot.taken_at, snapshot.revision, args.json)
                else:
                    for event, inst, changes in diff(known, current):
                        _print_change(event, inst, changes, snapshot.taken_at, snapshot.revision, args.json)
                known = current
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        if registry is not None:
            with ignore_interrupts():
                registry.close()
    raise CommandError("the watch ended (the registry was closed)", EXIT_NOT_FOUND)
