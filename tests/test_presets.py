"""The presets reproduce the paper's formulas (docs/design.md, *The mathematics*) on every available
backend."""

from __future__ import annotations

import math

import pytest
import torch

import superpositional as sp

BACKENDS = [b for b in ("cpu", "torch") if b in sp.available_backends()]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [1, 2, 4, 7, 10])
def test_paper_is_eq2(backend, dtype, n, rng):
    theta = torch.from_numpy(rng.uniform(-3, 3, size=(257, n))).to(dtype)
    expected = torch.sin(math.pi * theta.double())
    got = sp.simulate(sp.circuits.paper(n), theta, backend=backend)
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(got.double(), expected, atol=tol, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_entangled_formula(backend, n, rng):
    theta = torch.from_numpy(rng.uniform(-3, 3, size=(129, n)))
    g = torch.from_numpy(rng.normal(size=(129, n)))
    sines = torch.sin(math.pi * theta)
    expected = torch.stack([(-1) ** k * sines[:, : k + 1].prod(dim=1) for k in range(n)], dim=1)
    got = sp.simulate(sp.circuits.entangled(n), theta, g, backend=backend)
    torch.testing.assert_close(got, expected, atol=1e-13, rtol=0)


def test_entangled_one_qubit_reduces_to_eq2(rng):
    theta = torch.from_numpy(rng.uniform(-3, 3, size=(64, 1)))
    g = torch.from_numpy(rng.normal(size=(64, 1)))
    got = sp.simulate(sp.circuits.entangled(1), theta, g, backend="torch")
    torch.testing.assert_close(got, torch.sin(math.pi * theta), atol=1e-14, rtol=0)


def test_presets_reject_bad_sizes():
    for bad in (0, 11, 2.0, True):
        with pytest.raises(ValueError, match="1 to 10 qubits"):
            sp.circuits.paper(bad)
        with pytest.raises(ValueError, match="1 to 10 qubits"):
            sp.circuits.entangled(bad)
