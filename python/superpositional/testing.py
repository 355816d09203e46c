"""Helpers shared by the tests, ``validate`` and the benchmarks: random circuits and comparisons."""

from __future__ import annotations

import math

import numpy as np
import torch

from .circuit import Circuit, grad, param

GATES = ("h", "x", "rx", "ry", "rz", "cx", "cz")


def random_circuit(n_qubits: int, n_gates: int, rng: np.random.Generator) -> Circuit:
    """A circuit of ``n_gates`` gates drawn uniformly from the whole gate set.

    Rotation angles are constants or affine in a random parameter or gradient
    input; observables are random signed Paulis.
    """
    c = Circuit(n_qubits)
    names = GATES if n_qubits > 1 else GATES[:5]
    for _ in range(n_gates):
        name = names[rng.integers(len(names))]
        if name in ("cx", "cz"):
            a, b = rng.choice(n_qubits, size=2, replace=False)
            getattr(c, name)(int(a), int(b))
            continue
        q = int(rng.integers(n_qubits))
        if name in ("h", "x"):
            getattr(c, name)(q)
            continue
        kind = rng.integers(3)
        scale, offset = float(rng.uniform(-math.pi, math.pi)), float(rng.uniform(-math.pi, math.pi))
        k = int(rng.integers(n_qubits))
        angle = (offset, param(k, scale, offset), grad(k, scale, offset))[kind]
        getattr(c, name)(q, angle)
    signs = rng.integers(2, size=n_qubits)
    paulis = rng.choice(list("XYZ"), size=n_qubits)
    return c.observe([("-" if s else "") + p for s, p in zip(signs, paulis, strict=False)])


def max_phase_aligned_error(state: torch.Tensor, reference: torch.Tensor) -> float:
    """Largest amplitude error of `state` against `reference` ([B, 2**n] each), up to a per-row phase."""
    state = state.to(torch.complex128)
    reference = reference.to(torch.complex128)
    overlap = (state.conj() * reference).sum(dim=1, keepdim=True)
    phase = overlap / overlap.abs().clamp_min(1e-300)
    return float((state * phase - reference).abs().max()) if state.numel() else 0.0
