"""The pure-PyTorch reference: a plain, vectorised statevector simulation.

It is written independently of the compiled kernels on purpose: no gate fusion,
no product-state shortcut, no moving gates into observables. Every gate of the
circuit is applied, in order, to a ``[B, 2**n]`` complex state, so it is the
reference the kernels are tested against (and the fallback without the
extension). It runs on any device torch supports. The optimizer's step for this
backend is the torch formula of :mod:`superpositional.optim.update` with these
expectations.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from ..geometry import complex_dtype

if TYPE_CHECKING:  # pragma: no cover
    from ..circuit import Circuit, Input
    from .base import Batch


def _half_angle(
    angle: float | Input,
    params: torch.Tensor | None,
    grads: torch.Tensor | None,
    batch: int,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of half the angle, [B] each."""
    if isinstance(angle, (int, float)):
        # A constant is exact in double precision: take its cosine and sine there, as the kernels
        # do (a float32 tensor could not even hold an angle beyond 3.4e38).
        half = float(angle) / 2
        return (
            torch.full((batch,), math.cos(half), dtype=dtype, device=device),
            torch.full((batch,), math.sin(half), dtype=dtype, device=device),
        )
    source = params if angle.source == "param" else grads
    assert source is not None  # simulate() checked that the inputs the circuit reads are given
    # The offset only matters modulo 4 pi (the period of the half angle's cosine and sine): bring it
    # into (-2 pi, 2 pi] in double precision, so that a float32 input never adds an offset its dtype
    # cannot hold.
    half = angle.offset / 2
    offset = 2 * math.atan2(math.sin(half), math.cos(half))
    theta = source[:, angle.index] * angle.scale + offset
    return torch.cos(theta / 2), torch.sin(theta / 2)


def _rotation(name: str, cos_sin: tuple[torch.Tensor, torch.Tensor], cdtype: torch.dtype) -> torch.Tensor:
    """[B, 2, 2] matrices of RX, RY or RZ(theta), from cos(theta/2) and sin(theta/2)."""
    c = cos_sin[0].to(cdtype)
    s = cos_sin[1].to(cdtype)
    zero = torch.zeros_like(c)
    if name == "rx":
        rows = [[c, -1j * s], [-1j * s, c]]
    elif name == "ry":
        rows = [[c, -s], [s, c]]
    else:
        rows = [[c - 1j * s, zero], [zero, c + 1j * s]]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


_PAULIS = {"X": [[0, 1], [1, 0]], "Y": [[0, -1j], [1j, 0]], "Z": [[1, 0], [0, -1]]}
_FIXED_GATES = {"h": [[2**-0.5, 2**-0.5], [2**-0.5, -(2**-0.5)]], "x": _PAULIS["X"]}


def _apply_1q(state: torch.Tensor, n: int, qubit: int, matrix: torch.Tensor) -> torch.Tensor:
    """Apply a [2, 2] or [B, 2, 2] matrix to ``qubit`` (bit ``qubit`` of the index)."""
    batch = state.shape[0]
    view = state.reshape(batch, 2 ** (n - 1 - qubit), 2, 2**qubit)
    if matrix.dim() == 2:
        out = torch.einsum("ij,bajc->baic", matrix, view)
    else:
        out = torch.einsum("bij,bajc->baic", matrix, view)
    return out.reshape(batch, 2**n)


def _basis(n: int, device: torch.device) -> torch.Tensor:
    return torch.arange(2**n, device=device)


def _apply_cx(state: torch.Tensor, n: int, control: int, target: int) -> torch.Tensor:
    index = _basis(n, state.device)
    source = torch.where((index >> control) & 1 == 1, index ^ (1 << target), index)
    return state[:, source]


def _apply_cz(state: torch.Tensor, n: int, a: int, b: int) -> torch.Tensor:
    index = _basis(n, state.device)
    both = ((index >> a) & 1) & ((index >> b) & 1)
    return state * (1 - 2 * both).to(state.dtype)


def simulate(
    circuit: Circuit, batch: Batch, *, return_state: bool = False, out: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Expectations ``[B, n]`` (and the statevectors ``[B, 2**n]`` when asked), into ``out`` when given."""
    n = circuit.n_qubits
    params, grads, size, dtype, device = batch
    cdtype = complex_dtype(dtype)
    state = torch.zeros(size, 2**n, dtype=cdtype, device=device)
    state[:, 0] = 1
    for gate in circuit.gates:
        if gate.name in ("rx", "ry", "rz"):
            cos_sin = _half_angle(gate.angle, params, grads, size, dtype, device)
            state = _apply_1q(state, n, gate.qubits[0], _rotation(gate.name, cos_sin, cdtype))
        elif gate.name in ("h", "x"):
            matrix = torch.tensor(_FIXED_GATES[gate.name], dtype=cdtype, device=device)
            state = _apply_1q(state, n, gate.qubits[0], matrix)
        elif gate.name == "cx":
            state = _apply_cx(state, n, *gate.qubits)
        else:
            state = _apply_cz(state, n, *gate.qubits)
    columns = []
    for k, observable in enumerate(circuit.observables):
        pauli = torch.tensor(_PAULIS[observable[-1]], dtype=cdtype, device=device)
        value = (state.conj() * _apply_1q(state, n, k, pauli)).sum(dim=1).real
        columns.append(-value if observable.startswith("-") else value)
    expectations = torch.stack(columns, dim=1).to(dtype)
    if out is not None:
        expectations = out.copy_(expectations)
    return expectations, (state if return_state else None)
