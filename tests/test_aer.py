"""Every built backend against Qiskit Aer run exactly (docs/design.md, *Validation*): random circuits over the
whole gate set, 1 to 10 qubits; float32 within 1e-5, float64 within 1e-12; states up to a global phase."""

from __future__ import annotations

import math

import pytest
import torch

import superpositional as sp
from superpositional.testing import max_phase_aligned_error, random_circuit

TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


@pytest.fixture(autouse=True)
def _needs_aer(aer):
    pass


def _backends() -> list[str]:
    return [b for b in sp.available_backends() if b != "aer"]


@pytest.mark.parametrize("n", range(1, 11))
def test_random_circuits_match_aer(n, rng):
    for _ in range(4):
        c = random_circuit(n, int(rng.integers(1, 50)), rng)
        theta = torch.from_numpy(rng.uniform(-math.pi, math.pi, size=(5, n)))
        g = torch.from_numpy(rng.uniform(-math.pi, math.pi, size=(5, n)))
        expected, state_ref = sp.simulate(c, theta, g, backend="aer", return_state=True)
        for backend in _backends():
            device = "cuda" if backend == "cuda" else "cpu"  # each kernel runs where its inputs live
            for dtype, tol in TOL.items():
                theta_d, g_d = theta.to(device, dtype), g.to(device, dtype)
                got = sp.simulate(c, theta_d, g_d, backend=backend).cpu()
                got_state_path, state = sp.simulate(c, theta_d, g_d, backend=backend, return_state=True)
                got_state_path, state = got_state_path.cpu(), state.cpu()
                where = f"{backend} {dtype} {c}"
                assert (got.double() - expected).abs().max() <= tol, where
                assert (got_state_path.double() - expected).abs().max() <= tol, where
                assert max_phase_aligned_error(state, state_ref) <= tol, where


def test_presets_match_aer(rng):
    for c in (sp.circuits.paper(4), sp.circuits.entangled(4), sp.circuits.entangled(8)):
        n = c.n_qubits
        theta = torch.from_numpy(rng.uniform(-2, 2, size=(33, n)))
        g = torch.from_numpy(rng.normal(size=(33, n)))
        expected = sp.simulate(c, theta, g, backend="aer")
        for backend in _backends():
            device = "cuda" if backend == "cuda" else "cpu"
            got = sp.simulate(c, theta.to(device), g.to(device), backend=backend).cpu()
            assert (got - expected).abs().max() <= 1e-12, backend


def test_circuit_without_inputs_broadcasts_over_the_batch():
    c = sp.Circuit(2).h(0).cx(0, 1).rx(1, 0.4).observe(["X", "Z"])
    expected = sp.simulate(c, torch.zeros(3, 2, dtype=torch.float64), backend="aer")
    got = sp.simulate(c, torch.zeros(3, 2, dtype=torch.float64), backend="torch")
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)
