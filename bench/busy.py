"""The cost of a busy machine: a small training probe, idle and under background load.

Each iteration of the probe is one step of a small MLP (64-64-10, batch 32) with SuperpositionalAdamW
(coverage "all", entangled(4)) and one ``sp.simulate`` of 16,384 entangled(4) circuits. It runs in a
fresh process per configuration (the OpenMP wait policy is read when the runtime loads), with the
default policy and with ``OMP_WAIT_POLICY=PASSIVE``, while this script runs, then stops, a background
load: none, two busy-loop processes, or two torch processes whose OpenMP threads run elementwise ops.
The median time per iteration of each is printed and written, with the machine's load averages, to
``--out``/busy.json. ``--demo`` also times the demo command for one seed and one epoch of one arm
(``python -m superpositional demo --seeds 1 --epochs 1 --arms sgd-all-0.5``, warm-up included, wall
time), as a user would run it. ``--python LABEL=PATH`` times another installation (e.g. an earlier build's
venv) in the same run; results name interpreters by their labels, never their paths.

    python bench/busy.py --out bench/results [--python before=OTHER_VENV/bin/python ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

from superpositional.apps.benchmarks.common import provenance
from superpositional.apps.output import format_table, write_json

from commit import export_commit

PROBE = """
import sys, time, torch, superpositional as sp
iterations = int(sys.argv[1])
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.GELU(), torch.nn.Linear(64, 10))
circuit = sp.circuits.entangled(4)
opt = sp.SuperpositionalAdamW(model.parameters(), coverage="all", circuit=circuit)
theta, g = torch.rand(16384, 4), torch.rand(16384, 4)
x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))
times = []
for _ in range(iterations):
    start = time.perf_counter()
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    sp.simulate(circuit, theta, g)
    times.append(time.perf_counter() - start)
times.sort()
print(times[len(times) // 2])
"""

LOADS = {
    "idle": None,
    "2 busy loops": "while True: pass",
    "2 torch processes": "import torch\nx = torch.rand(1 << 18)\nwhile True:\n    x.sin_(); x.cos_()",
}
POLICIES = {"default": {}, "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"}}


def _probe(python: str, policy: dict[str, str], iterations: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | policy
    done = subprocess.run(
        [python, "-c", PROBE, str(iterations)], env=env, capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        raise RuntimeError(f"the probe failed under {python}: {done.stderr[-1000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def _demo(python: str, policy: dict[str, str], out: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | policy
    command = ["-m", "superpositional", "demo", "--seeds", "1", "--epochs", "1", "--arms", "sgd-all-0.5"]
    start = time.perf_counter()
    done = subprocess.run(
        [python, *command, "--out", str(out)], env=env, capture_output=True, text=True, timeout=3600
    )
    if done.returncode != 0:
        raise RuntimeError(f"the demo failed under {python}: {done.stderr[-1000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--demo", action="store_true", help="also time one demo epoch")
    parser.add_argument(
        "--python", action="append", default=[], help="LABEL=PATH of another interpreter to time too"
    )
    args = parser.parse_args()
    pythons = {"this checkout": sys.executable}
    for given in args.python:
        label, _, path = given.partition("=")
        if not path:
            parser.error(f"--python takes LABEL=PATH, got {given!r}")
        pythons[label] = path
    results = []
    bar = tqdm(total=len(LOADS) * len(POLICIES) * len(pythons) * (2 if args.demo else 1), unit="run")
    for load, code in LOADS.items():
        background = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2)] if code else []
        try:
            time.sleep(2 if code else 0)  # let the load settle
            for label, python in pythons.items():
                for policy, env in POLICIES.items():
                    seconds = _probe(python, env, args.iterations)
                    bar.update()
                    record = {
                        "load": load,
                        "interpreter": label,
                        "policy": policy,
                        "ms_per_iteration": 1e3 * seconds,
                        "loadavg": os.getloadavg(),
                    }
                    if args.demo:
                        record["demo_seconds"] = _demo(python, env, args.out / "busy-demo")
                        bar.update()
                    results.append(record)
        finally:
            for process in background:
                process.kill()
                process.wait()
    bar.close()
    header = ["load", "interpreter", *POLICIES]
    if args.demo:
        header += [f"demo, {p}" for p in POLICIES]
    rows = []
    for load in LOADS:
        for label in pythons:
            cells = {r["policy"]: r for r in results if r["load"] == load and r["interpreter"] == label}
            row = [load, label, *(f"{cells[p]['ms_per_iteration']:.3f} ms" for p in POLICIES)]
            if args.demo:
                row += [f"{cells[p]['demo_seconds']:.1f} s" for p in POLICIES]
            rows.append(row)
    print(f"median time per probe iteration ({args.iterations} iterations, {os.cpu_count()} CPUs)")
    print(format_table(header, rows))
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "busy.json", {"benchmark": "busy", **provenance(), "results": results})
    print(f"wrote {args.out / 'busy.json'}")


if __name__ == "__main__":
    export_commit()
    main()
