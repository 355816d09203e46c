"""bench/statevector.py's cuStateVec row walks the circuit itself (gate matrices, fusion of
one-qubit runs, controls, signed observables). Here the same walk drives a torch stand-in for the
library's two batched calls, and must reproduce our kernel's expectations; on a GPU with
cuStateVec installed the benchmark checks the real library the same way before timing it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import superpositional as sp
from superpositional.testing import random_circuit

BENCH = Path(__file__).parent.parent / "bench"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("statevector_bench", BENCH / "statevector.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))


class TorchStandIn:
    """``custatevecApplyMatrixBatched`` and ``custatevecComputeExpectationBatched`` in torch, on
    little-endian ``[B, 2**n]`` states (qubit k is bit k of the index)."""

    def apply(self, states, matrices, target, control=None):
        batch, dim = states.shape
        n = dim.bit_length() - 1
        view = states.view(batch, *[2] * n)  # axis 1 + (n - 1 - q) holds qubit q
        axis = 1 + n - 1 - target
        moved = view.movedim(axis, -1).unsqueeze(-1)  # [..., 2, 1]
        m = matrices if matrices.dim() == 3 else matrices.expand(batch, 2, 2)
        m = m.view(batch, *[1] * (n - 1), 2, 2)
        result = (m @ moved).squeeze(-1).movedim(-1, axis)
        if control is not None:
            index = torch.arange(dim, device=states.device)
            keep = ((index >> control) & 1) == 0
            result = torch.where(keep.view(1, *[2] * n), view, result)
        states.copy_(result.reshape(batch, dim))

    def expectation(self, states, observable, qubit):
        copy = states.clone()
        self.apply(copy, observable, qubit)
        return (states.conj() * copy).sum(dim=1).to(torch.complex128)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("n", [1, 3, 4])
def test_the_custatevec_walk_reproduces_our_kernel(bench, fused, n, rng):
    circuits = [bench.rotated(n), random_circuit(n, 6 * n, rng)]
    for circuit in circuits:
        theta = torch.as_tensor(rng.uniform(-1, 1, size=(7, n)), dtype=torch.float64)
        grads = torch.as_tensor(rng.uniform(-1, 1, size=(7, n)), dtype=torch.float64)
        run = bench.custatevec_runner(TorchStandIn(), circuit, theta, grads, fused)
        expected = sp.simulate(circuit, theta, grads, backend="cpu")
        torch.testing.assert_close(run(), expected, atol=1e-12, rtol=0)


def test_the_rotated_circuits_need_a_statevector(bench):
    for n in (4, 8):
        assert not bench.rotated(n).program().product_only


def test_the_stand_in_is_not_trivially_right(bench, rng):
    # A wrong target qubit must be caught: the stand-in is what the walk is judged by.
    circuit = random_circuit(3, 18, np.random.default_rng(3))
    theta = torch.as_tensor(rng.uniform(-1, 1, size=(5, 3)), dtype=torch.float64)

    class Swapped(TorchStandIn):
        def apply(self, states, matrices, target, control=None):
            super().apply(states, matrices, (target + 1) % 3, control)

    wrong = bench.custatevec_runner(Swapped(), circuit, theta, theta, False)()
    assert (wrong - sp.simulate(circuit, theta, theta, backend="cpu")).abs().max() > 1e-3
