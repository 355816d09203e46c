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
        _add_gate(c, names[rng.integers(len(names))], rng)
    return _observe_random_paulis(c, rng)


def random_product_circuit(n_qubits: int, n_gates: int, rng: np.random.Generator) -> Circuit:
    """A circuit whose compiled program is a product state: ``n_gates`` random one-qubit gates,
    then a random tail of Cliffords without parameters (H, X, CX, CZ).

    Compilation moves the tail into the observables, which become Pauli strings over several
    qubits (Y factors included), so every expectation is a product of one-qubit expectations;
    a qubit whose gates are only H, X and RY keeps real amplitudes. Angles are as in
    :func:`random_circuit`.
    """
    c = Circuit(n_qubits)
    for _ in range(n_gates):
        _add_gate(c, GATES[rng.integers(5)], rng)
    tail = ("h", "x", "cx", "cz") if n_qubits > 1 else ("h", "x")
    for _ in range(int(rng.integers(0, 3 * n_qubits + 1))):
        _add_gate(c, tail[rng.integers(len(tail))], rng)
    return _observe_random_paulis(c, rng)


def _add_gate(c: Circuit, name: str, rng: np.random.Generator) -> None:
    """Gate ``name`` on random qubits; a rotation's angle is a constant or affine in a random input."""
    if name in ("cx", "cz"):
        a, b = rng.choice(c.n_qubits, size=2, replace=False)
        getattr(c, name)(int(a), int(b))
        return
    q = int(rng.integers(c.n_qubits))
    if name in ("h", "x"):
        getattr(c, name)(q)
        return
    kind = rng.integers(3)
    scale, offset = float(rng.uniform(-math.pi, math.pi)), float(rng.uniform(-math.pi, math.pi))
    k = int(rng.integers(c.n_qubits))
    angle = (offset, param(k, scale, offset), grad(k, scale, offset))[kind]
    getattr(c, name)(q, angle)


def _observe_random_paulis(c: Circuit, rng: np.random.Generator) -> Circuit:
    n = c.n_qubits
    signs = rng.integers(2, size=n)
    paulis = rng.choice(list("XYZ"), size=n)
    return c.observe([("-" if s else "") + p for s, p in zip(signs, paulis, strict=False)])


def max_phase_aligned_error(state: torch.Tensor, reference: torch.Tensor) -> float:
    """Largest amplitude error of `state` against `reference` ([B, 2**n] each), up to a per-row phase."""
    state = state.to(torch.complex128)
    reference = reference.to(torch.complex128)
    overlap = (state.conj() * reference).sum(dim=1, keepdim=True)
    phase = overlap / overlap.abs().clamp_min(1e-300)
    return float((state * phase - reference).abs().max()) if state.numel() else 0.0
