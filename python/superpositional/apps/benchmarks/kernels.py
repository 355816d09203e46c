"""Circuits per second of batched simulation: our CPU kernel against the torch reference and Qiskit Aer.

For ``paper(4)``, ``entangled(4)`` and ``entangled(8)``, at batch sizes from 1e3
to 1e7, each backend simulates the same circuits on the same float32 inputs
(Aer computes in float64, exactly, through ``EstimatorV2``). Rows:

- ``cpu``: ``sp.simulate(..., backend="cpu")``, the user-facing call (compiled
  program: product-state prefix, fused gates, trailing Cliffords moved into the
  observables).
- ``cpu-statevector``: the same kernel on the program compiled for the full
  statevector (no gate moved into the observables), without writing the states:
  the raw statevector engine.
- ``torch``: the vectorised PyTorch reference (every gate on a ``[B, 2**n]`` state).
- ``aer``: Qiskit Aer ``EstimatorV2``, ``default_precision=0``, one PUB.
- ``cpu-gradients`` (or ``cuda-gradients``), ``torch-gradients``: forward and backward, the
  gradients of ``sum(w * e)`` with respect to both inputs; the kernel by the adjoint method, the
  reference by autograd.

Every backend of a (circuit, batch) cell is timed interleaved with the others: in each round each
backend takes one sample (the mean of enough calls to last :data:`SAMPLE_SECONDS`), rounds repeated,
so that a ratio compares samples taken side by side. A backend whose single call takes more than
:data:`SLOW_CALL` seconds (Aer, the torch reference at large batches) takes part in the first
:data:`SLOW_ROUNDS` rounds only. The table gives the median rate and its spread (``±``: half the
interquartile range of the rounds, :mod:`..timings`), and a caveat when some are too noisy to trust.
Ratios are taken between backends measured in the same run at the same batch.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from superpositional import circuits
from superpositional.backends import Batch, available_backends, kernel
from superpositional.circuit import Circuit
from superpositional.simulate import simulate

from ..timings import caveat, summarize
from .common import format_table, provenance, run_label, si, significant, write_results

CIRCUITS: dict[str, Callable[[], Circuit]] = {
    "paper(4)": lambda: circuits.paper(4),
    "entangled(4)": lambda: circuits.entangled(4),
    "entangled(8)": lambda: circuits.entangled(8),
}
BATCHES = {"cpu": [10**3, 10**4, 10**5, 10**6, 10**7], "cuda": [10**4, 10**5, 10**6, 10**7, 10**8]}
QUICK_BATCHES = [10**2, 10**3, 10**4]
# The torch reference holds [B, 2**n] complex states: cap its amplitudes per call.
TORCH_AMPLITUDES = {"cpu": 2**24, "cuda": 2**28}
# The raw statevector path of our kernel keeps its state per circuit; cap the work per call.
STATEVECTOR_AMPLITUDES = {"cpu": 2**30, "cuda": 2**34}
# The adjoint sweep runs two states per circuit: a tighter cap.
GRADIENT_AMPLITUDES = {"cpu": 2**28, "cuda": 2**32}
# Interleaved rounds per cell, and the time one sample (several calls of a fast backend) lasts.
ROUNDS, QUICK_ROUNDS = 7, 5
SAMPLE_SECONDS, QUICK_SAMPLE_SECONDS = 0.05, 0.02
# A backend slower than this per call takes part in SLOW_ROUNDS rounds only (Aer: seconds a call).
SLOW_CALL, SLOW_ROUNDS = 1.0, 3


def _backends(device: str) -> list[str]:
    kernel = "cpu" if device == "cpu" else device
    wanted = [kernel, f"{kernel}-statevector", "torch"] + (["aer"] if device == "cpu" else [])
    wanted += [f"{kernel}-gradients", "torch-gradients"]
    have = available_backends()
    return [b for b in wanted if b.split("-")[0] in have]


def _runner(backend: str, circuit: Circuit, theta: torch.Tensor, g: torch.Tensor) -> Callable[[], object]:
    if backend.endswith("-statevector"):
        # The same kernel on the program compiled for the full statevector, without writing the states.
        batch = Batch(theta, g, theta.shape[0], theta.dtype, theta.device)
        out = torch.empty_like(theta)
        return lambda: kernel.simulate(circuit, batch, keep_state=True, out=out)
    if backend.endswith("-gradients"):
        # Forward and backward: gradients of sum(w * e) with respect to both inputs.
        name = backend.split("-")[0]
        theta, g = theta.clone().requires_grad_(), g.clone().requires_grad_()
        weights = torch.randn_like(theta)

        def forward_backward() -> None:
            theta.grad = g.grad = None
            (simulate(circuit, theta, g, backend=name) * weights).sum().backward()

        return forward_backward
    if backend == "aer":
        theta, g = theta.double(), g.double()
    return lambda: simulate(circuit, theta, g, backend=backend)


def _wanted(backend: str, n: int, batch: int, aer_max: int, device: str) -> bool:
    if backend.startswith("torch"):
        return batch * 2**n <= TORCH_AMPLITUDES[device] // (4 if backend.endswith("-gradients") else 1)
    if backend.endswith("-gradients"):
        return batch * 2**n <= GRADIENT_AMPLITUDES[device]
    if backend == "aer":
        return batch <= aer_max
    if backend.endswith("-statevector"):
        return batch * 2**n <= STATEVECTOR_AMPLITUDES[device]
    return True


def _synchronized(fn: Callable[[], object], device: str) -> Callable[[], object]:
    if device == "cpu":
        return fn

    def run_and_wait() -> None:
        fn()
        torch.cuda.synchronize()

    return run_and_wait


def _sampler(fn: Callable[[], object], sample_seconds: float) -> tuple[Callable[[], float], float]:
    """A function that takes one sample of ``fn`` (seconds per call, the mean over enough calls to
    last about ``sample_seconds``), and the seconds of the warm-up call that calibrated it."""
    start = time.perf_counter()
    fn()  # the warm-up: compiled programs, thread pools, allocations; and how long a call takes
    first = time.perf_counter() - start
    calls = max(1, min(10_000, math.ceil(sample_seconds / max(first, 1e-7))))

    def sample() -> float:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - t0) / calls

    return sample, first


def time_cell(
    runners: dict[str, Callable[[], object]], rounds: int, sample_seconds: float, tick: Callable[[], None]
) -> dict[str, list[float]]:
    """Interleaved samples of every runner of one cell: one sample each per round, in turn."""
    samplers, slow = {}, set()
    for backend, fn in runners.items():
        samplers[backend], first = _sampler(fn, sample_seconds)
        if first > SLOW_CALL:
            slow.add(backend)
    samples: dict[str, list[float]] = {backend: [] for backend in runners}
    for round_ in range(rounds):
        for backend, sample in samplers.items():
            if backend not in slow or round_ < SLOW_ROUNDS:
                samples[backend].append(sample())
            tick()
    return samples


def run(
    batches: list[int],
    aer_max: int,
    device: str = "cpu",
    progress: bool = True,
    rounds: int = ROUNDS,
    sample_seconds: float = SAMPLE_SECONDS,
) -> dict:
    backends = _backends(device)
    cells = [
        (name, batch, [b for b in backends if _wanted(b, CIRCUITS[name]().n_qubits, batch, aer_max, device)])
        for name in CIRCUITS
        for batch in batches
    ]
    results = []
    generator = torch.Generator().manual_seed(0)
    bar = tqdm(
        total=rounds * sum(len(wanted) for *_, wanted in cells),
        desc="bench kernels",
        unit="sample",
        disable=not progress,
    )
    for name, batch, wanted in cells:
        circuit = CIRCUITS[name]()
        n = circuit.n_qubits
        theta = (torch.rand(batch, n, generator=generator) * 4 - 2).to(device)
        g = torch.randn(batch, n, generator=generator).to(device)
        bar.set_postfix_str(f"{name} {batch:.0e}", refresh=False)
        runners = {b: _synchronized(_runner(b, circuit, theta, g), device) for b in wanted}
        samples = time_cell(runners, rounds, sample_seconds, bar.update)
        for backend in wanted:
            timing = summarize(samples[backend])
            results.append(
                {
                    "circuit": name,
                    "backend": backend,
                    "batch": batch,
                    "seconds": timing.median,
                    "seconds_all": samples[backend],
                    "spread": timing.spread,
                    "circuits_per_s": batch / timing.median,
                }
            )
    bar.close()
    dtype = "float32 (aer: float64)" if device == "cpu" else "float32"
    return {
        "benchmark": "kernels",
        "device": device,
        "dtype": dtype,
        "rounds": rounds,
        **provenance(),
        "results": results,
    }


def _result(data: dict, circuit: str, backend: str, batch: int) -> dict | None:
    for r in data["results"]:
        if (r["circuit"], r["backend"], r["batch"]) == (circuit, backend, batch):
            return r
    return None


def _rate_text(r: dict | None) -> str:
    """The rate and, where the samples were recorded (not in older JSON), its spread."""
    if r is None:
        return "-"
    if "seconds_all" not in r:
        return si(r["circuits_per_s"])
    return f"{si(r['circuits_per_s'])} {summarize(r['seconds_all']).spread_text()}"


def _ratio(ours: dict | None, theirs: dict | None) -> str:
    if ours is None or theirs is None:
        return "-"
    return f"{significant(ours['circuits_per_s'] / theirs['circuits_per_s'])}x"


def table(data: dict) -> str:
    """Circuits per second of every backend per cell, the kernel's ratios to its peers, and a caveat
    when some timings are too noisy to trust."""
    backends = list(dict.fromkeys(r["backend"] for r in data["results"]))
    kernel = backends[0]
    peers = [b for b in ("torch", "aer") if b in backends]
    gradients = f"{kernel}-gradients" in backends and "torch-gradients" in backends
    header = ["circuit", "batch", *backends, *(f"{kernel}/{peer}" for peer in peers)]
    header += [f"gradients {kernel}/torch"] if gradients else []
    rows = []
    batches = sorted({r["batch"] for r in data["results"]})
    for name in CIRCUITS:
        for batch in batches:
            found = {b: _result(data, name, b, batch) for b in backends}
            ratios = [_ratio(found[kernel], found[p]) for p in peers]
            if gradients:
                ratios.append(_ratio(found[f"{kernel}-gradients"], found["torch-gradients"]))
            rows.append([name, f"{batch:.0e}", *(_rate_text(found[b]) for b in backends), *ratios])
    device = data.get("device", "cpu")
    rounds = data.get("rounds")
    how = f"median of {rounds} interleaved rounds, ± half their interquartile range" if rounds else "median"
    lines = [f"circuits per second ({how}), same run, {device}", format_table(header, rows)]
    timings = {
        f"{r['circuit']} {r['batch']:.0e} {r['backend']}": summarize(r["seconds_all"])
        for r in data["results"]
        if "seconds_all" in r
    }
    if (note := caveat(timings, "kernel timings")) is not None:
        lines += ["", note]
    return "\n".join(lines)


def plot(data: dict, path: Path) -> None:
    """Circuits per second against the batch, one panel per circuit; bars span the interquartile
    range of the rounds (where the JSON has every sample); one legend below the panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = list(dict.fromkeys(r["backend"] for r in data["results"]))
    fig, axes = plt.subplots(1, len(CIRCUITS), figsize=(5 * len(CIRCUITS), 4.4), sharey=True)
    for ax, name in zip(axes, CIRCUITS, strict=False):
        for i, backend in enumerate(backends):
            rows = sorted(
                (r for r in data["results"] if r["circuit"] == name and r["backend"] == backend),
                key=lambda r: r["batch"],
            )
            if not rows:
                continue
            batches = [r["batch"] for r in rows]
            rates = [r["circuits_per_s"] for r in rows]
            spans = [summarize(r["seconds_all"]) if "seconds_all" in r else None for r in rows]
            # Rate is batch / seconds: the slow quartile of the times is the low end of the rates.
            low = [rate - (b / t.high if t else rate) for rate, b, t in zip(rates, batches, spans)]
            high = [(b / t.low if t else rate) - rate for rate, b, t in zip(rates, batches, spans)]
            ax.errorbar(
                batches, rates, yerr=[low, high], marker="o", ms=4, capsize=2, color=f"C{i}", label=backend
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("circuits per call (batch)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("circuits per second")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9)
    env = data["environment"]
    where = env.get("gpu", env["cpu"]) if data.get("device") == "cuda" else env["cpu"]
    rounds = f", median of {data['rounds']} rounds (bars: interquartile range)" if data.get("rounds") else ""
    fig.suptitle(f"batched simulation, {where} ({env['torch_threads']} threads){rounds}, {run_label(data)}")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def execute(args: argparse.Namespace) -> int:
    batches = QUICK_BATCHES if args.quick else BATCHES[args.device]
    aer_max = args.aer_max if args.aer_max is not None else (100 if args.quick else 10**4)
    rounds, sample_seconds = (QUICK_ROUNDS, QUICK_SAMPLE_SECONDS) if args.quick else (ROUNDS, SAMPLE_SECONDS)
    data = run(batches, aer_max, args.device, rounds=rounds, sample_seconds=sample_seconds)
    print(table(data))
    write_results(data, args, "kernels", plot)
    return 0
