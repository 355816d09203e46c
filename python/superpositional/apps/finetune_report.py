"""What ``finetune`` shows: its table beside the paper's Table I, and ``finetune.png``."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from .arm_names import legend
from .output import busy_note, format_table

__all__ = ["HEADER", "PAPER", "figure", "plot", "report", "smooth", "table"]

# The paper's Table I: mean loss after one epoch of Llama-3.2-1B-Instruct on GSM8K.
PAPER = {"adamw": 0.2188, "sp-adamw-0.1": 0.2098, "sp-adamw-0.5": 0.2097}
BASELINE = "adamw"

HEADER = ["arm", "mean train loss (epoch)", "paper (Table I)", "held-out loss", "exact match", "train s"]


def table(results: dict[str, dict]) -> str:
    """One row per arm: the losses and accuracy, beside the paper's mean loss where it has one."""
    rows = [
        [
            arm,
            f"{r['mean_loss']:.4f}",
            f"{PAPER[arm]:.4f}" if arm in PAPER else "-",
            f"{r['eval_loss']:.4f}",
            "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.1f}%",
            f"{r['seconds']:.1f}",
        ]
        for arm, r in results.items()
    ]
    return format_table(HEADER, rows)


def report(results: dict[str, dict]) -> str:
    """The table, which optimizer each arm is, and what its seconds are (and are not)."""
    lines = [table(results)]
    described = legend(list(results))
    if described:
        lines += ["", "arms:", described]
    # One run per arm, one after another, each long: its seconds say what a run cost here, not
    # which optimizer is faster (bench --step measures that, interleaved).
    lines.append("train s: one run per arm, one after another (for step time, see bench --step)")
    if (note := busy_note()) is not None:
        lines.append(note)
    return "\n".join(lines)


def smooth(losses: list[float]) -> tuple[list[float], int]:
    """The trailing moving mean of ``losses`` over a fiftieth of the run, and that window."""
    window = max(1, len(losses) // 50)
    return [statistics.mean(losses[max(0, i - window + 1) : i + 1]) for i in range(len(losses))], window


def figure(results: dict[str, dict], title: str) -> Any:
    """The training loss per arm and, below, each arm's loss minus the baseline's at the same step
    (AdamW's, or the first arm's): arms see the same data in the same order, so the difference is
    paired step by step, and arms whose losses differ by 1e-6 can be told apart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(results)
    baseline = BASELINE if BASELINE in results else arms[0]
    others = [arm for arm in arms if arm != baseline]
    rows = 2 if others else 1
    fig, axes = plt.subplots(rows, 1, figsize=(8, 4.2 + 3.3 * (rows - 1)), sharex=True, squeeze=False)
    smoothed = {arm: smooth(run["losses"]) for arm, run in results.items()}
    window = next(iter(smoothed.values()))[1]

    def line(ax: Any, i: int, values: list[float], label: str) -> None:
        """Arm ``i``'s curve, in its own colour and dash so that coinciding curves stay visible."""
        ax.plot(
            range(1, len(values) + 1),
            values,
            color=f"C{i}",
            ls=("-", "--", "-.", ":")[i % 4],
            lw=1.2,
            label=label,
        )

    top = axes[0, 0]
    for i, arm in enumerate(arms):
        line(top, i, smoothed[arm][0], f"{arm} (mean {results[arm]['mean_loss']:.6g})")
    largest = max(max(run["losses"]) for run in results.values())
    top.set_yscale("log" if largest > 10 * math.e else "linear")
    top.set_ylabel("training loss" + (f"\n(moving mean of {window} steps)" if window > 1 else ""))
    top.grid(True, alpha=0.3)
    top.legend(fontsize=8)
    top.set_title(title)
    bottom = axes[-1, 0]
    if others:
        reference = smoothed[baseline][0]
        for i, arm in enumerate(arms):
            if arm == baseline:
                continue
            difference = [a - b for a, b in zip(smoothed[arm][0], reference)]
            line(bottom, i, difference, f"{arm} - {baseline}")
        bottom.axhline(0, color="black", lw=0.8, label=f"{baseline} (no difference)")
        bottom.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        bottom.set_ylabel(f"loss - {baseline}'s\n(same steps, same data)")
        bottom.grid(True, alpha=0.3)
        bottom.legend(fontsize=8)
    bottom.set_xlabel("step")
    fig.tight_layout()
    return fig


def plot(results: dict[str, dict], title: str, path: Path) -> None:
    """:func:`figure` written to ``path``."""
    fig = figure(results, title)
    import matplotlib.pyplot as plt  # after figure() chose the backend

    fig.savefig(path, dpi=120)
    plt.close(fig)
