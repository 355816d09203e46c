"""Shared fixtures: fresh random generators, the CPU instruction sets, optional dependencies.

Every test draws fresh random inputs; the seed is printed on failure so a
failing draw can be replayed with SUPERPOSITIONAL_TEST_SEED=<seed>.
"""

from __future__ import annotations

import importlib.util
import os
import secrets

import numpy as np
import pytest

from superpositional._extension import extension

# CI sets this so that a missing test dependency fails instead of skipping.
REQUIRE_ALL = os.environ.get("SUPERPOSITIONAL_REQUIRE_ALL") == "1"


def _seed() -> int:
    return int(os.environ.get("SUPERPOSITIONAL_TEST_SEED", secrets.randbits(32)))


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    seed = _seed()
    request.node.user_properties.append(("seed", seed))
    print(f"random seed: {seed}")
    return np.random.default_rng(seed)


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        if REQUIRE_ALL:
            pytest.fail(f"{module} is required (SUPERPOSITIONAL_REQUIRE_ALL=1) but not installed")
        pytest.skip(f"{module} is not installed")


@pytest.fixture
def require():
    """``require(module)`` skips (or fails under CI) when an optional module is missing."""
    return _require


@pytest.fixture
def aer() -> None:
    """Skips (or fails under CI) when Qiskit Aer is missing."""
    _require("qiskit")
    _require("qiskit_aer")


@pytest.fixture
def qiskit_runtime(aer) -> None:
    """Skips (or fails under CI) when qiskit-ibm-runtime (or Qiskit Aer) is missing."""
    _require("qiskit_ibm_runtime")


@pytest.fixture
def ext():
    module = extension()
    if module is None:
        if REQUIRE_ALL:
            pytest.fail("the compiled extension did not import")
        pytest.skip("the compiled extension is not built")
    return module


def _supported_isas() -> list[str]:
    module = extension()
    return module.supported_cpu_isas() if module is not None else []


@pytest.fixture(params=_supported_isas() or ["none"])
def cpu_isa(request: pytest.FixtureRequest, ext):
    """Runs a test once per instruction set this CPU supports, restoring the default after."""
    default = ext.cpu_isa()
    ext.set_cpu_isa(request.param)
    yield request.param
    ext.set_cpu_isa(default)
