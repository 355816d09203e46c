"""``simulate``: expectations (and statevectors) of one circuit for a batch of input rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from . import backends
from .backends import kernel as kernel_backend
from .circuit import Circuit

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}

Array = torch.Tensor | np.ndarray


def simulate(
    circuit: Circuit,
    params: Array | None = None,
    grads: Array | None = None,
    backend: str = "auto",
    return_state: bool = False,
) -> Array | tuple[Array, Array]:
    r"""Simulate ``circuit`` once per input row and return its expectations.

    Row ``b`` runs the circuit with angles read from ``theta = params[b]`` and
    ``g = grads[b]`` (see :func:`superpositional.param`, :func:`superpositional.grad`)
    and yields ``e[b, k] = <psi_b| O_k |psi_b>``, ``O_k`` being the observable of
    qubit ``k``.

    Args:
        circuit: the circuit (frozen by this call).
        params: ``[..., n]`` parameter values; needed when the circuit reads them.
        grads: ``[..., n]`` gradients; needed when the circuit reads them.
        backend: ``"auto"`` (the kernel for the inputs' device), ``"cpu"``, ``"torch"``, ``"aer"``, or a
            :class:`superpositional.QiskitTarget` (one job on that backend, waited for).
        return_state: also return the statevectors ``[..., 2**n]`` (complex, Qiskit's
            little-endian order: qubit ``k`` is bit ``k`` of the basis index).

    Returns:
        Expectations with the inputs' shape and dtype (a numpy array if the inputs
        were numpy), and the statevectors when ``return_state`` is true. Float32
        and float64 are computed in their own precision, float16 and bfloat16 in
        float32.
    """
    from .backends.qiskit_target import QiskitTarget

    if isinstance(backend, QiskitTarget):  # real hardware (or a fake device): its own, synchronous path
        from .backends.qiskit_simulate import simulate_on_target

        return simulate_on_target(circuit, params, grads, backend, return_state)
    if not isinstance(circuit, Circuit):
        raise TypeError(f"simulate() takes a superpositional.Circuit, got {type(circuit).__name__}")
    as_numpy = isinstance(params, np.ndarray) or isinstance(grads, np.ndarray)
    p = _as_tensor(params, "params")
    g = _as_tensor(grads, "grads")
    n = circuit.n_qubits
    if circuit.uses_params and p is None:
        raise ValueError("this circuit reads parameters (sp.param): pass params")
    if circuit.uses_grads and g is None:
        raise ValueError("this circuit reads gradients (sp.grad): pass grads")
    if p is None and g is None:
        raise ValueError("pass params (a [B, n] tensor) to set the batch, even for a circuit without inputs")
    given = [(name, t) for name, t in (("params", p), ("grads", g)) if t is not None]
    first_name, first = given[0]
    for name, t in given:
        if t.layout != torch.strided:
            raise TypeError(f"{name} must be a dense tensor, got layout {t.layout}")
        if t.dim() == 0 or t.shape[-1] != n:
            raise ValueError(
                f"{name} must have shape [..., {n}] for a {n}-qubit circuit, got {list(t.shape)}"
            )
        if t.shape != first.shape:
            raise ValueError(
                f"params and grads must have the same shape, got {list(p.shape)} and {list(g.shape)}"
            )
        if t.dtype != first.dtype:
            raise ValueError(f"params and grads must have the same dtype, got {p.dtype} and {g.dtype}")
        if t.device != first.device:
            raise ValueError(f"params and grads must be on the same device, got {p.device} and {g.device}")
    if not first.dtype.is_floating_point:
        raise TypeError(f"{first_name} must be a floating-point tensor, got {first.dtype}")
    leading = first.shape[:-1]
    compute = torch.float64 if first.dtype == torch.float64 else torch.float32
    batch = int(np.prod(leading, dtype=np.int64)) if leading else 1
    name = backends.resolve(backend, first.device)
    circuit.freeze()
    differentiable = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (p, g))
    if differentiable:
        name = _differentiable_backend(name)

    def rows(t: torch.Tensor | None, wanted: bool) -> torch.Tensor | None:
        if t is None or not wanted:
            return None
        t = t if differentiable else t.detach()
        return t.to(compute).reshape(batch, n)

    params_rows = rows(p, circuit.uses_params or g is None)
    grads_rows = rows(g, circuit.uses_grads)
    run = backends.simulator(name)
    options = dict(batch=batch, dtype=compute, device=first.device)
    state = None
    if differentiable and name in ("cpu", "cuda") and (params_rows is not None or grads_rows is not None):
        expectations = _KernelSimulate.apply(circuit, name, params_rows, grads_rows)
        if return_state:
            with torch.no_grad():
                _, state = run(circuit, params_rows, grads_rows, return_state=True, **options)
    else:
        expectations, state = run(
            circuit, params_rows, grads_rows, return_state=bool(return_state), **options
        )
    expectations = expectations.reshape(*leading, n).to(first.dtype)
    if state is not None:
        state = state.reshape(*leading, 2**n)
    if as_numpy:
        expectations = expectations.detach().cpu().numpy()
        state = state.cpu().numpy() if state is not None else None
    return (expectations, state) if return_state else expectations


def _differentiable_backend(name: str) -> str:
    """The backend that computes gradients for a call that needs them."""
    if name == "aer":
        raise ValueError(
            "backend 'aer' does not compute gradients; "
            "use 'cpu', 'cuda' or 'torch' for inputs that require grad"
        )
    return name


class _KernelSimulate(torch.autograd.Function):
    """Expectations from a compiled kernel, with their gradients from the same kernel's adjoint method."""

    @staticmethod
    def forward(
        ctx: Any, circuit: Circuit, kernel: str, params: torch.Tensor | None, grads: torch.Tensor | None
    ) -> torch.Tensor:
        first = params if params is not None else grads
        expectations, _ = backends.simulator(kernel)(
            circuit,
            params,
            grads,
            batch=first.shape[0],
            dtype=first.dtype,
            device=first.device,
            return_state=False,
        )
        ctx.circuit = circuit
        ctx.save_for_backward(params, grads)
        return expectations

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_expectations: torch.Tensor) -> tuple:
        params, grads = ctx.saved_tensors
        d_params, d_grads = kernel_backend.simulate_backward(
            ctx.circuit,
            params,
            grads,
            grad_expectations,
            want_params=params is not None and ctx.needs_input_grad[2],
            want_grads=grads is not None and ctx.needs_input_grad[3],
        )
        return None, None, d_params, d_grads


def _as_tensor(value: Any, name: str) -> torch.Tensor | None:
    if value is None or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        if not value.dtype.isnative or any(stride < 0 for stride in value.strides):
            # torch.from_numpy refuses negative strides (a reversed view) and a foreign byte order.
            value = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("="))
        return torch.from_numpy(value)
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
