"""The compiled kernels as a backend: ``"cpu"`` (C++, OpenMP + SIMD)."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
