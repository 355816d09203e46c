"""Qiskit Aer as a backend: exact statevector simulation, for validation.

Expectations come from Aer's ``EstimatorV2`` run exactly (``default_precision=0``)
with one parameterised PUB for the whole batch; statevectors from an
``AerSimulator(method="statevector")`` run with ``save_statevector`` and the
batch bound through ``parameter_binds``. Aer computes in float64.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..geometry import complex_dtype

if TYPE_CHECKING:  # pragma: no cover
    from ..circuit import Circuit
    from .base import Batch

_AVAILABLE: bool | None = None


def available() -> bool:
    """Whether qiskit and qiskit-aer import. Asked once per process: a failed import is not cached
    by Python and would search sys.path again on every call."""
    global _AVAILABLE
    if _AVAILABLE is None:
        try:
            import qiskit  # noqa: F401
            import qiskit_aer  # noqa: F401
        except ImportError:
            _AVAILABLE = False
        else:
            _AVAILABLE = True
    return _AVAILABLE


def _require() -> None:
    if not available():
        raise ImportError("backend 'aer' needs qiskit and qiskit-aer: pip install 'superpositional[qiskit]'")


def parameter_values(
    qc: Any, params: torch.Tensor | None, grads: torch.Tensor | None, batch: int
) -> np.ndarray:
    """``[B, P]`` float64 values for ``qc.parameters`` (``theta[k]`` <- params, ``g[k]`` <- grads)."""
    inputs = {"theta": params, "g": grads}
    columns = []
    for p in qc.parameters:
        source = inputs[p.vector.name]
        assert source is not None  # simulate() checked that the inputs the circuit reads are given
        columns.append(source[:, p.index].detach().to("cpu", torch.float64).numpy())
    return np.stack(columns, axis=-1) if columns else np.zeros((batch, 0))


@functools.lru_cache(maxsize=1)
def estimator() -> Any:
    """An exact Aer ``EstimatorV2`` (``default_precision=0``), built once."""
    from qiskit_aer.primitives import EstimatorV2

    return EstimatorV2(options={"default_precision": 0.0})


def simulate_aer(
    circuit: Circuit, batch: Batch, *, return_state: bool = False, out: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Expectations ``[B, n]`` (and statevectors ``[B, 2**n]``) computed by Qiskit Aer, into ``out``
    when given."""
    _require()
    qc, observables = circuit.to_qiskit()
    n, size = circuit.n_qubits, batch.size
    values = parameter_values(qc, batch.params, batch.grads, size)
    if size == 0:
        evs = np.zeros((0, n))
    elif values.shape[1] == 0:
        result = estimator().run([(qc, observables)]).result()
        evs = np.broadcast_to(np.asarray(result[0].data.evs), (size, n))
    else:
        pub = (qc, [observables], values.reshape(size, 1, -1))
        evs = np.asarray(estimator().run([pub]).result()[0].data.evs)
    expectations = torch.as_tensor(np.ascontiguousarray(evs), dtype=torch.float64).to(
        batch.device, batch.dtype
    )
    if out is not None:
        expectations = out.copy_(expectations)
    state = None
    if return_state:
        state = _statevectors(qc, values, size).to(batch.device, complex_dtype(batch.dtype))
    return expectations, state


def _statevectors(qc: Any, values: np.ndarray, batch: int) -> torch.Tensor:
    from qiskit_aer import AerSimulator

    n = qc.num_qubits
    if batch == 0:
        return torch.zeros(0, 2**n, dtype=torch.complex128)
    saving = qc.copy()
    saving.save_statevector()
    simulator = AerSimulator(method="statevector", precision="double")
    if values.shape[1] == 0:
        result = simulator.run(saving).result()
        state = np.asarray(result.get_statevector(0))
        return torch.as_tensor(np.broadcast_to(state, (batch, 2**n)).copy())
    binds = [{p: values[:, i].tolist() for i, p in enumerate(qc.parameters)}]
    result = simulator.run(saving, parameter_binds=binds).result()
    states = np.stack([np.asarray(result.get_statevector(i)) for i in range(batch)])
    return torch.as_tensor(states)
