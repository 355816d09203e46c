"""Running one evaluation on a :class:`~.qiskit_target.QiskitTarget`: ISA circuit, PUB, Estimator, job.

An evaluation is ``B`` rows of inputs for one circuit. The circuit is transpiled once per target to
the backend's ISA (``generate_preset_pass_manager``; the observables follow the layout with
``SparsePauliOp.apply_layout``) and sent as **one parameterised PUB**: the ISA circuit, its ``n``
single-qubit observables and a ``[B, 1, P]`` array of parameter values, so the job returns
expectations ``[B, n]``. The primitive is qiskit-ibm-runtime's current Estimator
(``qiskit_ibm_runtime.executor_estimator.Estimator``, which replaces the deprecated
``EstimatorV2``); it runs on IBM Quantum, and on fake devices and Aer in local mode.

:func:`evaluate` waits for the result. :func:`launch` and :func:`collect` return at once with a
:class:`Launch` whose result arrives later: remote jobs are submitted and watched from a daemon
thread (which mostly sleeps between status polls), while local backends run in a low-priority
worker process by default, because simulating the stand-in device in this process would hold the
interpreter lock that training needs.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import aer
from . import worker
from .target import redact

if TYPE_CHECKING:  # pragma: no cover
    from ..circuit import Circuit
    from .target import QiskitTarget

logger = logging.getLogger("superpositional.qiskit")

_POLL_FIRST = 0.01  # seconds: local jobs finish in well under a second
_POLL_MAX = 2.0  # seconds: a remote status poll is an HTTP request; no need to ask more often


# Gates no IBM device runs natively: a backend that accepts them is a general-purpose simulator.
_GENERIC_GATES = ("h", "ry")
_IBM_BASIS = ["rz", "sx", "x", "cx"]


class JobCancelled(RuntimeError):
    """The job was cancelled (by the user, the service, or our timeout)."""


def transpile(backend: Any, circuit: Circuit, optimization_level: int, seed: int | None) -> tuple[Any, list]:
    """The circuit as an ISA circuit of ``backend`` and its observables mapped to the same layout."""
    from qiskit.transpiler import generate_preset_pass_manager

    qc, observables = circuit.to_qiskit()
    if any(name in backend.target.operation_names for name in _GENERIC_GATES):
        # A simulator that takes any gate (AerSimulator): the runtime's Estimator builds its measurement
        # circuits for IBM-style ISA circuits only, so translate to those gates (no layout to follow).
        manager = generate_preset_pass_manager(
            optimization_level=optimization_level, basis_gates=_IBM_BASIS, seed_transpiler=seed
        )
    else:
        manager = generate_preset_pass_manager(
            backend=backend, optimization_level=optimization_level, seed_transpiler=seed
        )
    isa = manager.run(qc)
    return isa, [o.apply_layout(isa.layout) for o in observables]


# Each target's circuits in ISA form, transpiled once: {target: {circuit: (isa, observables)}}. Weak
# keys: a target that is dropped takes its cache with it.
_ISA: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ISA_LOCK = threading.Lock()


def transpiled(target: QiskitTarget, circuit: Circuit) -> tuple[Any, list]:
    """``circuit`` transpiled to ``target``'s ISA and its observables on the same layout (cached)."""
    with _ISA_LOCK:
        cached = _ISA.setdefault(target, {}).get(circuit)
    if cached is None:
        o = target.options
        cached = transpile(target.backend, circuit, o["optimization_level"], o["seed"])
        with _ISA_LOCK:
            cached = _ISA[target].setdefault(circuit, cached)
    return cached


def _pub(isa: Any, observables: list, params: np.ndarray | None, grads: np.ndarray | None, batch: int):
    values = aer.parameter_values(
        isa,
        torch.from_numpy(params) if params is not None else None,
        torch.from_numpy(grads) if grads is not None else None,
        batch,
    )
    if values.shape[1] == 0:
        return (isa, observables)  # no inputs: one configuration, broadcast over the rows
    # Observables [n] against values [B, 1, P] broadcast to expectations [B, n].
    return (isa, observables, values.reshape(batch, 1, -1))


def _expectations(result: Any, batch: int, n: int) -> np.ndarray:
    evs = np.asarray(result[0].data.evs, dtype=np.float64)
    return np.broadcast_to(evs, (batch, n)).copy()  # writable: torch.from_numpy shares it


def _estimator(mode: Any, shots: int, resilience_level: int, seed_simulator: int | None) -> Any:
    from qiskit_ibm_runtime.executor_estimator import Estimator

    options: dict[str, Any] = {"default_shots": shots, "resilience_level": resilience_level}
    if seed_simulator is not None:
        options["simulator"] = {"seed_simulator": seed_simulator}
    return Estimator(mode=mode, options=options)


def submit(target: QiskitTarget, circuit: Circuit, params: np.ndarray | None, grads: np.ndarray | None):
    """Submit one evaluation (``[B, n]`` float64 rows) and return the primitive's job."""
    batch = (params if params is not None else grads).shape[0]
    isa, observables = transpiled(target, circuit)
    o = target.options
    estimator = _estimator(target.execution_mode(), o["shots"], o["resilience_level"], target.job_seed())
    return estimator.run([_pub(isa, observables, params, grads, batch)])


def wait(job: Any, deadline: float | None, abandoned: threading.Event | None = None) -> Any:
    """The job's result once it is final; cancels it and raises ``TimeoutError`` past ``deadline``."""
    delay = _POLL_FIRST
    while not job.in_final_state():
        now = time.monotonic()
        if abandoned is not None and abandoned.is_set():
            _cancel_quietly(job)  # nobody will use its result: stop spending on it
            raise JobCancelled("abandoned")
        if deadline is not None and now >= deadline:
            _cancel_quietly(job)
            raise TimeoutError("the job did not finish before its timeout")
        time.sleep(delay if deadline is None else min(delay, max(deadline - now, 0.0)))
        delay = min(delay * 2, _POLL_MAX)
    if job.cancelled():
        raise JobCancelled("the job was cancelled")
    return job.result()


def _cancel_quietly(job: Any) -> None:
    try:
        job.cancel()
    except Exception as error:  # best effort: the job may already be final, or the service unreachable
        logger.debug("could not cancel job: %s", redact(str(error)))


def _rows(params: Any, grads: Any) -> tuple[np.ndarray | None, np.ndarray | None, int]:
    """float64 numpy copies of the rows (what a job needs; picklable for a worker process)."""
    as_numpy = [
        t.detach().to("cpu", torch.float64).numpy().copy() if t is not None else None for t in (params, grads)
    ]
    first = as_numpy[0] if as_numpy[0] is not None else as_numpy[1]
    return as_numpy[0], as_numpy[1], first.shape[0]


def evaluate(target: QiskitTarget, circuit: Circuit, params: Any, grads: Any, batch: int) -> np.ndarray:
    """Expectations ``[B, n]`` (float64) of ``batch`` rows, waiting for the job (up to the target's
    timeout). Refuses, before submitting, a circuit wider than the device or more rows than the cost
    guard allows: unlike the optimizer, a caller that waits for the device gets no simulated stand-in."""
    target.check_circuit(circuit)
    if batch > target.circuits_per_job:
        raise ValueError(
            f"{batch} rows exceed the Qiskit target's cost guard of {target.circuits_per_job} circuits per "
            "job (max_circuits_per_job, max_shots_per_job / shots); raise it or pass fewer rows"
        )
    if batch == 0:
        return np.zeros((0, circuit.n_qubits))
    p, g, _ = _rows(params, grads)
    timeout = target.options["timeout"]
    deadline = None if timeout is None else time.monotonic() + timeout
    job = submit(target, circuit, p, g)
    logger.info(
        "job %s on %s: %d circuits x %d shots", job.job_id(), target.name, batch, target.options["shots"]
    )
    try:
        result = wait(job, deadline)
    except TimeoutError:
        raise TimeoutError(
            f"job {job.job_id()} on {target.name} did not finish within {timeout:g} s; it was cancelled"
        ) from None
    return _expectations(result, batch, circuit.n_qubits)


class Launch:
    """An evaluation in flight: resolves to expectations ``[B, n]`` or to the error that stopped it."""

    def __init__(self, timeout: float | None) -> None:
        self.submitted = time.monotonic()
        self.deadline = None if timeout is None else self.submitted + timeout
        self.job_id: str | None = None
        self._future: Future = Future()
        self._abandoned = threading.Event()
        self._job: Any = None

    def done(self) -> bool:
        return self._future.done()

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline and not self.done()

    def expectations(self) -> np.ndarray:
        """The result of a :meth:`done` launch; raises what stopped the job."""
        evs, job_id = self._future.result(timeout=0)
        self.job_id = self.job_id or job_id
        return evs

    def abandon(self) -> None:
        """Stop waiting: cancel the job if it was submitted (best effort, off this thread)."""
        self._abandoned.set()
        self._future.cancel()  # succeeds only while a worker process has not started it
        job = self._job
        if job is not None:
            threading.Thread(target=_cancel_quietly, args=(job,), daemon=True).start()

    def _watch(self, obtain: Callable[[], Any], batch: int, n: int, what: str) -> None:
        """Run ``obtain`` (returns a job) and wait for the job, in a daemon thread."""

        def work() -> None:
            try:
                self._job = job = obtain()
                self.job_id = job.job_id()
                logger.info("%s: job %s", what, self.job_id)
                result = wait(job, self.deadline, self._abandoned)
                self._future.set_result((_expectations(result, batch, n), self.job_id))
            except BaseException as error:
                self._future.set_exception(error)

        # Daemon: a job that never answers must not keep the interpreter from exiting.
        threading.Thread(target=work, name="superpositional-qiskit-job", daemon=True).start()


def launch(target: QiskitTarget, circuit: Circuit, params: Any, grads: Any) -> Launch:
    """Start one evaluation without waiting for it."""
    p, g, batch = _rows(params, grads)
    handle = Launch(target.options["timeout"])
    what = f"{batch} circuits x {target.options['shots']} shots on {target.name}"
    if not target.is_remote and target.options["local_worker"] == "process":
        o = target.options
        args = (target.cache_key, target.backend, circuit, o["optimization_level"], o["seed"])
        options = (o["shots"], o["resilience_level"], target.job_seed())
        handle._future = worker.submit(_run_in_worker, args, options, p, g, batch)
        logger.info("%s: sent to the local worker process", what)
    else:
        handle._future.set_running_or_notify_cancel()
        handle._watch(lambda: submit(target, circuit, p, g), batch, circuit.n_qubits, what)
    return handle


def collect(target: QiskitTarget, job_id: str, batch: int, n: int) -> Launch:
    """Wait (without blocking) for a job submitted before, e.g. by the run a checkpoint came from."""

    def retrieve() -> Any:
        job = target.retrieve(job_id)
        if job is None:
            raise LookupError(f"job {job_id} ran locally and cannot be retrieved by another process")
        return job

    handle = Launch(target.options["timeout"])
    handle._future.set_running_or_notify_cancel()
    handle._watch(retrieve, batch, n, f"collecting job {job_id} from {target.name}")
    return handle


# -- in the local worker process (worker.py) ----------------------------------------------------------

# Per target (its cache_key): the device's simulator, and each circuit's ISA form. Bounded: cleared
# when a long-lived worker has seen many targets.
_WORKER_SIMULATORS: dict[str, Any] = {}
_WORKER_ISA: dict[tuple[str, Any], tuple[Any, list]] = {}


def _worker_simulator(key: str, backend: Any) -> Any:
    """The Aer simulator of a local backend, built once: the runtime's local mode would rebuild a fake
    device's noise model for every job, which is most of a small job's time."""
    if key not in _WORKER_SIMULATORS:
        from qiskit_aer import AerSimulator

        if len(_WORKER_SIMULATORS) > 16:
            _WORKER_SIMULATORS.clear()
        simulator = backend if isinstance(backend, AerSimulator) else AerSimulator.from_backend(backend)
        _WORKER_SIMULATORS[key] = simulator
    return _WORKER_SIMULATORS[key]


def _run_in_worker(
    isa_key: tuple,
    options: tuple,
    params: np.ndarray | None,
    grads: np.ndarray | None,
    batch: int,
) -> tuple[np.ndarray, str]:
    """In the worker process: transpile (cached per target and circuit), run, return (evs, job id)."""
    uid, backend, circuit, optimization_level, seed = isa_key
    key = (uid, circuit)
    if key not in _WORKER_ISA:
        if len(_WORKER_ISA) > 64:
            _WORKER_ISA.clear()
        _WORKER_ISA[key] = transpile(backend, circuit, optimization_level, seed)
    isa, observables = _WORKER_ISA[key]
    shots, resilience_level, seed_simulator = options
    job = _estimator(_worker_simulator(uid, backend), shots, resilience_level, seed_simulator).run(
        [_pub(isa, observables, params, grads, batch)]
    )
    return _expectations(job.result(), batch, circuit.n_qubits), job.job_id()
