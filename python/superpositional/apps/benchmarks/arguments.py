"""The benchmarks' command-line options, apart from the benchmarks: building a parser (``--help``,
or ``python -m superpositional info``) imports nothing a benchmark needs to run."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from ..output import busy_note

__all__ = ["BENCHMARKS", "add_arguments", "main"]

BENCHMARKS = ("kernels", "step")


def add_arguments(
    parser: argparse.ArgumentParser, default_out: Path, which: tuple[str, ...] = BENCHMARKS
) -> None:
    """The options every benchmark takes, and those of each benchmark in ``which``."""
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to run (default cpu)")
    parser.add_argument(
        "--out",
        type=Path,
        default=default_out,
        help=f"folder for the JSON and PNG results (default {default_out})",
    )
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    if "kernels" in which:
        parser.add_argument(
            "--aer-max", type=int, default=None, help="largest batch given to Aer (default 1e4; quick 1e2)"
        )
    if "step" in which:
        parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds per size (default 9)")
        parser.add_argument(
            "--max-log2", type=int, default=None, help="largest size, as log2 of the parameter count"
        )
        # Literal choices: building the parser must not import the benchmark (see the docstring).
        parser.add_argument(
            "--workloads",
            nargs="+",
            choices=["single", "llama"],
            default=None,
            help="single: one [2^k/1024, 1024] tensor swept over k; llama: a Llama-like list of 219 "
            "tensors (374 M parameters; scaled down on the CPU and with --quick); default both",
        )
        parser.add_argument(
            "--dtypes",
            nargs="+",
            choices=["float32", "float64", "bfloat16", "float16"],
            default=None,
            help="parameter dtypes of every workload (default: float32 for the single sweep, every dtype "
            "at its largest size, float32 and bfloat16 for the list)",
        )


def run(name: str, args: argparse.Namespace) -> int:
    """Run benchmark ``name`` with parsed ``args``."""
    module = importlib.import_module(f"{__package__}.{name}")
    return module.execute(args)


def main(name: str, argv: list[str] | None = None, default_out: Path = Path("bench-results")) -> int:
    """One benchmark as its own command (``bench/kernels.py``, ``bench/step.py``)."""
    module = importlib.import_module(f"{__package__}.{name}")
    parser = argparse.ArgumentParser(description=(module.__doc__ or name).splitlines()[0])
    add_arguments(parser, default_out, (name,))
    args = parser.parse_args(argv)
    if (note := busy_note()) is not None:
        print(note, file=sys.stderr)
    return run(name, args)
