"""Rotation balancers: round_robin (each in turn) and weighted_round_robin (in proportion, smoothly)."""

from collections import Counter

from fyerreg import Discovery, Instance, MemoryRegistry

with MemoryRegistry() as registry:
    registry.register(Instance.new("greeter", "v1", "127.0.0.1:8001", id="a", weight=300))
    registry.register(Instance.new("greeter", "v1", "127.0.0.1:8002", id="b", weight=100))

    with Discovery(registry) as discovery:  # balancer="round_robin" is the default
        print("round_robin:", sorted(Counter(discovery.select("greeter", "v1").id for _ in range(8)).items()))

    with Discovery(registry, balancer="weighted_round_robin") as discovery:
        picks = [discovery.select("greeter", "v1").id for _ in range(8)]
        print("weighted_round_robin:", sorted(Counter(picks).items()))
        print("interleaved, never more than 3 in a row:", "aaaa" not in "".join(picks))
