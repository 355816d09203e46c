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

Ratios are taken between backends measured in the same run at the same batch.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from superpositional import circuits
from superpositional.backends import Batch, available_backends, kernel
from superpositional.circuit import Circuit
from superpositional.simulate import simulate

from .common import format_table, median_seconds, provenance, si, write_results

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


def run(batches: list[int], aer_max: int, device: str = "cpu", progress: bool = True) -> dict:
    backends = _backends(device)
    plan = [
        (name, b, batch)
        for name in CIRCUITS
        for batch in batches
        for b in backends
        if _wanted(b, CIRCUITS[name]().n_qubits, batch, aer_max, device)
    ]
    results = []
    generator = torch.Generator().manual_seed(0)
    inputs: dict = {}
    for name, backend, batch in tqdm(plan, desc="bench kernels", unit="run", disable=not progress):
        circuit = CIRCUITS[name]()
        n = circuit.n_qubits
        if (n, batch) not in inputs:
            inputs.clear()
            inputs[(n, batch)] = (
                (torch.rand(batch, n, generator=generator) * 4 - 2).to(device),
                torch.randn(batch, n, generator=generator).to(device),
            )
        theta, g = inputs[(n, batch)]
        slow = backend in ("aer", "torch") and batch >= 10**5
        seconds = median_seconds(
            _synchronized(_runner(backend, circuit, theta, g), device),
            min_reps=1 if backend == "aer" else 3,
            min_time=0 if slow or backend == "aer" else 0.5,
            warmup=0 if backend == "aer" else 1,
        )
        results.append(
            {
                "circuit": name,
                "backend": backend,
                "batch": batch,
                "seconds": seconds,
                "circuits_per_s": batch / seconds,
            }
        )
    dtype = "float32 (aer: float64)" if device == "cpu" else "float32"
    return {"benchmark": "kernels", "device": device, "dtype": dtype, **provenance(), "results": results}


def _rate(data: dict, circuit: str, backend: str, batch: int) -> float | None:
    for r in data["results"]:
        if (r["circuit"], r["backend"], r["batch"]) == (circuit, backend, batch):
            return r["circuits_per_s"]
    return None


def table(data: dict) -> str:
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
            rates = {b: _rate(data, name, b, batch) for b in backends}
            ours = rates[kernel]
            ratios = [f"{ours / rates[p]:.0f}x" if ours and rates[p] else "-" for p in peers]
            if gradients:
                mine, theirs = rates[f"{kernel}-gradients"], rates["torch-gradients"]
                ratios.append(f"{mine / theirs:.0f}x" if mine and theirs else "-")
            rows.append([name, f"{batch:.0e}", *(si(rates[b]) for b in backends), *ratios])
    device = data.get("device", "cpu")
    return f"circuits per second (median), same run, {device}\n" + format_table(header, rows)


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CIRCUITS), figsize=(5 * len(CIRCUITS), 4), sharey=True)
    for ax, name in zip(axes, CIRCUITS, strict=False):
        for backend in dict.fromkeys(r["backend"] for r in data["results"]):
            points = sorted(
                (r["batch"], r["circuits_per_s"])
                for r in data["results"]
                if r["circuit"] == name and r["backend"] == backend
            )
            if points:
                ax.loglog(*zip(*points, strict=False), marker="o", label=backend)
        ax.set_title(name)
        ax.set_xlabel("circuits per call (batch)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("circuits per second")
    axes[0].legend()
    env = data["environment"]
    fig.suptitle(
        f"batched simulation, {env['cpu']} ({env['torch_threads']} threads), commit {data['commit']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def execute(args: argparse.Namespace) -> int:
    batches = QUICK_BATCHES if args.quick else BATCHES[args.device]
    aer_max = args.aer_max if args.aer_max is not None else (100 if args.quick else 10**4)
    data = run(batches, aer_max, args.device)
    print(table(data))
    write_results(data, args, "kernels", plot)
    return 0
