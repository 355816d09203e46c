"""The builder: gates, angle inputs, observables, freezing and its clear errors
(docs/design.md, *Public API* and *Reliability*)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import superpositional as sp


def test_builder_records_gates_in_order_and_chains():
    c = sp.Circuit(3)
    returned = (
        c.h(0).x(1).rx(2, 0.3).ry(0, sp.param(0, scale=math.pi)).rz(1, sp.grad(1, 2.0, 0.5)).cx(0, 1).cz(1, 2)
    )
    assert returned is c
    assert [g.name for g in c.gates] == ["h", "x", "rx", "ry", "rz", "cx", "cz"]
    assert c.gates[3].angle == sp.Input("param", 0, math.pi, 0.0)
    assert c.gates[4].angle == sp.grad(1, scale=2.0, offset=0.5)
    assert c.gates[5].qubits == (0, 1)
    assert c.observables == ("Z", "Z", "Z")
    assert c.uses_params and c.uses_grads and len(c) == 7


def test_observables_are_normalised():
    c = sp.Circuit(4).observe(["-Z", "X", "+Y", "Z"])
    assert c.observables == ("-Z", "X", "Y", "Z")


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: sp.Circuit(0), ValueError, "1 to 10 qubits"),
        (lambda: sp.Circuit(11), ValueError, "1 to 10 qubits"),
        (lambda: sp.Circuit(2.5), TypeError, "integer"),
        (lambda: sp.Circuit(2).h(2), ValueError, "qubit index 2 out of range"),
        (lambda: sp.Circuit(2).h(-1), ValueError, "out of range"),
        (lambda: sp.Circuit(2).x(True), TypeError, "bool"),
        (lambda: sp.Circuit(2).cx(1, 1), ValueError, "two different qubits"),
        (lambda: sp.Circuit(2).cz(0, 5), ValueError, "qubit index 5 out of range"),
        (lambda: sp.Circuit(2).rx(0, float("nan")), ValueError, "finite"),
        (lambda: sp.Circuit(2).ry(0, "pi"), TypeError, "angle"),
        (lambda: sp.Circuit(2).rz(0, sp.param(2)), ValueError, "input index 2 out of range"),
        (lambda: sp.param(-1), ValueError, "non-negative"),
        (lambda: sp.grad(0, scale=float("inf")), ValueError, "scale must be finite"),
        (lambda: sp.Input("weights", 0), ValueError, "'param' or 'grad'"),
        (lambda: sp.Circuit(2).observe(["Z"]), ValueError, "one observable per qubit"),
        (lambda: sp.Circuit(2).observe(["Z", "W"]), ValueError, "observable of qubit 1"),
        (lambda: sp.Circuit(2).observe(["Z", "--X"]), ValueError, "observable of qubit 1"),
        (lambda: sp.Circuit(2).observe("ZZ"), TypeError, "one observable per qubit"),
    ],
)
def test_bad_input_gets_a_clear_error(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_a_failed_call_changes_nothing():
    c = sp.Circuit(2).h(0)
    with pytest.raises(ValueError):
        c.cx(0, 7)
    with pytest.raises(ValueError):
        c.observe(["Z", "Q"])
    assert len(c) == 1 and c.observables == ("Z", "Z")


def test_gate_count_is_bounded():
    c = sp.Circuit(1)
    for _ in range(512):
        c.h(0)
    with pytest.raises(ValueError, match="at most 512 gates"):
        c.h(0)


def test_circuit_is_frozen_once_used_and_copy_is_editable():
    c = sp.circuits.paper(2)
    sp.simulate(c, np.zeros((1, 2)), backend="torch")
    assert c.frozen
    with pytest.raises(RuntimeError, match="immutable"):
        c.h(0)
    with pytest.raises(RuntimeError, match="immutable"):
        c.observe(["Z", "Z"])
    d = c.copy().h(0)
    assert not d.frozen and len(d) == len(c) + 1
    assert d != c and c.copy() == c


def test_hash_follows_equality_before_and_after_freezing():
    # A frozen circuit keeps its hash (the CUDA path looks circuits up on every call); it must stay
    # the value hash that equal circuits share, frozen or not, and an edit before freezing counts.
    def build() -> sp.Circuit:
        return sp.Circuit(3).h(0).ry(1, sp.param(1, 2.0)).cx(0, 2).observe(["X", "Z", "-Y"])

    editable, frozen = build(), build().freeze()
    assert editable == frozen and hash(editable) == hash(frozen) == hash(frozen)
    before = hash(editable)
    editable.rz(2, 0.5)
    assert editable != frozen and hash(editable) != before
    assert hash(editable.freeze()) == hash(frozen.copy().rz(2, 0.5))
    assert {frozen: "program"}[build()] == "program"


def test_numpy_integers_are_accepted_as_indices():
    c = sp.Circuit(np.int64(3)).cx(np.int32(0), np.int64(2))
    assert c.gates[0].qubits == (0, 2)


class TestToQiskit:
    @pytest.fixture(autouse=True)
    def _aer(self, aer):
        pass

    def test_parameterised_circuit_keeps_structure_and_observables(self):
        c = sp.circuits.entangled(3)
        qc, observables = c.to_qiskit()
        assert [i.operation.name for i in qc.data] == ["h"] * 3 + ["ry", "rz"] * 3 + ["cx"] * 2
        assert {p.name for p in qc.parameters} == {"theta[0]", "theta[1]", "theta[2]", "g[0]", "g[1]", "g[2]"}
        # Qiskit labels are big-endian: qubit 0 is the rightmost character.
        assert [(o.paulis[0].to_label(), complex(o.coeffs[0])) for o in observables] == [
            ("IIZ", -1),
            ("IZI", -1),
            ("ZII", -1),
        ]

    def test_bound_circuit_matches_the_affine_angle(self, rng):
        c = sp.Circuit(2).ry(1, sp.param(0, scale=2.0, offset=0.25)).rz(0, sp.grad(1, scale=-1.5))
        theta, g = rng.normal(size=2), rng.normal(size=2)
        qc, _ = c.to_qiskit(theta, g)
        assert not qc.parameters
        assert float(qc.data[0].operation.params[0]) == pytest.approx(2.0 * theta[0] + 0.25)
        assert float(qc.data[1].operation.params[0]) == pytest.approx(-1.5 * g[1])

    def test_binding_needs_the_inputs_the_circuit_reads(self):
        with pytest.raises(ValueError, match="pass grads"):
            sp.circuits.entangled(2).to_qiskit(params=[0.1, 0.2])
        with pytest.raises(ValueError, match="one row of 2 values"):
            sp.circuits.paper(2).to_qiskit(params=[0.1, 0.2, 0.3])
