"""Training with a Qiskit target against the same training on the simulator alone.

The same run twice: a small MLP trained for ``--steps`` optimizer steps with ``SuperpositionalAdamW``,
once with ``backend="cpu"`` (the kernel simulates every step's circuits) and once with
``backend=sp.QiskitTarget(<fake device>, refresh_every=5)``, whose jobs run on the fake device (in
qiskit-ibm-runtime's local mode, in the low-priority worker process) while training goes on.
Acceptance: the target's run takes at most 1.5x the simulator's. The runs alternate (simulator,
target, simulator, ...) after a warm-up, and the ratio is the median over ``--repeats`` pairs of
the target's time over the simulator's run just before it, so that other work on the machine
weighs on both sides of each ratio alike. The first (cold) target run, which also starts the
worker process and transpiles the circuit, is reported separately.

    python bench/qiskit_target.py [--steps 100] [--refresh-every 5] [--backend fake_manila] [--quick]

Prints a table and writes ``bench/results/qiskit_target.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

import superpositional as sp
from superpositional import QiskitTargetWarning
from superpositional.apps.benchmarks.common import format_table, provenance

from commit import export_commit

ACCEPTANCE = 1.5
CONFIGS = {  # name: (circuit, coverage)
    "paper(4), coverage=paper": (sp.circuits.paper(4), "paper"),
    "entangled(4), coverage=all": (sp.circuits.entangled(4), "all"),
}


def _model(width: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(width, width), torch.nn.GELU(), torch.nn.Linear(width, width), torch.nn.GELU(),
        torch.nn.Linear(width, 10),
    )  # fmt: skip


def train(backend, circuit, coverage, args, bar) -> dict:
    """One run of ``args.steps`` training steps; its wall time and what the target contributed."""
    model = _model(args.width)
    x = torch.randn(args.batch, args.width, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 10, (args.batch,), generator=torch.Generator().manual_seed(2))
    opt = sp.SuperpositionalAdamW(model.parameters(), circuit=circuit, coverage=coverage, backend=backend)
    used, slowest = 0, 0.0
    start = time.perf_counter()
    for _ in range(args.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        slowest = max(slowest, time.perf_counter() - t0)
        dispatcher = opt.__dict__.get("_dispatchers", {}).get(0)
        used += dispatcher is not None and dispatcher.usable() is not None
        bar.update()
    seconds = time.perf_counter() - start
    out = {"seconds": seconds, "slowest_step_s": slowest}
    if dispatcher is not None:
        for evaluation in dispatcher.pending:  # the run is over: its jobs must not delay the next run's
            evaluation.launch.abandon()
        received = dispatcher.latest
        out.update(
            steps_using_device_results=int(used),
            jobs_in_flight_at_end=len(dispatcher.pending),
            latest_result_from_step=received.step if received is not None else None,
            failures=dispatcher.failures,
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--refresh-every", type=int, default=5)
    parser.add_argument(
        "--max-staleness", type=int, default=50, help="steps (default 50: about a job's latency)"
    )
    parser.add_argument("--backend", default="fake_manila", help="a fake device or aer_simulator")
    parser.add_argument("--width", type=int, default=1024, help="MLP width (default 1024)")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5, help="pairs of runs (default 5)")
    parser.add_argument(
        "--torch-threads", type=int, default=None, help="training threads (default: torch's, every core)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 steps, 1 repeat")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.width, args.batch = 20, 1, 256, 256
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)  # e.g. leave a core to the stand-in device
    args.torch_threads = torch.get_num_threads()
    target = sp.QiskitTarget(
        args.backend, refresh_every=args.refresh_every, max_staleness=args.max_staleness, seed=0
    )
    runs_per_config = 2 + 2 * args.repeats  # warm-up simulator, cold target, then the repeats
    bar = tqdm(total=len(CONFIGS) * runs_per_config * args.steps, unit="step", desc="training")
    rows, results = [], []
    with warnings.catch_warnings():
        # A late result is expected in a fast loop; the JSON counts the steps that used one.
        warnings.simplefilter("ignore", QiskitTargetWarning)
        for name, (circuit, coverage) in CONFIGS.items():
            train("cpu", circuit, coverage, args, bar)  # warm-up: allocator, threads, kernel
            cold = train(target, circuit, coverage, args, bar)
            simulator, device = [], []
            for _ in range(args.repeats):
                simulator.append(train("cpu", circuit, coverage, args, bar))
                device.append(train(target, circuit, coverage, args, bar))
            sim_s = statistics.median(r["seconds"] for r in simulator)
            dev_s = statistics.median(r["seconds"] for r in device)
            ratio = statistics.median(d["seconds"] / s["seconds"] for s, d in zip(simulator, device))
            results.append(
                dict(config=name, simulator=simulator, target=device, cold_target=cold, ratio=ratio)
            )
            used = statistics.median(r["steps_using_device_results"] for r in device)
            rows.append(
                [
                    name,
                    f"{sim_s:.3f}",
                    f"{dev_s:.3f}",
                    f"{ratio:.2f}x",
                    f"{cold['seconds']:.3f}",
                    f"{used:.0f}/{args.steps}",
                    "yes" if ratio <= ACCEPTANCE else "NO",
                ]
            )
    bar.close()
    header = [
        "config",
        "simulator s",
        "target s",
        "paired ratio",
        "cold target s",
        "steps w/ device e",
        "<= 1.5x",
    ]
    print(
        f"\n{args.steps} steps, refresh every {args.refresh_every}, max staleness {args.max_staleness}, "
        f"on {target.name} (local mode), {args.torch_threads} training threads\n"
    )
    print(format_table(header, rows))
    data = {
        **provenance(),
        "load_average_at_end": os.getloadavg(),  # other work on the machine shows here
        # No output folder in the record: results are committed, machine paths are not.
        "settings": {**{k: v for k, v in vars(args).items() if k != "out"}, "target": repr(target)},
        "acceptance_ratio": ACCEPTANCE,
        "results": results,
        "passed": all(r["ratio"] <= ACCEPTANCE for r in results),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "qiskit_target.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    print(f"wrote {path}")
    return 0 if data["passed"] else 1


if __name__ == "__main__":
    export_commit()
    sys.exit(main())
