"""9. Time to subscribe to 1 000 services.

1 000 services hold one record each (written straight into etcd). A fresh process
connects, then times ``EtcdRegistry.subscribe(service)`` for each service in turn,
each until its first snapshot is out of the subscription (the subscription reads the
service, then its own thread watches from that read's revision + 1). Baseline, in the
same process: a raw python-etcd3 client reading and watching the same prefixes in
turn (``get_prefix`` then ``add_watch_prefix_callback`` each; the latter returns once
etcd created the watch). The two alternate round by round (raw first, then fyerreg
first), each on a new client. "every watch in etcd" is the time until etcd's own
gauge ``etcd_debugging_mvcc_watcher_total`` counts all of them (polled every 20 ms).
A last fyerreg round runs under cProfile, to show where a subscription's time goes.
"""

from __future__ import annotations

import statistics
from typing import Any, Dict

from . import _scale_worker
from ._worker import run_child
from .context import PENDING_ETCD, Context, fleet
from .report import Row, Section, markdown_table

GOAL = 2.0


def run(ctx: Context) -> Section:
    section = Section("subscribe", "Time to subscribe to many services", __doc__ or "")
    if not ctx.has_etcd_backend:
        section.pending = PENDING_ETCD
        return section
    services = ctx.profile.many_services
    namespace = ctx.namespace("many")
    ctx.fill(namespace, [inst for n in range(services) for inst in fleet(_scale_worker.SERVICE.format(n), 1)])
    try:
        result, error = run_child(_scale_worker.subscribe_many, ctx.endpoints, namespace, services,
                                  ctx.profile.many_rounds, ctx.metrics_url,
                                  timeout=60.0 + ctx.profile.many_rounds * (30.0 + services * 0.05))
    finally:
        ctx.wipe(namespace)
    if error:
        raise RuntimeError(error)
    data: Dict[str, Any] = dict(result)
    profile = data.pop("profile", [])
    section.data = {"services": services, **data, "profile": profile}
    ctx.log(f"subscribe to {services}: fyerreg {data['fyerreg']}, raw {data['raw']}")
    ours, raw = statistics.median(data["fyerreg"]), statistics.median(data["raw"])
    section.add(Row(f"subscribe to {services:,} services", ours, raw, "s", f"<= {GOAL:g}x raw", ours <= GOAL * raw,
                    "raw get_prefix + watch each"))
    watching: Dict[str, Any] = {k: statistics.median(data[f"{k}_watching"]) if data[f"{k}_watching"] else None
                                for k in ("fyerreg", "raw")}
    if watching["fyerreg"] is not None:
        section.add(Row(f"... until etcd counts every watch ({services:,})", watching["fyerreg"], watching["raw"], "s",
                        baseline_name="raw"))
    rows = [[name, str(len(data[name])), f"{statistics.median(data[name]):.3f}", f"{min(data[name]):.3f}",
             f"{max(data[name]):.3f}", f"{watching[name]:.3f}" if watching[name] is not None else "-",
             f"{statistics.median(data[name]) / services * 1e3:.2f}"]
            for name in ("fyerreg", "raw")]
    section.details.append(markdown_table(
        ["client", "rounds", "median s", "min s", "max s", "every watch in etcd s", "ms per service"], rows))
    if profile:
        section.details.append(
            "Where each ``subscribe`` spends its time (one more fyerreg round under cProfile, which slows "
            "everything; the calls ``subscribe`` makes, by cumulative time per service):\n\n" + markdown_table(
                ["call", "ms per service", "share"],
                [[name, f"{seconds * 1e3:.3f}", f"{seconds / profile[0][1] * 100:.0f} %"]
                 for name, seconds in profile]))
    if section.missed:
        section.notes.append(
            f"**What bounds it.** fyerreg took {ours / services * 1e3:.2f} ms per service, raw "
            f"{raw / services * 1e3:.2f} ms. Both read the service and wait until etcd created its watch "
            "(``load`` and ``wait_connected`` above: the two round trips the raw baseline makes too, through "
            "fyerreg's call machinery); fyerreg also starts the subscription's own watch thread (``start``: "
            "the design gives each subscription a thread, and starting one means waiting until it runs), "
            "which the raw baseline, one callback thread for every watch, does not.")
    return section
