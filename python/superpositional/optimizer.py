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
from itertools import chain
from typing import Any

import torch

from . import backends, circuits
from .backends import aer, kernel, reference
from .circuit import Circuit

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
            (plain PyTorch; the fallback without the extension) or ``"aer"`` (circuits through Qiskit
            Aer; small models only).
        maximize: maximize the objective (the step uses ``-g`` everywhere, the circuit's gradient
            inputs included).
        amsgrad: accepted for signature compatibility with AdamW; only ``False`` is supported.

    Parameters may be float32, float64, bfloat16 or float16; 16-bit parameters are updated with
    float32 math and keep float32 ``exp_avg`` and ``exp_avg_sq``.
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
        backend: str = "auto",
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
        self.param_groups[-1]["circuit"].freeze()

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Check everything before changing anything: a bad group leaves every group untouched.
        plans = [self._plan(group) for group in self.param_groups]
        for group, (name, params, grads) in zip(self.param_groups, plans):
            if not params:
                continue
            states = [self._state_for(p) for p in params]
            beta1, beta2 = group["betas"]
            _STEPPERS[name](
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

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a checkpoint of this optimizer or of :class:`torch.optim.AdamW`.

        Group options the checkpoint lacks (``quantum_weight``, ``circuit``, ... from AdamW) take
        this optimizer's defaults. States keep full precision: float32 for 16-bit parameters,
        whatever the checkpoint stored. A state whose shape does not match its parameter, or an
        AMSGrad checkpoint, is refused before anything changes.
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
        for saved in saved_groups:
            _check_hyperparameters({**self.defaults, **{k: v for k, v in saved.items() if k != "params"}})
        originals: dict[Any, dict[str, torch.Tensor]] = {}
        for key, saved_state in state_dict["state"].items():
            param = id_map.get(key)
            if param is None:
                continue
            if "max_exp_avg_sq" in saved_state:
                raise ValueError(
                    "this state_dict comes from AMSGrad, which SuperpositionalAdamW does not support"
                )
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
            group["circuit"].freeze()
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

    def _plan(self, group: dict[str, Any]) -> tuple[str, list[torch.Tensor], list[torch.Tensor]]:
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
            return "torch", [], []
        return _resolve(group["backend"], params[0].device), params, [p.grad for p in params]

    def _state_for(self, p: torch.Tensor) -> dict[str, Any]:
        state = self.state[p]
        if not state:
            # On the parameter's device, like torch's fused AdamW: the kernels read and increment it.
            state["step"] = torch.tensor(0.0, dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros(p.shape, dtype=state_dtype(p), device=p.device)
            state["exp_avg_sq"] = torch.zeros(p.shape, dtype=state_dtype(p), device=p.device)
        return state


def _resolve(backend: str, device: torch.device) -> str:
    if backend == "auto":
        kernel_name = "cpu" if device.type == "cpu" else device.type
        if kernel_name in backends.available_backends() and kernel_name in _STEPPERS:
            return kernel_name
        warnings.warn(
            f"no compiled step for {device.type} parameters here; "
            "SuperpositionalAdamW uses the (slow) torch backend",
            RuntimeWarning,
            stacklevel=4,
        )
        return "torch"
    if backend not in backends.available_backends():
        raise RuntimeError(
            f"backend {backend!r} is not available here; available: {backends.available_backends()}"
        )
    if backend in ("cpu", "cuda") and device.type != backend:
        raise ValueError(
            f"backend {backend!r} steps {backend.upper()} parameters, got parameters on {device}"
        )
    return backend


def _aer_step(*args: Any, **kwargs: Any) -> None:
    reference.step(*args, simulate_rows=aer.simulate_aer, **kwargs)


_STEPPERS: dict[str, Callable[..., None]] = {
    "cpu": kernel.step_cpu,
    "cuda": kernel.step_cuda,
    "torch": reference.step,
    "aer": _aer_step,
}


def _finite_number(group: dict[str, Any], key: str, minimum: float | None = None) -> None:
    value = group[key]
    if isinstance(value, torch.Tensor) and value.device.type != "cpu":
        return  # reading it would synchronise with the device (and break graph capture)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{key} must be a real number, got {type(value).__name__}") from None
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
        beta = float(beta)
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"betas[{i}] must be in [0, 1), got {beta}")
    if not isinstance(group["circuit"], Circuit):
        raise TypeError(f"circuit must be a superpositional.Circuit, got {type(group['circuit']).__name__}")
    if group["coverage"] not in COVERAGES:
        raise ValueError(f"coverage must be 'paper' or 'all', got {group['coverage']!r}")
    if not isinstance(group["backend"], str) or group["backend"] not in _STEP_BACKENDS:
        raise ValueError(f"backend must be one of {list(_STEP_BACKENDS)}, got {group['backend']!r}")
    if group.get("amsgrad", False):
        raise ValueError("amsgrad=True is not supported by SuperpositionalAdamW")
    if not isinstance(group["maximize"], bool):
        raise TypeError(f"maximize must be a bool, got {type(group['maximize']).__name__}")
