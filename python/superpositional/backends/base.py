"""What a backend is: the signatures of batched simulation and of the fused step, and their inputs.

A backend simulates one circuit for a batch of input rows (:data:`SimulateFn`) and may step an
optimizer's tensors in one fused pass (:data:`StepFn`); the registry (:mod:`.`) holds one
:class:`Backend` entry per name. The optimizer's strategies (``superpositional.optim``) build on
these, never the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

import torch

if TYPE_CHECKING:  # pragma: no cover
    from ..circuit import Circuit

__all__ = ["AdjointFn", "Backend", "Batch", "SimulateFn", "StepConfig", "StepFn", "StepTensors"]


class Batch(NamedTuple):
    """One circuit's inputs for ``size`` rows: ``[size, n]`` ``params`` and ``grads`` (``None`` for an
    input the circuit does not read), in ``dtype`` (float32 or float64) on ``device``; they may be
    strided. ``superpositional.simulate`` checks a user's inputs once and hands every backend this."""

    params: torch.Tensor | None
    grads: torch.Tensor | None
    size: int
    dtype: torch.dtype
    device: torch.device


class SimulateFn(Protocol):
    """Expectations ``[size, n]`` of ``circuit`` for each row of ``batch``, and the statevectors
    ``[size, 2**n]`` (Qiskit's little-endian order) when ``return_state``; the expectations are
    written into ``out`` (a contiguous ``[size, n]`` tensor of the batch's dtype and device) and
    returned as it, when given."""

    def __call__(
        self, circuit: Circuit, batch: Batch, *, return_state: bool = False, out: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]: ...


class StepTensors(NamedTuple):
    """The tensors of one step, index by index: a parameter, its gradient and its state.

    Complex parameters appear as their real views (:func:`torch.view_as_real`), states included.
    ``max_exp_avg_sqs`` (AMSGrad's running maximum of ``exp_avg_sq``) is empty unless the step's
    :class:`StepConfig` has ``amsgrad``. The states of a 16-bit parameter are float32 or the
    parameter's own dtype (its group's ``state_dtype``); the steps compute in
    :func:`~superpositional.geometry.compute_dtype` either way. ``rounding_streams`` (each
    parameter's index in its optimizer: the random stream its stochastic rounding draws from) is
    empty unless the config's ``rounding_seed`` is set.
    """

    params: list[torch.Tensor]
    grads: list[torch.Tensor]
    exp_avgs: list[torch.Tensor]
    exp_avg_sqs: list[torch.Tensor]
    steps: list[torch.Tensor]  # float32 scalars on the parameters' device; a step adds 1
    max_exp_avg_sqs: list[torch.Tensor] = []  # noqa: RUF012 - never mutated; a NamedTuple default
    rounding_streams: list[int] = []  # noqa: RUF012 - as above

    def select(self, indices: Sequence[int]) -> StepTensors:
        """The tensors at ``indices``, in that order."""
        return StepTensors(*([column[i] for i in indices] if column else [] for column in self))

    def rows(self) -> zip:
        """``(param, grad, exp_avg, exp_avg_sq, step, max_exp_avg_sq or None)`` per tensor."""
        maxima = self.max_exp_avg_sqs or [None] * len(self.params)
        return zip(self.params, self.grads, self.exp_avgs, self.exp_avg_sqs, self.steps, maxima)


class StepConfig(NamedTuple):
    """The options of one param group's step (docs/design.md, *The mathematics*). A named tuple:
    built once per group and step, so it must cost next to nothing."""

    lr: float | torch.Tensor
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    quantum_weight: float
    maximize: bool
    circuit: Circuit
    coverage: str
    amsgrad: bool = False  # the denominator uses the running maximum of exp_avg_sq
    # Stochastic rounding of 16-bit parameter writes with this seed; None: round to nearest.
    rounding_seed: int | None = None
    # "float32" (the states of 16-bit parameters in float32) or "param" (in the parameter's dtype).
    state_dtype: str = "float32"
    # "paper" (lr lambda e g beside the Adam update) or "preconditioned" (lambda e g added to m_hat
    # before Adam's division): docs/design.md, *The mathematics*.
    perturbation: str = "paper"
    # The caller checked every state against its parameter this step (the optimizer's plan does): a
    # fused step then skips its own check of them, the largest part of its host time.
    states_checked: bool = False

    def replace(self, **changes: object) -> StepConfig:
        return self._replace(**changes)

    def hyperparameters(self) -> tuple[float, float, float, float, float, bool, bool, bool, int, bool]:
        """``(beta1, beta2, eps, weight_decay, quantum_weight, maximize, amsgrad,
        stochastic_rounding, rounding_seed, preconditioned)``, in the order the kernels' entry points
        (and the custom op) take them after the learning rate."""
        return (
            self.beta1,
            self.beta2,
            self.eps,
            self.weight_decay,
            self.quantum_weight,
            self.maximize,
            self.amsgrad,
            self.rounding_seed is not None,
            self.rounding_seed or 0,
            self.perturbation == "preconditioned",
        )


StepFn = Callable[[StepTensors, StepConfig], None]


class AdjointFn(Protocol):
    """Gradients of ``sum(weights * e)`` with respect to the batch's ``params`` and ``grads``."""

    def __call__(
        self, circuit: Circuit, batch: Batch, weights: torch.Tensor, *, want_params: bool, want_grads: bool
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]: ...


@dataclass(frozen=True)
class Backend:
    """One entry of the registry.

    ``fused_step`` steps every tensor in one pass with the circuit term computed inside; a backend
    without one (the torch reference, Aer) is stepped by the torch formula with ``simulate``
    supplying the expectations. ``adjoint`` computes gradients of expectations (the kernels' adjoint
    method); without it, a backend is differentiable only if autograd runs through its simulation
    (``differentiable``). ``device`` is the one device type the backend runs on (``None``: any).
    """

    name: str
    simulate: SimulateFn
    fused_step: StepFn | None
    adjoint: AdjointFn | None
    differentiable: bool
    device: str | None
    available: Callable[[], bool]
