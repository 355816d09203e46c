"""``SuperpositionalAdamW``, the optimizer: param groups, their state and checkpoints.

The update rule itself is in :mod:`.update` (PyTorch) and ``csrc/adamw.h`` (the kernels); how a
param group is stepped (fused kernel, torch formula, sharded, Qiskit results) in :mod:`.functional`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from itertools import chain
from typing import Any

import torch

from .. import circuits
from ..backends.base import StepConfig, StepFn, StepTensors
from ..backends.qiskit.target import QiskitTarget
from ..circuit import Circuit
from ..geometry import compute_dtype
from . import functional, ops
from .options import PARAM_DTYPES, check_group, config_of
from .qiskit_groups import STATE_KEY as QISKIT_STATE_KEY
from .qiskit_groups import QiskitGroups

__all__ = ["SuperpositionalAdamW", "state_dtype"]


def state_dtype(param: torch.Tensor) -> torch.dtype:
    """The dtype of ``exp_avg`` and ``exp_avg_sq``: float32 for 16-bit parameters, else the parameter's."""
    return compute_dtype(param.dtype)


class SuperpositionalAdamW(torch.optim.Optimizer):
    r"""AdamW with the circuit term of Superpositional Gradient Descent, as one fused step.

    For each parameter tensor ``p`` with gradient ``g`` at step ``t``:

    .. math::

        \theta &= p \quad\text{(the values at the start of the step: the circuits see these)}\\
        p &\leftarrow p\,(1 - lr\cdot wd)\\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad v \leftarrow \beta_2 v + (1-\beta_2)\, g^2\\
        p &\leftarrow p - lr\Big(\frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)} + \epsilon}
            + \lambda\, e\, g\Big)

    where ``e`` holds, for each element, the expectation its circuit yields: a circuit on ``n``
    qubits reads the ``theta`` (and ``g``) of ``n`` coordinates of a group and returns one
    expectation per coordinate. ``coverage="paper"``: the only group of a tensor is its first ``n``
    (flattened) elements, ``e = 0`` elsewhere (with ``circuits.paper(n)`` this is the paper's Eq. 2,
    ``e_i = sin(pi theta_i)``). ``coverage="all"``: every element belongs to a group of ``n``
    consecutive elements of its row (a slice along dim 0; a tensor of dim 0 or 1 is one row), a
    short tail group reading zeros for its missing inputs.

    A drop-in replacement for :class:`torch.optim.AdamW`: with ``quantum_weight=0`` it takes the
    same steps, and its ``state_dict`` uses AdamW's keys (``step``, ``exp_avg``, ``exp_avg_sq``),
    so checkpoints move between the two. Param groups may set every option below.

    Args:
        params: parameters or param groups, as for any ``torch.optim`` optimizer.
        lr: learning rate.
        betas: coefficients of the running averages of the gradient and its square.
        eps: added to the denominator.
        weight_decay: decoupled weight decay, as :class:`torch.optim.AdamW`.
        quantum_weight: ``lambda``, the weight of the circuit term ``lambda * e * g``.
        circuit: the circuit evaluated per group (default ``circuits.paper(4)``); frozen on use.
        coverage: ``"paper"`` (the first ``n`` elements of each tensor) or ``"all"`` (every element).
        backend: ``"auto"`` (the compiled kernel for the parameters' device), ``"cpu"``, ``"cuda"``,
            ``"torch"`` (plain PyTorch; the fallback without the extension), ``"aer"`` (circuits through
            Qiskit Aer; small models only), or a :class:`~superpositional.QiskitTarget`: the circuits run on
            that Qiskit backend asynchronously, every ``refresh_every`` steps, and each step uses the
            latest expectations received if at most ``max_staleness`` steps stale, the kernel's
            otherwise (see :mod:`superpositional.backends.qiskit.dispatch`). The ``state_dict`` then stores
            ``"qiskit:<name>"`` for the target and the ids of the jobs in flight under the group's
            ``"qiskit"`` key; :meth:`load_state_dict` keeps this optimizer's target and collects them.
        maximize: maximize the objective (the step uses ``-g`` everywhere, the circuit's gradient
            inputs included).
        amsgrad: accepted for signature compatibility with AdamW; only ``False`` is supported.

    Parameters may be float32, float64, bfloat16 or float16; 16-bit parameters are updated with
    float32 math and keep float32 ``exp_avg`` and ``exp_avg_sq``.

    Under FSDP2 (DTensor parameters sharded along dim 0) each rank steps its local shards with the
    circuit groups of the global tensors, so the result equals one process's (see
    :mod:`superpositional.optim.sharded`); under DDP nothing changes. Under ``torch.compile`` the
    fused step is one custom op (:mod:`superpositional.optim.ops`): ``torch.compile(opt.step,
    fullgraph=True)`` has no graph break.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        quantum_weight: float = 0.1,
        circuit: Circuit | None = None,
        coverage: str = "paper",
        backend: str | QiskitTarget = "auto",
        *,
        maximize: bool = False,
        amsgrad: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "quantum_weight": quantum_weight,
            "circuit": circuit if circuit is not None else circuits.paper(4),
            "coverage": coverage,
            "backend": backend,
            "maximize": maximize,
            "amsgrad": amsgrad,
        }
        check_group(defaults)
        self._qiskit = QiskitGroups()
        super().__init__(params, defaults)

    # -- the torch.optim contract ---------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        merged = {**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}
        check_group(merged)
        super().add_param_group(param_group)
        ops.register(self.param_groups[-1]["circuit"].freeze())

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_qiskit", QiskitGroups())
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)
            ops.register(group["circuit"])

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Check everything before changing anything: a bad group leaves every group untouched.
        plans = [self._plan(index, group) for index, group in enumerate(self.param_groups)]
        for strategy, params, config in plans:
            strategy(self._init_group(params), config)
        return loss

    def state_dict(self) -> dict[str, Any]:
        """As :meth:`torch.optim.Optimizer.state_dict`; a :class:`QiskitTarget` is stored as
        ``"qiskit:<name>"`` (never a credential) and its jobs in flight under the group's ``"qiskit"``."""
        packed = super().state_dict()
        self._qiskit.pack(packed["param_groups"])
        return packed

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a checkpoint of this optimizer or of :class:`torch.optim.AdamW`.

        Group options the checkpoint lacks (``quantum_weight``, ``circuit``, ... from AdamW) take
        this optimizer's defaults. States keep full precision: float32 for 16-bit parameters,
        whatever the checkpoint stored. A state whose shape does not match its parameter, or an
        AMSGrad checkpoint, is refused before anything changes.

        A Qiskit target cannot be stored, so a group keeps this optimizer's backend when either it
        or the checkpoint's is a target; with a target here, the jobs the checkpoint had in flight
        are collected (IBM Quantum) or dropped with a warning (local backends).
        """
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups) or any(
            len(s["params"]) != len(g["params"]) for s, g in zip(saved_groups, self.param_groups)
        ):
            raise ValueError("the state_dict's param groups do not match this optimizer's (count or sizes)")
        id_map = dict(
            zip(
                chain.from_iterable(g["params"] for g in saved_groups),
                chain.from_iterable(g["params"] for g in self.param_groups),
            )
        )
        kept_backends = QiskitGroups.kept_backends(saved_groups, self.param_groups)
        for saved, kept in zip(saved_groups, kept_backends):
            options = {k: v for k, v in saved.items() if k not in ("params", QISKIT_STATE_KEY)}
            if kept is not None:
                options["backend"] = kept
            check_group({**self.defaults, **options})
            QiskitGroups.check_saved(saved, kept)
        originals: dict[Any, dict[str, torch.Tensor]] = {}
        for key, saved_state in state_dict["state"].items():
            param = id_map.get(key)
            if param is None:
                continue
            if "max_exp_avg_sq" in saved_state:
                raise ValueError(
                    "this state_dict comes from AMSGrad, which SuperpositionalAdamW does not support"
                )
            step = saved_state.get("step")
            if step is not None and (
                not isinstance(step, (int, float, torch.Tensor)) or torch.as_tensor(step).numel() != 1
            ):
                shape = list(step.shape) if isinstance(step, torch.Tensor) else type(step).__name__
                raise ValueError(f"state_dict: step of parameter {key} must be one number, got {shape}")
            for name in ("exp_avg", "exp_avg_sq"):
                value = saved_state.get(name)
                if value is not None and tuple(value.shape) != tuple(param.shape):
                    raise ValueError(
                        f"state_dict: {name} of parameter {key} has shape {list(value.shape)}, "
                        f"but the parameter has shape {list(param.shape)}"
                    )
            originals[key] = dict(saved_state)
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            for name, value in self.defaults.items():
                group.setdefault(name, value)
            ops.register(group["circuit"].freeze())
        self._qiskit.restore(self.param_groups, kept_backends)
        for key, saved_state in originals.items():
            param = id_map[key]
            state = self.state[param]
            for name in ("exp_avg", "exp_avg_sq"):
                if name in saved_state:
                    state[name] = (
                        saved_state[name].to(param.device, state_dtype(param), copy=True).contiguous()
                    )
            if "step" in saved_state:
                # On the parameter's device, where the kernels read and increment it.
                step = torch.as_tensor(saved_state["step"], dtype=torch.float32)
                state["step"] = step.detach().to(param.device, copy=True)

    # -- internals ------------------------------------------------------------------------------

    def _plan(self, index: int, group: dict[str, Any]) -> tuple[StepFn, list[torch.Tensor], StepConfig]:
        """The group's strategy, its parameters that have a gradient, and its options; checks
        everything and changes nothing."""
        check_group(group)
        config = config_of(group)
        params = self._params_with_grad(group)
        backend = group["backend"]
        options: dict[str, Any] = {}
        if isinstance(backend, QiskitTarget):
            position = {id(p): i for i, p in enumerate(group["params"])}
            options = dict(
                dispatcher=self._qiskit.dispatcher(index, backend), indices=[position[id(p)] for p in params]
            )
        return functional.select(params, config, backend, **options), params, config

    @staticmethod
    def _params_with_grad(group: dict[str, Any]) -> list[torch.Tensor]:
        """The group's parameters that have a gradient, each checked against it."""
        params = [p for p in group["params"] if p.grad is not None]
        for p in params:
            if p.grad.is_sparse:
                raise RuntimeError("SuperpositionalAdamW does not support sparse gradients")
            if p.dtype not in PARAM_DTYPES:
                raise TypeError(f"parameters must be float32, float64, bfloat16 or float16, got {p.dtype}")
            if p.grad.dtype != p.dtype or p.grad.shape != p.shape:
                raise ValueError(
                    f"a gradient must match its parameter: got {p.grad.dtype} {list(p.grad.shape)} "
                    f"for a {p.dtype} {list(p.shape)} parameter"
                )
        devices = {p.device for p in params} | {p.grad.device for p in params}
        if len(devices) > 1:
            raise RuntimeError(
                "a param group's parameters and gradients must share one device, "
                f"got {sorted(map(str, devices))}"
            )
        return params

    def _init_group(self, params: list[torch.Tensor]) -> StepTensors:
        """The step's tensors for ``params``, their state created on first use."""
        states = [self._state_for(p) for p in params]
        return StepTensors(
            params,
            [p.grad for p in params],
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [s["step"] for s in states],
        )

    def _state_for(self, p: torch.Tensor) -> dict[str, Any]:
        state = self.state[p]
        if not state:
            # On the parameter's device, like torch's fused AdamW: the kernels read and increment it.
            state["step"] = torch.tensor(0.0, dtype=torch.float32, device=p.device)
            # zeros_like: a DTensor parameter (FSDP2) gets states sharded like it.
            zeros = partial(torch.zeros_like, p, dtype=state_dtype(p), memory_format=torch.contiguous_format)
            state["exp_avg"] = zeros()
            state["exp_avg_sq"] = zeros()
        return state
