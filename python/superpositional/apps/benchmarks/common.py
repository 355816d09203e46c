"""Timing, provenance and table helpers shared by the benchmarks."""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from superpositional import __version__

from ..info import collect
from ..output import format_table, save_plot, write_json

__all__ = ["COMMIT_VARIABLE", "format_table", "median_seconds", "provenance", "si", "write_results"]

COMMIT_VARIABLE = "SUPERPOSITIONAL_COMMIT"


def write_results(
    data: dict, args: argparse.Namespace, name: str, plot: Callable[[dict, Path], None]
) -> None:
    """Write ``<name>[-<device>].json`` and, unless ``--no-plot``, the PNG beside it into ``args.out``."""
    stem = name if args.device == "cpu" else f"{name}-{args.device}"
    write_json(args.out / f"{stem}.json", data)
    if not args.no_plot:
        save_plot(lambda path: plot(data, path), args.out / f"{stem}.png", "bench")


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


def provenance() -> dict:
    """When, what and where a benchmark ran. The commit comes from ``SUPERPOSITIONAL_COMMIT``
    (``bench/`` scripts set it from the checkout): an installed package has no repository to ask."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "version": __version__,
        "commit": os.environ.get(COMMIT_VARIABLE, "unknown"),
        "environment": collect(),
    }


def si(value: float | None) -> str:
    """3 significant digits in engineering notation, '-' for missing values."""
    if value is None:
        return "-"
    return f"{value:.2e}"
