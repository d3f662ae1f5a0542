"""Instance filters: which instances of a service a client may call, composable in a sequence.

A filter is any callable taking the list of candidates and returning the ones to keep.
``Discovery(filters=[...])`` applies them in order whenever the candidate set changes
(not on every pick), after disabled and ejected instances were removed.
"""

from __future__ import annotations

from typing import Callable, List, Mapping, Optional, Sequence

from ..naming import Instance

__all__ = ["InstanceFilter", "match_metadata", "prefer_metadata", "prefer_zone", "where", "chain"]

InstanceFilter = Callable[[Sequence[Instance]], Sequence[Instance]]
"""Takes candidates, returns the ones to keep (a subset, in the same order)."""


def _matches(expected: Mapping[str, str]) -> Callable[[Instance], bool]:
    items = tuple(expected.items())
    for k, v in items:
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"metadata filters map str to str; {k!r}: {v!r} does not")

    def matches(inst: Instance) -> bool:
        meta = inst.metadata
        return all(meta.get(k) == v for k, v in items)

    return matches


class _Named:
    """A filter with a readable repr (shown in NoInstanceAvailableError messages and logs)."""

    def __init__(self, description: str, func: InstanceFilter) -> None:
        self._description = description
        self._func = func

    def __call__(self, instances: Sequence[Instance]) -> Sequence[Instance]:
        return self._func(instances)

    def __repr__(self) -> str:
        return self._description


def match_metadata(expected: Optional[Mapping[str, str]] = None, **pairs: str) -> InstanceFilter:
    """Keep only instances whose metadata has every given key with the given value."""
    wanted = {**(expected or {}), **pairs}
    matches = _matches(wanted)
    return _Named(f"match_metadata({wanted!r})", lambda insts: [i for i in insts if matches(i)])


def prefer_metadata(expected: Optional[Mapping[str, str]] = None, **pairs: str) -> InstanceFilter:
    """Keep the instances whose metadata matches when there are any; otherwise keep all.

    Applied to healthy candidates, this falls back to the others when every matching
    instance is disabled, ejected or gone.
    """
    wanted = {**(expected or {}), **pairs}
    matches = _matches(wanted)

    def prefer(insts: Sequence[Instance]) -> Sequence[Instance]:
        chosen = [i for i in insts if matches(i)]
        return chosen if chosen else insts

    return _Named(f"prefer_metadata({wanted!r})", prefer)


def prefer_zone(zone: str, *, key: str = "zone") -> InstanceFilter:
    """Prefer instances in ``zone`` (metadata ``key``), falling back to other zones."""
    return prefer_metadata({key: zone})


def where(predicate: Callable[[Instance], bool], *, name: Optional[str] = None) -> InstanceFilter:
    """Keep the instances for which ``predicate(instance)`` is true."""
    label = name or getattr(predicate, "__name__", repr(predicate))
    return _Named(f"where({label})", lambda insts: [i for i in insts if predicate(i)])


def chain(*filters: InstanceFilter) -> InstanceFilter:
    """One filter applying ``filters`` in order (what a ``filters=`` sequence does)."""
    def apply(insts: Sequence[Instance]) -> Sequence[Instance]:
        return apply_filters(filters, insts)

    return _Named(f"chain({', '.join(map(repr, filters))})", apply)


def apply_filters(filters: Sequence[InstanceFilter], instances: Sequence[Instance]) -> List[Instance]:
    """``instances`` passed through every filter in order."""
    current: Sequence[Instance] = instances
    for f in filters:
        if not current:
            break
        current = f(current)
    return list(current)
