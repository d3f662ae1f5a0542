"""Snapshots from an etcd watch stay in (id, version) order as records come, change and go.

The watch keeps its instances sorted incrementally instead of sorting each snapshot;
this checks the order and content of every snapshot against a model, with changes
written straight into etcd in a shuffled order across two versions.
"""

from __future__ import annotations

import random
from typing import Any, Dict, Tuple

from fyerreg import Instance
from tests.helpers import Registries, next_snapshot
from tests.registry.etcd.support import SERVICE, make_instance


def test_every_snapshot_is_sorted_and_matches_the_store(registries: Registries, etcd_client: Any) -> None:
    registry = registries.new()
    prefix = f"/{registries.namespace}/services/{SERVICE}/"
    rng = random.Random(7)
    model: Dict[Tuple[str, str], Instance] = {}

    def key(inst: Instance) -> str:
        return f"{prefix}{inst.version}/{inst.id}"

    for n in rng.sample(range(40), 20):  # some state before the subscription: the initial read
        inst = make_instance(f"i{n:02d}", version=rng.choice(("v1", "v2")))
        etcd_client.put(key(inst), inst.to_json())
        model[(inst.id, inst.version)] = inst
    with registry.subscribe(SERVICE) as sub:
        first = next_snapshot(sub)
        assert list(first) == [model[k] for k in sorted(model)]
        for step in range(60):
            if model and rng.random() < 0.35:
                gone = model.pop(rng.choice(sorted(model)))
                etcd_client.delete(key(gone))
            else:
                inst = make_instance(f"i{rng.randrange(40):02d}", version=rng.choice(("v1", "v2")),
                                     metadata={"step": str(step)})
                etcd_client.put(key(inst), inst.to_json())
                model[(inst.id, inst.version)] = inst
            expected = [model[k] for k in sorted(model)]
            snapshot = next_snapshot(sub, lambda s, expected=expected: list(s) == expected)
            assert [(i.id, i.version) for i in snapshot] == sorted((i.id, i.version) for i in snapshot)
