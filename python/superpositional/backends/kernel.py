"""The compiled kernels as backends: ``"cpu"`` (C++, OpenMP, SIMD) and ``"cuda"``.

Each offers batched simulation, its adjoint backward and the fused optimizer step, for tensors on
either device: the same Python serves both, and only where the kernel runs differs (OpenMP threads,
or the current PyTorch stream of the tensors' device, without a host synchronisation). Python only
checks, allocates outputs and passes raw pointers, strides and the extension's enums.
"""

from __future__ import annotations

import functools
import math
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._extension import require_extension
from ..geometry import complex_dtype, compute_dtype, row_length
from .base import Batch, StepConfig, StepTensors

if TYPE_CHECKING:  # pragma: no cover
    from ..circuit import Circuit

__all__ = ["device_program", "fused_step", "simulate", "simulate_backward"]

_DTYPE_NAMES = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.bfloat16: "bfloat16",
    torch.float16: "float16",
}

# circuit -> {(device, keep_state): uint8 device tensor holding the compiled Program}
_DEVICE_PROGRAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def device_program(circuit: Circuit, device: torch.device, keep_state: bool = False) -> torch.Tensor:
    """The compiled program on ``device``, copied once per circuit; kernels read its bytes as their struct."""
    cache = _DEVICE_PROGRAMS.setdefault(circuit, {})
    key = (device, keep_state)
    if key not in cache:
        raw = bytearray(circuit.program(keep_state=keep_state).to_bytes())
        cache[key] = torch.frombuffer(raw, dtype=torch.uint8).to(device)
    return cache[key]


@functools.cache
def _entry_point(entry: str, device_type: str) -> Any:
    return getattr(require_extension(), f"{entry}_{device_type}")


# torch's own raw accessor skips building a torch.cuda.Stream object (a few microseconds a call,
# which issue 17 counts); the public route is the fallback where a build lacks it.
_RAW_STREAM = getattr(torch._C, "_cuda_getCurrentRawStream", None)


def _raw_stream(index: int) -> int:
    """The current CUDA stream of device ``index`` as a ``cudaStream_t`` value."""
    return _RAW_STREAM(index) if _RAW_STREAM is not None else torch.cuda.current_stream(index).cuda_stream


def _launch(entry: str, circuit: Circuit, device: torch.device, *args: Any, keep_state: bool = False) -> None:
    """Call the extension's ``<entry>_cpu`` or ``<entry>_cuda`` for ``device``: the same arguments,
    with the device copy of the program and the current stream, or the OpenMP thread count."""
    program = circuit.program(keep_state)
    if device.type == "cuda":
        current = torch.cuda.current_device()
        index = current if device.index is None else device.index
        copy = device_program(circuit, device, keep_state).data_ptr()
        if index == current:
            _entry_point(entry, "cuda")(program, copy, *args, _raw_stream(index))
        else:  # the kernels launch on the current device
            with torch.cuda.device(index):
                _entry_point(entry, "cuda")(program, copy, *args, _raw_stream(index))
    else:
        _entry_point(entry, "cpu")(program, *args, torch.get_num_threads())


def _inputs(batch: Batch) -> tuple:
    """The strided ``[size, n]`` inputs as the extension takes them: pointer and strides of each."""

    def pointer(t: torch.Tensor | None) -> tuple[int, tuple[int, int]]:
        return (0, (0, 0)) if t is None else (t.data_ptr(), t.stride())

    return (*pointer(batch.params), *pointer(batch.grads))


@functools.cache
def _enum(kind: str, name: str) -> Any:
    """A member of one of the extension's enums (``DType``, ``ParamType``, ``Coverage``), by name."""
    return getattr(getattr(require_extension(), kind), name)


def _dtype(dtype: torch.dtype) -> Any:
    return _enum("DType", _DTYPE_NAMES[dtype])


def simulate(
    circuit: Circuit,
    batch: Batch,
    *,
    return_state: bool = False,
    keep_state: bool | None = None,
    out: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Expectations ``[size, n]`` (and statevectors ``[size, 2**n]``) from the kernel of the batch's
    device; inputs may be strided.

    ``keep_state`` runs the program compiled for the full statevector (no gates moved into the
    observables) even when the states are not returned; ``out`` (contiguous ``[size, n]`` in the
    batch's dtype) receives the expectations without an allocation.
    """
    n = circuit.n_qubits
    if out is None:
        out = torch.empty(batch.size, n, dtype=batch.dtype, device=batch.device)
    elif out.shape != (batch.size, n) or out.dtype != batch.dtype or out.device != batch.device:
        raise ValueError(f"out must be a [{batch.size}, {n}] {batch.dtype} tensor on {batch.device}")
    elif not out.is_contiguous():
        raise ValueError("out must be contiguous")
    state = None
    if return_state:
        state = torch.empty(batch.size, 2**n, dtype=complex_dtype(batch.dtype), device=batch.device)
    if batch.size > 0:
        _launch(
            "simulate",
            circuit,
            batch.device,
            *_inputs(batch),
            out.data_ptr(),
            state.data_ptr() if state is not None else 0,
            batch.size,
            _dtype(batch.dtype),
            keep_state=return_state if keep_state is None else keep_state,
        )
    return out, state


def simulate_backward(
    circuit: Circuit,
    batch: Batch,
    weights: torch.Tensor,
    *,
    want_params: bool,
    want_grads: bool,
    keep_state: bool = False,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients of ``sum(weights * e)`` with respect to the batch's params and grads (the adjoint
    method), on the kernel of the batch's device.

    ``keep_state`` runs the program compiled for the full statevector, so that the statevector
    sweep runs even where the compiled program is a product (benchmarks compare the two)."""
    weights = weights.contiguous()
    if (
        weights.shape != (batch.size, circuit.n_qubits)
        or weights.dtype != batch.dtype
        or weights.device != batch.device
    ):
        raise ValueError(
            f"weights must be a [{batch.size}, {circuit.n_qubits}] {batch.dtype} tensor on {batch.device}"
        )
    # empty_like: the outputs share the weights' shape, dtype and device (and it is the cheapest
    # allocation torch offers, which matters at a few microseconds per call).
    d_params = torch.empty_like(weights) if want_params else None
    d_grads = torch.empty_like(weights) if want_grads else None
    if batch.size == 0 or not (want_params or want_grads):
        return d_params, d_grads
    _launch(
        "simulate_backward",
        circuit,
        batch.device,
        *_inputs(batch),
        weights.data_ptr(),
        d_params.data_ptr() if d_params is not None else 0,
        d_grads.data_ptr() if d_grads is not None else 0,
        batch.size,
        _dtype(batch.dtype),
        keep_state=keep_state,
    )
    return d_params, d_grads


class _TensorTable:
    """The kernels' table of tensors (9 int64 words each, laid out as their StepTensor).

    Non-contiguous parameters or gradients are stepped through contiguous copies
    (the one case that allocates); :meth:`write_back` copies parameters back. Unless
    ``states_checked``, every state is checked against its parameter first.
    """

    def __init__(self, tensors: StepTensors, states_checked: bool = False) -> None:
        if not states_checked:
            for p, _, m, v, step, v_max in tensors.rows():
                _check_state(p, m, v, step, v_max)
        self._write_back: list[tuple[torch.Tensor, torch.Tensor]] = []
        params = [self._stepped(p) for p in tensors.params]
        # Kept alive until the call returns: a contiguous copy exists only here.
        self._grads = [g if g.is_contiguous() else g.contiguous() for g in tensors.grads]
        n = len(params)
        sizes = [_row_info(p.shape) for p in params]
        maxima = tensors.max_exp_avg_sqs
        self.rows = np.array(
            [
                [p.data_ptr() for p in params],
                [g.data_ptr() for g in self._grads],
                [m.data_ptr() for m in tensors.exp_avgs],
                [v.data_ptr() for v in tensors.exp_avg_sqs],
                [w.data_ptr() for w in maxima] if maxima else [0] * n,
                [s.data_ptr() for s in tensors.steps],
                [numel for numel, _ in sizes],
                [length for _, length in sizes],
                tensors.rounding_streams or [0] * n,
            ],
            dtype=np.int64,
        ).T.copy()

    def _stepped(self, p: torch.Tensor) -> torch.Tensor:
        """``p``, or a contiguous copy that :meth:`write_back` copies back."""
        if p.is_contiguous():
            return p
        work = p.contiguous()
        self._write_back.append((p, work))
        return work

    @property
    def address(self) -> int:
        return self.rows.ctypes.data

    def write_back(self) -> None:
        for p, work in self._write_back:
            p.copy_(work)


@functools.lru_cache(maxsize=4096)
def _row_info(shape: torch.Size) -> tuple[int, int]:
    """``(numel, row_length)`` of a tensor of ``shape``: the same few shapes recur at every step."""
    return math.prod(shape), row_length(shape)


def _check_state(
    p: torch.Tensor, m: torch.Tensor, v: torch.Tensor, step: torch.Tensor, v_max: torch.Tensor | None
) -> None:
    """The kernels trust these pointers: refuse a state that does not fit its parameter. States are
    in the compute dtype or, for a 16-bit parameter, in the parameter's dtype; all of one kind."""
    state = m.dtype if m.dtype in (compute_dtype(p.dtype), p.dtype) else compute_dtype(p.dtype)
    moments = [("exp_avg", m), ("exp_avg_sq", v)] + ([] if v_max is None else [("max_exp_avg_sq", v_max)])
    for name, t in moments:
        if t.device != p.device or t.dtype != state or t.shape != p.shape or not t.is_contiguous():
            raise RuntimeError(
                f"optimizer state {name} must be a contiguous {state} tensor of shape {list(p.shape)} on "
                f"{p.device}, got {t.dtype} {list(t.shape)} on {t.device}"
            )
    if step.device != p.device or step.dtype != torch.float32 or step.numel() != 1:
        raise RuntimeError(
            f"optimizer state step must be a float32 scalar on {p.device}, got {step.dtype} on {step.device}"
        )


def _by_types(tensors: StepTensors) -> dict[tuple[torch.dtype, torch.dtype], list[int]]:
    """The tensors' indices per (parameter dtype, state dtype): one kernel call each."""
    groups: dict[tuple[torch.dtype, torch.dtype], list[int]] = {}
    for i, (p, m) in enumerate(zip(tensors.params, tensors.exp_avgs)):
        groups.setdefault((p.dtype, m.dtype), []).append(i)
    return groups


def fused_step(tensors: StepTensors, config: StepConfig) -> None:
    """The fused step on the kernel of the parameters' device: one call per parameter and state
    dtype covers every tensor (the CUDA kernels launch per 128 tensors, on the current stream, with no host
    synchronisation).

    ``exp_avgs`` and ``exp_avg_sqs`` must be contiguous (the optimizer creates them so) and
    ``steps`` float32 scalars on the parameters' device, which the kernel reads and increments. An
    ``lr`` given as a float32 tensor on that device is read there too, so a GPU step can be captured
    in a CUDA graph and replayed.
    """
    device = tensors.params[0].device
    if config.amsgrad and len(tensors.max_exp_avg_sqs) != len(tensors.params):
        raise ValueError("an AMSGrad step needs one max_exp_avg_sq per parameter")
    lr, lr_device = config.lr, 0
    if isinstance(lr, torch.Tensor) and lr.device == device and lr.dtype == torch.float32:
        lr, lr_device = 0.0, lr.data_ptr()
    if config.rounding_seed is not None and len(tensors.rounding_streams) != len(tensors.params):
        raise ValueError("a stochastically rounded step needs one rounding stream per parameter")
    by_types = _by_types(tensors)
    # Every table (and so every check of every state) before the first launch: a bad tensor of one
    # dtype must not leave the tensors of another stepped.
    tables = {
        types: _TensorTable(tensors if len(by_types) == 1 else tensors.select(indices), config.states_checked)
        for types, indices in by_types.items()
    }
    for (dtype, state_dtype), indices in by_types.items():
        table = tables[dtype, state_dtype]
        _launch(
            "step",
            config.circuit,
            device,
            table.address,
            len(indices),
            _enum("ParamType", _DTYPE_NAMES[dtype]),
            _enum("ParamType", _DTYPE_NAMES[state_dtype]),
            float(lr),
            lr_device,
            *config.hyperparameters(),
            _enum("Coverage", config.coverage),
        )
        table.write_back()
    # The kernels wrote through raw pointers: tell autograd, as an in-place torch op would, so that a
    # graph that saved one of these tensors refuses to backpropagate through its old values.
    torch.autograd.graph.increment_version(
        [*tensors.params, *tensors.exp_avgs, *tensors.exp_avg_sqs, *tensors.max_exp_avg_sqs, *tensors.steps]
    )
