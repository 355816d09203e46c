"""``python -m superpositional demo``: the paper's synthetic experiment (its Table II model), run honestly.

The task ("which comes first"): sequences of ``length`` tokens over a vocabulary of ``vocab``;
each holds exactly one marker A (token 0) and one marker B (token 1) at random distinct
positions, the rest is noise (tokens 2..vocab-1). The label is 1 when A comes before B. Solving
it needs attention between the two markers and the position embeddings, so a bag-of-tokens
model cannot; 5% of the training labels are flipped, which caps what can be learned near 95%
and makes the model overfit if trained long. With 2,048 training sequences, Adam needs several
epochs (about five) to pass 90% test accuracy (test labels are clean).

Every arm trains the same Quantum Transformer (Table II: embedding 64, 4 heads, feed-forward 128,
2 layers, dropout 0.1, a 4-qubit circuit in the attention; batch 32, lr 1e-3, betas (0.9, 0.999),
eps 1e-8, weight decay 0) from the same initialisation per seed:

- ``adam``: ``torch.optim.AdamW`` with weight decay 0 (that is, Adam);
- ``sgd-0.1``, ``sgd-0.5``: ``SuperpositionalAdamW`` with lambda 0.1 / 0.5, the paper's
  ``coverage="paper"`` and ``circuits.paper(4)`` (its Eq. 1-2);
- ``sgd-all-0.5``: our extension, lambda 0.5 with ``coverage="all"`` and ``circuits.entangled(4)``
  (a circuit for every group of 4 parameters).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from superpositional import circuits
from superpositional.nn import QuantumTransformer
from superpositional.optim import SuperpositionalAdamW

from .info import collect
from .output import format_table, save_plot, write_json

# The paper's numbers (arXiv 2511.01918, synthetic classification), for the table.
PAPER = {
    "adam": {"final_accuracy": 91.5, "epochs_to_90": 7.4},
    "sgd-0.5": {"final_accuracy": 93.8, "final_std": 0.7, "epochs_to_90": 4.6},
    "time_per_epoch_ratio": 1.35,  # SGD vs Adam, about 35% more time per epoch
    "time_to_90_ratio": 0.84,  # 16% less total time to 90%
}


@dataclass(frozen=True)
class TaskConfig:
    length: int = 24
    vocab: int = 12
    train: int = 2048
    test: int = 1000
    label_noise: float = 0.05


@dataclass
class Run:
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


def make_task(config: TaskConfig, count: int, seed: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` sequences of the "which comes first" task and their labels."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(2, config.vocab, size=(count, config.length))
    first = rng.integers(0, config.length, size=count)
    second = (first + rng.integers(1, config.length, size=count)) % config.length
    rows = np.arange(count)
    tokens[rows, first] = 0
    tokens[rows, second] = 1
    labels = (first < second).astype(np.int64)
    flipped = rng.random(count) < noise
    labels[flipped] = 1 - labels[flipped]
    return torch.as_tensor(tokens), torch.as_tensor(labels)


ARMS: dict[str, Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]] = {
    "adam": lambda p: torch.optim.AdamW(p, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
    "sgd-0.1": lambda p: SuperpositionalAdamW(
        p, lr=1e-3, weight_decay=0.0, quantum_weight=0.1, circuit=circuits.paper(4), coverage="paper"
    ),
    "sgd-0.5": lambda p: SuperpositionalAdamW(
        p, lr=1e-3, weight_decay=0.0, quantum_weight=0.5, circuit=circuits.paper(4), coverage="paper"
    ),
    "sgd-all-0.5": lambda p: SuperpositionalAdamW(
        p, lr=1e-3, weight_decay=0.0, quantum_weight=0.5, circuit=circuits.entangled(4), coverage="all"
    ),
}


def train_one(
    arm: str,
    seed: int,
    epochs: int,
    task: TaskConfig,
    device: torch.device,
    data: tuple,
    progress: tqdm | None = None,
    make_optimizer: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer] | None = None,
) -> Run:
    """One seed of one arm: the model initialised from ``seed``, its batches (and dropout masks)
    drawn from it too, so that every arm of a seed sees the same; the optimizer is the arm's of
    :data:`ARMS`, or ``make_optimizer``'s."""
    (train_x, train_y), (test_x, test_y) = data
    torch.manual_seed(seed)
    model = QuantumTransformer(task.vocab, 2, task.length).to(device)
    optimizer = (make_optimizer or ARMS[arm])(list(model.parameters()))
    order = torch.Generator().manual_seed(seed)
    run = Run(arm, seed)
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        total = torch.zeros((), device=device)  # summed on the device: no synchronisation per batch
        for batch in torch.randperm(len(train_x), generator=order).split(32):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(train_x[batch]), train_y[batch])
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        run.epoch_seconds.append(time.perf_counter() - start)
        run.loss.append(float(total) / len(train_x))
        model.eval()
        with torch.no_grad():
            predictions = torch.cat([model(x).argmax(-1) for x in test_x.split(500)])
        run.accuracy.append(float((predictions == test_y).float().mean()))
        if progress is not None:
            progress.set_postfix(arm=arm, seed=seed, acc=f"{run.accuracy[-1]:.3f}")
            progress.update()
    return run


def summarize(runs: list[Run], threshold: float = 0.9) -> dict[str, dict]:
    summary = {}
    for arm in ARMS:
        mine = [r for r in runs if r.arm == arm]
        if not mine:
            continue
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
            "seconds_per_epoch": statistics.mean(s for r in mine for s in r.epoch_seconds),
            "seconds_to_90": statistics.mean(s for s in seconds if s is not None) if hits else None,
        }
    return summary


def table(summary: dict[str, dict]) -> str:
    def number(value, fmt):
        return "-" if value is None else format(value, fmt)

    header = [
        "arm",
        "seeds",
        "final acc % (mean +- std)",
        "paper",
        "epochs to 90%",
        "paper",
        "s/epoch",
        "s to 90%",
    ]
    rows = []
    for arm, s in summary.items():
        paper = PAPER.get(arm, {})
        paper_final = (
            f"{paper['final_accuracy']}" + (f" +- {paper['final_std']}" if "final_std" in paper else "")
            if paper
            else "-"
        )
        reached = f"{number(s['epochs_to_90'], '.1f')} ({s['reached_90']}/{s['seeds']})"
        rows.append(
            [
                arm,
                str(s["seeds"]),
                f"{s['final_accuracy']:.1f} +- {s['final_std']:.1f}",
                paper_final,
                reached,
                number(paper.get("epochs_to_90"), ".1f"),
                f"{s['seconds_per_epoch']:.2f}",
                number(s["seconds_to_90"], ".1f"),
            ]
        )
    lines = [format_table(header, rows)]
    if "adam" in summary:
        for arm in [a for a in summary if a != "adam"]:
            ratio = summary[arm]["seconds_per_epoch"] / summary["adam"]["seconds_per_epoch"]
            lines.append(
                f"{arm}: {ratio:.2f}x Adam's time per epoch (paper, lambda 0.5: "
                f"{PAPER['time_per_epoch_ratio']:.2f}x)"
            )
    return "\n".join(lines)


def plot(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for arm in ARMS:
        curves = np.array([r.accuracy for r in runs if r.arm == arm]) * 100
        if not len(curves):
            continue
        epochs = np.arange(1, curves.shape[1] + 1)
        mean, std = curves.mean(axis=0), curves.std(axis=0)
        ax.plot(epochs, mean, marker="o", label=f"{arm} ({len(curves)} seeds)")
        ax.fill_between(epochs, mean - std, mean + std, alpha=0.2)
    ax.axhline(90, color="gray", lw=0.8, ls="--")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Quantum Transformer on the 'which comes first' task")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(
    seeds: int,
    epochs: int,
    device: str,
    out: Path,
    arms: list[str] | None = None,
    task: TaskConfig | None = None,
) -> int:
    task = task or TaskConfig()
    arms = arms or list(ARMS)
    unknown = set(arms) - set(ARMS)
    if unknown:
        raise SystemExit(f"demo: unknown arms {sorted(unknown)}; choose from {list(ARMS)}")
    target = torch.device(device)
    data = tuple(
        (x.to(target), y.to(target))
        for x, y in (
            make_task(task, task.train, seed=1, noise=task.label_noise),
            make_task(task, task.test, seed=2, noise=0.0),
        )
    )
    # One untimed epoch first, so that no arm pays for thread pools, allocators and compiled programs.
    train_one(arms[0], seeds, 1, task, target, data)
    runs = []
    with tqdm(total=len(arms) * seeds * epochs, desc="demo", unit="epoch") as progress:
        for seed in range(seeds):
            for arm in arms:
                runs.append(train_one(arm, seed, epochs, task, target, data, progress))
    summary = summarize(runs)
    print(table(summary))
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "task": asdict(task),
        "epochs": epochs,
        "seeds": seeds,
        "device": device,
        "summary": summary,
        "paper": PAPER,
        "runs": [asdict(r) for r in runs],
        "environment": collect(),
    }
    write_json(out / "results.json", result)
    save_plot(lambda path: plot(runs, path), out / "learning_curves.png", "demo")
    return 0
