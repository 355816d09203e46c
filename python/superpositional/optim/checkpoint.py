"""What a checkpoint of :class:`~.adamw.SuperpositionalAdamW` holds, and how one is checked and loaded.

A ``state_dict`` holds tensors and plain Python data only, so it loads with ``torch.load``'s default
``weights_only=True``: a group's circuit is its JSON description (:meth:`Circuit.to_json`), a Qiskit
target ``"qiskit:<name>"`` (:mod:`.qiskit_groups`). Every group carries every option, AdamW's keys
first, so that the checkpoint restores them whatever the loading optimizer's defaults.

Loading checks everything before anything changes: the groups' options (a circuit as JSON text, or
as the ``Circuit`` object that checkpoints of earlier versions held), and each parameter's state
(``exp_avg``, ``exp_avg_sq`` and ``step``, and ``max_exp_avg_sq`` under AMSGrad: tensors of the
parameter's shape, a finite positive step). States take the dtype their group's ``state_dtype``
asks for, whatever the checkpoint stored: float32 for 16-bit parameters by default, or the
parameter's own dtype (``"param"``, as torch keeps them); a complex parameter's states are complex,
as torch's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from ..circuit import Circuit
from ..geometry import compute_dtype
from .options import ADAMW_DEFAULTS, OWN_OPTIONS, check_group, options_of, state_dtype_name
from .qiskit_groups import STATE_KEY as QISKIT_STATE_KEY
from .qiskit_groups import QiskitGroups
from .sharded import is_sharded

__all__ = [
    "MOMENTS",
    "check_state",
    "convert_states",
    "load_groups",
    "load_state",
    "pack_group",
    "state_dtype",
]

MOMENTS = ("exp_avg", "exp_avg_sq")
AMSGRAD_MOMENT = "max_exp_avg_sq"


def state_dtype(param: torch.Tensor, option: str = "float32") -> torch.dtype:
    """The dtype of a parameter's ``exp_avg``, ``exp_avg_sq`` (and ``max_exp_avg_sq``) under the
    ``state_dtype`` option (its canonical name): with ``"float32"``, float32 for 16-bit parameters;
    with ``"param"``, or for any other parameter, the parameter's own (complex included)."""
    dtype = param.dtype
    return dtype if option == "param" or dtype.is_complex else compute_dtype(dtype)


def pack_group(group: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """A param group as a ``state_dict`` stores it, without ``params``: AdamW's keys, then this
    optimizer's options (the defaults where the group has none), then any other key it holds."""
    options = options_of(group, defaults)
    packed = {key: options[key] for key in (*ADAMW_DEFAULTS, *OWN_OPTIONS)}
    packed.update((k, v) for k, v in group.items() if k not in packed and k != "params")
    packed["circuit"] = packed["circuit"].to_json()
    packed["state_dtype"] = state_dtype_name(packed["state_dtype"])  # a string, not a torch.dtype
    return packed


def load_groups(
    saved_groups: list[dict[str, Any]],
    groups: list[dict[str, Any]],
    defaults: Mapping[str, Any],
) -> tuple[list[dict[str, Any]], list[Any]]:
    """The param groups a checkpoint's ``saved_groups`` become (with this optimizer's ``params``),
    every option checked, and per group the backend a load keeps (:meth:`QiskitGroups.kept_backends`).

    Options a saved group lacks: AdamW's keys take this optimizer's defaults; this optimizer's own
    (absent from an AdamW checkpoint) stay absent and so follow its defaults.
    """
    if len(groups) != len(saved_groups):
        raise ValueError("loaded state dict has a different number of parameter groups")
    if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
        raise ValueError(
            "loaded state dict contains a parameter group that doesn't match the size of optimizer's group"
        )
    kept_backends = QiskitGroups.kept_backends(saved_groups, [options_of(g, defaults) for g in groups])
    loaded = []
    for index, (saved, current, kept) in enumerate(zip(saved_groups, groups, kept_backends)):
        group = {k: v for k, v in saved.items() if k not in ("params", QISKIT_STATE_KEY)}
        for key in ADAMW_DEFAULTS:
            group.setdefault(key, defaults[key])
        # As torch.optim.AdamW's own load: a torch.optim.Adam checkpoint steps with decoupled decay.
        group["decoupled_weight_decay"] = True
        if isinstance(group.get("circuit"), str):
            try:
                group["circuit"] = Circuit.from_json(group["circuit"])
            except (TypeError, ValueError) as error:
                raise ValueError(f"param group {index}: its circuit does not load: {error}") from None
        if kept is not None:
            group["backend"] = kept
        check_group(options_of(group, defaults))
        QiskitGroups.check_saved(saved, kept)
        group["params"] = current["params"]
        if "param_names" in current and "param_names" not in group:
            group["param_names"] = current["param_names"]
        loaded.append(group)
    return loaded, kept_backends


def load_state(
    saved_state: Mapping[Any, Any],
    saved_groups: list[dict[str, Any]],
    groups: list[dict[str, Any]],
    defaults: Mapping[str, Any],
) -> dict[Any, dict[str, Any]]:
    """The optimizer state a checkpoint's ``saved_state`` becomes, keyed by this optimizer's
    parameters; every entry checked and copied to its parameter's device and state dtype.

    ``groups`` are the groups :func:`load_groups` made (their options say whether AMSGrad is on).
    A parameter with no state starts fresh; a state that lacks what a step reads is refused, naming
    the parameter's index and the key. Entries for indices that are not parameters are kept as they
    are, as torch keeps them.
    """
    owner: dict[Any, tuple[torch.Tensor, bool, str]] = {}
    for saved, group in zip(saved_groups, groups):
        options = options_of(group, defaults)
        amsgrad, states = bool(options["amsgrad"]), state_dtype_name(options["state_dtype"])
        for key, param in zip(saved["params"], group["params"]):
            owner[key] = (param, amsgrad, states)
    state: dict[Any, dict[str, Any]] = {}
    for key, entry in saved_state.items():
        if key not in owner:
            state[key] = entry
            continue
        param, amsgrad, states = owner[key]
        if not isinstance(entry, Mapping):
            raise ValueError(
                f"state_dict: the state of parameter {key} must be a dict, got {type(entry).__name__}"
            )
        if not entry:
            continue
        state[param] = _load_entry(key, entry, param, amsgrad, state_dtype(param, states))
    return state


def check_state(
    param: torch.Tensor, state: Mapping[str, Any], *, amsgrad: bool, where: str, states: str = "float32"
) -> None:
    """Refuse, before a step writes anything, a live state that no longer fits its parameter: the
    parameter's data was replaced (another shape, dtype or device) or a state tensor was.

    An AMSGrad state may lack ``max_exp_avg_sq`` (AMSGrad switched on later): the step creates it.
    A 16-bit parameter's states may be float32 or its own dtype, whatever its group's
    ``state_dtype`` now says: the step converts them (:func:`convert_states`).
    Runs for every parameter at every step, so the passing case does no more than compare.
    """
    names = ("step", *MOMENTS, AMSGRAD_MOMENT) if amsgrad and AMSGRAD_MOMENT in state else ("step", *MOMENTS)
    dtype = state_dtype(param, states)
    for name in names:
        value = state.get(name)
        if _fits(name, value, param, dtype) or _fits(name, value, param, state_dtype(param)):
            continue
        shape = list(param.shape)
        wanted = (
            f"a float32 scalar tensor on {param.device}"
            if name == "step"
            else f"a contiguous {dtype} tensor of shape {shape} on {param.device}"
        )
        found = (
            f"{value.dtype} {list(value.shape)} on {value.device}"
            if isinstance(value, torch.Tensor)
            else type(value).__name__
        )
        raise RuntimeError(
            f"{where}: the optimizer state {name} of a {param.dtype} {shape} parameter must be {wanted}, "
            f"got {found} (did the parameter's data change? load a matching state, or delete "
            "optimizer.state[param] to start it afresh); nothing was stepped"
        )


def _fits(name: str, value: Any, param: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether state entry ``name`` is what a step of ``param`` reads (states of dtype ``dtype``)."""
    if not isinstance(value, torch.Tensor) or value.device != param.device:
        return False
    if name == "step":
        return value.dtype == torch.float32 and value.numel() == 1
    return (
        value.shape == param.shape
        and value.dtype == dtype
        and (value.is_contiguous() or is_sharded(value))  # a shard is checked where it is stepped
    )


def convert_states(state: dict[str, Any], dtype: torch.dtype) -> None:
    """Give a checked live state's moments ``dtype`` (its group's ``state_dtype`` changed)."""
    for name in (*MOMENTS, AMSGRAD_MOMENT):
        value = state.get(name)
        if value is not None and value.dtype != dtype:
            state[name] = value.to(dtype)


def _load_entry(
    key: Any, entry: Mapping[str, Any], param: torch.Tensor, amsgrad: bool, dtype: torch.dtype
) -> dict[str, Any]:
    required = ("step", *MOMENTS, *((AMSGRAD_MOMENT,) if amsgrad else ()))
    for name in required:
        if name not in entry:
            found = ", ".join(map(repr, entry)) or "nothing"
            raise ValueError(
                f"state_dict: the state of parameter {key} has no {name!r} (it holds {found}); "
                f"SuperpositionalAdamW{' with amsgrad=True' if amsgrad else ''} needs step, exp_avg, "
                f"exp_avg_sq{', max_exp_avg_sq' if amsgrad else ''}"
            )
    loaded: dict[str, Any] = {}
    for name, value in entry.items():
        if name == "step":
            loaded[name] = _step(key, value, param)
        elif name in (*MOMENTS, AMSGRAD_MOMENT):
            loaded[name] = _moment(key, name, value, param, dtype)
        elif isinstance(value, torch.Tensor):
            loaded[name] = value.to(param.device, copy=True)
        else:
            loaded[name] = value
    return loaded


def _step(key: Any, value: Any, param: torch.Tensor) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_complex() or value.device.type == "meta":
            raise ValueError(
                f"state_dict: step of parameter {key} must be one real number, got a tensor of shape "
                f"{list(value.shape)} ({value.dtype} on {value.device})"
            )
        number = float(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise ValueError(f"state_dict: step of parameter {key} must be a number, got {type(value).__name__}")
    if not math.isfinite(number) or number <= 0:
        raise ValueError(
            f"state_dict: step of parameter {key} must be a positive finite number, got {number}"
        )
    # On the parameter's device, where the kernels read and increment it.
    return torch.tensor(number, dtype=torch.float32, device=param.device)


def _moment(key: Any, name: str, value: Any, param: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise ValueError(
            f"state_dict: {name} of parameter {key} must be a tensor, got {type(value).__name__}"
        )
    if value.device.type == "meta":
        raise ValueError(f"state_dict: {name} of parameter {key} is on the meta device: it holds no data")
    if tuple(value.shape) != tuple(param.shape):
        raise ValueError(
            f"state_dict: {name} of parameter {key} has shape {list(value.shape)}, "
            f"but the parameter has shape {list(param.shape)}"
        )
    if value.is_complex() != param.is_complex() or not (value.is_floating_point() or value.is_complex()):
        raise ValueError(
            f"state_dict: {name} of parameter {key} is {value.dtype}, which does not convert to the "
            f"{dtype} state of a {param.dtype} parameter"
        )
    return value.to(param.device, dtype, copy=True).contiguous()
