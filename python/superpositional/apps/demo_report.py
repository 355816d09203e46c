"""What the demo shows: its summary, its table beside the paper's numbers, its time ratios (with
their spread and a caveat when they are noise), and ``learning_curves.png``."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .arm_names import legend
from .output import format_table
from .timings import Timing, caveat
from .timings import summarize as summarize_samples

__all__ = ["HEADER", "PAPER", "Run", "figure", "plot", "report", "summarize", "table"]


@dataclass
class Run:
    """One seed of one arm of the demo: its accuracy, epoch times and losses, epoch by epoch."""

    arm: str
    seed: int
    accuracy: list[float] = field(default_factory=list)  # test accuracy after each epoch
    epoch_seconds: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)

    def epochs_to(self, threshold: float) -> int | None:
        return next((i + 1 for i, a in enumerate(self.accuracy) if a >= threshold), None)

    def seconds_to(self, threshold: float) -> float | None:
        epochs = self.epochs_to(threshold)
        return None if epochs is None else sum(self.epoch_seconds[:epochs])


BASELINE = "adam"
THRESHOLD = 0.9

# The paper's numbers (arXiv 2511.01918, synthetic classification), for the table.
PAPER = {
    "adam": {"final_accuracy": 91.5, "epochs_to_90": 7.4},
    "sp-adamw-0.5": {"final_accuracy": 93.8, "final_std": 0.7, "epochs_to_90": 4.6},
    "time_per_epoch_ratio": 1.35,  # SGD vs Adam, about 35% more time per epoch
    "time_to_90_ratio": 0.84,  # 16% less total time to 90%
}

HEADER = [
    "arm",
    "seeds",
    "final acc % (mean +- std)",
    "final acc %, paper",
    "epochs to 90% (runs)",
    "epochs to 90%, paper",
    "s/epoch (median)",
    "s to 90%",
]


def _timing(values: list[float]) -> dict[str, Any]:
    t = summarize_samples(values)
    return {"median": t.median, "low": t.low, "high": t.high, "samples": t.samples, "spread": t.spread}


def _as_timing(entry: dict[str, Any]) -> Timing:
    return Timing(entry["median"], entry["low"], entry["high"], entry["samples"])


def _paired_ratios(mine: list[Run], baseline: list[Run]) -> list[float]:
    """Epoch time over the baseline's of the same seed and epoch (trained in the same round)."""
    by_seed = {r.seed: r for r in baseline}
    return [
        seconds / by_seed[run.seed].epoch_seconds[i]
        for run in mine
        if run.seed in by_seed
        for i, seconds in enumerate(run.epoch_seconds[: len(by_seed[run.seed].epoch_seconds)])
    ]


def summarize(runs: list[Run], threshold: float = THRESHOLD) -> dict[str, dict]:
    """Per arm, in the order of ``runs``: accuracy over seeds, epochs and seconds to ``threshold``,
    the epoch time (median and quartiles of every epoch) and, beside the baseline, the ratio of
    each epoch's time to the baseline's of the same round."""
    summary = {}
    baseline = [r for r in runs if r.arm == BASELINE]
    for arm in dict.fromkeys(r.arm for r in runs):
        mine = [r for r in runs if r.arm == arm]
        final = [100 * r.accuracy[-1] for r in mine]
        reached = [r.epochs_to(threshold) for r in mine]
        seconds = [r.seconds_to(threshold) for r in mine]
        hits = [e for e in reached if e is not None]
        summary[arm] = {
            "seeds": len(mine),
            "final_accuracy": statistics.mean(final),
            "final_std": statistics.stdev(final) if len(final) > 1 else 0.0,
            "best_accuracy": statistics.mean(100 * max(r.accuracy) for r in mine),
            "reached_90": len(hits),
            "epochs_to_90": statistics.mean(hits) if hits else None,
            "seconds_per_epoch": statistics.median(s for r in mine for s in r.epoch_seconds),
            "epoch_seconds": _timing([s for r in mine for s in r.epoch_seconds]),
            "seconds_to_90": statistics.mean(s for s in seconds if s is not None) if hits else None,
        }
        ratios = _paired_ratios(mine, baseline) if arm != BASELINE else []
        if ratios:
            summary[arm]["time_vs_adam"] = _timing(ratios)
    return summary


def _number(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table(summary: dict[str, dict]) -> str:
    """The summary beside the paper's numbers, one row per arm."""
    rows = []
    for arm, s in summary.items():
        paper = PAPER.get(arm, {})
        paper_final = (
            f"{paper['final_accuracy']}" + (f" +- {paper['final_std']}" if "final_std" in paper else "")
            if paper
            else "-"
        )
        epoch = _as_timing(s["epoch_seconds"])
        rows.append(
            [
                arm,
                str(s["seeds"]),
                f"{s['final_accuracy']:.1f} +- {s['final_std']:.1f}",
                paper_final,
                f"{_number(s['epochs_to_90'], '.1f')} ({s['reached_90']}/{s['seeds']})",
                _number(paper.get("epochs_to_90"), ".1f"),
                f"{epoch.median:.2f} {epoch.spread_text()}",
                _number(s["seconds_to_90"], ".1f"),
            ]
        )
    return format_table(HEADER, rows)


def report(summary: dict[str, dict]) -> str:
    """The table, which optimizer each arm is, the epoch-time ratios to Adam, and a caveat when
    those timings are too noisy to trust."""
    lines = [table(summary), "", "arms:", legend(list(summary))]
    ratios = {arm: _as_timing(s["time_vs_adam"]) for arm, s in summary.items() if "time_vs_adam" in s}
    if ratios:
        pairs = max(t.samples for t in ratios.values())
        lines += [
            "",
            f"time per epoch against Adam's, epoch by epoch in the same round (median of {pairs} pairs, "
            f"± half the interquartile range; the paper: {PAPER['time_per_epoch_ratio']:.2f}x at "
            "lambda 0.5):",
        ]
        lines += [f"  {arm}: {t.median:.2f}x {t.spread_text()}" for arm, t in ratios.items()]
    timings = {f"{arm} s/epoch": _as_timing(s["epoch_seconds"]) for arm, s in summary.items()}
    timings.update({f"{arm}/adam": t for arm, t in ratios.items()})
    note = caveat(timings, "epoch timings")
    if note is not None:
        lines += ["", note]
    return "\n".join(lines)


def figure(runs: list[Run]) -> Any:
    """The learning curves as a matplotlib figure: test accuracy per arm (mean over seeds, bars of
    one standard deviation) and, when Adam ran every seed, each arm's difference to Adam paired by
    seed, where arms whose curves lie on top of each other above can be told apart. The arms' points
    are shifted a little along the epoch axis so that no bar hides another."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    arms = list(dict.fromkeys(r.arm for r in runs))
    seeds = len({r.seed for r in runs})
    by_seed = {(r.arm, r.seed): 100 * np.array(r.accuracy) for r in runs}
    paired = all((BASELINE, r.seed) in by_seed for r in runs)
    others = [arm for arm in arms if arm != BASELINE] if paired else []
    rows = 2 if others else 1
    fig, axes = plt.subplots(rows, 1, figsize=(8, 4.2 + 3.3 * (rows - 1)), sharex=True, squeeze=False)
    shift = {arm: 0.3 * (i - (len(arms) - 1) / 2) / max(len(arms) - 1, 1) for i, arm in enumerate(arms)}
    style = {arm: dict(color=f"C{i}", marker="osD^vx"[i % 6], ms=4, capsize=2) for i, arm in enumerate(arms)}

    def curve(ax: Any, arm: str, values: np.ndarray, label: str) -> None:
        epochs = np.arange(1, values.shape[1] + 1) + shift[arm]
        ax.errorbar(epochs, values.mean(axis=0), yerr=values.std(axis=0), label=label, lw=1.2, **style[arm])

    top = axes[0, 0]
    for arm in arms:
        curve(top, arm, np.array([by_seed[arm, r.seed] for r in runs if r.arm == arm]), arm)
    top.axhline(100 * THRESHOLD, color="gray", lw=0.8, ls="--", label=f"{100 * THRESHOLD:.0f}% test accuracy")
    bars = Line2D([], [], color="gray", marker="|", ms=10, ls="", label=f"bars: ±1 std over {seeds} seeds")
    top.legend(handles=[*top.get_legend_handles_labels()[0], bars], fontsize=8, loc="lower right")
    top.set_ylabel("test accuracy (%)")
    top.grid(True, alpha=0.3)
    top.set_title(f"Quantum Transformer on 'which comes first': {seeds} seed{'s' * (seeds > 1)} per arm")
    bottom = axes[-1, 0]
    if others:
        for arm in others:
            differences = np.array(
                [by_seed[arm, r.seed] - by_seed[BASELINE, r.seed] for r in runs if r.arm == arm]
            )
            curve(bottom, arm, differences, f"{arm} - {BASELINE}")
        bottom.axhline(0, color="black", lw=0.8, label=f"{BASELINE} (no difference)")
        spread = Line2D([], [], color="gray", marker="|", ms=10, ls="", label="bars: ±1 std over seeds")
        bottom.legend(handles=[*bottom.get_legend_handles_labels()[0], spread], fontsize=8)
        bottom.set_ylabel(f"accuracy - {BASELINE}'s, same seed\n(percentage points)")
        bottom.grid(True, alpha=0.3)
    bottom.set_xlabel("epoch")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def plot(runs: list[Run], path: Path) -> None:
    """:func:`figure` written to ``path``."""
    fig = figure(runs)
    import matplotlib.pyplot as plt  # after figure() chose the backend

    fig.savefig(path, dpi=120)
    plt.close(fig)
