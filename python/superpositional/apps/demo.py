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
eps 1e-8, weight decay 0) from the same initialisation per seed (names: :mod:`.arm_names`):

- ``adam``: ``torch.optim.AdamW`` with weight decay 0 (that is, Adam);
- ``sp-adamw-0.1``, ``sp-adamw-0.5``: ``SuperpositionalAdamW`` with lambda 0.1 / 0.5, the paper's
  ``coverage="paper"`` and ``circuits.paper(4)`` (its Eq. 1-2);
- ``sp-adamw-all-0.5``: our extension, lambda 0.5 with ``coverage="all"`` and ``circuits.entangled(4)``
  (a circuit for every group of 4 parameters).

The arms of a seed train side by side, one epoch each in turn (:func:`train_interleaved`), so that
their epoch times are paired samples taken under the same conditions; each run keeps its own random
state, so it learns exactly what it would alone (:func:`train_one`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from superpositional import circuits
from superpositional.nn import QuantumTransformer
from superpositional.optim import SuperpositionalAdamW

from . import demo_report
from .arm_names import ALIASES, canonical
from .demo_report import Run
from .info import collect
from .output import save_plot, write_json

__all__ = ["ARMS", "Run", "TaskConfig", "Training", "make_task", "train_interleaved", "train_one"]


@dataclass(frozen=True)
class TaskConfig:
    length: int = 24
    vocab: int = 12
    train: int = 2048
    test: int = 1000
    label_noise: float = 0.05


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


# Named as arm_names.DEMO_ARMS, which the command line's --help lists without importing this module.
ARMS: dict[str, Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]] = {
    "adam": lambda p: torch.optim.AdamW(p, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
    "sp-adamw-0.1": lambda p: SuperpositionalAdamW(
        p, lr=1e-3, weight_decay=0.0, quantum_weight=0.1, circuit=circuits.paper(4), coverage="paper"
    ),
    "sp-adamw-0.5": lambda p: SuperpositionalAdamW(
        p, lr=1e-3, weight_decay=0.0, quantum_weight=0.5, circuit=circuits.paper(4), coverage="paper"
    ),
    "sp-adamw-all-0.5": lambda p: SuperpositionalAdamW(
        p, lr=1e-3, weight_decay=0.0, quantum_weight=0.5, circuit=circuits.entangled(4), coverage="all"
    ),
}


def resolve_arms(names: list[str] | None) -> list[str]:
    """The arms to train, by their current names (old names translated, with a note); every name
    checked, so that a typo stops the demo before any training."""
    if not names:
        return list(ARMS)
    arms = [canonical(name) for name in names]
    unknown = sorted({name for name, arm in zip(names, arms) if arm not in ARMS})
    if unknown:
        raise SystemExit(
            f"demo: unknown arms {unknown}; choose from {list(ARMS)} (old names: {sorted(ALIASES)})"
        )
    for old in dict.fromkeys(name for name in names if name in ALIASES):
        print(f"note: arm {old} is now called {ALIASES[old]}")
    return list(dict.fromkeys(arms))


class Training:
    """One seed of one arm, trained an epoch at a time.

    The model is initialised from ``seed`` and its batches drawn from it, so every arm of a seed
    sees the same. Dropout draws from torch's global generator, which the other runs of an
    interleaved schedule also use: each run keeps that generator's state as its own and restores it
    around its epochs, so that its masks are those it would draw alone.
    """

    def __init__(
        self,
        arm: str,
        seed: int,
        task: TaskConfig,
        device: torch.device,
        data: tuple,
        make_optimizer: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer] | None = None,
    ) -> None:
        self.task, self.device, self.data = task, device, data
        arm = canonical(arm)
        torch.manual_seed(seed)
        self.model = QuantumTransformer(task.vocab, 2, task.length).to(device)
        self.optimizer = (make_optimizer or ARMS[arm])(list(self.model.parameters()))
        self.order = torch.Generator().manual_seed(seed)
        self.run = Run(arm, seed)
        self._random = self._random_state()

    def _random_state(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return torch.get_rng_state(), cuda

    def _restore_random_state(self) -> None:
        cpu, cuda = self._random
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, self.device)

    def epoch(self, tick: Callable[[], None] | None = None) -> None:
        """One timed epoch of training, then the test accuracy; ``tick`` is called after each batch."""
        (train_x, train_y), (test_x, test_y) = self.data
        model, optimizer = self.model, self.optimizer
        self._restore_random_state()
        model.train()
        start = time.perf_counter()
        total = torch.zeros((), device=self.device)  # summed on the device: no synchronisation per batch
        for batch in torch.randperm(len(train_x), generator=self.order).split(32):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(train_x[batch]), train_y[batch])
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(batch)
            if tick is not None:
                tick()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.run.epoch_seconds.append(time.perf_counter() - start)
        self._random = self._random_state()
        self.run.loss.append(float(total) / len(train_x))
        model.eval()
        with torch.no_grad():
            predictions = torch.cat([model(x).argmax(-1) for x in test_x.split(500)])
        self.run.accuracy.append(float((predictions == test_y).float().mean()))


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
    """One seed of one arm, alone: the optimizer is the arm's of :data:`ARMS`, or ``make_optimizer``'s."""
    training = Training(arm, seed, task, device, data, make_optimizer)
    for _ in range(epochs):
        training.epoch()
        if progress is not None:
            progress.set_postfix(arm=arm, seed=seed, acc=f"{training.run.accuracy[-1]:.3f}")
            progress.update()
    return training.run


def train_interleaved(
    arms: list[str],
    seed: int,
    epochs: int,
    task: TaskConfig,
    device: torch.device,
    data: tuple,
    progress: tqdm | None = None,
) -> list[Run]:
    """Every arm of one seed, one epoch each in turn, the order rotated every epoch (so that no arm
    always follows the same one): each epoch time is paired with its peers' of the same round. The
    runs learn exactly what :func:`train_one` would."""
    trainings = [Training(arm, seed, task, device, data) for arm in arms]
    for epoch in range(epochs):
        shift = epoch % len(trainings)
        for training in trainings[shift:] + trainings[:shift]:
            training.epoch()
            if progress is not None:
                progress.set_postfix(arm=training.run.arm, seed=seed, acc=f"{training.run.accuracy[-1]:.3f}")
                progress.update()
    return [training.run for training in trainings]


def warm_up(arm: str, seed: int, task: TaskConfig, device: torch.device, data: tuple) -> None:
    """One untimed epoch, so that no timed arm pays for thread pools, allocators and compiled
    programs; with a progress bar of its own, since on a slow or busy machine it takes a while."""
    batches = -(-task.train // 32)
    with tqdm(total=batches, desc="warm-up (untimed)", unit="batch", leave=False) as bar:
        Training(arm, seed, task, device, data).epoch(bar.update)


def main(
    seeds: int,
    epochs: int,
    device: str,
    out: Path,
    arms: list[str] | None = None,
    task: TaskConfig | None = None,
) -> int:
    task = task or TaskConfig()
    arms = resolve_arms(arms)
    target = torch.device(device)
    data = tuple(
        (x.to(target), y.to(target))
        for x, y in (
            make_task(task, task.train, seed=1, noise=task.label_noise),
            make_task(task, task.test, seed=2, noise=0.0),
        )
    )
    warm_up(arms[0], seeds, task, target, data)
    runs = []
    with tqdm(total=len(arms) * seeds * epochs, desc="demo", unit="epoch") as progress:
        for seed in range(seeds):
            runs += train_interleaved(arms, seed, epochs, task, target, data, progress)
    summary = demo_report.summarize(runs)
    print(demo_report.report(summary))
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "task": asdict(task),
        "epochs": epochs,
        "seeds": seeds,
        "device": device,
        "summary": summary,
        "paper": demo_report.PAPER,
        "runs": [asdict(r) for r in runs],
        "environment": collect(),
    }
    write_json(out / "results.json", result)
    save_plot(lambda path: demo_report.plot(runs, path), out / "learning_curves.png", "demo")
    return 0
