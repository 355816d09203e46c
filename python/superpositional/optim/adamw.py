"""``SuperpositionalAdamW``, the optimizer: param groups, their state and checkpoints.

The update rule itself is in :mod:`.update` (PyTorch) and ``csrc/adamw.h`` (the kernels); how a
param group is stepped (fused kernel, torch formula, sharded, Qiskit results) in :mod:`.functional`;
what a checkpoint holds in :mod:`.checkpoint`; the options and their checks in :mod:`.options`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import torch

from .. import circuits
from ..backends.base import StepConfig, StepFn, StepTensors
from ..backends.qiskit.target import QiskitTarget
from ..circuit import Circuit
from ..geometry import real_view
from . import functional, ops
from .checkpoint import (
    AMSGRAD_MOMENT,
    check_state,
    convert_states,
    load_groups,
    load_state,
    pack_group,
    state_dtype,
)
from .options import (
    COMPLEX_DTYPES,
    OWN_OPTIONS,
    PARAM_DTYPES,
    check_group,
    config_of,
    options_of,
)
from .qiskit_groups import QiskitGroups

__all__ = ["SuperpositionalAdamW", "state_dtype"]

FUSED_DEVICES = ("cpu", "cuda")  # where fused=True is accepted, as torch.optim.AdamW's fused kernels
_PLAIN_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)


def _itself(t: torch.Tensor) -> torch.Tensor:
    return t


def _fingerprint(p: torch.Tensor, state: dict[str, Any], amsgrad: bool) -> tuple | None:
    """What :func:`~.checkpoint.check_state` depends on, cheaply compared: the parameter's address,
    dtype and shape, and each state entry's identity and address (``id`` with the address, so that
    a recycled id of a freed tensor cannot pass for it); ``None`` when an entry is not a tensor.
    (A new ``state_dtype`` needs no entry: check_state accepts either state dtype, and the states
    the step converts are new tensors.)"""
    get = state.get
    step, m, v = get("step"), get("exp_avg"), get("exp_avg_sq")
    v_max = get(AMSGRAD_MOMENT) if amsgrad else None
    try:
        return (
            p.data_ptr(),
            p.dtype,
            p.shape,
            id(step),
            id(m),
            id(v),
            id(v_max),
            step.data_ptr(),
            m.data_ptr(),
            v.data_ptr(),
            0 if v_max is None else v_max.data_ptr(),
        )
    except AttributeError:  # check_state names what is wrong
        return None


class SuperpositionalAdamW(torch.optim.Optimizer):
    r"""AdamW with the circuit term of Superpositional Gradient Descent, as one fused step.

    For each parameter tensor ``p`` with gradient ``g`` at step ``t``:

    .. math::

        \theta &= p \quad\text{(the values at the start of the step: the circuits see these)}\\
        p &\leftarrow p\,(1 - lr\cdot wd)\\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad v \leftarrow \beta_2 v + (1-\beta_2)\, g^2\\
        p &\leftarrow p - lr\Big(\frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)} + \epsilon}
            + \lambda\, e\, g\Big)

    (``perturbation="paper"``, the paper's rule), or with ``perturbation="preconditioned"`` the last
    line replaced by

    .. math::

        p \leftarrow p - lr\,\frac{m/(1-\beta_1^t) + \lambda\, e\, g}{\sqrt{v/(1-\beta_2^t)} + \epsilon}

    where ``e`` holds, for each element, the expectation its circuit yields: a circuit on ``n``
    qubits reads the ``theta`` (and ``g``) of ``n`` coordinates of a group and returns one
    expectation per coordinate. ``coverage="paper"``: the only group of a tensor is its first ``n``
    (flattened) elements, ``e = 0`` elsewhere (with ``circuits.paper(n)`` this is the paper's Eq. 2,
    ``e_i = sin(pi theta_i)``). ``coverage="all"``: every element belongs to a group of ``n``
    consecutive elements of its row (a slice along dim 0; a tensor of dim 0 or 1 is one row), a
    short tail group reading zeros for its missing inputs. With ``amsgrad=True``,
    ``v_max = max(v_max, v)`` takes ``v``'s place under the root, as in :class:`torch.optim.AdamW`.

    A drop-in replacement for :class:`torch.optim.AdamW`: it takes AdamW's arguments in AdamW's
    order, and with ``quantum_weight=0`` the same steps. Its param groups carry AdamW's keys and its
    ``state_dict`` AdamW's state keys (``step``, ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``),
    so checkpoints move between the two, and hold only tensors and plain data (the circuit as JSON),
    so they load with ``torch.load``'s defaults.

    Args:
        params: parameters or param groups, as for any ``torch.optim`` optimizer.
        lr: learning rate (a float, or a one-element tensor: on the parameters' GPU it is read there,
            so that a step can be captured in a CUDA graph).
        betas: coefficients of the running averages of the gradient and its square.
        eps: added to the denominator.
        weight_decay: decoupled weight decay, as :class:`torch.optim.AdamW`.
        amsgrad: use the running maximum of ``exp_avg_sq`` (AMSGrad), as :class:`torch.optim.AdamW`.
        maximize: maximize the objective (the step uses ``-g`` everywhere, the circuit's gradient
            inputs included).
        foreach, fused: accepted as :class:`torch.optim.AdamW` accepts them (and refused in the
            same combinations); every step is fused already, so they select nothing.
        capturable: accepted; the CUDA step is always capturable (step counters on the device, no
            host synchronisation).
        differentiable: only ``False``: the step runs compiled kernels, outside autograd.
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
        state_dtype: the dtype of ``exp_avg``, ``exp_avg_sq`` (and ``max_exp_avg_sq``) of 16-bit
            parameters: ``torch.float32`` (the default: full-precision moments), or ``"param"``: every
            state in its parameter's dtype, as :class:`torch.optim.AdamW` keeps it (the same memory as
            torch's, and torch's checkpoints round-trip unchanged). Parameters of other dtypes keep
            states of their own dtype either way. The math is float32 for 16-bit parameters either
            way: each state is read, updated in float32 and rounded to its dtype once per step.
        stochastic_rounding: ``False`` (round-to-nearest), ``True`` (seed 0) or an int seed in
            ``[0, 2**32)``: 16-bit parameters are written rounded stochastically: of the two values
            of their format around the float32 update ``x``, the one farther from zero with
            probability ``(|x| - lo) / ulp`` (``lo`` the one nearer zero), so ``E[p] = x`` and updates
            smaller than half an ulp still move ``p`` on average. The random bits come from a
            counter-based hash of the seed, the parameter's index in this optimizer, the step number
            and the element's index, so a resumed run rounds as the uninterrupted one. Other dtypes
            are written exactly as without it.
        perturbation: where the circuit term enters: ``"paper"`` (the default), ``lr * lambda * e *
            g`` beside the Adam update, as the paper writes it, which is unnormalised (its size
            follows ``|g|``, tiny against Adam's normalised step); ``"preconditioned"``, ``lambda * e
            * g`` added to the bias-corrected first moment before Adam's division, so that the term
            moves ``p`` in the same units as ``m_hat`` does (``lambda = 1`` weighs it like the
            gradient's running mean). With ``quantum_weight=0`` both are AdamW exactly.

    A param group holds AdamW's keys and those of ``quantum_weight``, ``circuit``, ``coverage`` and
    ``backend`` that were given for it; the others follow ``defaults`` (so that a group of AdamW's
    keys alone, as an AdamW checkpoint has, is complete). Read a group's full options with
    :meth:`group_options`.

    Parameters may be float32, float64, bfloat16, float16, complex64 or complex128. 16-bit
    parameters are updated with float32 math and keep float32 ``exp_avg`` and ``exp_avg_sq`` unless
    ``state_dtype="param"``. A
    complex parameter is stepped as its real view, as :class:`torch.optim.AdamW` does: its circuit
    groups read real and imaginary parts interleaved (docs/design.md, *The mathematics*).

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
        betas: tuple[float | torch.Tensor, float | torch.Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        quantum_weight: float = 0.1,
        circuit: Circuit | None = None,
        coverage: str = "paper",
        backend: str | QiskitTarget = "auto",
        state_dtype: torch.dtype | str = torch.float32,
        stochastic_rounding: bool | int = False,
        perturbation: str = "paper",
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
            "fused": fused,
            "decoupled_weight_decay": True,
            "quantum_weight": quantum_weight,
            "circuit": circuit if circuit is not None else circuits.paper(4),
            "coverage": coverage,
            "backend": backend,
            "state_dtype": state_dtype,
            "stochastic_rounding": stochastic_rounding,
            "perturbation": perturbation,
        }
        check_group(defaults, constructor=True)
        # As torch.optim.AdamW: a tensor beta of any shape is kept as a 0-dim tensor.
        defaults["betas"] = tuple(b.squeeze() if isinstance(b, torch.Tensor) else b for b in betas)
        ops.register(defaults["circuit"].freeze())
        self._qiskit = QiskitGroups()
        # id(param) -> what check_state last passed for its state (_fingerprint): plain data only, so
        # that it keeps no tensor alive.
        self._checked: dict[int, tuple] = {}
        super().__init__(params, defaults)
        if fused:
            # As torch's fused AdamW: GradScaler then leaves unscaling and skipping to the step,
            # through the optimizer's grad_scale and found_inf attributes.
            self._step_supports_amp_scaling = True

    # -- the torch.optim contract ---------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        given = set(param_group)
        options = options_of({k: v for k, v in param_group.items() if k != "params"}, self.defaults)
        check_group(options)
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for key in OWN_OPTIONS:  # torch's add_param_group copied every default in: keep what was given
            if key not in given:
                del group[key]
        ops.register(options["circuit"].freeze())

    def group_options(self, index: int) -> dict[str, Any]:
        """Every option of param group ``index`` (without ``params``): its own keys over ``defaults``."""
        group = self.param_groups[index]
        return {k: v for k, v in options_of(group, self.defaults).items() if k != "params"}

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for index in range(len(self.param_groups)):
            lines.append(f"Parameter Group {index}")
            lines += [f"    {key}: {value}" for key, value in sorted(self.group_options(index).items())]
        return "\n".join([*lines, ")"])

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_qiskit", QiskitGroups())
        self._checked = {}  # a loaded state is checked afresh
        # Optimizers pickled by earlier versions lack AdamW's newer keys; today's have them all.
        for key, value in (("foreach", None), ("capturable", False), ("fused", None)):
            self.defaults.setdefault(key, value)
        self.defaults.setdefault("decoupled_weight_decay", True)
        for group in self.param_groups:
            for key in ("amsgrad", "maximize", "foreach", "capturable", "differentiable", "fused"):
                group.setdefault(key, self.defaults[key])
            group.setdefault("decoupled_weight_decay", True)
            ops.register(options_of(group, self.defaults)["circuit"].freeze())

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Check everything before changing anything: a bad group leaves every group untouched.
        plans = [self._plan(index, group) for index, group in enumerate(self.param_groups)]
        if not self._unscale_for_amp([p for _, params, _, _ in plans for p in params]):
            return loss
        for strategy, params, states, config in plans:
            strategy(self._init_group(params, states, config), config)
        return loss

    @torch._disable_dynamo
    def state_dict(self) -> dict[str, Any]:
        """As :meth:`torch.optim.Optimizer.state_dict` (its hooks included), holding only tensors and
        plain data: each group with every option (the circuit as :meth:`Circuit.to_json`); a
        :class:`QiskitTarget` as ``"qiskit:<name>"`` (never a credential) and its jobs in flight
        under the group's ``"qiskit"``."""
        for pre_hook in self._optimizer_state_dict_pre_hooks.values():
            pre_hook(self)
        index_of: dict[int, int] = {}
        packed_groups = []
        for group in self.param_groups:
            packed = pack_group(group, self.defaults)
            for p in group["params"]:
                index_of.setdefault(id(p), len(index_of))
            packed["params"] = [index_of[id(p)] for p in group["params"]]
            packed_groups.append(packed)
        self._qiskit.pack(packed_groups)
        packed_state = {
            (index_of[id(p)] if isinstance(p, torch.Tensor) else p): v for p, v in self.state.items()
        }
        state_dict = {"state": packed_state, "param_groups": packed_groups}
        for post_hook in self._optimizer_state_dict_post_hooks.values():
            result = post_hook(self, state_dict)
            if result is not None:
                state_dict = result
        return state_dict

    @torch._disable_dynamo
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a checkpoint of this optimizer or of :class:`torch.optim.AdamW`, as torch does: the
        load-state-dict pre-hooks (what they return or change stands), then the load, then the
        post-hooks.

        The load checks everything before it replaces anything (:mod:`.checkpoint`): group options
        (those an AdamW checkpoint lacks follow this optimizer's defaults), and each parameter's
        state, which must hold what a step reads. States take the dtype of their group's
        ``state_dtype``, whatever the checkpoint stored (float32 for 16-bit parameters by default).

        A Qiskit target cannot be stored, so a group keeps this optimizer's backend when either it
        or the checkpoint's is a target; with a target here, the jobs the checkpoint had in flight
        are collected (IBM Quantum) or dropped with a warning (local backends).
        """
        state_dict = dict(state_dict)  # a shallow copy, as torch's
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        saved_groups = state_dict["param_groups"]
        groups, kept_backends = load_groups(saved_groups, self.param_groups, self.defaults)
        state = load_state(state_dict["state"], saved_groups, groups, self.defaults)
        self.__setstate__({"state": defaultdict(dict, state), "param_groups": groups})
        self._qiskit.restore(saved_groups, kept_backends)
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)

    # -- internals ------------------------------------------------------------------------------

    def _unscale_for_amp(self, params: list[torch.Tensor]) -> bool:
        """GradScaler's protocol for fused optimizers (``fused=True``), as torch's fused AdamW keeps
        it: with ``found_inf`` set and non-zero nothing is stepped (False); otherwise the gradients
        are divided by ``grad_scale`` in place. Reading ``found_inf`` is one host synchronisation,
        as GradScaler's own path for other optimizers has."""
        found_inf = getattr(self, "found_inf", None)
        grad_scale = getattr(self, "grad_scale", None)
        if found_inf is not None and bool(found_inf):
            return False
        if grad_scale is not None:
            for p in params:
                p.grad.div_(grad_scale.to(p.grad.device))
        return True

    def _plan(
        self, index: int, group: dict[str, Any]
    ) -> tuple[StepFn, list[torch.Tensor], list[dict[str, Any] | None], StepConfig]:
        """The group's strategy, its parameters that have a gradient, their states (``None`` where
        there is none yet) and its options; checks everything and changes nothing."""
        options = options_of(group, self.defaults)
        check_group(options)
        config = config_of(options)
        params = self._params_with_grad(group, options)
        states = [self.state.get(p) for p in params]
        self._check_states(params, states, config, where=f"param group {index}")
        config = config.replace(states_checked=True)
        backend = options["backend"]
        extra: dict[str, Any] = {}
        if isinstance(backend, QiskitTarget):
            position = {id(p): i for i, p in enumerate(group["params"])}
            extra = dict(
                dispatcher=self._qiskit.dispatcher(index, backend), indices=[position[id(p)] for p in params]
            )
        real = [real_view(p) for p in params] if any(p.is_complex() for p in params) else params
        return functional.select(real, config, backend, **extra), params, states, config

    def _check_states(
        self, params: list[torch.Tensor], states: list[dict[str, Any] | None], config: StepConfig, where: str
    ) -> None:
        """:func:`~.checkpoint.check_state` for each parameter's live state, skipped where nothing
        it checked can have changed since it last passed: the same state tensors (by identity), at
        the same addresses, for a parameter of the same address, dtype and shape. That comparison
        costs a fraction of the check, which was most of a step's host time for many small tensors.
        (DTensors, and steps traced by torch.compile, which cannot read addresses, check in full.)"""
        compiling = torch.compiler.is_compiling()
        checked, amsgrad = self._checked, config.amsgrad
        for p, state in zip(params, states):
            if not state:
                continue
            plain = not compiling and type(p) in _PLAIN_TENSOR_TYPES
            fingerprint = _fingerprint(p, state, amsgrad) if plain else None
            if fingerprint is None or checked.get(id(p)) != fingerprint:
                check_state(p, state, amsgrad=amsgrad, where=where, states=config.state_dtype)
                if fingerprint is not None:
                    checked[id(p)] = fingerprint

    @staticmethod
    def _params_with_grad(group: dict[str, Any], options: dict[str, Any]) -> list[torch.Tensor]:
        """The group's parameters that have a gradient, each checked against it."""
        params = [p for p in group["params"] if p.grad is not None]
        fused = options["fused"]
        devices = set()
        for p in params:
            g, dtype = p.grad, p.dtype
            if g.is_sparse:
                raise RuntimeError("SuperpositionalAdamW does not support sparse gradients")
            if fused and (dtype in COMPLEX_DTYPES or p.device.type not in FUSED_DEVICES):
                raise RuntimeError(
                    "`fused=True` requires all the params to be floating point Tensors of supported "
                    f"devices: {list(FUSED_DEVICES)} (torch.optim.AdamW's rule), got a {dtype} "
                    f"parameter on {p.device}"
                )
            if dtype not in PARAM_DTYPES:
                if dtype not in COMPLEX_DTYPES:
                    raise TypeError(
                        "parameters must be float32, float64, bfloat16, float16, complex64 or complex128, "
                        f"got {dtype}"
                    )
                real_view(p)  # refuses a complex layout with no real view
            if g.dtype != dtype or g.shape != p.shape:
                raise ValueError(
                    f"a gradient must match its parameter: got {g.dtype} {list(g.shape)} "
                    f"for a {dtype} {list(p.shape)} parameter"
                )
            devices.add(p.device)
            devices.add(g.device)
        if len(devices) > 1:
            raise RuntimeError(
                "a param group's parameters and gradients must share one device, "
                f"got {sorted(map(str, devices))}"
            )
        return params

    def _init_group(
        self, params: list[torch.Tensor], states: list[dict[str, Any] | None], config: StepConfig
    ) -> StepTensors:
        """The step's tensors for ``params`` (complex ones as real views), their state (``states``,
        as the plan found them) created on first use, or converted when the group's ``state_dtype``
        changed."""
        states = [self._state_for(p, state, config) for p, state in zip(params, states)]
        view = real_view if any(p.is_complex() for p in params) else _itself
        return StepTensors(
            [view(p) for p in params],
            [view(p.grad) for p in params],
            [view(s["exp_avg"]) for s in states],
            [view(s["exp_avg_sq"]) for s in states],
            [s["step"] for s in states],
            [view(s[AMSGRAD_MOMENT]) for s in states] if config.amsgrad else [],
            self._rounding_streams(params) if config.rounding_seed is not None else [],
        )

    def _rounding_streams(self, params: list[torch.Tensor]) -> list[int]:
        """Each parameter's index in this optimizer (as :meth:`state_dict` numbers them): the random
        stream of its stochastic rounding, the same after a checkpoint is loaded."""
        index_of: dict[int, int] = {}
        for group in self.param_groups:
            for p in group["params"]:
                index_of.setdefault(id(p), len(index_of))
        return [index_of[id(p)] for p in params]

    def _state_for(self, p: torch.Tensor, state: dict[str, Any] | None, config: StepConfig) -> dict[str, Any]:
        dtype = state_dtype(p, config.state_dtype)
        if state:
            if state["exp_avg"].dtype != dtype:
                convert_states(state, dtype)
            if not config.amsgrad or AMSGRAD_MOMENT in state:
                return state
        state = self.state[p]
        # zeros_like: a DTensor parameter (FSDP2) gets states sharded like it.
        zeros = partial(torch.zeros_like, p, dtype=dtype, memory_format=torch.contiguous_format)
        if not state:
            # On the parameter's device, like torch's fused AdamW: the kernels read and increment it.
            state["step"] = torch.tensor(0.0, dtype=torch.float32, device=p.device)
            state["exp_avg"] = zeros()
            state["exp_avg_sq"] = zeros()
        if config.amsgrad and AMSGRAD_MOMENT not in state:
            # AMSGrad switched on for a state that has none (torch's AdamW would fail): it starts at zero.
            state[AMSGRAD_MOMENT] = zeros()
        return state
