"""The compiler's passes: what they produce, and that they never change an expectation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import superpositional as sp
from superpositional.testing import random_circuit


def test_entangled_becomes_a_product_state_with_z_strings(ext):
    program = sp.circuits.entangled(4).program()
    # The CNOT chain moves into the observables (Z_k -> Z_0...Z_k) and RZ, which
    # then commutes with every observable, is dropped; H on |0> is folded into
    # the initial state, so RY alone remains per qubit, on real amplitudes.
    assert program.product_only and program.n_blocks == 0
    assert program.prefix_lengths == [1, 1, 1, 1]
    r = 2**-0.5
    assert all(abs(a0 - r) < 1e-15 and abs(a1 - r) < 1e-15 for a0, a1 in program.initial_states)
    assert program.real_prefix_qubits == [0, 1, 2, 3]
    assert program.observables == [(0, 0b1, True), (0, 0b11, True), (0, 0b111, True), (0, 0b1111, True)]
    assert program.uses_params and not program.uses_grads


def test_keep_state_keeps_every_gate(ext):
    program = sp.circuits.entangled(4).program(keep_state=True)
    assert not program.product_only
    assert program.prefix_lengths == [2, 2, 2, 2]  # RY, RZ after the folded H
    assert program.real_prefix_qubits == []
    assert [b[0] for b in program.blocks] == ["cx", "cx", "cx"]
    assert program.observables == [(0, 1 << k, True) for k in range(4)]


def test_fusion_between_entangling_gates(ext):
    c = sp.Circuit(2).h(0).cx(0, 1).rx(1, 0.1).ry(1, sp.param(0)).rz(0, 0.3).cz(0, 1).h(1)
    program = c.copy().program(keep_state=True)
    assert program.prefix_lengths == [0, 0]  # H(0) is folded into qubit 0's initial state
    # Runs on different qubits commute; each is flushed just before the next gate on its qubit.
    assert program.blocks == [
        ("cx", 0, 1, 0),
        ("fused", 0, 0, 1),
        ("fused", 1, 0, 2),
        ("cz", 0, 1, 0),
        ("fused", 1, 0, 1),
    ]


def test_commuting_tail_rotation_is_dropped_but_anticommuting_kept(ext):
    c = sp.Circuit(1).ry(0, sp.param(0)).rz(0, 0.7).observe(["Z"])
    assert c.program().prefix_lengths == [1]
    c = sp.Circuit(1).ry(0, sp.param(0)).rz(0, 0.7).observe(["X"])
    assert c.program().prefix_lengths == [2]
    assert c.program().real_prefix_qubits == []  # RZ makes amplitudes complex


def test_leading_constant_gates_fold_into_the_initial_state(ext):
    c = sp.Circuit(2).h(0).rx(0, 0.4).x(1).ry(0, sp.param(0)).rz(0, 1.0)
    program = c.program()
    # RZ(0) commutes with Z_0 and is dropped; X(1) moves into the observable (Z_1 -> -Z_1);
    # H and RX(0.4) fold into qubit 0's initial state; RY(theta_0) stays.
    assert program.prefix_lengths == [1, 0]
    assert program.observables == [(0, 0b01, False), (0, 0b10, True)]
    h = np.array([[1, 1], [1, -1]]) / np.sqrt(2)
    rx = np.array([[np.cos(0.2), -1j * np.sin(0.2)], [-1j * np.sin(0.2), np.cos(0.2)]])
    np.testing.assert_allclose(program.initial_states[0], rx @ h @ [1, 0], atol=1e-15)
    assert program.initial_states[1] == (1, 0)
    assert program.real_prefix_qubits == [1]  # RX made qubit 0's amplitudes complex


def test_compiler_rejects_what_the_builder_would(ext):
    with pytest.raises(ValueError, match="1 to 10 qubits"):
        ext.compile(11, [], [("Z", False)] * 11, False)
    with pytest.raises(ValueError, match="qubit 3 out of range"):
        ext.compile(2, [(0, 3, 0, 0, 0, 0.0, 0.0)], [("Z", False)] * 2, False)
    with pytest.raises(ValueError, match="one observable per qubit"):
        ext.compile(2, [], [("Z", False)], False)
    with pytest.raises(ValueError, match="X, Y or Z"):
        ext.compile(1, [], [("Q", False)], False)
    with pytest.raises(ValueError, match="two different qubits"):
        ext.compile(2, [(5, 1, 1, 0, 0, 0.0, 0.0)], [("Z", False)] * 2, False)
    with pytest.raises(ValueError, match="input index 4 out of range"):
        ext.compile(2, [(3, 0, 0, 1, 4, 1.0, 0.0)], [("Z", False)] * 2, False)


@pytest.mark.parametrize("n", range(1, 11))
def test_compiled_expectations_match_the_uncompiled_reference(ext, n, rng):
    # The tail absorption rewrites observables into Pauli strings; the torch
    # reference applies every gate as written. Clifford-heavy circuits exercise
    # the phase rules for X, Y and Z under H, X, CX and CZ.
    for _ in range(6):
        c = random_circuit(n, int(rng.integers(1, 30)), rng)
        theta = torch.from_numpy(rng.uniform(-math.pi, math.pi, size=(17, n)))
        g = torch.from_numpy(rng.uniform(-math.pi, math.pi, size=(17, n)))
        expected = sp.simulate(c, theta, g, backend="torch")
        got = sp.simulate(c, theta, g, backend="cpu")
        torch.testing.assert_close(got, expected, atol=1e-12, rtol=0, msg=lambda m, c=c: f"{c}\n{m}")
