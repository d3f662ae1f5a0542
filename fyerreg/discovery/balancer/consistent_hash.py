"""A ketama-style hash ring: the same key goes to the same instance, and few keys move on change."""

from __future__ import annotations

import bisect
import hashlib
import threading
from typing import List, Optional, Sequence, Set, Tuple

from ...naming import DEFAULT_WEIGHT, Instance
from .base import Balancer, StateTable

__all__ = ["ConsistentHashBalancer"]

_OWNER_BITS = 24
_OWNER_MASK = (1 << _OWNER_BITS) - 1


def _digest(data: str) -> bytes:
    return hashlib.md5(data.encode("utf-8"), usedforsecurity=False).digest()


class _Slot:
    __slots__ = ("points", "address", "weight", "owner")

    def __init__(self, inst: Instance) -> None:
        self.points: List[int] = []
        self.address = ""
        self.weight = -1
        self.owner = -1


class ConsistentHashBalancer(Balancer):
    """Maps ``select(key=...)`` to an instance on a ring of virtual nodes (ketama).

    Each instance owns ``replicas * weight / 100`` points (at least one) hashed from its
    address, as ketama does, so a restarted instance at the same address gets its keys
    back. When an instance joins or leaves only the keys of its arcs move: about
    ``1/n`` of them. Picks cost one MD5 and a binary search. On change the ring is
    edited, not rebuilt: points of instances that remain are kept in place.
    ``select()`` without a key raises ``ValueError``.
    """

    name = "consistent_hash"

    def __init__(self, *, replicas: int = 100) -> None:
        if replicas < 1:
            raise ValueError("replicas must be >= 1")
        self._replicas = replicas
        self._lock = threading.Lock()
        self._states: StateTable[_Slot] = StateTable(_Slot)
        self._free: List[int] = []
        self._table: Tuple[List[int], List[Optional[Instance]]] = ([], [])

    def clone(self) -> ConsistentHashBalancer:
        return type(self)(replicas=self._replicas)

    def update(self, instances: Sequence[Instance]) -> None:
        with self._lock:
            old = self._states.by_key
            slots = self._states.carry(instances)
            kept = self._states.by_key
            ring, owners = self._table
            owners = list(owners)
            dead = {slot.owner for key, slot in old.items() if key not in kept}
            added: List[int] = []
            for inst, slot in zip(instances, slots):
                if slot.address != inst.address or slot.weight != inst.weight:
                    if slot.owner >= 0:
                        dead.add(slot.owner)
                    slot.owner = self._allocate(owners, dead)
                    slot.points = self._points(inst)
                    slot.address, slot.weight = inst.address, inst.weight
                    added.extend((point << _OWNER_BITS) | slot.owner for point in slot.points)
                owners[slot.owner] = inst
            if dead:
                ring = [point for point in ring if point & _OWNER_MASK not in dead]
                for owner in dead:
                    owners[owner] = None
                    self._free.append(owner)
            else:
                ring = list(ring)
            ring.extend(added)
            ring.sort()  # a sorted run plus a short one: close to linear
            self._table = (ring, owners)

    def _allocate(self, owners: List[Optional[Instance]], dead: Set[int]) -> int:
        while self._free:
            owner = self._free.pop()
            if owner not in dead:
                return owner
        if len(owners) > _OWNER_MASK:
            raise ValueError(f"consistent_hash supports at most {_OWNER_MASK} instances")
        owners.append(None)
        return len(owners) - 1

    def _points(self, inst: Instance) -> List[int]:
        count = max(1, round(self._replicas * inst.weight / DEFAULT_WEIGHT))
        points: List[int] = []
        for n in range((count + 3) // 4):
            digest = _digest(f"{inst.address}-{n}")
            points.extend(int.from_bytes(digest[4 * k:4 * k + 4], "little") for k in range(4))
        return points[:count]

    def select(self, key: Optional[str] = None) -> Instance:
        if key is None:
            raise ValueError("the consistent_hash balancer needs select(..., key=...)")
        ring, owners = self._table
        digest = _digest(key)
        index = bisect.bisect_left(ring, int.from_bytes(digest[:4], "little") << _OWNER_BITS)
        if index == len(ring):
            index = 0
        owner = owners[ring[index] & _OWNER_MASK]
        assert owner is not None
        return owner
