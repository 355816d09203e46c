r"""Preset circuits from the paper (arXiv 2511.01918).

``paper(n)``
    The paper's Eq. 2 as a circuit: on each qubit k, ``RY(pi * theta_k)`` on
    ``|0>`` and the observable ``X``, so that

    .. math:: e_k = \langle X_k \rangle = \sin(\pi \theta_k).

``entangled(n)``
    The paper's Eq. 5 gate order: ``H`` on every qubit, then ``RY(pi * theta_k)``
    and ``RZ(pi * g_k)`` on every qubit, then ``CNOT(k, k+1)`` for k = 0..n-2, and
    the observable ``-Z`` on every qubit. The CNOT chain maps ``Z_k`` to
    ``Z_0 Z_1 ... Z_k`` and ``<Z_j> = -sin(pi theta_j)`` before it, so

    .. math:: e_k = -\prod_{j \le k} \bigl(-\sin(\pi \theta_j)\bigr)
                  = (-1)^k \prod_{j \le k} \sin(\pi \theta_j).

    For ``n = 1`` this is Eq. 2 exactly. The RZ phase changes the statevector but
    no Z expectation; it matters with other ``observables``.

``attention(n)``
    The circuit of the Quantum Attention layer (:class:`superpositional.nn.QuantumAttention`):
    the gates of ``entangled(n)`` with RY angle ``theta_k`` and RZ angle ``g_k``
    (no factor pi: both are learned, and the attention score is added to
    ``theta_k``), measured in ``X`` so that the RZ phases matter.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .circuit import MAX_QUBITS, Circuit, grad, param

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence

__all__ = ["attention", "entangled", "paper"]


def _check(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_QUBITS:
        raise ValueError(f"a preset has 1 to {MAX_QUBITS} qubits, got {n!r}")


def paper(n: int = 4) -> Circuit:
    """Eq. 2 of the paper: ``e_k = sin(pi * theta_k)`` for each of ``n`` qubits."""
    _check(n)
    c = Circuit(n)
    for k in range(n):
        c.ry(k, param(k, scale=math.pi))
    return c.observe(["X"] * n)


def entangled(n: int = 4, observables: Sequence[str] | None = None) -> Circuit:
    """Eq. 5's gate order: H, RY(pi theta_k), RZ(pi g_k) on every qubit, then a CNOT chain.

    ``observables`` defaults to ``-Z`` on every qubit, for which
    ``e_k = (-1)^k prod_{j<=k} sin(pi theta_j)`` (Eq. 2 when ``n = 1``).
    """
    _check(n)
    c = Circuit(n)
    for k in range(n):
        c.h(k)
    for k in range(n):
        c.ry(k, param(k, scale=math.pi))
        c.rz(k, grad(k, scale=math.pi))
    for k in range(n - 1):
        c.cx(k, k + 1)
    return c.observe(list(observables) if observables is not None else ["-Z"] * n)


def attention(n: int = 4) -> Circuit:
    """H, RY(theta_k), RZ(g_k) on every qubit, then a CNOT chain; observe X on every qubit."""
    _check(n)
    c = Circuit(n)
    for k in range(n):
        c.h(k)
    for k in range(n):
        c.ry(k, param(k))
        c.rz(k, grad(k))
    for k in range(n - 1):
        c.cx(k, k + 1)
    return c.observe(["X"] * n)
