r"""``SuperpositionalAdamW``: AdamW plus a perturbation computed by simulating quantum circuits.

For each parameter tensor ``p`` with gradient ``g`` at step ``t`` (DESIGN.md section 2):

.. math::

    \theta &= p \quad\text{(the values at the start of the step: the circuits see these)}\\
    p &\leftarrow p\,(1 - lr\cdot wd)\\
    m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad v \leftarrow \beta_2 v + (1-\beta_2)\, g^2\\
    p &\leftarrow p - lr\Big(\frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)} + \epsilon} + \lambda\, e\, g\Big)

where ``e`` holds, for each element, the expectation its circuit yields: a circuit on ``n`` qubits
reads the ``theta`` (and ``g``) of ``n`` coordinates of a group and returns one expectation per
coordinate. ``coverage="paper"``: the only group of a tensor is its first ``n`` (flattened)
elements, ``e = 0`` elsewhere (with ``circuits.paper(n)`` this is the paper's Eq. 2,
``e_i = sin(pi theta_i)``). ``coverage="all"``: every element belongs to a group of ``n``
consecutive elements of its row (a slice along dim 0; a tensor of dim 0 or 1 is one row), a short
tail group reading zeros for its missing inputs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from functools import partial
from itertools import chain
from typing import Any

import torch

from . import backends, circuits, ops
from .backends import aer, kernel, qiskit_step, reference
from .backends.qiskit_dispatch import Dispatcher
from .backends.qiskit_target import QiskitTarget
from .circuit import Circuit
from .distributed import is_sharded, step_sharded

__all__ = ["SuperpositionalAdamW"]

COVERAGES = ("paper", "all")
_PARAM_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
_STEP_BACKENDS = ("auto", "cpu", "cuda", "torch", "aer")


def state_dtype(param: torch.Tensor) -> torch.dtype:
    """The dtype of ``exp_avg`` and ``exp_avg_sq``: float32 for 16-bit parameters, else the parameter's."""
    return torch.float32 if param.dtype in (torch.bfloat16, torch.float16) else param.dtype


class SuperpositionalAdamW(torch.optim.Optimizer):
    r"""AdamW with the circuit term of Superpositional Gradient Descent, as one fused step.

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
        backend: ``"auto"`` (the compiled kernel for the parameters' device), ``"cpu"``, ``"torch"``
            (plain PyTorch; the fallback without the extension), ``"aer"`` (circuits through Qiskit
            Aer; small models only), or a :class:`~superpositional.QiskitTarget`: the circuits run on
            that Qiskit backend asynchronously, every ``refresh_every`` steps, and each step uses the
            latest expectations received if at most ``max_staleness`` steps stale, the kernel's
            otherwise (see ``backends/qiskit_dispatch.py``). The ``state_dict`` then stores
            ``"qiskit:<name>"`` for the target and the ids of the jobs in flight under the group's
            ``"qiskit"`` key; :meth:`load_state_dict` keeps this optimizer's target and collects them.
        maximize: maximize the objective (the step uses ``-g`` everywhere, the circuit's gradient
            inputs included).
        amsgrad: accepted for signature compatibility with AdamW; only ``False`` is supported.

    Parameters may be float32, float64, bfloat16 or float16; 16-bit parameters are updated with
    float32 math and keep float32 ``exp_avg`` and ``exp_avg_sq``.

    Under FSDP2 (DTensor parameters sharded along dim 0) each rank steps its local shards with the
    circuit groups of the global tensors, so the result equals one process's (see
    :mod:`superpositional.distributed`); under DDP nothing changes. Under ``torch.compile`` the
    fused step is one custom op (:mod:`superpositional.ops`): ``torch.compile(opt.step,
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
        _check_hyperparameters(defaults)
        super().__init__(params, defaults)

    # -- the torch.optim contract ---------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        merged = {**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}
        _check_hyperparameters(merged)
        super().add_param_group(param_group)
        ops.register(self.param_groups[-1]["circuit"].freeze())

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
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
        for group, (stepper, params, grads) in zip(self.param_groups, plans):
            if not params:
                continue
            states = [self._state_for(p) for p in params]
            beta1, beta2 = group["betas"]
            if any(is_sharded(p) for p in params):
                # FSDP2: local shards, with the groups of the global tensors (distributed.py).
                stepper = partial(step_sharded, stepper, simulate_backend=_kernel_for(params[0].device))
            elif torch.compiler.is_compiling() and stepper in (kernel.step_cpu, kernel.step_cuda):
                stepper = _compiled_step  # one custom-op node instead of a graph break (ops.py)
            stepper(
                params,
                grads,
                [s["exp_avg"] for s in states],
                [s["exp_avg_sq"] for s in states],
                [s["step"] for s in states],
                lr=group["lr"],
                beta1=float(beta1),
                beta2=float(beta2),
                eps=float(group["eps"]),
                weight_decay=float(group["weight_decay"]),
                quantum_weight=float(group["quantum_weight"]),
                maximize=bool(group["maximize"]),
                circuit=group["circuit"],
                coverage=group["coverage"],
            )
        return loss

    def state_dict(self) -> dict[str, Any]:
        """As :meth:`torch.optim.Optimizer.state_dict`; a :class:`QiskitTarget` is stored as
        ``"qiskit:<name>"`` (never a credential) and its jobs in flight under the group's ``"qiskit"``."""
        packed = super().state_dict()
        dispatchers = self.__dict__.get("_dispatchers", {})
        for index, group in enumerate(packed["param_groups"]):
            target = group.get("backend")
            if isinstance(target, QiskitTarget):
                group["backend"] = target.spec()
                dispatcher = dispatchers.get(index)
                if dispatcher is not None and dispatcher.target is target:
                    group["qiskit"] = dispatcher.state()
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
        kept_backends = [
            current["backend"] if _is_qiskit(saved.get("backend")) or _is_qiskit(current["backend"]) else None
            for saved, current in zip(saved_groups, self.param_groups)
        ]
        for saved, kept in zip(saved_groups, kept_backends):
            options = {k: v for k, v in saved.items() if k not in ("params", "qiskit")}
            if kept is not None:
                options["backend"] = kept
            _check_hyperparameters({**self.defaults, **options})
            if isinstance(kept, QiskitTarget) and saved.get("qiskit") is not None:
                Dispatcher.parse(saved["qiskit"])
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
        dispatchers = self.__dict__.setdefault("_dispatchers", {})
        dispatchers.clear()
        for index, (group, kept) in enumerate(zip(self.param_groups, kept_backends)):
            for name, value in self.defaults.items():
                group.setdefault(name, value)
            ops.register(group["circuit"].freeze())
            jobs = group.pop("qiskit", None)
            if kept is not None:
                group["backend"] = kept
                if isinstance(kept, QiskitTarget) and jobs is not None:
                    self._dispatcher(index, kept).load(jobs)
                elif jobs is not None and jobs.get("pending"):
                    warnings.warn(
                        f"the checkpoint had {len(jobs['pending'])} Qiskit job(s) in flight, but this "
                        f"optimizer's backend is {kept!r}: they are not collected",
                        RuntimeWarning,
                        stacklevel=2,
                    )
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

    def _plan(
        self, index: int, group: dict[str, Any]
    ) -> tuple[Callable[..., None], list[torch.Tensor], list[torch.Tensor]]:
        """The step function for the group, and its parameters that have a gradient; checks everything."""
        _check_hyperparameters(group)
        params = [p for p in group["params"] if p.grad is not None]
        for p in params:
            if p.grad.is_sparse:
                raise RuntimeError("SuperpositionalAdamW does not support sparse gradients")
            if p.dtype not in _PARAM_DTYPES:
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
        if not params:
            return reference.step, [], []
        grads = [p.grad for p in params]
        backend = group["backend"]
        if isinstance(backend, QiskitTarget):
            if any(is_sharded(p) for p in params):
                # Each rank would submit its own jobs for its shards: not built (yet).
                raise NotImplementedError("a QiskitTarget does not step FSDP2-sharded parameters")
            qiskit_step.check(backend, group["circuit"], group["coverage"], params, group["quantum_weight"])
            kernel_name = _resolve("auto", params[0].device)
            position = {id(p): i for i, p in enumerate(group["params"])}
            stepper = qiskit_step.make_stepper(
                self._dispatcher(index, backend),
                [position[id(p)] for p in params],
                _STEPPERS[kernel_name],
                backends.simulator(kernel_name),
            )
            return stepper, params, grads
        stepper = _STEPPERS[_resolve(backend, params[0].device)]
        if params[0].device.type == "meta":  # found now, before any group has changed
            raise RuntimeError(
                "SuperpositionalAdamW cannot step parameters on the meta device: they hold no data"
            )
        return stepper, params, grads

    def _dispatcher(self, index: int, target: QiskitTarget) -> Dispatcher:
        """The group's dispatcher (jobs in flight, results), made anew when the group's target changes."""
        dispatchers = self.__dict__.setdefault("_dispatchers", {})
        if index not in dispatchers or dispatchers[index].target is not target:
            dispatchers[index] = Dispatcher(target)
        return dispatchers[index]

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


def _is_qiskit(backend: Any) -> bool:
    """A Qiskit target, or what stands for one in a state_dict (``"qiskit:<name>"``)."""
    return isinstance(backend, QiskitTarget) or (isinstance(backend, str) and backend.startswith("qiskit:"))


def _resolve(backend: str, device: torch.device) -> str:
    if backend == "auto":
        kernel_name = "cpu" if device.type == "cpu" else device.type
        if kernel_name in _STEPPERS and backends.is_available(kernel_name):
            return kernel_name
        warnings.warn(
            f"no compiled step for {device.type} parameters here; "
            "SuperpositionalAdamW uses the (slow) torch backend",
            RuntimeWarning,
            stacklevel=4,
        )
        return "torch"
    if not backends.is_available(backend):
        raise RuntimeError(
            f"backend {backend!r} is not available here; available: {backends.available_backends()}"
        )
    if backend in ("cpu", "cuda") and device.type != backend:
        raise ValueError(
            f"backend {backend!r} steps {backend.upper()} parameters, got parameters on {device}"
        )
    return backend


def _compiled_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    steps: list[torch.Tensor],
    *,
    lr: float | torch.Tensor,
    circuit: Circuit,
    **options: Any,
) -> None:
    lr_tensor = lr if isinstance(lr, torch.Tensor) else None
    ops.fused_step(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        steps,
        0.0 if lr_tensor is not None else float(lr),
        lr_tensor,
        options["beta1"],
        options["beta2"],
        options["eps"],
        options["weight_decay"],
        options["quantum_weight"],
        options["maximize"],
        ops.circuit_key(circuit),
        options["coverage"],
    )


def _kernel_for(device: torch.device) -> str:
    """The simulate backend for circuits that a sharded step evaluates outside the fused kernel."""
    name = "cpu" if device.type == "cpu" else device.type
    return name if backends.is_available(name) else "torch"


def _aer_step(*args: Any, **kwargs: Any) -> None:
    reference.step(*args, simulate_rows=aer.simulate_aer, **kwargs)


_STEPPERS: dict[str, Callable[..., None]] = {
    "cpu": kernel.step_cpu,
    "cuda": kernel.step_cuda,
    "torch": reference.step,
    "aer": _aer_step,
}


def _real(value: Any, key: str) -> float:
    if isinstance(value, (str, bytes)):  # float() would parse "1e-3"; torch.optim.AdamW refuses it
        raise TypeError(f"{key} must be a real number, got {type(value).__name__}")
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{key} must be a real number, got {type(value).__name__}") from None


def _finite_number(group: dict[str, Any], key: str, minimum: float | None = None) -> None:
    value = group[key]
    if isinstance(value, torch.Tensor) and (value.device.type != "cpu" or torch.compiler.is_compiling()):
        # Reading it would synchronise with the device (breaking graph capture), or be data-dependent
        # under torch.compile; it was checked when the group was added.
        return
    number = _real(value, key)
    if not math.isfinite(number):
        raise ValueError(f"{key} must be finite, got {number}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{key} must be >= {minimum}, got {number}")


def _check_hyperparameters(group: dict[str, Any]) -> None:
    """Raise a clear error for any invalid option of a param group."""
    lr = group["lr"]
    if isinstance(lr, torch.Tensor) and lr.numel() != 1:
        raise ValueError("a tensor lr must have exactly one element")
    _finite_number(group, "lr", 0.0)
    _finite_number(group, "eps", 0.0)
    _finite_number(group, "weight_decay", 0.0)
    _finite_number(group, "quantum_weight")
    betas = group["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    for i, beta in enumerate(betas):
        beta = _real(beta, f"betas[{i}]")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"betas[{i}] must be in [0, 1), got {beta}")
    if not isinstance(group["circuit"], Circuit):
        raise TypeError(f"circuit must be a superpositional.Circuit, got {type(group['circuit']).__name__}")
    if not isinstance(group["coverage"], str) or group["coverage"] not in COVERAGES:
        raise ValueError(f"coverage must be 'paper' or 'all', got {group['coverage']!r}")
    backend = group["backend"]
    if not isinstance(backend, QiskitTarget) and (
        not isinstance(backend, str) or backend not in _STEP_BACKENDS
    ):
        raise ValueError(
            f"backend must be one of {list(_STEP_BACKENDS)} or a superpositional.QiskitTarget, "
            f"got {backend!r}"
        )
    try:
        amsgrad = bool(group.get("amsgrad", False))
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"amsgrad must be a bool, got {type(group['amsgrad']).__name__}") from None
    if amsgrad:
        raise ValueError("amsgrad=True is not supported by SuperpositionalAdamW")
    if not isinstance(group["maximize"], bool):
        raise TypeError(f"maximize must be a bool, got {type(group['maximize']).__name__}")
