"""The pure-PyTorch reference: a plain, vectorised statevector simulation.

It is written independently of the compiled kernels on purpose: no gate fusion,
no product-state shortcut, no moving gates into observables. Every gate of the
circuit is applied, in order, to a ``[B, 2**n]`` complex state, so it is the
reference the kernels are tested against (and the fallback without the
extension). It runs on any device torch supports.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pragma: no cover
    from ..circuit import Circuit, Input

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


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
    theta = source[:, angle.index] * angle.scale + angle.offset
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
    circuit: Circuit,
    params: torch.Tensor | None,
    grads: torch.Tensor | None,
    *,
    batch: int,
    dtype: torch.dtype,
    device: torch.device,
    return_state: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Expectations ``[B, n]`` (and the statevectors ``[B, 2**n]`` when asked)."""
    n = circuit.n_qubits
    cdtype = _COMPLEX[dtype]
    state = torch.zeros(batch, 2**n, dtype=cdtype, device=device)
    state[:, 0] = 1
    for gate in circuit.gates:
        if gate.name in ("rx", "ry", "rz"):
            cos_sin = _half_angle(gate.angle, params, grads, batch, dtype, device)
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
    return expectations, (state if return_state else None)


# --- the optimizer step (DESIGN.md section 2), in plain PyTorch -------------------------------------


def group_rows(t: torch.Tensor, n: int, coverage: str) -> torch.Tensor:
    """The ``[G, n]`` circuit inputs of a tensor: its groups, short ones padded with 0.

    ``"paper"``: one group, the first ``n`` elements of the flattened tensor.
    ``"all"``: groups of ``n`` consecutive elements of each row (a row is a slice
    along dim 0; tensors of dim 0 or 1 are one row).
    """
    flat = t.reshape(-1)
    if coverage == "paper":
        first = flat[:n]
        return torch.nn.functional.pad(first, (0, n - first.numel())).reshape(1, n)
    rows = t.shape[0] if t.dim() >= 2 else 1
    matrix = flat.reshape(rows, -1)
    width = -(-matrix.shape[1] // n) * n
    return torch.nn.functional.pad(matrix, (0, width - matrix.shape[1])).reshape(-1, n)


def ungroup(e: torch.Tensor, like: torch.Tensor, n: int, coverage: str) -> torch.Tensor:
    """Inverse of :func:`group_rows`: expectations ``[G, n]`` back in the tensor's shape (0 off-group)."""
    numel = like.numel()
    if coverage == "paper":
        out = torch.zeros(numel, dtype=e.dtype, device=e.device)
        count = min(n, numel)
        out[:count] = e.reshape(-1)[:count]
        return out.reshape(like.shape)
    rows = like.shape[0] if like.dim() >= 2 else 1
    return e.reshape(rows, -1)[:, : numel // rows].reshape(like.shape)


def expectations_for(
    circuit: Circuit, theta: torch.Tensor, g: torch.Tensor, coverage: str, simulate_rows: Callable[..., tuple]
) -> torch.Tensor:
    """``e`` for every element of a tensor, each group's circuit simulated by ``simulate_rows``."""
    n = circuit.n_qubits
    rows_theta = group_rows(theta, n, coverage)
    rows_g = group_rows(g, n, coverage)
    e, _ = simulate_rows(
        circuit,
        rows_theta if circuit.uses_params else None,
        rows_g if circuit.uses_grads else None,
        batch=rows_theta.shape[0],
        dtype=theta.dtype,
        device=theta.device,
        return_state=False,
    )
    return ungroup(e, theta, n, coverage)


def step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    steps: list[torch.Tensor],
    *,
    lr: float | torch.Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    quantum_weight: float,
    maximize: bool,
    circuit: Circuit,
    coverage: str,
    simulate_rows: Callable[..., tuple] = simulate,
) -> None:
    r"""One SuperpositionalAdamW step in plain PyTorch, tensor by tensor.

    .. math::
        \theta = p;\quad p \leftarrow p (1 - lr\,wd);\quad m \leftarrow \beta_1 m + (1-\beta_1) g;\quad
        v \leftarrow \beta_2 v + (1-\beta_2) g^2;\\
        p \leftarrow p - lr \Big(\frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon}
        + \lambda\, e(\theta, g)\, g\Big)

    Math is float32 (float64 for float64 parameters); ``exp_avgs`` and
    ``exp_avg_sqs`` are in that math dtype. ``e`` comes from ``simulate_rows``
    (the torch reference by default, or Aer).
    """
    lr = float(lr)
    for p, g, m, v, step_t in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
        compute = torch.float64 if p.dtype == torch.float64 else torch.float32
        g = g.to(compute)
        if maximize:
            g = -g
        theta = p.to(compute, copy=True)
        step_t += 1
        t = float(step_t)  # a host synchronisation for GPU steps: this is the reference, not the fast path
        updated = theta * (1 - lr * weight_decay)
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        bias_correction1 = 1 - beta1**t
        bias_correction2_sqrt = math.sqrt(1 - beta2**t)
        denom = (v.sqrt() / bias_correction2_sqrt).add_(eps)
        updated.addcdiv_(m, denom, value=-lr / bias_correction1)
        if quantum_weight != 0 and p.numel() > 0:
            e = expectations_for(circuit, theta, g, coverage, simulate_rows)
            updated.add_(e * g, alpha=-lr * quantum_weight)
        p.copy_(updated)
