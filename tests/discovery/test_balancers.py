"""Balancers on plain instance lists: distributions, smoothness, remapping, state carried across changes."""

from __future__ import annotations

import collections
import random
import warnings
from typing import Counter, List, Optional, Sequence

import pytest

from fyerreg import Balancer, Discovery, Instance, MemoryRegistry, register_balancer
from fyerreg.discovery import (
    ConsistentHashBalancer,
    FastestBalancer,
    LeastRequestsBalancer,
    P2CBalancer,
    RandomBalancer,
    RoundRobinBalancer,
    WeightedRandomBalancer,
    WeightedRoundRobinBalancer,
    balancer_names,
    make_balancer,
)
from fyerreg.discovery.balancer import base as balancer_base

from .util import FakeClock, inst, insts

PICKS = 10_000


def counts(balancer: Balancer, picks: int = PICKS, key: Optional[str] = None) -> Counter[str]:
    return collections.Counter(balancer.select(key).id for _ in range(picks))


def test_every_documented_balancer_is_registered() -> None:
    assert balancer_names() == sorted([
        "random", "round_robin", "weighted_random", "weighted_round_robin",
        "least_requests", "p2c", "consistent_hash", "fastest",
    ])


def test_unknown_balancer_name_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match=r"unknown balancer 'nope'.*round_robin"):
        make_balancer("nope")


def test_custom_balancer_by_name_and_template_instance_is_cloned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(balancer_base, "_REGISTRY", dict(balancer_base._REGISTRY))
    class First(Balancer):
        def update(self, instances: Sequence[Instance]) -> None:
            self.items = list(instances)

        def select(self, key: Optional[str] = None) -> Instance:
            return self.items[0]

    register_balancer("first-test", First)
    made = make_balancer("first-test")
    made.update(insts(3))
    assert made.select().id == "i000"
    template = First()
    clone = make_balancer(template)
    assert clone is not template and isinstance(clone, First)



@pytest.mark.parametrize("name", balancer_names())
def test_every_builtin_balancer_works_as_a_template(name: str) -> None:
    template = make_balancer(name)
    clone = make_balancer(template)
    assert clone is not template and type(clone) is type(template)
    clone.update(insts(3))
    assert clone.select("k").id in {"i000", "i001", "i002"}
    template.update(insts(2))  # the template stays usable and separate from its clone
    assert template.select("k").id in {"i000", "i001"}


@pytest.mark.parametrize("name", balancer_names())
def test_cloning_a_used_builtin_balancer_warns_of_nothing(name: str) -> None:
    # Deep-copying an itertools.count warns on Python 3.12 and 3.13 and fails on 3.14.
    template = make_balancer(name)
    template.update(insts(3))
    template.select("k")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clone = template.clone()
        clone.update(insts(3))
        assert clone.select("k").id in {"i000", "i001", "i002"}


def test_round_robin_clones_keep_counters_of_their_own() -> None:
    template = RoundRobinBalancer()
    first, second = template.clone(), template.clone()
    for balancer in (template, first, second):
        balancer.update(insts(4))
    seen: dict = {"first": [], "second": []}
    for _ in range(8):
        seen["first"].append(int(first.select().id[1:]))
        template.select()
        seen["second"].append(int(second.select().id[1:]))
        second.select()
    start = seen["first"][0]
    assert seen["first"] == [(start + k) % 4 for k in range(8)]
    start = seen["second"][0]
    assert seen["second"] == [(start + 2 * k) % 4 for k in range(8)]


def test_a_clone_starts_without_the_in_flight_counts_of_its_template() -> None:
    template = LeastRequestsBalancer(rng=random.Random(5))
    template.update(insts(2))
    for _ in range(3):
        template.begin(inst(0))
    clone = template.clone()
    clone.update(insts(2))
    assert set(counts(clone, picks=200)) == {"i000", "i001"}
    assert set(counts(template, picks=200)) == {"i001"}


def test_a_clone_starts_without_the_latencies_of_its_template() -> None:
    template = FastestBalancer(rng=random.Random(5))
    template.update(insts(2))
    for _ in range(5):
        template.observe(inst(0), 1.0, failed=False)
        template.observe(inst(1), 0.01, failed=False)
    clone = template.clone()
    clone.update(insts(2))
    assert clone.share(inst(0)) == pytest.approx(0.5)
    assert template.share(inst(0)) < 0.2


def test_clones_of_a_seeded_balancer_repeat_its_sequence_and_unseeded_ones_do_not() -> None:
    seeded = RandomBalancer(rng=random.Random(11))
    first, second = seeded.clone(), seeded.clone()
    first.update(insts(50))
    second.update(insts(50))
    assert [first.select().id for _ in range(20)] == [second.select().id for _ in range(20)]
    unseeded = RandomBalancer()
    first, second = unseeded.clone(), unseeded.clone()
    first.update(insts(50))
    second.update(insts(50))
    assert [first.select().id for _ in range(20)] != [second.select().id for _ in range(20)]


def test_a_round_robin_template_gives_each_service_its_own_rotation() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with MemoryRegistry() as registry, Discovery(registry, balancer=RoundRobinBalancer()) as discovery:
            for n in range(3):
                registry.register(inst(n, service="a"))
                registry.register(inst(n, service="b"))
            for service in ("a", "b"):
                seq = [int(discovery.select(service, "1.0.0").id[1:]) for _ in range(6)]
                assert seq == [(seq[0] + k) % 3 for k in range(6)], (service, seq)


def test_discovery_takes_a_configured_balancer_instance_as_the_readme_shows() -> None:
    with MemoryRegistry() as registry, Discovery(registry, balancer=P2CBalancer(alpha=0.5)) as discovery:
        registry.register(inst(0))
        assert discovery.select(inst(0).service, inst(0).version).id == "i000"

def test_random_is_uniform() -> None:
    b = RandomBalancer(rng=random.Random(1))
    b.update(insts(10))
    c = counts(b)
    assert set(c) == {f"i{n:03d}" for n in range(10)}
    assert all(850 <= v <= 1150 for v in c.values()), c


def test_round_robin_is_exact_and_cycles_in_order() -> None:
    b = RoundRobinBalancer()
    b.update(insts(5))
    seq = [b.select().id for _ in range(50)]
    assert collections.Counter(seq) == {f"i{n:03d}": 10 for n in range(5)}
    start = int(seq[0][1:])
    assert seq[:5] == [f"i{(start + k) % 5:03d}" for k in range(5)]


def test_round_robin_position_survives_a_change() -> None:
    b = RoundRobinBalancer()
    b.update(insts(5))
    while b.select().id != "i001":
        pass
    # i002 is next; a new instance and the removal of i000 do not move the cursor.
    b.update([inst(n) for n in (1, 2, 3, 4, 7)])
    assert [b.select().id for _ in range(3)] == ["i002", "i003", "i004"]
    # The next instance leaves: the one after it comes next.
    b.update([inst(n) for n in (1, 2, 3, 4)])
    assert b.select().id == "i001"


def test_weighted_random_follows_weights_within_two_percent() -> None:
    weights = [10, 20, 30, 40]
    b = WeightedRandomBalancer(rng=random.Random(7))
    b.update([inst(n, weight=w) for n, w in enumerate(weights)])
    c = counts(b)
    for n, w in enumerate(weights):
        assert abs(c[f"i{n:03d}"] / PICKS - w / 100) < 0.02, c


def nginx_smooth_wrr(weights: List[int], picks: int) -> List[int]:
    """The reference algorithm, to compare smoothness with."""
    current = [0] * len(weights)
    total = sum(weights)
    out = []
    for _ in range(picks):
        for i, w in enumerate(weights):
            current[i] += w
        best = max(range(len(weights)), key=lambda i: current[i])
        current[best] -= total
        out.append(best)
    return out


def max_lag(seq: List[int], weights: List[int]) -> float:
    """The largest gap, over every prefix, between an instance's picks and its ideal share."""
    total = sum(weights)
    seen = [0] * len(weights)
    worst = 0.0
    for t, i in enumerate(seq, 1):
        seen[i] += 1
        worst = max(worst, max(abs(seen[j] - w * t / total) for j, w in enumerate(weights)))
    return worst


@pytest.mark.parametrize("exact_limit, bound", [(32, 1.0), (1, 1.5)])
@pytest.mark.parametrize("weights", [[5, 1, 1], [1, 1, 1, 1], [3, 7, 11, 1, 2], [100, 50, 25, 1], [2, 3, 2, 3, 5]])
def test_smooth_wrr_is_exact_over_one_period_without_bursts(weights: List[int], exact_limit: int, bound: float) -> None:
    b = WeightedRoundRobinBalancer(exact_limit=exact_limit)
    b.update([inst(n, weight=w) for n, w in enumerate(weights)])
    period = sum(weights)
    for _ in range(3):  # every period, not just the first
        seq = [int(b.select().id[1:]) for _ in range(period)]
        assert collections.Counter(seq) == {n: w for n, w in enumerate(weights)}
        # Smooth: every instance within about one pick of its ideal share at all times
        # (nginx's own algorithm, per instance, stays under 1 too).
        assert max_lag(seq, weights) < bound
    assert max_lag(nginx_smooth_wrr(weights, period), weights) < 1.0


def test_smooth_wrr_is_exact_with_many_distinct_weights() -> None:
    weights = [1 + (n * 7) % 40 for n in range(200)]
    b = WeightedRoundRobinBalancer()
    b.update([inst(n, weight=w) for n, w in enumerate(weights)])
    seq = [int(b.select().id[1:]) for _ in range(sum(weights))]
    assert collections.Counter(seq) == {n: w for n, w in enumerate(weights)}
    assert max_lag(seq, weights) < 1.5


def test_smooth_wrr_interleaves_a_heavy_instance() -> None:
    b = WeightedRoundRobinBalancer()
    b.update([inst(0, weight=5), inst(1, weight=1), inst(2, weight=1)])
    seq = "".join(b.select().id[-1] for _ in range(7))
    assert seq.count("0") == 5 and "000" * 2 not in seq and "0000" not in seq


def test_smooth_wrr_keeps_schedule_for_remaining_instances() -> None:
    b = WeightedRoundRobinBalancer()
    b.update([inst(0, weight=2), inst(1, weight=1)])
    for _ in range(30):
        b.select()
    b.update([inst(0, weight=2), inst(1, weight=1), inst(2, weight=1)])
    c = counts(b, 400)
    assert c == {"i000": 200, "i001": 100, "i002": 100}


def test_least_requests_picks_fewest_in_flight_with_random_tie_break() -> None:
    b = LeastRequestsBalancer(rng=random.Random(3))
    pool = insts(4)
    b.update(pool)
    for _ in range(2):
        b.begin(pool[0])
    b.begin(pool[1])
    b.begin(pool[2])
    assert counts(b, 200) == {"i003": 200}
    b.begin(pool[3])
    assert set(counts(b, 400)) == {"i001", "i002", "i003"}
    b.finish(pool[0])
    b.finish(pool[0])
    assert counts(b, 100) == {"i000": 100}


def test_least_requests_keeps_in_flight_counts_across_a_change() -> None:
    b = LeastRequestsBalancer()
    pool = insts(3)
    b.update(pool)
    b.begin(pool[0])
    b.update(insts(4))
    assert b.in_flight(pool[0]) == 1
    assert "i000" not in counts(b, 300)


def test_p2c_avoids_slow_and_busy_instances() -> None:
    clock = FakeClock()
    b = P2CBalancer(rng=random.Random(5), clock=clock)
    pool = insts(5)
    b.update(pool)
    for i, latency in enumerate([0.010, 0.011, 0.012, 0.013, 0.500]):
        b.observe(pool[i], latency, False)
    assert "i004" not in counts(b, 2000)
    # Many calls in flight make the fastest instance the most loaded.
    for _ in range(100):
        b.begin(pool[0])
    assert "i000" not in counts(b, 2000)


def test_p2c_probes_an_instance_that_kept_losing() -> None:
    clock = FakeClock()
    b = P2CBalancer(rng=random.Random(5), clock=clock, probe_after=3.0)
    pool = insts(3)
    b.update(pool)
    for i, latency in enumerate([0.010, 0.010, 0.500]):
        b.observe(pool[i], latency, False)
    assert "i002" not in counts(b, 500)
    clock.advance(3.5)
    assert counts(b, 500)["i002"] == 1  # one probe, then it loses again


def test_p2c_keeps_latency_and_in_flight_across_a_change_and_scores_newcomers_at_the_mean() -> None:
    b = P2CBalancer()
    pool = insts(3)
    b.update(pool)
    b.observe(pool[0], 0.1, False)
    b.observe(pool[1], 0.3, False)
    b.begin(pool[0])
    b.update(insts(4))
    assert b.load(pool[0]) == pytest.approx(0.1 * 2)
    assert b.load(inst(3)) == pytest.approx(0.2)  # mean of the measured ones, not 0: no stampede


def test_p2c_failures_raise_the_load() -> None:
    b = P2CBalancer()
    pool = insts(2)
    b.update(pool)
    b.observe(pool[0], 0.01, False)
    b.observe(pool[1], 0.01, False)
    for _ in range(5):
        b.observe(pool[1], 0.01, True)
    assert (b.load(pool[1]) or 0) > 5 * (b.load(pool[0]) or 0)


def test_consistent_hash_needs_a_key() -> None:
    b = ConsistentHashBalancer()
    b.update(insts(3))
    with pytest.raises(ValueError, match="key"):
        b.select()


def test_consistent_hash_is_sticky_and_spreads_keys() -> None:
    b = ConsistentHashBalancer()
    b.update(insts(10))
    keys = [f"user-{k}" for k in range(PICKS)]
    first = [b.select(k).id for k in keys]
    assert first == [b.select(k).id for k in keys]
    spread = collections.Counter(first)
    assert len(spread) == 10 and all(500 <= v <= 1600 for v in spread.values()), spread


@pytest.mark.parametrize("n", [10, 50])
def test_consistent_hash_moves_about_one_nth_of_keys_on_join_and_leave(n: int) -> None:
    b = ConsistentHashBalancer()
    pool = insts(n + 1)
    b.update(pool[:n])
    keys = [f"key-{k}" for k in range(PICKS)]
    before = {k: b.select(k).id for k in keys}
    b.update(pool)  # one joins
    after = {k: b.select(k).id for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert all(after[k] == pool[n].id for k in moved)  # keys only move to the newcomer
    assert len(moved) <= 2 * PICKS / (n + 1), len(moved)
    b.update(pool[1:])  # another leaves
    again = {k: b.select(k).id for k in keys}
    moved = [k for k in keys if after[k] != again[k]]
    assert all(after[k] == pool[0].id for k in moved)  # only the leaver's keys move
    assert len(moved) <= 2 * PICKS / (n + 1), len(moved)


def test_consistent_hash_weight_scales_share() -> None:
    b = ConsistentHashBalancer()
    b.update([inst(0, weight=300), inst(1, weight=100)])
    c = counts_by_key(b)
    assert 0.6 < c["i000"] / PICKS < 0.9, c


def counts_by_key(b: Balancer) -> Counter[str]:
    return collections.Counter(b.select(f"k{k}").id for k in range(PICKS))


def shares(b: FastestBalancer, pool: List[Instance]) -> List[float]:
    return [b.share(i) for i in pool]


def test_fastest_prefers_fast_but_never_gives_one_instance_everything() -> None:
    b = FastestBalancer(rng=random.Random(2))
    pool = insts(5)
    b.update(pool)
    for i, latency in enumerate([0.001, 1.0, 1.0, 1.0, 1.0]):
        b.observe(pool[i], latency, False)
    s = shares(b, pool)
    assert s[0] == pytest.approx(10 / 14)  # at most max_ratio (10x) the share of any other
    assert all(x == pytest.approx(1 / 14) for x in s[1:])
    c = counts(b)
    assert 0.68 < c["i000"] / PICKS < 0.75 and all(c[i.id] > 500 for i in pool[1:]), c


def test_fastest_does_not_starve_a_new_instance() -> None:
    b = FastestBalancer(rng=random.Random(4))
    pool = insts(4)
    b.update(pool[:3])
    for i, latency in enumerate([0.010, 0.020, 0.040]):
        b.observe(pool[i], latency, False)
    b.update(pool)
    s = shares(b, pool)
    assert s[3] == pytest.approx(s[0])  # untried counts as fast as the fastest
    assert counts(b)["i003"] > 0.3 * PICKS


@pytest.mark.parametrize("name", ["random", "round_robin", "weighted_random", "weighted_round_robin",
                                  "least_requests", "p2c", "fastest"])
def test_every_balancer_only_returns_candidates(name: str) -> None:
    b = make_balancer(name)
    b.update(insts(7))
    b.update(insts(3))
    assert set(counts(b, 300)) <= {"i000", "i001", "i002"}
