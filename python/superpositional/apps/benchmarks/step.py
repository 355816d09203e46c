"""Optimizer step time: SuperpositionalAdamW (fused kernel) against torch.optim.AdamW and other peers.

Workloads (:mod:`.step_workloads`): one parameter of ``2^k`` elements swept over ``k``, and a
Llama-like list of 219 tensors (374 M parameters on the GPU; scaled down on the CPU and in quick
runs). Each workload runs in each dtype asked for, every configuration (:mod:`.step_configs`)
stepping copies of the same values, against ``torch.optim.AdamW(fused=True)`` in the same run.

What is measured, and why:

- Step time: interleaved runs (every configuration steps once per round, rounds repeated), the
  median reported, so that every ratio compares runs made side by side (:mod:`.step_timing`).
- Effective bandwidth: the bytes a step must move at the storage dtypes (read and write the
  parameter and both states, read the gradient; one more state under AMSGrad) over the median time,
  and its share of the bandwidth of a plain copy of as many bytes measured in the same run: how close
  each step is to the memory roofline of this device.
- Host time per step (Llama-like list, with 16-element tensors and, on the GPU, at full size): the
  Python and launch work of ``opt.step()``, since for small models it, not the GPU, sets the pace.
- Extra memory (CUDA): what a step allocates beyond parameters, gradients and states.
- The torch.compile peer (CUDA, float32; :mod:`.step_compile`): the same step in plain PyTorch
  fused by the compiler, checked to agree with ours before it is timed.
"""

from __future__ import annotations

import argparse
import gc
import statistics
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch
from tqdm import tqdm

from superpositional.backends import available_backends

from .common import provenance, write_results
from .step_compile import compiled_step
from .step_configs import AGREEMENT, PEER, Config, bytes_per_param, configurations
from .step_report import plot, table
from .step_timing import device_seconds, extra_memory, host_seconds, interleave
from .step_workloads import (
    DTYPES,
    LLAMA,
    LLAMA_SMALL,
    WORKLOADS,
    Case,
    draw,
    llama_shapes,
    numel,
    single_shape,
    tiny_shapes,
)

__all__ = ["execute", "plan", "plot", "run", "table"]

SIZES = {"cpu": [16, 18, 20, 22, 23, 24], "cuda": [20, 22, 24, 26, 28]}
QUICK_SIZES = [14, 16]
SWEEP_DTYPES = ["float32"]
LIST_DTYPES = ["float32", "bfloat16"]
LIST_SEED = 2**20  # the single workload seeds with its log2 size
HOST_CALLS = {"tiny": 200, "full": 30}
QUICK_HOST_CALLS = {"tiny": 20, "full": 5}
OPTIMIZER_KINDS = ("peer", "torch", "ours", "torch-backend")

Tensors = tuple[list[torch.Tensor], list[torch.Tensor]]


def plan(
    device: str, quick: bool, workloads: list[str], dtypes: list[str] | None, max_log2: int | None
) -> tuple[list[Case], dict[str, Any]]:
    """The cases to time and the workloads' description for the JSON.

    The single sweep runs in ``dtypes`` (default float32) at every size, and at its largest size also
    in every dtype (unless ``dtypes`` is given) for the table of bandwidth by dtype; the Llama-like
    list runs in ``dtypes`` (default float32 and bfloat16), full size only on a GPU outside quick runs.
    """
    cases: list[Case] = []
    layout: dict[str, Any] = {}
    sizes = [k for k in (QUICK_SIZES if quick else SIZES[device]) if max_log2 is None or k <= max_log2]
    if "single" in workloads and sizes:
        sweep = dtypes or SWEEP_DTYPES
        bandwidth = dtypes or list(DTYPES)
        for k in sizes:
            extra = [d for d in bandwidth if d not in sweep] if k == sizes[-1] else []
            cases += [Case("single", d, [single_shape(k)], seed=k, log2=k) for d in sweep + extra]
        layout["single"] = {
            "log2_sizes": sizes,
            "dtypes": sweep,
            "bandwidth_dtypes": bandwidth,
            "bandwidth_log2": sizes[-1],
        }
    if "llama" in workloads:
        size = LLAMA if device == "cuda" and not quick else LLAMA_SMALL
        shapes = llama_shapes(size)
        cases += [Case("llama", d, shapes, seed=LIST_SEED) for d in dtypes or LIST_DTYPES]
        layout["llama"] = {
            **asdict(size),
            "tensors": len(shapes),
            "params": numel(shapes),
            "dtypes": dtypes or LIST_DTYPES,
            "scaled": size != LLAMA,
        }
    return cases, layout


def _skip_reason(config: Config, device: str) -> str | None:
    if config.kind == "ours" and device not in available_backends():
        return f"this build has no {device} kernel"
    return None


def _optimizer(
    config: Config, tensors: Tensors
) -> tuple[Callable[[], object], list[torch.Tensor], torch.dtype]:
    """``config``'s optimizer over ``tensors``, stepped once (its states exist): ``(step, params, state
    dtype)``, the state dtype read from the states themselves, so the byte count is what is stored."""
    params = [torch.nn.Parameter(p) for p in tensors[0]]
    for p, g in zip(params, tensors[1]):
        p.grad = g
    optimizer = config.make(params)
    optimizer.step()
    return optimizer.step, params, optimizer.state[params[0]]["exp_avg"].dtype


class _Case:
    """The configurations of one case, set up, timed and reported."""

    def __init__(self, case: Case, device: str, bar: tqdm, notify: Callable[[dict], None]) -> None:
        self.case, self.device, self.bar, self.notify = case, device, bar, notify
        self.runners: dict[str, Callable[[], object]] = {}
        self.meta: dict[str, tuple[Config, torch.dtype | None, int | None]] = {}
        self.skipped: list[dict] = []
        self.compile: dict | None = None
        self.planned: list[Config] = []

    def _skip(self, config: Config, note: str) -> None:
        entry = {
            "workload": self.case.workload,
            "dtype": self.case.dtype,
            "log2_params": self.case.log2,
            "config": config.name,
            "note": note,
        }
        self.skipped.append(entry)
        self.notify(entry)

    def setup(self, configs: list[Config], rounds: int) -> None:
        """Build every configuration and step it once; ``rounds``: the progress a skipped one forgoes."""
        self.planned = configs
        dtype = DTYPES[self.case.dtype]
        base = draw(self.case.shapes, dtype, self.device, self.case.seed)

        def fresh() -> Tensors:
            return [p.clone() for p in base[0]], [g.clone() for g in base[1]]

        first_steps: dict[str, list[torch.Tensor]] = {}  # the parameters of the rows that must agree
        for config in configs:
            self.bar.set_postfix_str(f"{self.case.label}: {config.name}", refresh=False)
            reason = _skip_reason(config, self.device)
            if reason is not None:
                self._skip(config, reason)
                self.bar.update(1 + rounds)
                continue
            try:
                runner, params, state_dtype = self._build(config, base, fresh)
                if runner is None:
                    self.bar.update(1 + rounds)
                    continue
                if config.name in AGREEMENT:
                    first_steps[config.name] = [p.detach().clone() for p in params]
                extra = extra_memory(runner, self.device)
            except Exception as error:  # an optimizer or option that fails here: a note, not a crash
                self._skip(config, f"failed at setup: {type(error).__name__}: {_first_line(error)}")
                self.bar.update(1 + rounds)
                continue
            self.runners[config.name] = runner
            self.meta[config.name] = (config, state_dtype, extra)
            self.bar.update()
        if self.compile is not None and self.compile["mode"] is not None:
            # Before any timing: a peer that computes something else would be no peer.
            diff = _max_abs_diff(*(first_steps.get(name) for name in AGREEMENT))
            self.compile.update(max_abs_diff=diff, against=AGREEMENT[1] if diff is not None else None)
            fallback = f" (fullgraph failed: {self.compile['error']})" if self.compile["error"] else ""
            agreement = "no kernel row to compare with" if diff is None else f"{diff:.2e}"
            tqdm.write(
                f"torch.compile peer, {self.case.label}: {self.compile['mode']} mode{fallback}, compiled in "
                f"{self.compile['compile_seconds']:.1f} s; max |p - p_ours| after one step: {agreement}"
            )

    def _build(
        self, config: Config, base: Tensors, fresh: Callable[[], Tensors]
    ) -> tuple[Callable[[], object] | None, list[torch.Tensor], torch.dtype | None]:
        """``(runner, params, state dtype)`` of one configuration, stepped once; runner ``None``: skipped."""
        if config.kind == "copy":
            # As many bytes as the parameters, in one tensor: the attainable bandwidth of this device.
            source = torch.cat([p.flatten() for p in base[0]])
            target = torch.empty_like(source)
            target.copy_(source)
            return (lambda: target.copy_(source)), [], None
        if config.kind == "compile":
            runner, params, info = compiled_step(fresh)
            self.compile = {
                "workload": self.case.workload,
                "dtype": self.case.dtype,
                "log2_params": self.case.log2,
                "params": self.case.params,
                **info,
            }
            if runner is None:
                self._skip(config, f"torch.compile failed: {info['error']}")
            return runner, params, params[0].dtype if params else None
        return _optimizer(config, fresh())

    def time(self, rounds: int) -> list[dict]:
        """Interleaved device time of every configuration set up, one JSON row each."""
        samples = interleave(
            self.runners, rounds, lambda fn: device_seconds(fn, self.device), self.bar.update
        )
        medians = {name: statistics.median(s) for name, s in samples.items()}
        n = self.case.params
        rates = {
            name: bytes_per_param(DTYPES[self.case.dtype], state, config.amsgrad) * n / medians[name] / 1e9
            for name, (config, state, _) in self.meta.items()
        }
        copy = next((rates[name] for name, (c, _, _) in self.meta.items() if c.kind == "copy"), None)
        peer = medians.get(PEER)
        rows = []
        for name, (config, state, extra) in self.meta.items():
            rows.append(
                {
                    "workload": self.case.workload,
                    "dtype": self.case.dtype,
                    "log2_params": self.case.log2,
                    "params": n,
                    "tensors": len(self.case.shapes),
                    "config": name,
                    "kind": config.kind,
                    "param_dtype": self.case.dtype,
                    "state_dtype": None if state is None else str(state).removeprefix("torch."),
                    "amsgrad": config.amsgrad,
                    "bytes_per_param": bytes_per_param(DTYPES[self.case.dtype], state, config.amsgrad),
                    "seconds": medians[name],
                    "seconds_all": samples[name],
                    "gbytes_per_s": rates[name],
                    "copy_fraction": None if copy is None else rates[name] / copy,
                    "vs_adamw_fused": None if peer is None else medians[name] / peer,
                    "extra_bytes": extra,
                }
            )
        return rows

    def host(self, calls: int, label: str) -> list[dict]:
        """Host time per step of this case's optimizers (interleaved calls)."""
        runners = {n: r for n, r in self.runners.items() if self.meta[n][0].kind in OPTIMIZER_KINDS}
        self.bar.update(calls * (sum(c.kind in OPTIMIZER_KINDS for c in self.planned) - len(runners)))
        samples = interleave(runners, calls, lambda fn: host_seconds(fn, self.device), self.bar.update)
        return _host_rows(samples, self.case, label)

    def close(self) -> None:
        self.runners.clear()
        self.meta.clear()
        if self.compile is not None:
            torch._dynamo.reset()  # the compiled graphs hold the case's tensors
        if self.device == "cuda":
            # Optimizers hold reference cycles: collect them before the next case allocates its
            # gigabytes (on the CPU the cases are small, and a collection costs more than they do).
            gc.collect()
            torch.cuda.empty_cache()


def _host_rows(samples: dict[str, list[float]], case: Case, label: str) -> list[dict]:
    medians = {name: statistics.median(s) for name, s in samples.items()}
    peer = medians.get(PEER)
    return [
        {
            "list": label,
            "workload": case.workload,
            "dtype": case.dtype,
            "tensors": len(case.shapes),
            "params": case.params,
            "config": name,
            "seconds": medians[name],
            "seconds_all": s,
            "vs_adamw_fused": None if peer is None else medians[name] / peer,
        }
        for name, s in samples.items()
    ]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else ""


def _max_abs_diff(a: list[torch.Tensor] | None, b: list[torch.Tensor] | None) -> float | None:
    if not a or not b:
        return None
    return max(float((x.double() - y.double()).abs().max()) for x, y in zip(a, b))


def run(
    cases: list[Case],
    layout: dict[str, Any],
    rounds: int,
    device: str,
    host_calls: dict[str, int],
    progress: bool = True,
) -> dict:
    """Time every case; the result, with every sample, as plain data (see :func:`execute`)."""
    plans = [(case, configurations(case, device)) for case in cases]
    tiny = [
        Case(case.workload, case.dtype, tiny_shapes(llama_shapes(LLAMA)), seed=case.seed)
        for case in cases
        if case.workload == "llama" and host_calls["tiny"] > 0
    ]
    tiny_plans = [
        (case, [c for c in configurations(case, device) if c.kind in OPTIMIZER_KINDS]) for case in tiny
    ]
    # On the CPU the full list's wall time is its compute, not its host work.
    full_host = device == "cuda" and host_calls["full"] > 0
    total = sum((1 + rounds) * len(configs) for _, configs in plans)
    total += sum((1 + host_calls["tiny"]) * len(configs) for _, configs in tiny_plans)
    if full_host:
        total += sum(
            host_calls["full"] * sum(c.kind in OPTIMIZER_KINDS for c in configs)
            for case, configs in plans
            if case.workload == "llama"
        )
    bar = tqdm(total=total, desc="bench step", unit="step", disable=not progress)
    seen: set[tuple[str, str]] = set()

    def notify(entry: dict) -> None:
        if (entry["config"], entry["note"]) not in seen:  # once per reason, not once per case
            seen.add((entry["config"], entry["note"]))
            tqdm.write(f"note: skipping {entry['config']}: {entry['note']}")

    results, host, compiles, skipped = [], [], [], []
    for case, configs in plans:
        timed = _Case(case, device, bar, notify)
        timed.setup(configs, rounds)
        results += timed.time(rounds)
        if full_host and case.workload == "llama":
            host += timed.host(host_calls["full"], "llama")
        if timed.compile is not None:
            compiles.append(timed.compile)
        skipped += timed.skipped
        timed.close()
    for case, configs in tiny_plans:
        timed = _Case(case, device, bar, notify)
        timed.setup(configs, 0)
        host += timed.host(host_calls["tiny"], "tiny")
        skipped += [{**entry, "list": "tiny"} for entry in timed.skipped]
        timed.close()
    bar.close()
    return {
        "benchmark": "step",
        "device": device,
        "rounds": rounds,
        "workloads": layout,
        **provenance(),
        "results": results,
        "host": host,
        "compile": compiles,
        "skipped": skipped,
    }


def execute(args: argparse.Namespace) -> int:
    """Run the benchmark from the command line's ``args``: print the tables, write the JSON and PNG.

    The JSON: ``workloads`` (sizes, dtypes, list dimensions), provenance, ``results`` (one entry per
    case and configuration with every sample, ``seconds_all``), ``host`` (host time per step),
    ``compile`` (the torch.compile peer: mode, compile time, agreement, errors) and ``skipped``
    (configurations not run, with why).
    """
    workloads = args.workloads or list(WORKLOADS)
    cases, layout = plan(args.device, args.quick, workloads, args.dtypes, args.max_log2)
    rounds = 3 if args.quick else args.rounds
    data = run(cases, layout, rounds, args.device, QUICK_HOST_CALLS if args.quick else HOST_CALLS)
    print(table(data))
    write_results(data, args, "step", plot)
    return 0
