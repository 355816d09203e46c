"""The torch.compile peer: the same step written in plain PyTorch and fused by ``torch.compile``.

This is what a user could write instead of our kernel, so the kernel must stay well ahead of it. The
step is the library's own torch formula (:func:`superpositional.optim.update.reference_step` with
the reference simulator), coverage "all" with ``entangled(4)`` and the optimizer's default options,
compiled over the whole tensor list: ``fullgraph=True`` first, the default mode (graph breaks
allowed) if that fails, and no row at all, with the error recorded, if both fail.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import torch

from superpositional import circuits
from superpositional.backends.base import StepConfig, StepTensors
from superpositional.backends.reference import simulate
from superpositional.optim import SuperpositionalAdamW
from superpositional.optim.options import config_of
from superpositional.optim.update import reference_step

__all__ = ["compiled_step", "step_config"]

Tensors = tuple[list[torch.Tensor], list[torch.Tensor]]


def step_config() -> StepConfig:
    """The options of ours with coverage "all" and ``entangled(4)``, read from the optimizer itself so
    that both rows step with the same hyperparameters."""
    probe = SuperpositionalAdamW(
        [torch.zeros(1, requires_grad=True)], coverage="all", circuit=circuits.entangled(4), backend="torch"
    )
    return config_of(probe.group_options(0))


def _state(params: list[torch.Tensor], grads: list[torch.Tensor]) -> StepTensors:
    # Zero states, as an optimizer's first step makes them. The step counters stay on the CPU:
    # reference_step reads them with float(), which on the GPU would be one synchronisation per tensor
    # (torch's non-capturable AdamW keeps its counters on the CPU for the same reason).
    return StepTensors(
        params,
        grads,
        [torch.zeros_like(p) for p in params],
        [torch.zeros_like(p) for p in params],
        [torch.zeros((), dtype=torch.float32) for _ in params],
    )


def _attempt(
    mode: str, fresh: Callable[[], Tensors], config: StepConfig
) -> tuple[Callable[[], None], list[torch.Tensor], float, list[str]]:
    """Compile in ``mode`` and step once: ``(step, params, seconds of that first call, warnings)``."""
    # A fresh cache: each case compiles a new closure, which must not count towards (and, under
    # fullgraph, fail at) the recompile limit of the earlier cases' entries.
    torch._dynamo.reset()
    params, grads = fresh()  # new tensors: a failed attempt may have stepped its own
    tensors = _state(params, grads)

    def step_all(params, grads, exp_avgs, exp_avg_sqs, steps) -> None:
        reference_step(StepTensors(params, grads, exp_avgs, exp_avg_sqs, steps), config, simulate=simulate)

    compiled = torch.compile(step_all, fullgraph=mode == "fullgraph")

    def step() -> None:
        # float(step) becomes a symbolic scalar inside the graph instead of a graph break.
        with torch._dynamo.config.patch(capture_scalar_outputs=True):
            compiled(*tensors[:5])

    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        step()
        if params[0].device.type == "cuda":
            torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return step, params, seconds, sorted({str(w.message).splitlines()[0][:200] for w in caught})


def compiled_step(fresh: Callable[[], Tensors]) -> tuple[Callable[[], None] | None, list[torch.Tensor], dict]:
    """``(step, params, info)``: a compiled step over tensors from ``fresh()``, already run once (the
    compilation), and the parameters it steps; ``step`` is ``None`` when compiling failed.

    ``info`` holds ``mode`` ("fullgraph" or "default"), ``compile_seconds`` (the first call),
    ``error`` (why a mode failed), ``warnings`` (what the compiler said, e.g. that it leaves complex
    operators to eager code).
    """
    config = step_config()
    info: dict[str, Any] = {"mode": None, "compile_seconds": None, "error": None, "warnings": []}
    errors = []
    for mode in ("fullgraph", "default"):
        try:
            step, params, seconds, said = _attempt(mode, fresh, config)
        except Exception as error:  # a compiler failure of any kind: record it, never crash the run
            text = str(error).strip()
            errors.append(f"{mode}: {type(error).__name__}: {text.splitlines()[0][:300] if text else ''}")
            continue
        info.update(mode=mode, compile_seconds=seconds, warnings=said, error="; ".join(errors) or None)
        return step, params, info
    torch._dynamo.reset()
    info["error"] = "; ".join(errors)
    return None, [], info
