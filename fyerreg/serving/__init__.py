"""Serving registration: what a serving process registers (``InstanceSpec``) and how (``ServingRegistration``).

``address.py`` is the one parser of ``host:port`` and the rule for the advertised address.
"""

from __future__ import annotations

from .registration import ServingRegistration
from .spec import DEFAULT_DRAIN_DELAY, InstanceSpec

__all__ = ["InstanceSpec", "ServingRegistration", "DEFAULT_DRAIN_DELAY"]
