"""cuStateVec's batched API through ctypes: the peer of ``bench/statevector.py``.

Only the library itself is needed (``pip install custatevec-cu13``, or ``-cu12`` for a CUDA 12
torch; about 60 MB): states, matrices and results live in torch tensors on the GPU, so neither
CuPy nor cuQuantum Python is required. :func:`load` returns ``None`` (with the reason) where the
library or a GPU is missing, and the benchmark then skips the row with that note.

Each circuit of a batch is one state vector of ``2**n`` complex amplitudes; a gate is one call of
``custatevecApplyMatrixBatched`` over the whole batch (per-circuit matrices for rotations whose
angle is an input, one broadcast matrix otherwise), and each output one call of
``custatevecComputeExpectationBatched`` (which returns complex128).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from pathlib import Path

import torch

# cudaDataType_t, custatevecComputeType_t, custatevecMatrixLayout_t, custatevecMatrixMapType_t.
CUDA_C_32F, CUDA_C_64F = 4, 5
COMPUTE_32F, COMPUTE_64F = 1 << 2, 1 << 4
LAYOUT_ROW = 1
MAP_BROADCAST, MAP_INDEXED = 0, 1
_TYPES = {torch.complex64: (CUDA_C_32F, COMPUTE_32F), torch.complex128: (CUDA_C_64F, COMPUTE_64F)}


def _library_path() -> Path | None:
    """``libcustatevec.so.1`` from $CUSTATEVEC_LIBRARY or the ``custatevec-cu*`` wheel."""
    if os.environ.get("CUSTATEVEC_LIBRARY"):
        return Path(os.environ["CUSTATEVEC_LIBRARY"])
    spec = importlib.util.find_spec("cuquantum")
    for root in spec.submodule_search_locations if spec and spec.submodule_search_locations else []:
        candidate = Path(root) / "lib" / "libcustatevec.so.1"
        if candidate.exists():
            return candidate
    return None


class CuStateVec:
    """A cuStateVec handle on the current CUDA device and stream; :meth:`close` releases it."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._lib = library
        self._handle = ctypes.c_void_p()
        self._check(library.custatevecCreate(ctypes.byref(self._handle)), "custatevecCreate")
        stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        self._check(library.custatevecSetStream(self._handle, stream), "custatevecSetStream")
        self._workspace = torch.empty(0, dtype=torch.uint8, device="cuda")

    def _check(self, status: int, what: str) -> None:
        if status != 0:
            raise RuntimeError(f"{what} failed with custatevecStatus_t {status}")

    def _scratch(self, size: int) -> tuple[ctypes.c_void_p, ctypes.c_size_t]:
        if size > self._workspace.numel():
            self._workspace = torch.empty(size, dtype=torch.uint8, device="cuda")
        return ctypes.c_void_p(self._workspace.data_ptr() if size else 0), ctypes.c_size_t(size)

    def apply(
        self,
        states: torch.Tensor,
        matrices: torch.Tensor,
        target: int,
        control: int | None = None,
    ) -> None:
        """Applies a 2x2 matrix to qubit ``target`` of every state (controlled on ``control`` = 1).

        ``states`` is ``[B, 2**n]`` complex; ``matrices`` is ``[B, 2, 2]`` (one per state) or
        ``[2, 2]`` (broadcast), row-major, of the states' dtype, on their device.
        """
        batch, dim = states.shape
        sv_type, compute = _TYPES[states.dtype]
        indexed = matrices.dim() == 3
        indices = torch.arange(batch, dtype=torch.int32, device=states.device) if indexed else None
        n_matrices = batch if indexed else 1
        targets = (ctypes.c_int32 * 1)(target)
        controls = (ctypes.c_int32 * 1)(control if control is not None else 0)
        n_controls = 0 if control is None else 1
        common = (
            sv_type,
            ctypes.c_uint32(dim.bit_length() - 1),
            ctypes.c_uint32(batch),
            ctypes.c_int64(dim),
            MAP_INDEXED if indexed else MAP_BROADCAST,
            ctypes.c_void_p(indices.data_ptr() if indices is not None else 0),
            ctypes.c_void_p(matrices.data_ptr()),
            sv_type,
            LAYOUT_ROW,
            ctypes.c_int32(0),
            ctypes.c_uint32(n_matrices),
        )
        size = ctypes.c_size_t(0)
        self._check(
            self._lib.custatevecApplyMatrixBatchedGetWorkspaceSize(
                self._handle,
                *common,
                ctypes.c_uint32(1),
                ctypes.c_uint32(n_controls),
                compute,
                ctypes.byref(size),
            ),
            "custatevecApplyMatrixBatchedGetWorkspaceSize",
        )
        workspace, workspace_size = self._scratch(size.value)
        self._check(
            self._lib.custatevecApplyMatrixBatched(
                self._handle,
                ctypes.c_void_p(states.data_ptr()),
                *common,
                targets,
                ctypes.c_uint32(1),
                controls,
                None,
                ctypes.c_uint32(n_controls),
                compute,
                workspace,
                workspace_size,
            ),
            "custatevecApplyMatrixBatched",
        )
        del indices  # kept alive until the (stream-ordered) call is queued

    def expectation(self, states: torch.Tensor, observable: torch.Tensor, qubit: int) -> torch.Tensor:
        """``<psi_b| O |psi_b>`` for a 2x2 observable on ``qubit`` of every state: ``[B]`` complex128."""
        batch, dim = states.shape
        sv_type, compute = _TYPES[states.dtype]
        out = torch.empty(batch, dtype=torch.complex128, device=states.device)
        common = (ctypes.c_uint32(dim.bit_length() - 1), ctypes.c_uint32(batch), ctypes.c_int64(dim))
        size = ctypes.c_size_t(0)
        self._check(
            self._lib.custatevecComputeExpectationBatchedGetWorkspaceSize(
                self._handle,
                sv_type,
                *common,
                ctypes.c_void_p(observable.data_ptr()),
                sv_type,
                LAYOUT_ROW,
                ctypes.c_uint32(1),
                ctypes.c_uint32(1),
                compute,
                ctypes.byref(size),
            ),
            "custatevecComputeExpectationBatchedGetWorkspaceSize",
        )
        workspace, workspace_size = self._scratch(size.value)
        bits = (ctypes.c_int32 * 1)(qubit)
        self._check(
            self._lib.custatevecComputeExpectationBatched(
                self._handle,
                ctypes.c_void_p(states.data_ptr()),
                sv_type,
                *common,
                ctypes.c_void_p(out.data_ptr()),
                ctypes.c_void_p(observable.data_ptr()),
                sv_type,
                LAYOUT_ROW,
                ctypes.c_uint32(1),
                bits,
                ctypes.c_uint32(1),
                compute,
                workspace,
                workspace_size,
            ),
            "custatevecComputeExpectationBatched",
        )
        return out

    def close(self) -> None:
        if self._handle:
            self._lib.custatevecDestroy(self._handle)
            self._handle = ctypes.c_void_p()


def load() -> tuple[CuStateVec | None, str]:
    """A handle, or ``None`` and why the cuStateVec row cannot run here."""
    if not torch.cuda.is_available():
        return None, "no CUDA device"
    path = _library_path()
    if path is None:
        return None, "cuStateVec not installed (pip install custatevec-cu13, or -cu12 for a CUDA 12 torch)"
    # libcustatevec needs libcublas and libcublasLt of its CUDA major: torch loads its own on the
    # first matrix product, and the loader then resolves them by soname.
    torch.ones(2, 2, device="cuda") @ torch.ones(2, 2, device="cuda")
    try:
        library = ctypes.CDLL(str(path))
    except OSError as error:
        return None, f"cuStateVec could not be loaded: {error}"
    return CuStateVec(library), f"cuStateVec from {path.parent.parent.name}"
