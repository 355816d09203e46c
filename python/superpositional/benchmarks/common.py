"""Timing, provenance and table helpers shared by the benchmarks."""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from .._table import format_table
from ..info import collect

__all__ = [
    "add_shared_arguments",
    "format_table",
    "git_commit",
    "median_seconds",
    "provenance",
    "si",
    "write_results",
]


def add_shared_arguments(parser: argparse.ArgumentParser, default_out: Path) -> None:
    """Options every benchmark takes."""
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to run (default cpu)")
    parser.add_argument("--out", type=Path, default=default_out, help="folder for the JSON and PNG results")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")


def write_results(
    data: dict, args: argparse.Namespace, name: str, plot: Callable[[dict, Path], None]
) -> None:
    """Write ``<name>[-<device>].json`` and, unless ``--no-plot``, the PNG beside it into ``args.out``."""
    args.out.mkdir(parents=True, exist_ok=True)
    stem = name if args.device == "cpu" else f"{name}-{args.device}"
    (args.out / f"{stem}.json").write_text(json.dumps(data, indent=2))
    print(f"wrote {args.out / f'{stem}.json'}")
    if args.no_plot:
        return
    try:
        plot(data, args.out / f"{stem}.png")
        print(f"wrote {args.out / f'{stem}.png'}")
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'superpositional[bench]')")


def median_seconds(
    fn: Callable[[], object], *, min_reps: int = 3, min_time: float = 0.5, max_reps: int = 50, warmup: int = 1
) -> float:
    """Median wall time of ``fn`` over at least ``min_reps`` calls and ``min_time`` seconds."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < min_time and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def git_commit(path: Path | None = None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=path or Path.cwd(),
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=path or Path.cwd(),
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip() or "unknown"
    return commit + ("+dirty" if dirty.stdout.strip() else "")


def provenance() -> dict:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "environment": collect(),
    }


def si(value: float | None) -> str:
    """3 significant digits in engineering notation, '-' for missing values."""
    if value is None:
        return "-"
    return f"{value:.2e}"
