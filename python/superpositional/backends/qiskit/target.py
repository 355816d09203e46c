"""``QiskitTarget``: a Qiskit backend (IBM Quantum hardware, a fake device, Aer) and how to use it.

A target holds the backend and the options that govern every evaluation sent to it: shots, the
refresh interval and staleness bound of the optimizer, the cost guard, the execution mode and the
transpiler's optimisation level. It never holds a credential: a backend named by a string is
resolved through ``qiskit_ibm_runtime.QiskitRuntimeService``, which reads a saved account or
``QISKIT_IBM_TOKEN`` / ``QISKIT_IBM_INSTANCE`` itself. Its ``repr``, its pickled form, the
optimizer's ``state_dict`` and every message this package writes carry the backend's name only;
text that comes from Qiskit (an error message) is passed through :func:`redact` first.

Running circuits on a target lives in :mod:`.jobs` (which also caches each circuit's ISA form
per target), the optimizer's asynchronous bookkeeping in :mod:`.dispatch`, and the optimizer's step
on a target in ``superpositional.optim.qiskit_step``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import threading
import uuid
import warnings
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["ENV_BACKEND", "QiskitTarget", "QiskitTargetWarning", "describe_from_env", "redact", "scrubbed"]

ENV_BACKEND = "SUPERPOSITIONAL_QISKIT_BACKEND"
MODES = ("job", "batch", "session")
ON_EXCESS = ("sample", "error")
LOCAL_WORKERS = ("process", "thread")
# Environment variables whose values are secrets: scrubbed from any text we pass on.
_SECRET_VARIABLES = ("QISKIT_IBM_TOKEN", "IBM_QUANTUM_TOKEN", "QISKIT_IBM_API_KEY")

logger = logging.getLogger("superpositional.qiskit")


class QiskitTargetWarning(RuntimeWarning):
    """A job on a Qiskit target failed, timed out, was cancelled or came back too late to use."""


def redact(text: str) -> str:
    """``text`` with the value of every credential variable of the environment replaced by ``***``."""
    for variable in _SECRET_VARIABLES:
        secret = os.environ.get(variable)
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


@contextlib.contextmanager
def scrubbed() -> Iterator[None]:
    """Let no credential leave in an exception: any exception raised inside has its text (its
    arguments, its string attributes, and those of the exceptions chained to it) redacted, and is
    re-raised as itself; one whose text still shows a credential becomes a RuntimeError that names
    its type."""
    try:
        yield
    except Exception as error:
        _scrub(error, set())
        text = str(error)
        if redact(text) != text:
            raise RuntimeError(f"{type(error).__name__}: {redact(text)}") from None
        raise


def _scrub(error: BaseException | None, seen: set[int]) -> None:
    if error is None or id(error) in seen:
        return
    seen.add(id(error))
    try:
        error.args = tuple(redact(a) if isinstance(a, str) else a for a in error.args)
        for name, value in list(getattr(error, "__dict__", {}).items()):
            if isinstance(value, str):
                setattr(error, name, redact(value))
    except (AttributeError, TypeError):  # an exception type with read-only parts
        pass
    _scrub(error.__cause__, seen)
    _scrub(error.__context__, seen)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def _check_options(options: dict[str, Any]) -> dict[str, Any]:
    """Validated options (a new dict); raises a clear error naming the first bad one."""
    checked = dict(options)
    for name in ("shots", "refresh_every", "max_pending_jobs", "max_circuits_per_job", "max_shots_per_job"):
        checked[name] = _positive_int(options[name], name)
    staleness = options["max_staleness"]
    checked["max_staleness"] = (
        checked["refresh_every"] if staleness is None else _positive_int(staleness, "max_staleness")
    )
    if checked["max_shots_per_job"] < checked["shots"]:
        raise ValueError(
            f"max_shots_per_job ({checked['max_shots_per_job']}) is below shots ({checked['shots']}): "
            "not even one circuit fits in a job"
        )
    _choice(options["on_excess"], "on_excess", ON_EXCESS)
    _choice(options["mode"], "mode", MODES)
    _choice(options["local_worker"], "local_worker", LOCAL_WORKERS)
    for name, allowed in (("optimization_level", (0, 1, 2, 3)), ("resilience_level", (0, 1, 2))):
        value = options[name]
        if isinstance(value, bool) or value not in allowed:
            raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    timeout = options["timeout"]
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be a number of seconds or None, got {type(timeout).__name__}")
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be a positive, finite number of seconds, got {timeout!r}")
        checked["timeout"] = float(timeout)
    seed = options["seed"]
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return checked


def _is_backend(obj: Any) -> bool:
    from qiskit.providers import BackendV2

    return isinstance(obj, BackendV2)


def _is_local_name(name: str) -> bool:
    """Names that qiskit-ibm-runtime's local service knows: its fake devices and Aer."""
    return name.startswith("fake_") or name == "aer_simulator"


def _resolve_name(name: str, service: Any) -> tuple[Any, Any]:
    """(backend, runtime service or None) for a backend name; raises a redacted RuntimeError."""
    try:
        if service is None and _is_local_name(name):
            from qiskit_ibm_runtime.fake_provider.local_service import QiskitRuntimeLocalService

            with warnings.catch_warnings():
                # Instantiating the fake provider warns about devices other than the one asked for.
                warnings.simplefilter("ignore")
                return QiskitRuntimeLocalService().backend(name), None
        if service is None:
            from qiskit_ibm_runtime import QiskitRuntimeService

            # The service reads the token (saved account or QISKIT_IBM_TOKEN) itself; we never touch it.
            instance = os.environ.get("QISKIT_IBM_INSTANCE")
            service = QiskitRuntimeService(instance=instance) if instance else QiskitRuntimeService()
        return service.backend(name), service
    except ImportError:
        raise ImportError(
            "a Qiskit target needs qiskit-ibm-runtime: pip install 'superpositional[qiskit]'"
        ) from None
    except Exception as error:
        # `from None`: the original exception's text has not been through redact().
        raise RuntimeError(
            f"could not resolve the Qiskit backend {name!r}: {type(error).__name__}: {redact(str(error))}"
        ) from None


def _runtime_service(backend: Any) -> Any:
    """The IBM Quantum service behind a remote backend (which can retrieve jobs by id), else None."""
    try:
        from qiskit_ibm_runtime import IBMBackend
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return backend.service if isinstance(backend, IBMBackend) else None


class QiskitTarget:
    """A Qiskit backend to evaluate circuits on, with the options that bound time and cost.

    Pass it as ``backend=`` to :func:`superpositional.simulate` (synchronous: the call waits for
    the job) or to :class:`superpositional.SuperpositionalAdamW` (asynchronous: training never
    waits for a job; see ``refresh_every`` and ``max_staleness``).

    Args:
        backend: a Qiskit ``BackendV2`` (an IBM device from ``QiskitRuntimeService().backend``, a
            fake device from ``qiskit_ibm_runtime.fake_provider``, ``GenericBackendV2``,
            ``AerSimulator``), or its name. Names ``fake_*`` and ``aer_simulator`` resolve offline
            through qiskit-ibm-runtime's local service; other names through ``service`` or a new
            ``QiskitRuntimeService()`` (saved account or ``QISKIT_IBM_TOKEN``/``QISKIT_IBM_INSTANCE``).
        shots: shots per circuit (one circuit per row of inputs); the statistical error of each
            expectation is about ``sqrt((1 - e**2) / shots)``.
        refresh_every: the optimizer submits a job every ``refresh_every`` steps (``K``).
        max_staleness: the optimizer uses expectations computed from the inputs of step ``s`` at
            step ``t`` only while ``t - s <= max_staleness`` (default ``K``); older ones are not used
            and the kernel simulates the step instead.
        max_pending_jobs: at most this many optimizer jobs in flight; a refresh waits (without
            blocking training) for a free slot.
        max_circuits_per_job, max_shots_per_job: the cost guard. A job holds at most
            ``min(max_circuits_per_job, max_shots_per_job // shots)`` circuits.
        on_excess: when an optimizer step has more circuits than the guard allows (typical with
            ``coverage="all"``): ``"sample"`` sends a uniformly random subset of that size (the
            other circuits are simulated by the kernel), ``"error"`` refuses the step with a
            ``ValueError`` before changing anything. ``simulate()`` always refuses.
        mode: ``"job"`` (each evaluation its own job), ``"batch"`` or ``"session"`` (jobs share one
            ``qiskit_ibm_runtime.Batch`` / ``Session``, opened on first use; :meth:`close` ends it).
        optimization_level: of ``generate_preset_pass_manager`` (0 to 3).
        resilience_level: of the runtime Estimator: 0 (raw expectations: cost is exactly shots x
            circuits), 1 (adds readout-error mitigation, TREX) or 2 (adds zero-noise extrapolation);
            levels 1 and 2 run extra calibration or amplified circuits beyond the guard's count.
        timeout: seconds from submission after which a job that has not finished is cancelled and
            the kernel stands in (``None``: wait forever).
        local_worker: how a local backend (fake device, Aer) runs optimizer jobs: ``"process"`` (a
            low-priority worker process, so that simulating the stand-in device does not compete
            with training for the interpreter lock) or ``"thread"`` (in this process).
        seed: seeds the choice of sampled circuits and the local simulator (``None``: fresh).
        service: a ``QiskitRuntimeService`` to resolve ``backend`` names and retrieve jobs by id.
    """

    def __init__(
        self,
        backend: Any,
        *,
        shots: int = 1000,
        refresh_every: int = 10,
        max_staleness: int | None = None,
        max_pending_jobs: int = 1,
        max_circuits_per_job: int = 100,
        max_shots_per_job: int = 100_000,
        on_excess: str = "sample",
        mode: str = "job",
        optimization_level: int = 1,
        resilience_level: int = 0,
        timeout: float | None = 3600.0,
        local_worker: str = "process",
        seed: int | None = None,
        service: Any = None,
    ) -> None:
        options = _check_options(
            dict(
                shots=shots,
                refresh_every=refresh_every,
                max_staleness=max_staleness,
                max_pending_jobs=max_pending_jobs,
                max_circuits_per_job=max_circuits_per_job,
                max_shots_per_job=max_shots_per_job,
                on_excess=on_excess,
                mode=mode,
                optimization_level=optimization_level,
                resilience_level=resilience_level,
                timeout=timeout,
                local_worker=local_worker,
                seed=seed,
            )
        )
        if isinstance(backend, str):
            if not backend:
                raise ValueError("a backend name must not be empty")
            resolved, runtime = _resolve_name(backend, service)
        elif _is_backend(backend):
            resolved, runtime = backend, service if service is not None else _runtime_service(backend)
        else:
            raise TypeError(
                "QiskitTarget takes a Qiskit BackendV2 or a backend name, got " + type(backend).__name__
            )
        self._options = options
        self._init_runtime(resolved, runtime, str(resolved.name))

    @classmethod
    def from_env(cls, **options: Any) -> QiskitTarget:
        """The target named by ``SUPERPOSITIONAL_QISKIT_BACKEND``, with ``options`` as for the constructor."""
        name = os.environ.get(ENV_BACKEND, "").strip()
        if not name:
            raise ValueError(
                f"{ENV_BACKEND} is not set: set it to a backend name (e.g. 'ibm_torino', or 'fake_manila' "
                "to try things offline)"
            )
        return cls(name, **options)

    def _init_runtime(self, backend: Any, service: Any, name: str) -> None:
        self._backend = backend
        self._service = service
        self._name = name
        self._uid = uuid.uuid4().hex  # keys this target's transpiled circuits, here and in worker processes
        self._lock = threading.Lock()
        self._execution_mode: Any = None
        self._seeds = itertools.count(1)

    # -- what it is -------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The backend's name."""
        return self._name

    @property
    def backend(self) -> Any:
        """The Qiskit backend (a target restored from a pickle resolves its name again on first use)."""
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend, self._service = _resolve_name(self._name, None)
        return self._backend

    @property
    def num_qubits(self) -> int:
        return int(self.backend.num_qubits)

    @property
    def options(self) -> Mapping[str, Any]:
        """The validated options, read-only."""
        return MappingProxyType(self._options)

    @property
    def is_remote(self) -> bool:
        """True for a backend of IBM Quantum's service (whose jobs can be retrieved by id)."""
        _ = self.backend
        return self._service is not None

    @property
    def circuits_per_job(self) -> int:
        """The cost guard: the most circuits one job may hold."""
        o = self._options
        return min(o["max_circuits_per_job"], o["max_shots_per_job"] // o["shots"])

    def check_circuit(self, circuit: Any) -> None:
        """Raise a ``ValueError`` if ``circuit`` cannot run on this backend."""
        if circuit.n_qubits > self.num_qubits:
            raise ValueError(
                f"the circuit has {circuit.n_qubits} qubits but the Qiskit backend {self._name!r} "
                f"has {self.num_qubits}"
            )

    @property
    def cache_key(self) -> str:
        """Unique to this target object: keys its transpiled circuits, here and in worker processes."""
        return self._uid

    def job_seed(self) -> int | None:
        """A fresh seed for the local simulator of the next job (``None``: unseeded, or a remote backend)."""
        seed = self._options["seed"]
        return None if seed is None or self.is_remote else seed + next(self._seeds)

    def spec(self) -> str:
        """A token-free description that stands for this target in a ``state_dict``: ``qiskit:<name>``."""
        return f"qiskit:{self._name}"

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self._options.items())
        return f"QiskitTarget({self._name!r}, {shown})"

    # -- copying and pickling: a handle to an external resource, never its credentials --------------

    def __deepcopy__(self, memo: dict) -> QiskitTarget:
        # Deep copies of an optimizer share its target, like they share a device.
        return self

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self._name, "options": dict(self._options)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._options = _check_options(state["options"])
        self._init_runtime(None, None, state["name"])

    # -- jobs ---------------------------------------------------------------------------------------

    def retrieve(self, job_id: str) -> Any:
        """The job with this id from the IBM Quantum service, or ``None`` when it cannot be retrieved
        (local backends: their jobs live only in the process that ran them)."""
        _ = self.backend  # a target restored from a pickle finds its service here
        return self._service.job(job_id) if self._service is not None else None

    def execution_mode(self) -> Any:
        """What the runtime Estimator runs in: the backend (job mode), or a shared Batch or Session."""
        mode = self._options["mode"]
        if mode == "job":
            return self.backend
        with self._lock:
            if self._execution_mode is None:
                from qiskit_ibm_runtime import Batch, Session

                self._execution_mode = (Batch if mode == "batch" else Session)(backend=self.backend)
                logger.info("opened a %s on %s", mode, self._name)
            return self._execution_mode

    def close(self) -> None:
        """Close the Batch or Session this target opened, if any (job mode: nothing to do)."""
        with self._lock:
            handle, self._execution_mode = self._execution_mode, None
        if handle is not None:
            handle.close()

    def __enter__(self) -> QiskitTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        """Name, qubits, and the queue when the backend reports one (may contact the service)."""
        backend = self.backend
        info: dict[str, Any] = {"name": self._name, "qubits": int(backend.num_qubits)}
        info["kind"] = "IBM Quantum" if self._service is not None else "local (simulated on this machine)"
        status = getattr(backend, "status", None)
        if callable(status):
            try:
                report = status()
                info["operational"] = bool(report.operational)
                info["pending_jobs"] = int(report.pending_jobs)
            except Exception as error:  # a queue we cannot read is not an error of the target
                info["queue"] = f"unavailable ({type(error).__name__})"
        return info


def describe_from_env(timeout: float = 10.0) -> dict[str, Any]:
    """What ``python -m superpositional info`` prints about the configured target.

    Resolution may contact IBM Quantum: it runs in a daemon thread, and after ``timeout`` seconds
    the report says the target did not answer rather than waiting longer.
    """
    name = os.environ.get(ENV_BACKEND, "").strip()
    if not name:
        return {"target": f"not configured (set {ENV_BACKEND})"}
    answer: dict[str, Any] = {}

    def resolve() -> None:
        try:
            answer.update(QiskitTarget(name).describe())
        except Exception as error:
            answer["error"] = redact(f"{type(error).__name__}: {error}")

    worker = threading.Thread(target=resolve, name="superpositional-qiskit-info", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return {"target": name, "status": f"no answer within {timeout:g} s"}
    return {"target": name, **answer}
