"""The step benchmark's configurations: which optimizers step a case, and the bytes each must move.

Every configuration is compared with the peer ``torch.optim.AdamW(fused=True)`` (states in the
parameter's dtype, as torch keeps them). Ours run the device's kernel with coverage "paper" (the
default circuit) and coverage "all" with ``entangled(4)``; for 16-bit parameters also with the states
in the parameter's dtype (``state_dtype="param"``, torch's memory) and with stochastic rounding of
the parameter writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from superpositional import circuits
from superpositional.optim import SuperpositionalAdamW

from .step_workloads import DTYPES, Case

__all__ = [
    "AGREEMENT",
    "COMPILE",
    "PEER",
    "Config",
    "bytes_per_param",
    "configurations",
]

PEER = "adamw fused"
COMPILE = "torch.compile all entangled(4)"
# The torch.compile peer must agree with the kernel it stands beside: same coverage and circuit.
AGREEMENT = (COMPILE, "ours all entangled(4)")
SIXTEEN_BIT = ("bfloat16", "float16")
# Our torch backend simulates a [groups, 2^n] complex state per tensor: keep it to sizes that finish.
TORCH_BACKEND_MAX = {"cpu": 22, "cuda": 26}

Factory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]


@dataclass(frozen=True)
class Config:
    """One row of a case's table.

    ``kind``: "peer" (fused AdamW, the denominator of every ratio), "torch" (torch's other AdamW
    paths), "ours" (the fused kernel), "torch-backend" (our pure-PyTorch strategy), "compile" (the
    step in plain PyTorch under ``torch.compile``, built by :mod:`.step_compile`) or "copy" (the
    attainable bandwidth). ``make`` is ``None`` for the rows that are not optimizers.
    """

    name: str
    kind: str
    make: Factory | None = None
    amsgrad: bool = False


def bytes_per_param(param_dtype: torch.dtype, state_dtype: torch.dtype | None, amsgrad: bool = False) -> int:
    """Bytes a step must move per parameter at the storage dtypes: read and write the parameter, read
    its gradient (in the parameter's dtype), read and write ``exp_avg`` and ``exp_avg_sq`` (and
    ``max_exp_avg_sq`` under AMSGrad). ``state_dtype=None`` is a copy: read and write once."""
    p = param_dtype.itemsize
    if state_dtype is None:
        return 2 * p
    return 3 * p + (6 if amsgrad else 4) * state_dtype.itemsize


def _ours(kernel: str, **options: object) -> Factory:
    return lambda params: SuperpositionalAdamW(params, backend=kernel, **options)


def configurations(case: Case, device: str) -> list[Config]:
    """The rows of ``case`` on ``device``, the peer first and the copy last."""
    kernel = device  # the fused kernel of the parameters' device: "cpu" or "cuda"
    paper, entangled = circuits.paper(4), circuits.entangled(4)
    all_entangled = {"coverage": "all", "circuit": entangled}
    single, fp32 = case.workload == "single", case.dtype == "float32"
    configs = [
        Config(PEER, "peer", lambda params: torch.optim.AdamW(params, fused=True)),
        Config("adamw foreach", "torch", lambda params: torch.optim.AdamW(params, foreach=True)),
        Config("ours paper paper(4)", "ours", _ours(kernel)),
    ]
    if single:
        configs.append(Config("ours all paper(4)", "ours", _ours(kernel, coverage="all", circuit=paper)))
    configs.append(Config("ours all entangled(4)", "ours", _ours(kernel, **all_entangled)))
    if case.dtype in SIXTEEN_BIT:
        # torch's memory (states in the parameter's dtype), then stochastic rounding of the writes,
        # which matters most when the states round too.
        for coverage, options in (("paper paper(4)", {}), ("all entangled(4)", all_entangled)):
            configs.append(
                Config(
                    f"ours {coverage} state=param",
                    "ours",
                    _ours(kernel, state_dtype="param", **options),
                )
            )
        for coverage, options in (("paper paper(4)", {}), ("all entangled(4)", all_entangled)):
            configs.append(
                Config(
                    f"ours {coverage} state=param sr",
                    "ours",
                    _ours(kernel, state_dtype="param", stochastic_rounding=True, **options),
                )
            )
    if single:
        # AMSGrad reads and writes one more state tensor: its peer is AdamW's own AMSGrad.
        configs += [
            Config(
                "adamw fused amsgrad",
                "torch",
                lambda params: torch.optim.AdamW(params, fused=True, amsgrad=True),
                amsgrad=True,
            ),
            Config(
                "ours all entangled(4) amsgrad",
                "ours",
                _ours(kernel, amsgrad=True, **all_entangled),
                amsgrad=True,
            ),
        ]
    if single and fp32 and case.log2 is not None and case.log2 <= TORCH_BACKEND_MAX[device]:
        configs += [
            Config("torch-backend paper paper(4)", "torch-backend", _ours("torch")),
            Config("torch-backend all entangled(4)", "torch-backend", _ours("torch", **all_entangled)),
        ]
    if device == "cuda" and fp32 and single:
        # Not on the list: Inductor (torch 2.11) has no complex64 code generation for the torch
        # formula's statevectors, and failing over 219 tensors took longer than a device command.
        configs.append(Config(COMPILE, "compile"))
    configs.append(Config(f"copy ({bytes_per_param(DTYPES[case.dtype], None)} B/param)", "copy"))
    return configs
