"""PNG plots of each benchmark's section data (matplotlib, headless)."""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List

from .report import Section

FYERREG = "#1f77b4"
BASELINE = "#d62728"
OTHER = "#7f7f7f"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw(section: Section, plot_dir: str) -> List[str]:
    """Draw the plots of ``section`` into ``plot_dir``; return their file names."""
    drawer = _DRAWERS.get(section.key)
    if drawer is None or not section.data:
        return []
    plt = _pyplot()
    fig = drawer(plt, section.data)
    if fig is None:
        return []
    name = f"{section.key}.png"
    fig.tight_layout()
    fig.savefig(os.path.join(plot_dir, name), dpi=110)
    plt.close(fig)
    return [name]


def _propagation(plt: Any, data: Dict[str, Any]) -> Any:
    latency = data["latency"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    styles = {"floor": (BASELINE, "raw put -> watch callback (floor)"), "register": (FYERREG, "register()"),
              "update": ("#2ca02c", "update_service()"), "deregister": ("#9467bd", "deregister()")}
    top = 0.0
    for kind, (color, label) in styles.items():
        values = sorted(v * 1e3 for v in latency.get(kind, []))
        if not values:
            continue
        n = len(values)
        ax.plot(values, [(i + 1) / n for i in range(n)], color=color, label=f"{label} (n={n})",
                linewidth=2.2 if kind == "floor" else 1.6)
        top = max(top, values[min(n - 1, int(n * 0.995))])
    ax.set_xlim(0, top * 1.05 or 1)
    ax.set_xlabel("change -> snapshot in the subscriber's process (ms)")
    ax.set_ylabel("fraction of changes")
    ax.set_title("Propagation latency across processes (CDF)")
    ax.axhline(0.5, color=OTHER, linewidth=0.6, linestyle=":")
    ax.axhline(0.99, color=OTHER, linewidth=0.6, linestyle=":")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def _churn(plt: Any, data: Dict[str, Any]) -> Any:
    results = data["ops_per_second"]
    threads = sorted(int(t) for t in results["raw"])
    fig, ax = plt.subplots(figsize=(7, 4.2))
    x = list(range(len(threads)))
    width = 0.38
    ax.bar([i - width / 2 for i in x], [results["raw"][t] for t in threads], width, color=BASELINE,
           label="raw lease grant + put + delete + revoke")
    if results["fyerreg"]:
        ax.bar([i + width / 2 for i in x], [results["fyerreg"].get(t, 0) for t in threads], width, color=FYERREG,
               label="fyerreg register + deregister")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{t} thread{'s' if t > 1 else ''}" for t in threads])
    ax.set_ylabel("operations per second")
    ax.set_title("Churn throughput (higher is better)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left")
    return fig


def _subscriber(plt: Any, data: Dict[str, Any]) -> Any:
    from .stats import summary

    per_size = data["per_size"]
    sizes = sorted(int(n) for n in per_size)
    fig, ax = plt.subplots(figsize=(7, 4.5))

    def series(kind: str, field: str = "samples") -> List[float]:
        return [summary(per_size[str(n)][kind][field])["p50"] * 1e3 for n in sizes]

    ax.plot(sizes, series("go"), "o-", color=BASELINE, label="Go design: re-read the prefix per event")
    ax.plot(sizes, series("go", "fetch"), "x--", color=OTHER, label="Go design, get_prefix alone")
    if all("fyerreg" in per_size[str(n)] for n in sizes):
        ax.plot(sizes, series("fyerreg"), "o-", color=FYERREG, label="fyerreg subscription")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("instances in the service (N)")
    ax.set_ylabel("change -> snapshot in queue, p50 (ms)")
    ax.set_title("Subscriber cost per change vs. service size")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left")
    return fig


def _select(plt: Any, data: Dict[str, Any]) -> Any:
    per_size = data["per_size"]
    sizes = sorted(int(n) for n in per_size)
    names = list(per_size[str(sizes[0])]["discovery"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    width = 0.8 / len(sizes)
    colors = ["#9ecae1", "#4292c6", "#08519c", "#08306b"]
    for ax, mode, title in ((axes[0], "1", "1 thread"), (axes[1], "threads", f"{data['threads']} threads")):
        for j, n in enumerate(sizes):
            entry = per_size[str(n)]
            xs = [i + (j - (len(sizes) - 1) / 2) * width for i in range(len(names) + 1)]
            values = [entry["floor"][mode] * 1e6] + [entry["discovery"][name][mode] * 1e6 for name in names]
            ax.bar(xs, values, width, color=colors[j % len(colors)], label=f"N={n:,}")
        ax.set_xticks(range(len(names) + 1))
        ax.set_xticklabels(["random.choice\n(floor)", *names], rotation=35, ha="right", fontsize=8)
        ax.set_title(f"Discovery.select(), {title}")
        ax.axhline(20, color=BASELINE, linestyle="--", linewidth=1)
        ax.text(len(names), 20, "20 µs goal", color=BASELINE, ha="right", va="bottom", fontsize=8)
        ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3, which="both")
    axes[0].set_ylabel("µs per call (log)")
    axes[0].legend(loc="upper left", fontsize=8)
    return fig


def _footprint(plt: Any, data: Dict[str, Any]) -> Any:
    from .footprint import _per_item

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, kind, label in ((axes[0], "instances", "registered instances"),
                            (axes[1], "subscriptions", "subscriptions")):
        for source, color, name in ((f"raw_{kind}", BASELINE, "raw python-etcd3"), (kind, FYERREG, "fyerreg")):
            if not data.get(source):
                continue
            points = _per_item(data[source])
            counts = [p[0] for p in points]
            ax.plot(counts, [p[1] for p in points], "o-", color=color, label=f"{name}: KiB each")
            ax.plot(counts, [p[2] * 10 for p in points], "s:", color=color, label=f"{name}: threads each x10")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_title(f"Memory and threads per {label.split()[-1][:-1]}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return fig


def _failure(plt: Any, data: Dict[str, Any]) -> Any:
    removal = data.get("sigkill_removal")
    if not removal:
        return None
    ttls = sorted(int(t) for t in removal)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for ttl in ttls:
        ax.plot([ttl] * len(removal[str(ttl)]), removal[str(ttl)], "o", color=FYERREG, alpha=0.7)
    span = [0, max(ttls) * 1.1]
    ax.plot(span, span, "--", color=BASELINE, label="ttl (the bound)")
    ax.plot(span, [s * 2 / 3 for s in span], ":", color=OTHER, label="2/3 ttl (refresh period)")
    ax.set_xlabel("lease ttl (s)")
    ax.set_ylabel("SIGKILL -> gone from subscriber (s)")
    ax.set_title("Removal of a killed process's instances")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    return fig


def _calls(plt: Any, data: Dict[str, Any]) -> Any:
    return _call_bars(plt, data, {"fyerreg": "api.Client.call", "direct": "http.client (floor)"}, "direct")


def _httpx(plt: Any, data: Dict[str, Any]) -> Any:
    return _call_bars(plt, data, {"transport": "DiscoveryTransport", "plain": "plain httpx (floor)"}, "plain")


def _call_bars(plt: Any, data: Dict[str, Any], names_shown: Dict[str, str], floor: str) -> Any:
    if not data.get("latency"):
        return None
    from .stats import summary

    latency = data["latency"]
    names = list(latency)
    labels = [names_shown.get(n, n) for n in names]
    colors = [BASELINE if n == floor else FYERREG for n in names]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    p50 = [summary(latency[n])["p50"] * 1e3 for n in names]
    p99 = [summary(latency[n])["p99"] * 1e3 for n in names]
    x = list(range(len(names)))
    axes[0].bar([i - 0.2 for i in x], p50, 0.4, color=FYERREG, label="p50")
    axes[0].bar([i + 0.2 for i in x], p99, 0.4, color=OTHER, label="p99")
    axes[0].set_xticks(x)
    axes[0].set_xticklabels(labels, fontsize=8)
    axes[0].set_ylabel("ms per call")
    axes[0].set_title("Call latency")
    axes[0].legend()
    throughput = data.get("throughput", {})
    axes[1].bar(range(len(names)), [throughput.get(n, 0) for n in names], color=colors)
    axes[1].set_xticks(range(len(names)))
    axes[1].set_xticklabels(labels, fontsize=8)
    axes[1].set_ylabel("calls per second")
    axes[1].set_title("Throughput, 8 threads (higher is better)")
    for ax in axes:
        ax.grid(axis="y", alpha=0.3)
    return fig


def _idle(plt: Any, data: Dict[str, Any]) -> Any:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, kind in zip(axes, ("subscriptions", "registrations")):
        for source, color, name in (("raw", BASELINE, "raw python-etcd3"), ("fyerreg", FYERREG, "fyerreg")):
            series = data.get(kind, {}).get(source)
            if not series:
                continue
            counts = [count for count, _ in series["points"]]
            ax.plot(counts, [point["cpu"] * 100 for _, point in series["points"]], "o-", color=color,
                    label=f"{name}: this process")
            ax.plot(counts, [point["etcd_cpu"] * 100 for _, point in series["points"]], "s:", color=color,
                    label=f"{name}: etcd")
        goal = 1.0 if kind == "subscriptions" else 2.0
        ax.axhline(goal, color=OTHER, linestyle="--", linewidth=1, label=f"goal at 1,000: {goal:g} % (this process)")
        ax.set_xscale("log")
        ax.set_xlabel(f"idle {kind} held")
        ax.set_ylabel("CPU, % of one core")
        ax.set_title(f"Idle cost of {kind}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper left")
    return fig


def _cdf(ax: Any, values: List[float], color: str, label: str) -> float:
    ordered = sorted(v * 1e3 for v in values)
    n = len(ordered)
    ax.plot(ordered, [(i + 1) / n for i in range(n)], color=color, label=f"{label} (n={n})", linewidth=1.8)
    return ordered[min(n - 1, int(n * 0.99))] if n else 0.0


def _crowded(plt: Any, data: Dict[str, Any]) -> Any:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    top = max(_cdf(ax, data["latency"]["none"], BASELINE, "register, no other subscriptions"),
              _cdf(ax, data["latency"]["many"], FYERREG, f"register, {data['others']:,} others open"))
    ax.set_xlim(0, top * 1.1 or 1)
    ax.set_xlabel("register -> snapshot in the subscriber's process (ms)")
    ax.set_ylabel("fraction of changes")
    ax.set_title("Propagation with many other subscriptions open (CDF)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def _fanout(plt: Any, data: Dict[str, Any]) -> Any:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    top = 0.0
    for path, color, label in (("direct", BASELINE, "direct to etcd"), ("proxy", FYERREG, "through grpc-proxy")):
        top = max(top, _cdf(ax, data["last"][path], color, f"last of {data['processes']}, {label}"))
        _cdf(ax, data["first"][path], "#f4a582" if path == "direct" else "#9ecae1", f"first, {label}")
    ax.set_xlim(0, top * 1.1 or 1)
    ax.set_xlabel("change -> seen by the first / the last subscriber process (ms)")
    ax.set_ylabel("fraction of changes")
    ax.set_title(f"Fan-out to {data['processes']} subscriber processes (CDF)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


_DRAWERS: Dict[str, Callable[[Any, Dict[str, Any]], Any]] = {
    "propagation": _propagation,
    "churn": _churn,
    "subscriber": _subscriber,
    "select": _select,
    "footprint": _footprint,
    "failure": _failure,
    "calls": _calls,
    "httpx": _httpx,
    "idle": _idle,
    "crowded": _crowded,
    "fanout": _fanout,
}
