"""``fyerreg services`` and ``fyerreg list``: what is registered right now."""

from __future__ import annotations

import argparse
from typing import Any, Dict, List, Optional, Tuple

from ._connect import open_registry
from ._errors import EXIT_NOT_FOUND, EXIT_OK, CommandError
from ._output import emit, emit_json, endpoints_text, instance_dict, metadata_text, status_text, table
from ._parser import add_service_selector

__all__ = ["add_services_parser", "add_list_parser", "run_services", "run_list"]


def add_services_parser(subparsers: Any, parents: List[argparse.ArgumentParser]) -> None:
    """Add ``services [--json]``."""
    parser = subparsers.add_parser(
        "services",
        parents=parents,
        help="every service with its versions and instance counts",
        description="List every service registered in the namespace, one line per version, "
        "with how many instances it has and how many of them are enabled.",
    )
    parser.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    parser.set_defaults(func=run_services)


def add_list_parser(subparsers: Any, parents: List[argparse.ArgumentParser]) -> None:
    """Add ``list SERVICE [--version V] [--json]``."""
    parser = subparsers.add_parser(
        "list",
        parents=parents,
        help="the instances of a service, with their lease TTL left",
        description="List the instances of SERVICE (of one version, or of all) as an aligned table: "
        "id, version, address, status, weight, metadata and the seconds left on the instance's lease.",
    )
    add_service_selector(parser, "a JSON array instead of a table")
    parser.set_defaults(func=run_list)


def run_services(args: argparse.Namespace) -> int:
    """Print one row per (service, version); exit 1 when nothing is registered."""
    registry = open_registry(args)
    from ..registry.etcd.admin import list_records

    try:
        records = list_records(registry)
    finally:
        registry.close()
    counts: Dict[Tuple[str, str], List[int]] = {}
    for record in records:
        inst = record.instance
        entry = counts.setdefault((inst.service, inst.version), [0, 0])
        entry[0] += 1
        entry[1] += int(inst.enabled)
    rows = [(svc, ver, total, enabled) for (svc, ver), (total, enabled) in sorted(counts.items())]
    if args.json:  # also when empty: a script reading stdout always gets JSON
        emit_json([{"service": s, "version": v, "instances": n, "enabled": e} for s, v, n, e in rows], indent=2)
    if not counts:
        raise CommandError(f"no services registered in namespace {args.namespace!r}", EXIT_NOT_FOUND)
    if not args.json:
        emit(table(("SERVICE", "VERSION", "INSTANCES", "ENABLED"), rows))
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    """Print the instances of a service; exit 1 when it has none."""
    registry = open_registry(args)
    from ..registry.etcd.admin import lease_ttls, list_records

    try:
        records = list_records(registry, args.service, args.version)
        ttls = lease_ttls(registry, records)
    finally:
        registry.close()
    instances = sorted((r.instance for r in records), key=lambda i: (i.version, i.id))
    if args.json:  # also when empty: a script reading stdout always gets JSON
        emit_json([dict(instance_dict(i), lease_ttl=ttls.get(i.key)) for i in instances], indent=2)
    if not records:
        which = args.service if args.version is None else f"{args.service} version {args.version}"
        raise CommandError(f"no instances of {which} in namespace {args.namespace!r}", EXIT_NOT_FOUND)
    if args.json:
        return EXIT_OK
    named = any(i.endpoints for i in instances)  # the column only where some instance names endpoints
    rows = [
        (i.id, i.version, i.address, *((endpoints_text(i),) if named else ()), status_text(i.status), i.weight,
         metadata_text(i.metadata), _ttl_text(ttls.get(i.key)))
        for i in instances
    ]
    headers = ("ID", "VERSION", "ADDRESS", *(("ENDPOINTS",) if named else ()), "STATUS", "WEIGHT", "METADATA", "TTL")
    emit(table(headers, rows))
    return EXIT_OK


def _ttl_text(ttl: Optional[int]) -> str:
    if ttl is None:
        return "none"  # not bound to a lease: it never expires
    return "expired" if ttl < 0 else f"{ttl}s"
