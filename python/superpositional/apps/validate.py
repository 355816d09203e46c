"""``python -m superpositional validate``: every built backend against Qiskit Aer on random circuits.

Random circuits over the whole gate set (1 to 10 qubits, random angle sources
and signed Pauli observables) are simulated exactly by Aer and by each backend
in float32 and float64. The table gives the worst expectation error and the
worst statevector error (up to a global phase) per qubit count and dtype,
against the tolerances of docs/design.md, *Validation*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from superpositional._extension import extension
from superpositional.backends import available_backends
from superpositional.simulate import simulate
from superpositional.testing import max_phase_aligned_error, random_circuit

from .output import format_table, write_json

TOLERANCE = {"float32": 1e-5, "float64": 1e-12}
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class Worst:
    circuits: int = 0
    expectation: float = 0.0
    state: float = 0.0

    def update(self, expectation: float, state: float) -> None:
        self.circuits += 1
        self.expectation = max(self.expectation, expectation)
        self.state = max(self.state, state)


@dataclass
class Report:
    seed: int
    batch: int
    circuits: int
    worst: dict = field(default_factory=dict)  # (backend, dtype, n) -> Worst

    def passed(self) -> bool:
        return all(
            w.expectation <= TOLERANCE[d] and w.state <= TOLERANCE[d] for (_, d, _), w in self.worst.items()
        )

    def to_json(self) -> dict:
        return {
            "seed": self.seed,
            "batch": self.batch,
            "circuits": self.circuits,
            "tolerance": TOLERANCE,
            "passed": self.passed(),
            "rows": [
                {
                    "backend": b,
                    "dtype": d,
                    "n_qubits": n,
                    "circuits": w.circuits,
                    "max_expectation_error": w.expectation,
                    "max_state_error": w.state,
                }
                for (b, d, n), w in sorted(self.worst.items())
            ],
        }


def run(
    circuits: int = 1000,
    batch: int = 8,
    max_gates: int = 40,
    seed: int | None = None,
    backends: list[str] | None = None,
    progress: bool = True,
) -> Report:
    """Validate ``backends`` (default: every built one but Aer) on ``circuits`` random circuits."""
    if "aer" not in available_backends():
        raise RuntimeError("validate needs Qiskit Aer: pip install 'superpositional[qiskit]'")
    names = backends or [b for b in available_backends() if b != "aer"]
    unknown = set(names) - set(available_backends()) | ({"aer"} & set(names))
    if unknown:
        raise ValueError(
            f"cannot validate {sorted(unknown)}; available: {available_backends()} (Aer is the reference)"
        )
    seed = int(np.random.SeedSequence().entropy % 2**32) if seed is None else seed
    rng = np.random.default_rng(seed)
    report = Report(seed=seed, batch=batch, circuits=circuits)
    ext = extension()
    # The CPU kernel is checked once per instruction set this machine runs.
    variants = [(b, isa) for b in names for isa in (ext.supported_cpu_isas() if b == "cpu" else [None])]
    default_isa = ext.cpu_isa() if ext is not None else None
    try:
        _run_circuits(report, variants, rng, circuits, batch, max_gates, progress)
    finally:
        if default_isa is not None:
            ext.set_cpu_isa(default_isa)
    return report


def _run_circuits(
    report: Report,
    variants: list,
    rng: np.random.Generator,
    circuits: int,
    batch: int,
    max_gates: int,
    progress: bool,
) -> None:
    ext = extension()
    for i in tqdm(range(circuits), desc="validate", unit="circuit", disable=not progress):
        n = 1 + i % 10  # every qubit count gets its share
        c = random_circuit(n, int(rng.integers(1, max_gates + 1)), rng)
        theta = torch.from_numpy(rng.uniform(-math.pi, math.pi, size=(batch, n)))
        g = torch.from_numpy(rng.uniform(-math.pi, math.pi, size=(batch, n)))
        expected, state_ref = simulate(c, theta, g, backend="aer", return_state=True)
        for backend, isa in variants:
            if isa is not None:
                ext.set_cpu_isa(isa)
            for dtype_name, dtype in _DTYPES.items():
                device = "cuda" if backend == "cuda" else "cpu"  # a kernel runs where its inputs live
                theta_d, g_d = theta.to(device, dtype), g.to(device, dtype)
                fast = simulate(c, theta_d, g_d, backend=backend).cpu()
                with_state, state = simulate(c, theta_d, g_d, backend=backend, return_state=True)
                with_state, state = with_state.cpu(), state.cpu()
                error = max(
                    float((fast.double() - expected).abs().max()),
                    float((with_state.double() - expected).abs().max()),
                )
                label = backend if isa is None else f"{backend}:{isa}"
                worst = report.worst.setdefault((label, dtype_name, n), Worst())
                worst.update(error, max_phase_aligned_error(state, state_ref))


def report_table(report: Report) -> str:
    """One row per backend, dtype and quantity; one column per qubit count."""
    qubits = sorted({n for _, _, n in report.worst})
    header = ["backend", "dtype", "error of", *(f"n={n}" for n in qubits), "tolerance", "ok"]
    rows = []
    for backend, dtype in sorted({(b, d) for b, d, _ in report.worst}):
        for quantity in ("expectation", "state"):
            errors = [getattr(report.worst[(backend, dtype, n)], quantity) for n in qubits]
            ok = max(errors) <= TOLERANCE[dtype]
            rows.append(
                [
                    backend,
                    dtype,
                    quantity,
                    *(f"{e:.1e}" for e in errors),
                    f"{TOLERANCE[dtype]:.0e}",
                    "yes" if ok else "NO",
                ]
            )
    counts = sorted({report.worst[(rows[0][0], rows[0][1], n)].circuits for n in qubits})
    per_n = str(counts[0]) if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
    verdict = "PASS" if report.passed() else "FAIL"
    return (
        format_table(header, rows)
        + f"\n\n{verdict}: worst errors against Qiskit Aer (exact) over {report.circuits} random circuits "
        f"({per_n} per qubit count) x {report.batch} input rows, seed {report.seed}; "
        "states compared up to a global phase"
    )


def main(
    circuits: int, batch: int, seed: int | None, backends: list[str] | None, json_path: Path | None
) -> int:
    report = run(circuits=circuits, batch=batch, seed=seed, backends=backends)
    print(report_table(report))
    if json_path is not None:
        write_json(json_path, report.to_json())
    return 0 if report.passed() else 1
