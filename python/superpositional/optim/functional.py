"""The step as a function, in the spirit of ``torch.optim.adamw.adamw``: one entry that picks how
a param group's tensors are stepped, and runs it.

Strategies (each writes the update rule once: the C++ element update for the fused kernels,
:func:`~.update.adamw_update` for the rest):

- **fused**: the compiled kernel of the tensors' device steps every tensor in one pass, circuits
  included (:func:`superpositional.backends.kernel.fused_step`); under
  ``torch.compile`` the same kernel as one custom-op node (:mod:`.ops`).
- **reference**: the update rule in PyTorch with the expectations of a backend that has no fused
  step (the torch reference, Qiskit Aer): :func:`~.update.reference_step`.
- **sharded**: FSDP2's DTensors: the backend's step on each rank's shards, and the update rule on
  the few coordinates whose circuit group crosses a shard boundary (:mod:`.sharded`).
- **qiskit**: a Qiskit target: the fused kernel, then the update rule again on the coordinates a
  device's result covers (:mod:`.qiskit_step`).

:func:`select` does every check a strategy needs before anything changes; the optimizer selects
for all its groups first, then runs them, so that a bad group leaves every group untouched.
"""

from __future__ import annotations

from functools import partial

import torch

from .. import backends
from ..backends.base import StepConfig, StepFn, StepTensors
from ..backends.qiskit.dispatch import Dispatcher
from ..backends.qiskit.target import QiskitTarget
from . import ops, qiskit_step
from .sharded import is_sharded, step_sharded
from .update import reference_step

__all__ = ["select", "superpositional_adamw"]


def select(
    params: list[torch.Tensor],
    config: StepConfig,
    backend: str | QiskitTarget,
    *,
    dispatcher: Dispatcher | None = None,
    indices: list[int] | None = None,
) -> StepFn:
    """The strategy that steps ``params`` (which share one device) with ``backend``.

    For a :class:`~superpositional.QiskitTarget`, ``dispatcher`` holds the group's jobs and
    ``indices`` the positions of ``params`` in the group's ``"params"``.
    """
    if not params:
        return _nothing
    device = params[0].device
    sharded = any(is_sharded(p) for p in params)
    if isinstance(backend, QiskitTarget):
        if sharded:  # each rank would submit its own jobs for its shards: not built
            raise NotImplementedError("a QiskitTarget does not step FSDP2-sharded parameters")
        if dispatcher is None or indices is None:
            raise ValueError("a QiskitTarget's step needs its param group's dispatcher and indices")
        kernel = backends.resolve("auto", device, stacklevel=4)
        if not qiskit_step.check(backend, config, params):
            return _step_of(kernel)  # the target did not answer: this step is the simulator's
        return partial(qiskit_step.step, dispatcher=dispatcher, indices=indices, fused_step=_step_of(kernel))
    if device.type == "meta":  # nothing for any backend to step
        if backend not in ("auto", "torch"):  # a backend bound to a device names the mismatch itself
            backends.resolve(backend, device, stacklevel=4)
        raise RuntimeError(
            "SuperpositionalAdamW cannot step parameters on the meta device: they hold no data"
        )
    entry = backends.resolve(backend, device, stacklevel=4)
    if sharded:
        # Crossing groups run on the device's kernel whatever the backend: a handful of circuits.
        return partial(step_sharded, _step_of(entry), simulate=backends.kernel_for(device).simulate)
    if entry.fused_step is not None and torch.compiler.is_compiling():
        return ops.compiled_step  # one custom-op node instead of a graph break
    return _step_of(entry)


def superpositional_adamw(
    tensors: StepTensors,
    config: StepConfig,
    backend: str | QiskitTarget = "auto",
    *,
    dispatcher: Dispatcher | None = None,
    indices: list[int] | None = None,
) -> None:
    """One step of ``tensors`` (parameters, gradients, ``exp_avg``, ``exp_avg_sq``, step counters)
    with the options of ``config``: :func:`select`, then run."""
    select(tensors.params, config, backend, dispatcher=dispatcher, indices=indices)(tensors, config)


def _step_of(entry: backends.Backend) -> StepFn:
    """A backend's fused step, or the update rule in PyTorch with its simulation."""
    if entry.fused_step is not None:
        return entry.fused_step
    return partial(reference_step, simulate=entry.simulate)


def _nothing(tensors: StepTensors, config: StepConfig) -> None:
    """The step of a group without gradients."""
