"""The circuit builder: gates, affine angle inputs and signed Pauli observables.

A :class:`Circuit` describes one structure that is simulated for many rows of
inputs at once. Each rotation angle is a constant or is affine in one input of
the row: ``scale * theta[k] + offset`` (:func:`param`) or ``scale * g[k] + offset``
(:func:`grad`). Output ``k`` is the expectation of the signed Pauli observable of
qubit ``k``. Once a circuit has been used (compiled, simulated, exported or given
to an optimizer) it is frozen; :meth:`Circuit.copy` gives an editable copy.
"""

from __future__ import annotations

import json
import math
import operator
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._extension import require_extension

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence

MAX_QUBITS = 10
MAX_GATES = 512

SINGLE_QUBIT_GATES = ("h", "x", "rx", "ry", "rz")
ROTATIONS = ("rx", "ry", "rz")
TWO_QUBIT_GATES = ("cx", "cz")

_OBSERVABLE = re.compile(r"([+-]?)([XYZ])")


@dataclass(frozen=True)
class Input:
    """An angle affine in one input of the circuit's row: ``scale * source[index] + offset``.

    ``source`` is ``"param"`` (the parameter values theta) or ``"grad"`` (the gradient g).
    Build one with :func:`param` or :func:`grad`.
    """

    source: str
    index: int
    scale: float = 1.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        if self.source not in ("param", "grad"):
            raise ValueError(f"an angle input reads 'param' or 'grad', got {self.source!r}")
        index = _as_int(self.index, "input index")
        if index < 0:
            raise ValueError(f"input index must be non-negative, got {index}")
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "scale", _finite(self.scale, "scale"))
        object.__setattr__(self, "offset", _finite(self.offset, "offset"))

    def __repr__(self) -> str:
        return f"sp.{self.source}({self.index}, scale={self.scale!r}, offset={self.offset!r})"


def param(k: int, scale: float = 1.0, offset: float = 0.0) -> Input:
    """The angle ``scale * theta[k] + offset``, theta being the row's parameter values."""
    return Input("param", k, scale, offset)


def grad(k: int, scale: float = 1.0, offset: float = 0.0) -> Input:
    """The angle ``scale * g[k] + offset``, g being the row's gradient."""
    return Input("grad", k, scale, offset)


Angle = float | Input


@dataclass(frozen=True)
class Gate:
    """One gate: its name, the qubits it acts on, and its angle (rotations only)."""

    name: str
    qubits: tuple[int, ...]
    angle: Angle | None = None


class Circuit:
    """A circuit on ``n_qubits`` qubits (1 to 10), built gate by gate.

    Gates: ``h``, ``x``, ``rx``, ``ry``, ``rz`` (angle: a float or an :class:`Input`),
    ``cx`` (control, target) and ``cz``. Each builder method returns the circuit,
    so calls chain. Observables default to ``Z`` on every qubit.

    Example::

        c = sp.Circuit(2)
        c.h(0).ry(1, sp.param(1, scale=math.pi)).cx(0, 1)
        c.observe(["X", "-Z"])
    """

    def __init__(self, n_qubits: int) -> None:
        n = _as_int(n_qubits, "n_qubits")
        if not 1 <= n <= MAX_QUBITS:
            raise ValueError(f"a circuit has 1 to {MAX_QUBITS} qubits, got {n}")
        self._n_qubits = n
        self._gates: list[Gate] = []
        self._observables: tuple[str, ...] = ("Z",) * n
        self._frozen = False
        self._programs: dict[bool, Any] = {}
        self._reads: tuple[bool, bool] | None = None  # (params, grads), kept once frozen
        self._hash: int | None = None  # kept once frozen

    # -- building -------------------------------------------------------------

    def h(self, qubit: int) -> Circuit:
        """Hadamard on ``qubit``."""
        return self._add("h", (qubit,))

    def x(self, qubit: int) -> Circuit:
        """Pauli X on ``qubit``."""
        return self._add("x", (qubit,))

    def rx(self, qubit: int, angle: Angle) -> Circuit:
        """``RX(angle) = exp(-i angle X / 2)`` on ``qubit``."""
        return self._add("rx", (qubit,), angle)

    def ry(self, qubit: int, angle: Angle) -> Circuit:
        """``RY(angle) = exp(-i angle Y / 2)`` on ``qubit``."""
        return self._add("ry", (qubit,), angle)

    def rz(self, qubit: int, angle: Angle) -> Circuit:
        """``RZ(angle) = exp(-i angle Z / 2)`` on ``qubit``."""
        return self._add("rz", (qubit,), angle)

    def cx(self, control: int, target: int) -> Circuit:
        """CNOT from ``control`` to ``target``."""
        return self._add("cx", (control, target))

    def cz(self, a: int, b: int) -> Circuit:
        """Controlled-Z between ``a`` and ``b``."""
        return self._add("cz", (a, b))

    def observe(self, observables: Sequence[str]) -> Circuit:
        """Set the observable of each qubit: ``"X"``, ``"Y"`` or ``"Z"``, optionally signed (``"-Z"``)."""
        self._check_mutable()
        if isinstance(observables, str):
            raise TypeError("observe() takes one observable per qubit, e.g. ['Z', '-X'], not a string")
        try:
            observables = list(observables)
        except TypeError:
            raise TypeError(
                "observe() takes one observable per qubit, e.g. ['Z', '-X'], "
                f"got {type(observables).__name__}"
            ) from None
        if len(observables) != self._n_qubits:
            raise ValueError(
                f"observe() needs one observable per qubit ({self._n_qubits}), got {len(observables)}"
            )
        normalized = []
        for k, obs in enumerate(observables):
            match = _OBSERVABLE.fullmatch(obs) if isinstance(obs, str) else None  # no trailing newline
            if match is None:
                raise ValueError(
                    f"observable of qubit {k} must be X, Y or Z with an optional sign, got {obs!r}"
                )
            normalized.append(("-" if match.group(1) == "-" else "") + match.group(2))
        self._observables = tuple(normalized)
        return self

    def copy(self) -> Circuit:
        """An editable copy (not frozen) with the same gates and observables."""
        other = Circuit(self._n_qubits)
        other._gates = list(self._gates)
        other._observables = self._observables
        return other

    # -- reading --------------------------------------------------------------

    @property
    def n_qubits(self) -> int:
        return self._n_qubits

    @property
    def gates(self) -> tuple[Gate, ...]:
        return tuple(self._gates)

    @property
    def observables(self) -> tuple[str, ...]:
        return self._observables

    @property
    def frozen(self) -> bool:
        """True once the circuit has been used; it can no longer change."""
        return self._frozen

    @property
    def uses_params(self) -> bool:
        return self._inputs_read()[0]

    @property
    def uses_grads(self) -> bool:
        return self._inputs_read()[1]

    def _inputs_read(self) -> tuple[bool, bool]:
        """Whether any gate reads ``sp.param`` / ``sp.grad``; kept once the circuit is frozen, since
        every simulate call asks (a walk over the gates was a tenth of a small call's host time)."""
        if self._reads is not None:
            return self._reads
        sources = {g.angle.source for g in self._gates if isinstance(g.angle, Input)}
        reads = ("param" in sources, "grad" in sources)
        if self._frozen:
            self._reads = reads
        return reads

    def __len__(self) -> int:
        return len(self._gates)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Circuit):
            return NotImplemented
        return (self._n_qubits, self._gates, self._observables) == (
            other._n_qubits,
            other._gates,
            other._observables,
        )

    def __hash__(self) -> int:
        # Kept once frozen: the CUDA path looks its device program up by circuit on every call,
        # and hashing every gate again was a sixth of a small call's host time there.
        if self._hash is not None:
            return self._hash
        value = hash((self._n_qubits, tuple(self._gates), self._observables))
        if self._frozen:
            self._hash = value
        return value

    def __getstate__(self) -> dict[str, Any]:
        # Compiled programs live in the extension and are rebuilt on demand.
        return {
            "n_qubits": self._n_qubits,
            "gates": list(self._gates),
            "observables": self._observables,
            "frozen": self._frozen,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Rebuilt through the builder: a damaged or hand-edited pickle (a checkpoint's circuit) gets
        # the builder's clear errors here instead of reaching a backend.
        fresh = Circuit(state["n_qubits"])
        for gate in state["gates"]:
            arity = 2 if getattr(gate, "name", None) in TWO_QUBIT_GATES else 1
            if (
                not isinstance(gate, Gate)
                or gate.name not in (*SINGLE_QUBIT_GATES, *TWO_QUBIT_GATES)
                or len(gate.qubits) != arity
            ):
                raise ValueError(f"a pickled circuit holds something that is not a gate: {gate!r}")
            angle = gate.angle
            if isinstance(angle, Input):  # re-checked: unpickling a dataclass skips __post_init__
                angle = Input(angle.source, angle.index, angle.scale, angle.offset)
            fresh._add(gate.name, gate.qubits, angle)
        fresh.observe(state["observables"])
        self.__dict__.update(fresh.__dict__)
        self._frozen = bool(state["frozen"])

    # -- plain data ----------------------------------------------------------

    def to_json(self) -> str:
        """The circuit as JSON text: plain data that :meth:`from_json` rebuilds into an equal circuit.

        Optimizer checkpoints hold this text, so that they load with ``torch.load``'s default
        ``weights_only=True``. Floats are written exactly (shortest round-trip form).
        """
        gates = []
        for g in self._gates:
            entry: list[Any] = [g.name, list(g.qubits)]
            if isinstance(g.angle, Input):
                a = g.angle
                entry.append({"source": a.source, "index": a.index, "scale": a.scale, "offset": a.offset})
            elif g.angle is not None:
                entry.append(g.angle)
            gates.append(entry)
        return json.dumps(
            {"n_qubits": self._n_qubits, "gates": gates, "observables": list(self._observables)},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Circuit:
        """The circuit :meth:`to_json` described (frozen, as a used circuit is); every part is checked
        by the builder, so damaged text gets the builder's error naming what is wrong."""
        if not isinstance(text, str):
            raise TypeError(f"a circuit's JSON description is a str, got {type(text).__name__}")
        try:
            data = json.loads(text)
            n_qubits, gates, observables = data["n_qubits"], data["gates"], data["observables"]
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"not a circuit's JSON description ({error}): {text[:80]!r}") from None
        circuit = cls(n_qubits)
        if not isinstance(gates, list):
            raise ValueError(f"a circuit's JSON gates are a list, got {type(gates).__name__}")
        for entry in gates:
            if not isinstance(entry, list) or len(entry) not in (2, 3) or not isinstance(entry[1], list):
                raise ValueError(f"a circuit's JSON gate is [name, [qubits], angle?], got {entry!r}")
            name, qubits = entry[0], entry[1]
            if name not in (*SINGLE_QUBIT_GATES, *TWO_QUBIT_GATES):
                raise ValueError(f"unknown gate {name!r} in a circuit's JSON description")
            arity = 2 if name in TWO_QUBIT_GATES else 1
            if len(qubits) != arity or (name in ROTATIONS) != (len(entry) == 3):
                raise ValueError(f"malformed {name} gate in a circuit's JSON description: {entry!r}")
            angle = entry[2] if len(entry) == 3 else None
            if isinstance(angle, dict):
                try:
                    angle = Input(angle["source"], angle["index"], angle["scale"], angle["offset"])
                except KeyError as missing:
                    raise ValueError(f"an angle input in a circuit's JSON lacks {missing}") from None
            circuit._add(name, tuple(qubits), angle)
        circuit.observe(observables)
        return circuit.freeze()

    def __repr__(self) -> str:
        body = "; ".join(_gate_text(g) for g in self._gates)
        return f"Circuit({self._n_qubits}: {body or 'no gates'}; observe {list(self._observables)})"

    # -- using ----------------------------------------------------------------

    def freeze(self) -> Circuit:
        """Make the circuit immutable (done automatically on first use)."""
        self._frozen = True
        return self

    def program(self, keep_state: bool = False) -> Any:
        """The compiled program the kernels run (cached; freezes the circuit).

        With ``keep_state=False`` compilation may move trailing gates into the
        observables, which preserves every expectation but not the statevector.
        """
        self.freeze()
        keep_state = bool(keep_state)
        if keep_state not in self._programs:
            ext = require_extension()
            kinds, sources = ext.gate_kinds, ext.angle_sources
            rows = []
            for g in self._gates:
                q0 = g.qubits[0]
                q1 = g.qubits[1] if len(g.qubits) > 1 else 0
                if isinstance(g.angle, Input):
                    rows.append(
                        (
                            kinds[g.name],
                            q0,
                            q1,
                            sources[g.angle.source],
                            g.angle.index,
                            g.angle.scale,
                            g.angle.offset,
                        )
                    )
                else:
                    rows.append((kinds[g.name], q0, q1, sources["const"], 0, 0.0, float(g.angle or 0.0)))
            observables = [(o[-1], o.startswith("-")) for o in self._observables]
            self._programs[keep_state] = ext.compile(self._n_qubits, rows, observables, keep_state)
        return self._programs[keep_state]

    def to_qiskit(self, params: Any = None, grads: Any = None) -> tuple[Any, list[Any]]:
        """This circuit as a ``qiskit.QuantumCircuit`` and its observables as ``SparsePauliOp`` s.

        Without inputs the circuit is parameterised by ``ParameterVector`` s named
        ``theta`` and ``g`` (angles become ``scale * theta[k] + offset``); with
        ``params`` (and ``grads``, each of length ``n_qubits``) it is bound to them.
        Observable ``k`` acts on qubit ``k`` (Qiskit's little-endian order).
        """
        try:
            from qiskit import QuantumCircuit
            from qiskit.circuit import ParameterVector
            from qiskit.quantum_info import SparsePauliOp
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError("to_qiskit() needs qiskit: pip install 'superpositional[qiskit]'") from error
        self.freeze()
        n = self._n_qubits
        inputs = {"param": ParameterVector("theta", n), "grad": ParameterVector("g", n)}
        qc = QuantumCircuit(n)
        for g in self._gates:
            if g.name in ROTATIONS:
                angle = g.angle
                if isinstance(angle, Input):
                    symbol = inputs[angle.source][angle.index]
                    value = symbol if angle.scale == 1.0 else angle.scale * symbol
                    value = value if angle.offset == 0.0 else value + angle.offset
                else:
                    value = float(angle)
                getattr(qc, g.name)(value, g.qubits[0])
            else:
                getattr(qc, g.name)(*g.qubits)
        observables = [
            SparsePauliOp.from_sparse_list([(o[-1], [k], -1.0 if o.startswith("-") else 1.0)], num_qubits=n)
            for k, o in enumerate(self._observables)
        ]
        if params is not None or grads is not None:
            qc = qc.assign_parameters(self._bindings(qc, inputs, params, grads))
        return qc, observables

    # -- internals ------------------------------------------------------------

    def _bindings(self, qc: Any, inputs: dict, params: Any, grads: Any) -> dict:
        values = {"param": params, "grad": grads}
        bindings = {}
        for source, vector in inputs.items():
            used = [p for p in vector if p in qc.parameters]
            if not used:
                continue
            row = values[source]
            if row is None:
                raise ValueError(
                    f"this circuit reads {source} inputs: pass {'params' if source == 'param' else 'grads'}"
                )
            row = [float(v) for v in _as_row(row, self._n_qubits, source)]
            bindings.update({p: row[p.index] for p in used})
        return bindings

    def _check_mutable(self) -> None:
        if self._frozen:
            raise RuntimeError(
                "this circuit has been used (compiled, simulated, exported or given to an optimizer) "
                "and is immutable; call .copy() to build a variant"
            )

    def _qubit(self, qubit: Any) -> int:
        q = _as_int(qubit, "qubit index")
        if not 0 <= q < self._n_qubits:
            raise ValueError(f"qubit index {q} out of range for a {self._n_qubits}-qubit circuit")
        return q

    def _add(self, name: str, qubits: tuple, angle: Any = None) -> Circuit:
        self._check_mutable()
        if len(self._gates) >= MAX_GATES:
            raise ValueError(f"a circuit has at most {MAX_GATES} gates")
        checked = tuple(self._qubit(q) for q in qubits)
        if len(checked) == 2 and checked[0] == checked[1]:
            raise ValueError(f"{name} needs two different qubits, got {checked[0]} twice")
        if name in ROTATIONS:
            angle = self._angle(name, angle)
        self._gates.append(Gate(name, checked, angle))
        return self

    def _angle(self, name: str, angle: Any) -> Angle:
        if isinstance(angle, Input):
            if angle.index >= self._n_qubits:
                raise ValueError(
                    f"{name}: input index {angle.index} out of range for a {self._n_qubits}-qubit circuit"
                )
            return angle
        is_real = isinstance(angle, (int, float)) or hasattr(angle, "__float__")
        if isinstance(angle, bool) or not is_real:
            raise TypeError(
                f"{name}: an angle is a float or sp.param(...)/sp.grad(...), got {type(angle).__name__}"
            )
        return _finite(angle, f"{name} angle")


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an integer, got a bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, got {type(value).__name__}") from None


def _finite(value: Any, what: str) -> float:
    if isinstance(value, (bool, str, bytes)):  # float() would take True or "2.5"; an angle may not
        raise TypeError(f"{what} must be a real number, got {type(value).__name__}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a real number, got {type(value).__name__}") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, got {number}")
    return number


def _as_row(values: Any, n: int, what: str) -> list:
    row = values.tolist() if hasattr(values, "tolist") else list(values)
    if len(row) != n or any(isinstance(v, (list, tuple)) for v in row):
        raise ValueError(f"{what} for to_qiskit() is one row of {n} values")
    return row


def _gate_text(g: Gate) -> str:
    qubits = ", ".join(map(str, g.qubits))
    return f"{g.name}({qubits}, {g.angle!r})" if g.name in ROTATIONS else f"{g.name}({qubits})"
