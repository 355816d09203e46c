"""``simulate``: expectations (and statevectors) of one circuit for a batch of input rows.

Inputs are checked once here, for every backend (a registry name or a Qiskit target), and reach
the backends as ``[batch, n]`` rows in the compute dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import backends
from .backends.base import Backend, Batch
from .backends.qiskit import jobs
from .backends.qiskit.target import QiskitTarget, scrubbed
from .circuit import Circuit
from .geometry import compute_dtype

__all__ = ["simulate"]

Array = torch.Tensor | np.ndarray


def simulate(
    circuit: Circuit,
    params: Array | None = None,
    grads: Array | None = None,
    backend: str | QiskitTarget = "auto",
    return_state: bool = False,
    out: torch.Tensor | None = None,
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
        backend: ``"auto"`` (the kernel for the inputs' device), ``"cpu"``, ``"cuda"``, ``"torch"``,
            ``"aer"``, or a :class:`superpositional.QiskitTarget` (one job on that backend, waited for;
            a failed, cancelled or timed-out job raises, and so do more rows than its cost guard).
        return_state: also return the statevectors ``[..., 2**n]`` (complex, Qiskit's
            little-endian order: qubit ``k`` is bit ``k`` of the basis index).
        out: a contiguous tensor of the expectations' shape, dtype and device to write them into
            (returned in their place). The compiled kernels then allocate nothing for float32 and
            float64 inputs; like torch's ``out=``, it does not take part in autograd.

    Returns:
        Expectations with the inputs' shape and dtype (a numpy array if the inputs
        were numpy), and the statevectors when ``return_state`` is true. Float32
        and float64 are computed in their own precision, float16 and bfloat16 in
        float32. When ``params`` or ``grads`` require grad, the expectations are
        differentiable (the kernels' adjoint method, or autograd through the torch reference).
    """
    inputs = _Inputs.of(circuit, params, grads)
    differentiable = torch.is_grad_enabled() and inputs.requires_grad
    if out is not None:
        inputs.check_out(out, differentiable)
    if isinstance(backend, QiskitTarget):
        return inputs.output(_on_target(circuit, inputs, backend, return_state), None, return_state, out)
    entry = backends.resolve(backend, inputs.device, stacklevel=2)
    circuit.freeze()
    if differentiable and not entry.differentiable:
        raise ValueError(
            f"backend {entry.name!r} does not compute gradients; "
            "use 'cpu', 'cuda' or 'torch' for inputs that require grad"
        )
    rows = inputs.batch(circuit, keep_graph=differentiable)
    state = None
    if differentiable and entry.adjoint is not None and (rows.params is not None or rows.grads is not None):
        # A compiled kernel: gradients from its adjoint method, not from autograd.
        expectations = _AdjointSimulate.apply(circuit, entry, rows.params, rows.grads)
        if return_state:
            with torch.no_grad():
                _, state = entry.simulate(circuit, rows, return_state=True)
    else:
        # The backend writes into `out` itself where the compute dtype is the inputs' (no copy).
        direct = out.view(rows.size, inputs.n) if out is not None and rows.dtype == inputs.dtype else None
        expectations, state = entry.simulate(circuit, rows, return_state=bool(return_state), out=direct)
    return inputs.output(expectations, state, return_state, out)


@dataclass(frozen=True)
class _Inputs:
    """Checked inputs of one call: ``[..., n]`` tensors sharing shape, dtype and device."""

    params: torch.Tensor | None
    grads: torch.Tensor | None
    n: int
    leading: torch.Size
    dtype: torch.dtype
    device: torch.device
    as_numpy: bool
    size: int  # rows: the product of the leading dimensions

    @classmethod
    def of(cls, circuit: Circuit, params: Any, grads: Any) -> _Inputs:
        if not isinstance(circuit, Circuit):
            raise TypeError(f"simulate() takes a superpositional.Circuit, got {type(circuit).__name__}")
        p, g = _as_tensor(params, "params"), _as_tensor(grads, "grads")
        if circuit.uses_params and p is None:
            raise ValueError("this circuit reads parameters (sp.param): pass params")
        if circuit.uses_grads and g is None:
            raise ValueError("this circuit reads gradients (sp.grad): pass grads")
        if p is None and g is None:
            raise ValueError(
                "pass params (a [B, n] tensor) to set the batch, even for a circuit without inputs"
            )
        n = circuit.n_qubits
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
                raise ValueError(
                    f"params and grads must be on the same device, got {p.device} and {g.device}"
                )
        if not first.dtype.is_floating_point:
            raise TypeError(f"{first_name} must be a floating-point tensor, got {first.dtype}")
        as_numpy = isinstance(params, np.ndarray) or isinstance(grads, np.ndarray)
        leading = first.shape[:-1]
        return cls(p, g, n, leading, first.dtype, first.device, as_numpy, math.prod(leading))

    @property
    def requires_grad(self) -> bool:
        return any(t is not None and t.requires_grad for t in (self.params, self.grads))

    def batch(self, circuit: Circuit, keep_graph: bool = False) -> Batch:
        """The ``[size, n]`` rows the circuit reads, in the compute dtype (``None`` for an input it
        does not read)."""

        def rows(t: torch.Tensor | None, wanted: bool) -> torch.Tensor | None:
            if t is None or not wanted:
                return None
            t = t if keep_graph else t.detach()
            return t.to(compute_dtype(self.dtype)).reshape(self.size, self.n)

        # A circuit that reads no input still gets one, to carry the batch (for Qiskit's PUB rows).
        reads_nothing = not (circuit.uses_params or circuit.uses_grads)
        return Batch(
            rows(self.params, circuit.uses_params or reads_nothing),
            rows(self.grads, circuit.uses_grads or (reads_nothing and self.params is None)),
            self.size,
            compute_dtype(self.dtype),
            self.device,
        )

    def check_out(self, out: Any, differentiable: bool) -> None:
        """Refuse an ``out`` the expectations cannot be written into, before anything runs."""
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"out must be a torch.Tensor, got {type(out).__name__}")
        if self.as_numpy:
            raise TypeError("out= takes the place of a tensor result: numpy inputs return a new array")
        shape = (*self.leading, self.n)
        if out.shape != shape or out.dtype != self.dtype or out.device != self.device:
            raise ValueError(
                f"out must be a {list(shape)} {self.dtype} tensor on {self.device}, "
                f"got {list(out.shape)} {out.dtype} on {out.device}"
            )
        if not out.is_contiguous():
            raise ValueError("out must be contiguous")
        if differentiable:
            raise RuntimeError(
                "simulate(): out= does not support automatic differentiation for inputs that require grad"
            )

    def output(
        self, expectations: torch.Tensor, state: torch.Tensor | None, return_state: bool, out: Any = None
    ) -> Array | tuple[Array, Array]:
        """Results in the inputs' leading shape, dtype and kind (tensor or numpy array), the
        expectations in ``out`` when given."""
        if out is not None:
            if expectations.data_ptr() != out.data_ptr():
                out.copy_(expectations.reshape(out.shape))
            expectations = out
        else:
            expectations = expectations.reshape(*self.leading, self.n).to(self.device, self.dtype)
        if state is not None:
            state = state.reshape(*self.leading, 2**self.n)
        if self.as_numpy:
            expectations = expectations.detach().cpu().numpy()
            state = state.cpu().numpy() if state is not None else None
        return (expectations, state) if return_state else expectations


def _on_target(circuit: Circuit, inputs: _Inputs, target: QiskitTarget, return_state: bool) -> torch.Tensor:
    """Expectations ``[size, n]`` measured on a Qiskit target (float64)."""
    if return_state:
        raise ValueError("a Qiskit target measures expectations only: return_state=True is not available")
    if inputs.requires_grad and torch.is_grad_enabled():
        raise ValueError("a Qiskit target does not compute gradients; use 'cpu' or 'torch' for that")
    circuit.freeze()
    rows = inputs.batch(circuit)
    with scrubbed():  # Qiskit's errors can quote the request, credentials included
        return torch.from_numpy(jobs.evaluate(target, circuit, rows.params, rows.grads, rows.size))


class _AdjointSimulate(torch.autograd.Function):
    """Expectations from a backend's simulation, with their gradients from its adjoint method."""

    @staticmethod
    def forward(
        ctx: Any,
        circuit: Circuit,
        backend: Backend,
        params: torch.Tensor | None,
        grads: torch.Tensor | None,
    ) -> torch.Tensor:
        first = params if params is not None else grads
        batch = Batch(params, grads, first.shape[0], first.dtype, first.device)
        expectations, _ = backend.simulate(circuit, batch)
        ctx.circuit, ctx.adjoint, ctx.batch_info = circuit, backend.adjoint, batch[2:]
        ctx.save_for_backward(params, grads)
        return expectations

    @staticmethod
    def backward(ctx: Any, grad_expectations: torch.Tensor) -> tuple:
        if torch.is_grad_enabled():
            # create_graph=True: the adjoint gradients are not themselves differentiable, and
            # @once_differentiable makes a second backward through them raise. Applied only here,
            # its wrapper costs nothing on the usual path.
            return _adjoint_once_differentiable(ctx, grad_expectations)
        return _adjoint_backward(ctx, grad_expectations)


def _adjoint_backward(ctx: Any, grad_expectations: torch.Tensor) -> tuple:
    """The gradients of :class:`_AdjointSimulate`'s inputs, from the backend's adjoint method."""
    params, grads = ctx.saved_tensors
    needs = ctx.needs_input_grad
    d_params, d_grads = ctx.adjoint(
        ctx.circuit,
        Batch(params, grads, *ctx.batch_info),
        grad_expectations,
        want_params=params is not None and needs[2],
        want_grads=grads is not None and needs[3],
    )
    return None, None, d_params, d_grads


_adjoint_once_differentiable = torch.autograd.function.once_differentiable(_adjoint_backward)


def _as_tensor(value: Any, name: str) -> torch.Tensor | None:
    if value is None or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        if not value.dtype.isnative or any(stride < 0 for stride in value.strides):
            # torch.from_numpy refuses negative strides (a reversed view) and a foreign byte order.
            value = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("="))
        return torch.from_numpy(value)
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
