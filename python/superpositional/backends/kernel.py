"""The compiled kernels as a backend, ``"cpu"`` (C++, OpenMP, SIMD): batched simulation and the fused step."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .._extension import require_extension

if TYPE_CHECKING:  # pragma: no cover
    from ..circuit import Circuit

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}
_DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64"}


def _pointer(t: torch.Tensor | None) -> tuple[int, tuple[int, int]]:
    if t is None:
        return 0, (0, 0)
    return t.data_ptr(), (t.stride(0), t.stride(1))


def simulate_cpu(
    circuit: Circuit,
    params: torch.Tensor | None,
    grads: torch.Tensor | None,
    *,
    batch: int,
    dtype: torch.dtype,
    device: torch.device,
    return_state: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Expectations ``[B, n]`` (and statevectors) from the C++ kernel; inputs may be strided."""
    ext = require_extension()
    program = circuit.program(keep_state=return_state)
    n = circuit.n_qubits
    out = torch.empty(batch, n, dtype=dtype)
    state = torch.empty(batch, 2**n, dtype=_COMPLEX[dtype]) if return_state else None
    if batch > 0:
        params_ptr, params_stride = _pointer(params)
        grads_ptr, grads_stride = _pointer(grads)
        ext.simulate_cpu(
            program,
            params_ptr,
            params_stride,
            grads_ptr,
            grads_stride,
            out.data_ptr(),
            state.data_ptr() if state is not None else 0,
            batch,
            _DTYPE_NAMES[dtype],
            torch.get_num_threads(),
        )
    return out, state


_PARAM_TYPES = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.bfloat16: "bfloat16",
    torch.float16: "float16",
}


def row_length(t: torch.Tensor) -> int:
    """Elements per row: a row is a slice along dim 0 (tensors of dim 0 or 1 are one row)."""
    if t.dim() >= 2 and t.shape[0] > 0:
        return t.numel() // t.shape[0]
    return max(t.numel(), 1)


def step_cpu(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    steps: list[torch.Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    quantum_weight: float,
    maximize: bool,
    circuit: Circuit,
    coverage: str,
) -> None:
    """The fused step: one kernel call per parameter dtype covers every tensor.

    ``exp_avgs``, ``exp_avg_sqs`` must be contiguous (the optimizer creates them
    so) and ``steps`` float32 CPU scalars. A non-contiguous parameter or gradient
    is stepped through a contiguous copy (the one case that allocates).
    """
    ext = require_extension()
    program = circuit.program()
    by_dtype: dict[torch.dtype, list[int]] = {}
    for i, p in enumerate(params):
        by_dtype.setdefault(p.dtype, []).append(i)
    for dtype, indices in by_dtype.items():
        table = np.empty((len(indices), 7), dtype=np.int64)
        keep_alive, write_back = [], []
        for row, i in enumerate(indices):
            p, g = params[i], grads[i]
            work = p if p.is_contiguous() else p.contiguous()
            if work is not p:
                write_back.append((p, work))
            g = g if g.is_contiguous() else g.contiguous()
            keep_alive.append(g)
            table[row] = (
                work.data_ptr(),
                g.data_ptr(),
                exp_avgs[i].data_ptr(),
                exp_avg_sqs[i].data_ptr(),
                steps[i].data_ptr(),
                p.numel(),
                row_length(p),
            )
        ext.step_cpu(
            program,
            table.ctypes.data,
            len(indices),
            _PARAM_TYPES[dtype],
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            quantum_weight,
            maximize,
            coverage,
            torch.get_num_threads(),
        )
        for p, work in write_back:
            p.copy_(work)
