"""Timing, provenance and table helpers shared by the benchmarks."""

from __future__ import annotations

import argparse
import datetime
import os
from collections.abc import Callable
from pathlib import Path

from superpositional import __version__

from ..info import collect
from ..output import format_table, save_plot, write_json

__all__ = [
    "COMMIT_VARIABLE",
    "format_table",
    "provenance",
    "run_label",
    "si",
    "significant",
    "write_results",
]

COMMIT_VARIABLE = "SUPERPOSITIONAL_COMMIT"


def write_results(
    data: dict, args: argparse.Namespace, name: str, plot: Callable[[dict, Path], None]
) -> None:
    """Write ``<name>[-<device>].json`` and, unless ``--no-plot``, the PNG beside it into ``args.out``."""
    stem = name if args.device == "cpu" else f"{name}-{args.device}"
    write_json(args.out / f"{stem}.json", data)
    if not args.no_plot:
        save_plot(lambda path: plot(data, path), args.out / f"{stem}.png", "bench")


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


def significant(value: float) -> str:
    """3 significant digits, whole numbers from 100 up (no exponent): a slow row's GB/s never reads
    "0", a ratio below 1 never "0x", and a slow step's microseconds never "1.2e+03"."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def run_label(data: dict) -> str:
    """What was measured: the commit, or the package version where the commit is unknown (an
    installed package has no repository to ask)."""
    commit = data.get("commit", "unknown")
    return f"commit {commit}" if commit != "unknown" else f"superpositional {data['version']}"
