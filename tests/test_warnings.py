"""The suite's warning filters: a deprecation raised in fyerreg's own code fails the test that hits it."""

from __future__ import annotations

import copy
import itertools
import sys
import warnings

import pytest


def warn_from(module: str, category: type) -> None:
    warnings.warn_explicit("going away", category, f"{module.replace('.', '/')}.py", 1, module=module, registry={})


@pytest.mark.parametrize("module", ["fyerreg", "fyerreg.discovery.balancer.base", "fyerreg.contrib.grpc.server"])
@pytest.mark.parametrize("category", [DeprecationWarning, PendingDeprecationWarning])
def test_a_deprecation_raised_in_a_fyerreg_module_is_an_error(module: str, category: type) -> None:
    with pytest.raises(category, match="going away"):
        warn_from(module, category)


@pytest.mark.parametrize("module", ["grpc._channel", "fyerreg_elsewhere", "tests.helpers"])
def test_a_deprecation_raised_elsewhere_is_only_reported(module: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warn_from(module, DeprecationWarning)
    assert [str(w.message) for w in caught] == ["going away"]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="copying itertools objects warns from Python 3.12 on")
def test_copying_an_itertools_object_is_an_error() -> None:
    with pytest.raises(DeprecationWarning, match="itertools"):
        copy.deepcopy(itertools.count())
