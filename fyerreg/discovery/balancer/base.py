"""The Balancer interface, the per-instance state it carries across snapshots, and the name registry."""

from __future__ import annotations

import abc
import copy
import random as _random
from typing import Any, Callable, ClassVar, Dict, Generic, List, Optional, Sequence, Tuple, TypeVar, Union

from ..._fork import fresh_lock_like
from ...naming import Instance

__all__ = ["Balancer", "BalancerSpec", "register_balancer", "balancer_names", "make_balancer"]

InstanceKey = Tuple[str, str]
S = TypeVar("S")


def instance_key(inst: Instance) -> InstanceKey:
    """What identifies an instance inside one discovered service: ``(version, id)``."""
    return (inst.version, inst.id)


class Balancer(abc.ABC):
    """Picks one instance among the current candidates of one (service, version).

    :class:`~fyerreg.Discovery` gives every (service, version) its own balancer and
    calls :meth:`update` with the non-empty candidate list whenever it changes (a new
    snapshot, an ejection, a filter result). :meth:`select` is the hot path: it must be
    cheap, so precompute in :meth:`update`, and thread-safe against concurrent
    :meth:`select` and :meth:`update` calls. State kept for an instance should survive
    an :meth:`update` in which the instance remains.

    Feedback hooks (no-ops by default): :meth:`begin` / :meth:`finish` bracket a call
    made through ``Discovery.pick()`` (in-flight counting); :meth:`observe` receives
    its latency in seconds and whether it failed.
    """

    name: ClassVar[str] = ""

    @abc.abstractmethod
    def update(self, instances: Sequence[Instance]) -> None:
        """Take ``instances`` (non-empty, sorted by id) as the new candidates."""

    @abc.abstractmethod
    def select(self, key: Optional[str] = None) -> Instance:
        """Return one candidate. ``key`` is only meaningful to key-based balancers."""

    def begin(self, instance: Instance) -> None:
        """A call to ``instance`` starts."""
        return None

    def finish(self, instance: Instance) -> None:
        """A call to ``instance`` begun with :meth:`begin` has ended."""
        return None

    def observe(self, instance: Instance, latency: float, failed: bool) -> None:
        """A call to ``instance`` took ``latency`` seconds and failed or not."""
        return None

    def clone(self) -> Balancer:
        """A new balancer configured like this one, with state of its own from the start.

        ``Discovery`` clones a template balancer for each (service, version). The clone
        shares nothing with this one: no candidates, rotation position, in-flight counts
        or measurements. The built-in balancers build it from their configuration (their
        constructor arguments). The default, for balancers that do not override it, is a
        deep copy with fresh locks: override it when yours holds state that a copy must
        not share or that cannot be copied (itertools iterators, threads, connections),
        and in a subclass of a built-in balancer whose constructor takes other arguments.
        """
        # Locks cannot be deep-copied: the clone gets fresh ones of its own.
        memo: Dict[int, Any] = {id(value): fresh_lock_like(value) for value in vars(self).values()
                                if fresh_lock_like(value) is not None}
        clone = copy.deepcopy(self, memo)
        if isinstance(self, RandomSource) and isinstance(clone, RandomSource):
            self._reseed_clone(clone)
        return clone


BalancerSpec = Union[str, Balancer, Callable[[], Balancer]]
"""A balancer by registered name, a template instance (cloned per service) or a factory."""

_REGISTRY: Dict[str, Callable[[], Balancer]] = {}


def register_balancer(name: str, factory: Callable[[], Balancer]) -> None:
    """Make ``factory`` available as ``Discovery(balancer=name)``; a name can be re-registered."""
    if not isinstance(name, str) or not name:
        raise ValueError("balancer name must be a non-empty str")
    if not callable(factory):
        raise TypeError("balancer factory must be callable")
    _REGISTRY[name] = factory


def balancer_names() -> List[str]:
    """The registered balancer names, sorted."""
    return sorted(_REGISTRY)


def make_balancer(spec: BalancerSpec) -> Balancer:
    """A new, unshared balancer from a name, a template instance or a factory."""
    if isinstance(spec, Balancer):
        return spec.clone()
    if isinstance(spec, str):
        try:
            factory = _REGISTRY[spec]
        except KeyError:
            raise ValueError(f"unknown balancer {spec!r}; known: {', '.join(balancer_names())}") from None
        return factory()
    if callable(spec):
        made = spec()
        if not isinstance(made, Balancer):
            raise TypeError(f"balancer factory returned {type(made).__name__}, not a Balancer")
        return made
    raise TypeError(f"balancer must be a name, a Balancer or a factory, got {type(spec).__name__}")


class StateTable(Generic[S]):
    """Per-instance balancer state keyed by ``(version, id)``, kept for instances that remain."""

    def __init__(self, factory: Callable[[Instance], S]) -> None:
        self._factory = factory
        self.by_key: Dict[InstanceKey, S] = {}

    def carry(self, instances: Sequence[Instance]) -> List[S]:
        """States for ``instances`` in order: existing ones kept, new ones created, others dropped."""
        old = self.by_key
        new: Dict[InstanceKey, S] = {}
        states: List[S] = []
        for inst in instances:
            k = instance_key(inst)
            st = old.get(k)
            if st is None:
                st = self._factory(inst)
            new[k] = st
            states.append(st)
        self.by_key = new
        return states

    def get(self, instance: Instance) -> Optional[S]:
        """The state of ``instance``, or None when it is no longer a candidate."""
        return self.by_key.get(instance_key(instance))


class RandomSource:
    """Mixin for balancers that draw random numbers: an injectable, clone-aware ``random.Random``.

    A balancer given its own ``rng`` keeps a copy of it in every clone (reproducible);
    one without gets a freshly seeded generator per clone.
    """

    def _init_rng(self, rng: Optional[_random.Random]) -> None:
        self._seeded = rng is not None
        self._rng = rng if rng is not None else _random.Random()

    def _rng_for_clone(self) -> Optional[_random.Random]:
        """The ``rng`` to build a clone with: a copy of a given one (same sequence), else None."""
        return copy.deepcopy(self._rng) if self._seeded else None

    def _reseed_clone(self, clone: RandomSource) -> None:
        if not self._seeded:
            clone._rng = _random.Random()
