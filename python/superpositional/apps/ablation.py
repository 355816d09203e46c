"""``python -m superpositional ablation``: where does the circuit term change training?

On the demo's task (:mod:`.demo`: the Quantum Transformer on "which comes first"), a grid fixed
before any run:

- ``lambda`` (``quantum_weight``) in :data:`LAMBDAS`;
- ``coverage`` "paper" (each tensor's first 4 elements) and "all" (every element);
- ``perturbation`` "paper" (``lr * lambda * e * g`` beside the Adam update, the paper's rule) and
  "preconditioned" (``lambda * e * g`` added to ``m_hat`` before Adam's division);

always with the paper's circuit, ``circuits.paper(4)`` (``e_i = sin(pi theta_i)``), so that only the
three factors vary. ``lambda = 0`` is AdamW exactly whatever the other two (tested bit for bit), so it
runs once per seed: the baseline every arm is compared with. Every arm of a seed starts from the same
initialisation and sees the same batches and dropout masks, so differences are paired by seed:
the table gives, per arm, the final test accuracy and the epochs to 90% (mean and standard
deviation over seeds), and the mean difference to the baseline with its 95% confidence interval
(Student's t over the paired differences). The plot shows that difference against lambda.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from superpositional import circuits
from superpositional.optim import SuperpositionalAdamW

from .demo import Run, TaskConfig, make_task, train_one
from .info import collect
from .output import format_table, save_plot, write_json

LAMBDAS = (0.1, 0.5, 2.0, 10.0, 50.0)  # and 0, the baseline
COVERAGES = ("paper", "all")
PERTURBATIONS = ("paper", "preconditioned")
QUICK_LAMBDAS = (0.5, 50.0)
QUICK_TASK = TaskConfig(train=256, test=200)
THRESHOLD = 0.9
BASELINE = "adamw"

# Student's t quantile t(0.975, dof) for the 95% interval of a mean of dof + 1 paired differences.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145)
_T975_LARGE = 1.960


@dataclass(frozen=True)
class Arm:
    """One cell of the grid; ``quantum_weight`` 0 is the baseline (AdamW)."""

    quantum_weight: float
    coverage: str = "paper"
    perturbation: str = "paper"

    @property
    def name(self) -> str:
        if self.quantum_weight == 0:
            return BASELINE
        return f"lambda={self.quantum_weight:g} coverage={self.coverage} perturbation={self.perturbation}"

    def optimizer(self, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """The demo's optimizer settings (lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay)."""
        return SuperpositionalAdamW(
            params,
            lr=1e-3,
            weight_decay=0.0,
            quantum_weight=self.quantum_weight,
            circuit=circuits.paper(4),
            coverage=self.coverage,
            perturbation=self.perturbation,
        )


def grid(lambdas: Sequence[float]) -> list[Arm]:
    """The baseline, then every (coverage, perturbation, lambda) with lambda > 0."""
    return [Arm(0.0)] + [
        Arm(lam, coverage, perturbation)
        for coverage in COVERAGES
        for perturbation in PERTURBATIONS
        for lam in lambdas
    ]


def t_quantile_975(dof: int) -> float:
    """``t(0.975, dof)`` of Student's distribution (the normal's 1.96 beyond the table)."""
    if dof < 1:
        raise ValueError("a confidence interval needs at least two paired differences")
    return _T975[dof - 1] if dof <= len(_T975) else _T975_LARGE


def paired_difference(values: Sequence[float], baseline: Sequence[float]) -> dict[str, float | None]:
    """Mean of ``values[i] - baseline[i]`` with its 95% interval (``None`` bounds for one pair)."""
    differences = [a - b for a, b in zip(values, baseline, strict=True)]
    mean = statistics.mean(differences)
    if len(differences) < 2:
        return {"mean": mean, "low": None, "high": None}
    half = t_quantile_975(len(differences) - 1) * statistics.stdev(differences) / math.sqrt(len(differences))
    return {"mean": mean, "low": mean - half, "high": mean + half}


def _spread(values: Sequence[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(arms: list[Arm], runs: dict[tuple[str, int], Run], seeds: int, epochs: int) -> list[dict]:
    """One row per arm: final accuracy and epochs to 90% over seeds, and each one's paired
    difference to the baseline. A run that never reaches 90% counts ``epochs + 1`` epochs for the
    difference (a lower bound on its delay) and is reported in ``reached``."""
    rows = []
    for arm in arms:
        final = [100 * runs[arm.name, s].accuracy[-1] for s in range(seeds)]
        base_final = [100 * runs[BASELINE, s].accuracy[-1] for s in range(seeds)]
        reached = [runs[arm.name, s].epochs_to(THRESHOLD) for s in range(seeds)]
        base_reached = [runs[BASELINE, s].epochs_to(THRESHOLD) for s in range(seeds)]
        to_90 = [epochs + 1 if e is None else e for e in reached]
        base_to_90 = [epochs + 1 if e is None else e for e in base_reached]
        final_mean, final_std = _spread(final)
        epochs_mean, epochs_std = _spread(to_90)
        rows.append(
            {
                **asdict(arm),
                "arm": arm.name,
                "seeds": seeds,
                "final_accuracy": final_mean,
                "final_std": final_std,
                "reached_90": sum(e is not None for e in reached),
                "epochs_to_90": epochs_mean,
                "epochs_to_90_std": epochs_std,
                "accuracy_difference": paired_difference(final, base_final),
                "epochs_difference": paired_difference(to_90, base_to_90),
            }
        )
    return rows


def verdict(difference: dict[str, float | None]) -> str:
    """``better`` / ``worse`` when the 95% interval excludes 0, ``no change`` when it holds it,
    ``?`` with one seed."""
    low, high = difference["low"], difference["high"]
    if low is None or high is None:
        return "?"
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "no change"


def table(rows: list[dict], epochs: int) -> str:
    def interval(d: dict, fmt: str) -> str:
        if d["low"] is None:
            return f"{d['mean']:{fmt}}"
        return f"{d['mean']:{fmt}} [{d['low']:{fmt}}, {d['high']:{fmt}}]"

    header = [
        "lambda",
        "coverage",
        "perturbation",
        "final acc % (mean +- std)",
        f"epochs to 90% (never: {epochs + 1})",
        "acc - AdamW, 95% CI",
        "epochs - AdamW, 95% CI",
        "accuracy",
    ]
    body = [
        [
            f"{r['quantum_weight']:g}",
            "-" if r["quantum_weight"] == 0 else r["coverage"],
            "-" if r["quantum_weight"] == 0 else r["perturbation"],
            f"{r['final_accuracy']:.1f} +- {r['final_std']:.1f}",
            f"{r['epochs_to_90']:.1f} +- {r['epochs_to_90_std']:.1f} ({r['reached_90']}/{r['seeds']})",
            "baseline" if r["quantum_weight"] == 0 else interval(r["accuracy_difference"], "+.2f"),
            "baseline" if r["quantum_weight"] == 0 else interval(r["epochs_difference"], "+.1f"),
            "-" if r["quantum_weight"] == 0 else verdict(r["accuracy_difference"]),
        ]
        for r in rows
    ]
    return format_table(header, body)


def plot(rows: list[dict], path: Path) -> None:
    """Accuracy difference to AdamW (paired by seed, 95% interval) against lambda, log axis: one
    panel per coverage, one series per perturbation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(COVERAGES), figsize=(11, 4.2), sharey=True)
    for ax, coverage in zip(axes, COVERAGES):
        for perturbation, marker in zip(PERTURBATIONS, ("o", "s")):
            mine = [r for r in rows if r["coverage"] == coverage and r["perturbation"] == perturbation]
            mine = sorted((r for r in mine if r["quantum_weight"] > 0), key=lambda r: r["quantum_weight"])
            if not mine:
                continue
            x = np.array([r["quantum_weight"] for r in mine])
            d = [r["accuracy_difference"] for r in mine]
            y = np.array([e["mean"] for e in d])
            known = all(e["low"] is not None for e in d)
            error = np.array([[e["mean"] - e["low"], e["high"] - e["mean"]] for e in d]).T if known else None
            ax.errorbar(x, y, yerr=error, marker=marker, capsize=3, label=f"perturbation={perturbation}")
        ax.axhline(0, color="gray", lw=0.8, ls="--", label="AdamW (lambda = 0)")
        ax.set_xscale("log")
        ax.set_xlabel("lambda (quantum_weight)")
        ax.set_title(f"coverage={coverage}")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("final test accuracy - AdamW's (points)")
    axes[0].legend(fontsize=8)
    seeds = rows[0]["seeds"]
    fig.suptitle(f"Where the circuit term changes training: mean of {seeds} paired seeds, bars 95% CI")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_grid(
    arms: list[Arm],
    seeds: int,
    epochs: int,
    task: TaskConfig,
    device: torch.device,
    progress: tqdm,
) -> dict[tuple[str, int], Run]:
    data = tuple(
        (x.to(device), y.to(device))
        for x, y in (
            make_task(task, task.train, seed=1, noise=task.label_noise),
            make_task(task, task.test, seed=2, noise=0.0),
        )
    )
    runs = {}
    for seed in range(seeds):
        for arm in arms:
            runs[arm.name, seed] = train_one(
                arm.name, seed, epochs, task, device, data, progress, arm.optimizer
            )
    return runs


def main(seeds: int, epochs: int, device: str, out: Path, quick: bool = False) -> int:
    lambdas = QUICK_LAMBDAS if quick else LAMBDAS
    task = QUICK_TASK if quick else TaskConfig()
    arms = grid(lambdas)
    target = torch.device(device)
    with tqdm(total=len(arms) * seeds * epochs, desc="ablation", unit="epoch") as progress:
        runs = run_grid(arms, seeds, epochs, task, target, progress)
    rows = summarize(arms, runs, seeds, epochs)
    print(table(rows, epochs))
    result = {
        "task": asdict(task),
        "grid": {
            "lambdas": [0.0, *lambdas],
            "coverages": list(COVERAGES),
            "perturbations": list(PERTURBATIONS),
            "circuit": "paper(4)",
        },
        "epochs": epochs,
        "seeds": seeds,
        "device": device,
        "quick": quick,
        "summary": rows,
        "runs": [asdict(run) for run in runs.values()],
        "environment": collect(),
    }
    write_json(out / "ablation.json", result)
    save_plot(lambda path: plot(rows, path), out / "ablation.png", "demo")
    return 0
