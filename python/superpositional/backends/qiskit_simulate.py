"""``simulate(circuit, params, grads, backend=target)`` for a :class:`~.qiskit_target.QiskitTarget`.

The call is synchronous: it submits one job (one parameterised PUB with every row) and waits for it,
up to the target's ``timeout``. Unlike the optimizer it never falls back to the simulator: a failed,
cancelled or timed-out job raises, and so does a batch larger than the cost guard (sampling would
mix simulated values into a result asked of the hardware).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import qiskit_run

if TYPE_CHECKING:  # pragma: no cover
    from ..circuit import Circuit
    from .qiskit_target import QiskitTarget


def _tensor(value: Any, name: str) -> torch.Tensor | None:
    if value is None or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")


def simulate_on_target(
    circuit: Circuit, params: Any, grads: Any, target: QiskitTarget, return_state: bool
) -> torch.Tensor | np.ndarray:
    """Expectations ``[..., n]`` of ``circuit`` measured on ``target``, in the inputs' dtype and type."""
    from ..circuit import Circuit

    if not isinstance(circuit, Circuit):
        raise TypeError(f"simulate() takes a superpositional.Circuit, got {type(circuit).__name__}")
    if return_state:
        raise ValueError("a Qiskit target measures expectations only: return_state=True is not available")
    inputs = {"params": _tensor(params, "params"), "grads": _tensor(grads, "grads")}
    given = {name: t for name, t in inputs.items() if t is not None}
    needed = [("params", circuit.uses_params), ("grads", circuit.uses_grads)]
    for name, used in needed:
        if used and name not in given:
            raise ValueError(f"this circuit reads {name} (sp.{name[:-1]}): pass {name}")
    if not given:
        raise ValueError("pass params (a [B, n] tensor) to set the batch, even for a circuit without inputs")
    n = circuit.n_qubits
    first = next(iter(given.values()))
    for name, t in given.items():
        if t.dim() == 0 or t.shape[-1] != n:
            raise ValueError(
                f"{name} must have shape [..., {n}] for a {n}-qubit circuit, got {list(t.shape)}"
            )
        if (t.shape, t.dtype) != (first.shape, first.dtype):
            raise ValueError("params and grads must have the same shape and dtype")
        if not t.dtype.is_floating_point:
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
        if t.requires_grad and torch.is_grad_enabled():
            raise ValueError("a Qiskit target does not compute gradients; use 'cpu' or 'torch' for that")
    target.check_circuit(circuit)
    leading = first.shape[:-1]
    batch = int(np.prod(leading, dtype=np.int64)) if leading else 1
    if batch > target.circuits_per_job:
        raise ValueError(
            f"{batch} rows exceed the Qiskit target's cost guard of {target.circuits_per_job} circuits per "
            "job (max_circuits_per_job, max_shots_per_job / shots); raise it or pass fewer rows"
        )
    circuit.freeze()
    rows = {name: t.detach().reshape(batch, n) for name, t in given.items()}
    if batch == 0:
        evs = np.zeros((0, n))
    else:
        evs = qiskit_run.evaluate(target, circuit, rows.get("params"), rows.get("grads"))
    out = torch.from_numpy(evs).reshape(*leading, n).to(first.device, first.dtype)
    as_numpy = any(isinstance(v, np.ndarray) for v in (params, grads))
    return out.numpy() if as_numpy else out
