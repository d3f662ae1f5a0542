"""``fyerreg doctor``: check the connection, credentials, namespace, records, clock and lease TTL.

One line per check, ``ok``, ``warn``, ``fail`` or ``skip`` (a check that could not run
because an earlier one failed), then exit status 0 when nothing failed (warnings
included, unless ``--strict``), 1 when a check failed (or warned, with ``--strict``),
3 when etcd is unreachable, is not etcd, or refused the credentials or the namespace.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
from typing import Any, Dict, List, Optional

from ..errors import AuthenticationError, PermissionDeniedError, RegistryError, RegistryUnavailableError
from ..registry.layouts import LAYOUTS
from ._clock import read_server_clock, skew_bounds
from ._connect import open_registry
from ._errors import EXIT_NOT_FOUND, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, CommandError
from ._json import add_json_option
from ._output import emit_json, emit_line

__all__ = ["add_parser", "run", "Check", "SKEW_WARN_SECONDS", "SHORT_TTL_SECONDS"]

SKEW_WARN_SECONDS = 2.0
"""A clock at least this far from etcd's warns: ``updated_at`` and log times no longer line up."""
SHORT_TTL_SECONDS = 5
"""A lease TTL below this warns: heartbeats every ttl/3 leave no room for one slow etcd answer."""
_SHOWN_INVALID = 3


@dataclasses.dataclass
class Check:
    """One check's outcome: ``status`` is ok, warn, fail or skip; ``details`` go to the JSON output."""

    name: str
    status: str
    message: str
    details: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        """JSON-ready: ``check``, ``status``, ``message`` and the details."""
        return {"check": self.name, "status": self.status, "message": self.message, **self.details}


def _ttl(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds >= 1")
    return int(text)


def add_parser(subparsers: Any, parents: List[argparse.ArgumentParser]) -> None:
    """Add ``doctor [--ttl S] [--strict] [--json]``."""
    parser = subparsers.add_parser(
        "doctor",
        parents=parents,
        help="check connection, credentials, namespace, records, clock skew and lease TTL",
        description="Connect to etcd and check, one line each (ok / warn / fail): the connection, the "
        "credentials, the namespace (records present, under which layout), records that do not decode, "
        "this host's clock against etcd's, and the lease TTL against etcd's minimum. "
        "Exit status 0 when nothing failed, 1 when a check failed, 3 when etcd is unreachable or "
        "refused the credentials. Reads only; one lease is granted and revoked to learn etcd's minimum TTL.",
    )
    parser.add_argument("--ttl", type=_ttl, default=None,
                        help="the lease TTL your services register with (default: the registry's, 30)")
    parser.add_argument("--strict", action="store_true", help="a warning fails too (exit status 1)")
    add_json_option(parser, "a JSON array of the checks instead of lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run every check, print them, return the exit status."""
    checks: List[Check] = []
    code = EXIT_OK
    registry = _connect(args, checks)
    if registry is None:
        code = EXIT_UNAVAILABLE
    else:
        try:
            for step in (_namespace, _clock, _lease_ttl):
                try:
                    step(registry, args, checks)
                except RegistryError as exc:  # etcd went away, or refused one read: the check fails, the rest run
                    checks.append(Check(step.__name__.strip("_").replace("_", "-"), "fail", str(exc)))
        finally:
            registry.close()
    for name in ("connect", "auth", "namespace", "records", "clock", "lease-ttl"):
        if not any(c.name == name for c in checks):
            checks.append(Check(name, "skip", "not checked: fyerreg could not use etcd"))
    if code == EXIT_OK:
        failing = ("fail", "warn") if args.strict else ("fail",)
        code = EXIT_NOT_FOUND if any(c.status in failing for c in checks) else EXIT_OK
    _print(checks, args.json)
    return code


def _print(checks: List[Check], as_json: bool) -> None:
    if as_json:
        emit_json([c.as_dict() for c in checks], indent=2)
        return
    width = max(len(c.name) for c in checks)
    for check in checks:
        emit_line(f"{check.status:<4}  {check.name:<{width}}  {check.message}")


def _connect(args: argparse.Namespace, checks: List[Check]) -> Optional[Any]:
    where = ", ".join(args.endpoints)
    try:
        registry = open_registry(args)
    except RegistryUnavailableError as exc:
        checks.append(Check("connect", "fail", str(exc), {"endpoints": list(args.endpoints)}))
        return None
    except AuthenticationError as exc:
        checks.append(Check("connect", "ok", f"etcd answered at {where}", {"endpoints": list(args.endpoints)}))
        reason = (f"etcd rejected the credentials of {args.user!r}" if args.user
                  else "etcd asks for credentials (--user, $FYERREG_USER)")
        checks.append(Check("auth", "fail", f"{reason}: {exc}", {"user": args.user}))
        return None
    except PermissionDeniedError as exc:
        checks.append(Check("connect", "ok", f"etcd answered at {where}", {"endpoints": list(args.endpoints)}))
        checks.append(Check("auth", "fail", f"{args.user or 'this client'} may not read namespace "
                                            f"{args.namespace!r}: {exc}", {"user": args.user}))
        return None
    except CommandError as exc:
        if exc.code == EXIT_USAGE:
            raise
        checks.append(Check("connect", "fail", str(exc), {"endpoints": list(args.endpoints)}))
        return None
    from ..registry.etcd.admin import current_endpoint

    netloc, secure = current_endpoint(registry)
    checks.append(Check("connect", "ok", f"etcd answered at {netloc}{' over TLS' if secure else ''}",
                        {"endpoint": netloc, "tls": secure}))
    root = registry._layout.root
    if args.user:
        checks.append(Check("auth", "ok", f"authenticated as {args.user!r}; may read {root!r}",
                            {"user": args.user}))
    else:
        checks.append(Check("auth", "ok", f"no credentials given, none asked for; may read {root!r}",
                            {"user": None}))
    return registry


def _namespace(registry: Any, args: argparse.Namespace, checks: List[Check]) -> None:
    from ..registry.etcd.admin import count_records, scan_namespace

    layout = registry._layout
    scan = scan_namespace(registry, timeout=args.dial_timeout)
    services = sorted({r.instance.service for r in scan.records})
    details: Dict[str, Any] = {"layout": layout.name, "root": layout.root, "records": len(scan.records),
                               "services": services}
    if scan.records:
        summary = f"{_count(len(scan.records), 'record')} of {_count(len(services), 'service')}"
        checks.append(Check("namespace", "ok", f"{summary} under {layout.root!r} (layout {layout.name})", details))
    else:
        elsewhere: Dict[str, int] = {}
        for name, factory in sorted(LAYOUTS.items()):
            other = factory(args.namespace)
            if name == layout.name or other.root in ("", layout.root):
                continue  # a layout at the top of the keyspace would mean reading all of etcd
            found = count_records(registry, other, timeout=args.dial_timeout)
            if found:
                elsewhere[name] = found
        details["other_layouts"] = elsewhere
        hint = "; ".join(f"{_count(n, 'record')} read as layout {name} (--layout {name})"
                         for name, n in elsewhere.items())
        checks.append(Check("namespace", "warn", f"no records under {layout.root!r} (layout {layout.name})"
                            + (f"; {hint}" if hint else ""), details))
    unleased = [r.key for r in scan.records if not r.lease_id]
    record_details: Dict[str, Any] = {"invalid": [{"key": k, "error": why} for k, why in scan.invalid],
                                      "without_lease": unleased}
    problems = []
    if scan.invalid:
        shown = "; ".join(f"{key} ({why})" for key, why in scan.invalid[:_SHOWN_INVALID])
        more = f" and {len(scan.invalid) - _SHOWN_INVALID} more" if len(scan.invalid) > _SHOWN_INVALID else ""
        problems.append(f"{_count(len(scan.invalid), 'key')} not a valid record: {shown}{more}")
    if unleased:
        problems.append(f"{_count(len(unleased), 'record')} bound to no lease, never expiring "
                        f"(e.g. {unleased[0]})")
    if problems:
        checks.append(Check("records", "warn", "; ".join(problems), record_details))
    else:
        checks.append(Check("records", "ok", f"every key under {layout.root!r} is a valid record bound to a lease",
                            record_details))


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _clock(registry: Any, args: argparse.Namespace, checks: List[Check]) -> None:
    from ..registry.etcd.admin import current_endpoint

    netloc, secure = current_endpoint(registry)
    try:
        clock = read_server_clock(netloc, secure=secure, tls=registry.options.tls, timeout=args.dial_timeout)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        checks.append(Check("clock", "warn", f"could not read etcd's clock from GET /version at {netloc} ({exc}); "
                            "etcd's gRPC API carries no time, so the skew is unknown", {"skew": None}))
        return
    low, high = skew_bounds(clock)
    details = {"skew_low": round(low, 3), "skew_high": round(high, 3), "etcd_version": clock.version}
    version = f"etcd {clock.version}: " if clock.version else ""
    if low <= 0.0 <= high:
        checks.append(Check("clock", "ok", f"{version}etcd's clock agrees with this host's to within "
                            f"{high - low:.1f} s (etcd gives whole seconds)", details))
        return
    skew = low if low > 0 else high  # the smallest skew consistent with what was measured
    where = "ahead of" if skew > 0 else "behind"
    status = "warn" if abs(skew) >= SKEW_WARN_SECONDS else "ok"
    checks.append(Check("clock", status, f"{version}etcd's clock is at least {abs(skew):.1f} s {where} this host's",
                        details))


def _lease_ttl(registry: Any, args: argparse.Namespace, checks: List[Check]) -> None:
    from ..registry.etcd.admin import granted_ttl

    ttl = args.ttl if args.ttl is not None else registry.options.ttl
    minimum = granted_ttl(registry, 1, timeout=args.dial_timeout)  # etcd raises it to its minimum
    details = {"ttl": ttl, "etcd_minimum": minimum}
    if ttl < minimum:
        checks.append(Check("lease-ttl", "fail", f"ttl {ttl} s is below etcd's minimum lease TTL of {minimum} s "
                            "(1.5 x its election timeout): etcd grants the minimum instead", details))
    elif ttl < SHORT_TTL_SECONDS:
        checks.append(Check("lease-ttl", "warn", f"ttl {ttl} s: a heartbeat every {ttl / 3:.1f} s leaves no room for "
                            "one slow etcd answer; the lease may be lost under load", details))
    else:
        checks.append(Check("lease-ttl", "ok", f"ttl {ttl} s (etcd's minimum {minimum} s): a heartbeat every "
                            f"{ttl / 3:.1f} s; a crashed instance stays listed up to {ttl} s", details))
