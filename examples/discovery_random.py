"""Random balancers: random (uniform) and weighted_random (in proportion to weight)."""

from collections import Counter

from fyerreg import Discovery, Instance, MemoryRegistry

with MemoryRegistry() as registry:
    registry.register(Instance.new("greeter", "v1", "127.0.0.1:8001", id="a", weight=400))
    registry.register(Instance.new("greeter", "v1", "127.0.0.1:8002", id="b", weight=100))

    for balancer in ("random", "weighted_random"):
        with Discovery(registry, balancer=balancer) as discovery:
            counts = Counter(discovery.select("greeter", "v1").id for _ in range(10_000))
            print(f"{balancer}: share of a ~ {round(counts['a'] / 10_000, 1)}")
