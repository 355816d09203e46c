"""The asynchronous side of an optimizer's steps on a Qiskit target: jobs in flight and their results.

One :class:`Dispatcher` serves one param group. Its clock counts the group's steps. The rules:

- **Refresh.** At step ``t`` a job is submitted when ``refresh_every`` (``K``) steps have passed
  since the last submission (or none was made yet) and fewer than ``max_pending_jobs`` are in
  flight. The job evaluates the circuits on the inputs of step ``t``: ``theta`` as the step starts
  and ``g`` (``-g`` when maximizing). Submission returns at once.
- **Staleness.** A result computed from the inputs of step ``s`` is *``t - s`` steps stale* at step
  ``t``. Step ``t`` uses the freshest result received so far if it is at most ``max_staleness``
  (default ``K``) steps stale; otherwise, and until the first result arrives, the kernel simulates
  the circuits of step ``t`` as it does without a target. Results are only ever looked at
  (never waited for) at the start of a step, so a result is at least 1 step stale.
- **Failures.** A job that raises, is cancelled, or has not finished ``timeout`` seconds after its
  submission (it is then cancelled) is dropped with a :class:`QiskitTargetWarning`; the steps use
  the kernel (or a result that is still fresh). After 3 failures in a row the dispatcher stops
  submitting for the rest of the run, with a warning, so a broken configuration does not warn
  (or spend) forever.
- **Checkpoints.** :meth:`state` holds the clock, the last result received and, for each job in
  flight, its id and the rows it evaluates. :meth:`load` puts them back: jobs of IBM Quantum are
  collected by id (``QiskitRuntimeService.job``) without blocking, and count from the step they
  were submitted at. Jobs of a local backend ran in the process that wrote the checkpoint and
  cannot be collected: they are dropped with a warning.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import jobs
from .target import QiskitTargetWarning, redact

if TYPE_CHECKING:  # pragma: no cover
    from ..circuit import Circuit
    from .target import QiskitTarget

logger = logging.getLogger("superpositional.qiskit")

GIVE_UP_AFTER = 3  # consecutive failed jobs before the dispatcher stops submitting


@dataclass
class Evaluation:
    """One job's circuits: which rows of which tensors, from the inputs of which step, and the result."""

    step: int
    tensors: torch.Tensor  # int64 [R]: position of each circuit's tensor in the param group's "params"
    rows: torch.Tensor  # int64 [R]: the circuit's group of n coordinates within that tensor
    values: torch.Tensor | None = None  # float64 [R, n]: the expectations, once received
    job_id: str | None = None
    launch: jobs.Launch | None = field(default=None, repr=False)

    def record(self, with_values: bool) -> dict[str, Any]:
        record: dict[str, Any] = {
            "step": self.step,
            "job_id": self.job_id,
            "tensors": self.tensors.clone(),
            "rows": self.rows.clone(),
        }
        if with_values:
            record["values"] = self.values.clone()
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Evaluation:
        values = record.get("values")
        return cls(
            step=int(record["step"]),
            tensors=torch.as_tensor(record["tensors"], dtype=torch.int64),
            rows=torch.as_tensor(record["rows"], dtype=torch.int64),
            values=torch.as_tensor(values, dtype=torch.float64) if values is not None else None,
            job_id=record.get("job_id"),
        )


def _describe(error: BaseException) -> str:
    if isinstance(error, jobs.JobCancelled):
        return "was cancelled"
    if isinstance(error, TimeoutError):
        return "timed out (cancelled)"
    return f"failed: {type(error).__name__}: {redact(str(error))}"


class Dispatcher:
    """Jobs in flight and results received for one param group on one target (see the module doc)."""

    def __init__(self, target: QiskitTarget) -> None:
        self.target = target
        self.clock = 0
        self.last_submitted: int | None = None
        self.pending: list[Evaluation] = []
        self.latest: Evaluation | None = None
        self.failures = 0
        self.stopped = False
        self.rng = np.random.default_rng(target.options["seed"])
        self._to_collect: list[Evaluation] = []
        self._warned_late = False

    # -- each step --------------------------------------------------------------------------------

    def begin_step(self, circuit: Circuit) -> int:
        """Advance the clock and take in whatever finished, never waiting; returns the step number."""
        self.clock += 1
        for evaluation in self._to_collect:
            evaluation.launch = jobs.collect(
                self.target, evaluation.job_id, len(evaluation.rows), circuit.n_qubits
            )
            self.pending.append(evaluation)
        self._to_collect = []
        self._poll()
        return self.clock

    def due(self) -> bool:
        """Whether this step should submit a job (refresh interval reached and a slot free)."""
        o = self.target.options
        interval_passed = (
            self.last_submitted is None or self.clock - self.last_submitted >= o["refresh_every"]
        )
        return not self.stopped and interval_passed and len(self.pending) < o["max_pending_jobs"]

    def submit(
        self, evaluation: Evaluation, circuit: Circuit, params: torch.Tensor, grads: torch.Tensor
    ) -> None:
        """Send the rows ``[R, n]`` of ``evaluation`` to the target; returns at once."""
        self.last_submitted = self.clock  # a failed submission waits for the next refresh too
        try:
            evaluation.launch = jobs.launch(self.target, circuit, params, grads)
        except Exception as error:
            self._failed(evaluation, error)
            return
        self.pending.append(evaluation)

    def usable(self) -> Evaluation | None:
        """The freshest result if it is at most ``max_staleness`` steps stale, else ``None``."""
        latest = self.latest
        if latest is None or self.clock - latest.step > self.target.options["max_staleness"]:
            return None
        return latest

    # -- internals --------------------------------------------------------------------------------

    def _poll(self) -> None:
        for evaluation in list(self.pending):
            launch = evaluation.launch
            if launch.done():
                self.pending.remove(evaluation)
                try:
                    values = launch.expectations()
                except BaseException as error:
                    evaluation.job_id = evaluation.job_id or launch.job_id
                    self._failed(evaluation, error)
                    continue
                self._received(evaluation, values, launch.job_id)
            elif launch.expired():
                self.pending.remove(evaluation)
                evaluation.job_id = evaluation.job_id or launch.job_id
                launch.abandon()
                self._failed(evaluation, TimeoutError())

    def _received(self, evaluation: Evaluation, values: np.ndarray, job_id: str | None) -> None:
        evaluation.values = torch.from_numpy(values)
        evaluation.job_id = evaluation.job_id or job_id
        evaluation.launch = None
        self.failures = 0
        staleness = self.clock - evaluation.step
        logger.info(
            "job %s on %s: received at step %d for the inputs of step %d",
            evaluation.job_id,
            self.target.name,
            self.clock,
            evaluation.step,
        )
        if self.latest is None or evaluation.step > self.latest.step:
            self.latest = evaluation
        if staleness > self.target.options["max_staleness"] and not self._warned_late:
            self._warned_late = True
            warnings.warn(
                f"a result from {self.target.name} arrived {staleness} steps after its inputs, more than "
                f"max_staleness={self.target.options['max_staleness']}: it is not used. Raise refresh_every "
                "or max_staleness to match the device's latency in steps (warned once)",
                QiskitTargetWarning,
                stacklevel=2,
            )

    def _failed(self, evaluation: Evaluation, error: BaseException) -> None:
        self.failures += 1
        job = evaluation.job_id or "(not submitted)"
        warnings.warn(
            f"Qiskit job {job} on {self.target.name} (the circuits of step {evaluation.step}) "
            f"{_describe(error)}; the simulator stands in and training goes on",
            QiskitTargetWarning,
            stacklevel=2,
        )
        if self.failures >= GIVE_UP_AFTER and not self.stopped:
            self.stopped = True
            warnings.warn(
                f"{self.failures} jobs in a row failed on {self.target.name}: no more jobs are submitted in "
                "this run, and the simulator computes every step",
                QiskitTargetWarning,
                stacklevel=2,
            )

    # -- checkpoints ------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Plain data (ints, strings, tensors) for the optimizer's ``state_dict``; no credential."""
        in_flight = [*self.pending, *self._to_collect]
        for evaluation in in_flight:
            if evaluation.launch is not None:
                evaluation.job_id = evaluation.job_id or evaluation.launch.job_id
        return {
            "clock": self.clock,
            "last_submitted": self.last_submitted,
            "pending": [e.record(with_values=False) for e in in_flight],
            "latest": self.latest.record(with_values=True) if self.latest is not None else None,
        }

    @staticmethod
    def parse(state: Any) -> tuple[int, int | None, Evaluation | None, list[Evaluation]]:
        """(clock, last submission, last result, jobs in flight) of a :meth:`state`; a clear
        ``ValueError`` if it is malformed."""
        try:
            clock = int(state["clock"])
            last = state.get("last_submitted")
            latest = Evaluation.from_record(state["latest"]) if state.get("latest") is not None else None
            records = [Evaluation.from_record(r) for r in state.get("pending", [])]
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as error:
            problem = f"{type(error).__name__}: {error}"
            raise ValueError(
                f"state_dict: the 'qiskit' state of a param group is malformed ({problem})"
            ) from None
        return clock, None if last is None else int(last), latest, records

    def load(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state` of an earlier run: its result, clock and jobs to collect."""
        clock, last, latest, records = self.parse(state)
        collectable = [e for e in records if e.job_id is not None and self.target.is_remote]
        lost = len(records) - len(collectable)
        self.clock, self.last_submitted, self.latest = clock, last, latest
        self.pending, self._to_collect = [], collectable
        if lost:
            warnings.warn(
                f"{lost} job(s) in flight when the checkpoint was written cannot be collected (local "
                "backends' jobs live only in the process that ran them): the simulator stands in",
                QiskitTargetWarning,
                stacklevel=3,
            )
