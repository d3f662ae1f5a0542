"""Discovery.select/pick(exclude=...): a retried call avoids the instances it already tried."""

from __future__ import annotations

import pytest

from fyerreg import Instance, MemoryRegistry
from fyerreg.discovery import Discovery


@pytest.mark.parametrize("balancer", ["round_robin", "random", "weighted_round_robin", "p2c", "consistent_hash"])
def test_excluded_instances_are_avoided_while_others_remain(balancer: str) -> None:
    with MemoryRegistry() as registry, Discovery(registry, balancer=balancer) as discovery:
        insts = [Instance.new("svc", "1", f"127.0.0.1:{8000 + i}", id=f"i{i}") for i in range(3)]
        for inst in insts:
            registry.register(inst)
        for _ in range(50):
            tried = [discovery.select("svc", "1", key="user-7")]
            tried.append(discovery.select("svc", "1", key="user-7", exclude=tried))
            with discovery.pick("svc", "1", key="user-7", exclude=tried) as third:
                tried.append(third)
            assert sorted(i.id for i in tried) == ["i0", "i1", "i2"]
        # Everything excluded: still an instance (retrying one beats failing the call).
        assert discovery.select("svc", "1", key="k", exclude=insts).id in {"i0", "i1", "i2"}
