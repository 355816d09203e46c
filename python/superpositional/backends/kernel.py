"""The compiled kernels as backends: ``"cpu"`` (C++, OpenMP, SIMD) and ``"cuda"``.

Each offers batched simulation and the fused optimizer step. Python only checks,
allocates outputs and passes raw pointers, strides and the extension's enums; CUDA work is
launched on the current PyTorch stream of the tensors' device, without a host
synchronisation.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import numpy as np
import torch

from .._extension import require_extension

if TYPE_CHECKING:  # pragma: no cover
    from ..circuit import Circuit

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}
# Members of the extension's enums DType (simulation) and ParamType (the fused step), by torch dtype.
_DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64"}
_PARAM_TYPES = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.bfloat16: "bfloat16",
    torch.float16: "float16",
}

# circuit -> {(device, keep_state): uint8 device tensor holding the compiled Program}
_DEVICE_PROGRAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _pointer(t: torch.Tensor | None) -> tuple[int, tuple[int, int]]:
    if t is None:
        return 0, (0, 0)
    return t.data_ptr(), (t.stride(0), t.stride(1))


def device_program(circuit: Circuit, device: torch.device, keep_state: bool = False) -> torch.Tensor:
    """The compiled program on ``device``, copied once per circuit; kernels read its bytes as their struct."""
    cache = _DEVICE_PROGRAMS.setdefault(circuit, {})
    key = (device, keep_state)
    if key not in cache:
        raw = bytearray(circuit.program(keep_state=keep_state).to_bytes())
        cache[key] = torch.frombuffer(raw, dtype=torch.uint8).to(device)
    return cache[key]


def _stream(device: torch.device) -> int:
    return torch.cuda.current_stream(device).cuda_stream


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
            getattr(ext.DType, _DTYPE_NAMES[dtype]),
            torch.get_num_threads(),
        )
    return out, state


def simulate_cuda(
    circuit: Circuit,
    params: torch.Tensor | None,
    grads: torch.Tensor | None,
    *,
    batch: int,
    dtype: torch.dtype,
    device: torch.device,
    return_state: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Expectations ``[B, n]`` (and statevectors) from the CUDA kernel, on the current stream."""
    ext = require_extension()
    program = circuit.program(keep_state=return_state)
    n = circuit.n_qubits
    out = torch.empty(batch, n, dtype=dtype, device=device)
    state = torch.empty(batch, 2**n, dtype=_COMPLEX[dtype], device=device) if return_state else None
    if batch > 0:
        with torch.cuda.device(device):
            params_ptr, params_stride = _pointer(params)
            grads_ptr, grads_stride = _pointer(grads)
            ext.simulate_cuda(
                program,
                device_program(circuit, device, return_state).data_ptr(),
                params_ptr,
                params_stride,
                grads_ptr,
                grads_stride,
                out.data_ptr(),
                state.data_ptr() if state is not None else 0,
                batch,
                getattr(ext.DType, _DTYPE_NAMES[dtype]),
                _stream(device),
            )
    return out, state


def simulate_backward(
    circuit: Circuit,
    params: torch.Tensor | None,
    grads: torch.Tensor | None,
    weights: torch.Tensor,
    *,
    want_params: bool,
    want_grads: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients of ``sum(weights * e)`` with respect to params and grads ``[B, n]`` (adjoint method).

    Runs on the kernel of the weights' device: the C++ kernel for CPU tensors, the
    CUDA kernel (on the current stream) for CUDA tensors.
    """
    ext = require_extension()
    program = circuit.program()
    batch, n = weights.shape
    dtype, device = weights.dtype, weights.device
    weights = weights.contiguous()
    d_params = torch.empty(batch, n, dtype=dtype, device=device) if want_params else None
    d_grads = torch.empty(batch, n, dtype=dtype, device=device) if want_grads else None
    if batch == 0 or not (want_params or want_grads):
        return d_params, d_grads
    params_ptr, params_stride = _pointer(params)
    grads_ptr, grads_stride = _pointer(grads)
    inputs = (params_ptr, params_stride, grads_ptr, grads_stride, weights.data_ptr())
    outputs = (
        d_params.data_ptr() if d_params is not None else 0,
        d_grads.data_ptr() if d_grads is not None else 0,
    )
    if device.type == "cuda":
        with torch.cuda.device(device):
            ext.simulate_backward_cuda(
                program,
                device_program(circuit, device).data_ptr(),
                *inputs,
                *outputs,
                batch,
                getattr(ext.DType, _DTYPE_NAMES[dtype]),
                _stream(device),
            )
    else:
        ext.simulate_backward_cpu(
            program,
            *inputs,
            *outputs,
            batch,
            getattr(ext.DType, _DTYPE_NAMES[dtype]),
            torch.get_num_threads(),
        )
    return d_params, d_grads


def row_length(t: torch.Tensor) -> int:
    """Elements per row: a row is a slice along dim 0 (tensors of dim 0 or 1 are one row)."""
    if t.dim() >= 2 and t.shape[0] > 0:
        return t.numel() // t.shape[0]
    return max(t.numel(), 1)


class _TensorTable:
    """The kernels' table of tensors (7 int64 words each, laid out as their StepTensor).

    Non-contiguous parameters or gradients are stepped through contiguous copies
    (the one case that allocates); :meth:`write_back` copies parameters back.
    """

    def __init__(self, params, grads, exp_avgs, exp_avg_sqs, steps) -> None:
        self.rows = np.empty((len(params), 7), dtype=np.int64)
        self._keep_alive: list[torch.Tensor] = []
        self._write_back: list[tuple[torch.Tensor, torch.Tensor]] = []
        for row, (p, g, m, v, step) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs, steps)):
            _check_state(p, m, v, step)
            work = p if p.is_contiguous() else p.contiguous()
            if work is not p:
                self._write_back.append((p, work))
            g = g if g.is_contiguous() else g.contiguous()
            self._keep_alive.append(g)
            self.rows[row] = (
                work.data_ptr(),
                g.data_ptr(),
                m.data_ptr(),
                v.data_ptr(),
                step.data_ptr(),
                p.numel(),
                row_length(p),
            )

    @property
    def address(self) -> int:
        return self.rows.ctypes.data

    def write_back(self) -> None:
        for p, work in self._write_back:
            p.copy_(work)


def _check_state(p: torch.Tensor, m: torch.Tensor, v: torch.Tensor, step: torch.Tensor) -> None:
    """The kernels trust these pointers: refuse a state that does not fit its parameter."""
    state = torch.float32 if p.dtype in (torch.bfloat16, torch.float16) else p.dtype
    for name, t in (("exp_avg", m), ("exp_avg_sq", v)):
        if t.device != p.device or t.dtype != state or t.shape != p.shape or not t.is_contiguous():
            raise RuntimeError(
                f"optimizer state {name} must be a contiguous {state} tensor of shape {list(p.shape)} on "
                f"{p.device}, got {t.dtype} {list(t.shape)} on {t.device}"
            )
    if step.device != p.device or step.dtype != torch.float32 or step.numel() != 1:
        raise RuntimeError(
            f"optimizer state step must be a float32 scalar on {p.device}, got {step.dtype} on {step.device}"
        )


def _by_dtype(params: list[torch.Tensor]) -> dict[torch.dtype, list[int]]:
    groups: dict[torch.dtype, list[int]] = {}
    for i, p in enumerate(params):
        groups.setdefault(p.dtype, []).append(i)
    return groups


def step_cpu(
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
) -> None:
    """The fused step on the CPU: one kernel call per parameter dtype covers every tensor.

    ``exp_avgs``, ``exp_avg_sqs`` must be contiguous (the optimizer creates them
    so) and ``steps`` float32 CPU scalars, which the kernel increments.
    """
    ext = require_extension()
    program = circuit.program()
    for dtype, indices in _by_dtype(params).items():
        table = _TensorTable(
            *([t[i] for i in indices] for t in (params, grads, exp_avgs, exp_avg_sqs, steps))
        )
        ext.step_cpu(
            program,
            table.address,
            len(indices),
            getattr(ext.ParamType, _PARAM_TYPES[dtype]),
            float(lr),
            0,  # lr_device: on the CPU the rate is passed as a float
            beta1,
            beta2,
            eps,
            weight_decay,
            quantum_weight,
            maximize,
            getattr(ext.Coverage, coverage),
            torch.get_num_threads(),
        )
        table.write_back()


def step_cuda(
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
) -> None:
    """The fused step on the GPU: multi-tensor launches on the current stream, no host synchronisation.

    ``steps`` are float32 tensors on the parameters' device, read and incremented
    by the kernels; an ``lr`` given as a float32 tensor on that device is read
    there too, so the step can be captured in a CUDA graph and replayed.
    """
    ext = require_extension()
    program = circuit.program()
    device = params[0].device
    lr_device = 0
    if isinstance(lr, torch.Tensor) and lr.device == device and lr.dtype == torch.float32:
        lr_device, lr = lr.data_ptr(), 0.0
    with torch.cuda.device(device):
        program_ptr = device_program(circuit, device).data_ptr()
        for dtype, indices in _by_dtype(params).items():
            table = _TensorTable(
                *([t[i] for i in indices] for t in (params, grads, exp_avgs, exp_avg_sqs, steps))
            )
            ext.step_cuda(
                program,
                program_ptr,
                table.address,
                len(indices),
                getattr(ext.ParamType, _PARAM_TYPES[dtype]),
                float(lr),
                lr_device,
                beta1,
                beta2,
                eps,
                weight_decay,
                quantum_weight,
                maximize,
                getattr(ext.Coverage, coverage),
                _stream(device),
            )
            table.write_back()
