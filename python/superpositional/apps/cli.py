"""The command line: ``python -m superpositional {demo,ablation,finetune,validate,bench,info}``.

Building the parser imports no application and not torch: each command imports its own when it runs,
so that ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path

from .arm_names import ALIASES, DEMO_ARMS, FINETUNE_ARMS
from .benchmarks import arguments as benchmark_arguments
from .output import busy_note

# The commands that keep OpenMP teams busy for minutes: on a busy machine they run with passive
# OpenMP threads (bench/busy.py: 0.5-0.8 ms a probe iteration instead of 100+ ms under load).
HEAVY = ("demo", "ablation", "finetune", "bench")


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's, but never breaking a line inside a hyphenated name (an arm like sp-adamw-all-0.5)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False, break_long_words=False)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="superpositional",
        description="Superpositional Gradient Descent for PyTorch",
        formatter_class=_HelpFormatter,
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="{demo,ablation,finetune,validate,bench,info}"
    )

    demo = commands.add_parser(
        "demo",
        formatter_class=_HelpFormatter,
        help="the paper's synthetic experiment: Adam vs SuperpositionalAdamW",
    )
    demo.add_argument("--seeds", type=int, default=None, help="seeds per arm (default 3; --full: 5)")
    demo.add_argument("--epochs", type=int, default=None, help="epochs per run (default 12; --full: 20)")
    demo.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("demo-results"),
        help="folder for results.json and learning_curves.png (default demo-results)",
    )
    demo.add_argument(
        "--arms",
        nargs="+",
        default=None,
        metavar="ARM",
        help=f"arms to train: {', '.join(DEMO_ARMS)} (default: all; sp-adamw-L is SuperpositionalAdamW "
        f"with lambda L; old names {', '.join(ALIASES)} still work)",
    )
    demo.add_argument("--full", action="store_true", help="the full budget: 5 seeds, 20 epochs")

    ablation = commands.add_parser(
        "ablation",
        formatter_class=_HelpFormatter,
        help="where the circuit term changes training: lambda x coverage x perturbation on the demo's task",
    )
    ablation.add_argument("--seeds", type=int, default=None, help="seeds per arm (default 5; --quick: 1)")
    ablation.add_argument("--epochs", type=int, default=None, help="epochs per run (default 12; --quick: 1)")
    ablation.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ablation.add_argument(
        "--out",
        type=Path,
        default=Path("ablation-results"),
        help="folder for ablation.json and ablation.png (default ablation-results)",
    )
    ablation.add_argument(
        "--quick", action="store_true", help="a smoke run: 2 lambdas, a small task, 1 seed, 1 epoch"
    )

    finetune = commands.add_parser(
        "finetune",
        formatter_class=_HelpFormatter,
        help="the paper's LLM fine-tuning: AdamW vs SuperpositionalAdamW",
    )
    finetune.add_argument(
        "--model",
        default="tiny",
        help="a Hugging Face name or path, or a preset initialised here: tiny, small, medium",
    )
    finetune.add_argument(
        "--data", type=Path, default=None, help="GSM8K-format JSONL (default: generated problems)"
    )
    finetune.add_argument(
        "--arms",
        nargs="+",
        default=list(FINETUNE_ARMS[:3]),
        metavar="ARM",
        help=f"optimizers to compare: {', '.join(FINETUNE_ARMS)}, or an ablation grid cell "
        "lambda=L,coverage=paper|all,perturbation=paper|preconditioned (default: "
        f"{' '.join(FINETUNE_ARMS[:3])}; sp-adamw-L is SuperpositionalAdamW with lambda L; old names "
        f"{', '.join(ALIASES)} still work)",
    )
    finetune.add_argument(
        "--examples", type=int, default=2000, help="training problems, one epoch (default 2000)"
    )
    finetune.add_argument("--eval-examples", type=int, default=200, help="held-out problems (default 200)")
    finetune.add_argument("--generate", type=int, default=50, help="held-out problems answered by generation")
    finetune.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate (default: Table III's 2e-5 for pretrained models, 1e-3 for presets)",
    )
    finetune.add_argument(
        "--warmup",
        type=int,
        default=500,
        help="warm-up steps (default 500, Table III's; a run of fewer than 4x as many steps warms up "
        "over its first quarter)",
    )
    finetune.add_argument("--max-length", type=int, default=256, help="tokens per example")
    finetune.add_argument("--seed", type=int, default=0)
    finetune.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    finetune.add_argument(
        "--out",
        type=Path,
        default=Path("finetune-results"),
        help="folder for finetune.json and finetune.png (default finetune-results)",
    )

    validate = commands.add_parser(
        "validate", formatter_class=_HelpFormatter, help="check every built backend against Qiskit Aer"
    )
    validate.add_argument("--circuits", type=int, default=1000, help="random circuits (default 1000)")
    validate.add_argument("--batch", type=int, default=8, help="input rows per circuit (default 8)")
    validate.add_argument("--seed", type=int, default=None, help="random seed (default: fresh)")
    validate.add_argument(
        "--backends", nargs="+", default=None, help="backends to check (default: all built)"
    )
    validate.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")

    bench = commands.add_parser(
        "bench",
        formatter_class=_HelpFormatter,
        help="benchmarks: ratios against peers measured in the same run",
    )
    bench.add_argument("--kernels", action="store_true", help="batched simulation, circuits per second")
    bench.add_argument("--step", action="store_true", help="optimizer step time against torch's AdamW")
    benchmark_arguments.add_arguments(bench, Path("bench-results"))

    commands.add_parser(
        "info", formatter_class=_HelpFormatter, help="the build, its backends and this machine"
    )
    return parser


def passive_rerun(command: str, environ: dict[str, str]) -> dict[str, str] | None:
    """The environment to run a heavy command again with passive OpenMP threads on a busy machine,
    or None (an idle machine, a light command, or a policy the user chose). libgomp reads
    OMP_WAIT_POLICY only when it loads (with torch, before any of this runs), hence a new process;
    idle, spinning threads are faster (0.3 against 1.1 ms a probe iteration), so only when busy."""
    if command not in HEAVY or "OMP_WAIT_POLICY" in environ or busy_note() is None:
        return None
    return {**environ, "OMP_WAIT_POLICY": "PASSIVE"}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    environ = passive_rerun(args.command, dict(os.environ)) if argv is None else None
    if environ is not None:  # a real command line (not a call from Python) starts over
        print(
            "note: the machine is busy: running with OMP_WAIT_POLICY=PASSIVE (set it to choose)",
            file=sys.stderr,
        )
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, "-m", "superpositional", *sys.argv[1:]], environ)
    if args.command in HEAVY and (note := busy_note()) is not None:
        print(note, file=sys.stderr)
    if args.command == "demo":
        from . import demo

        seeds = args.seeds or (5 if args.full else 3)
        epochs = args.epochs or (20 if args.full else 12)
        if seeds < 1 or epochs < 1:
            raise SystemExit("demo: --seeds and --epochs must be positive")
        return demo.main(seeds, epochs, args.device, args.out, args.arms)
    if args.command == "ablation":
        from . import ablation

        seeds = args.seeds or (1 if args.quick else 5)
        epochs = args.epochs or (1 if args.quick else 12)
        if seeds < 1 or epochs < 1:
            raise SystemExit("ablation: --seeds and --epochs must be positive")
        return ablation.main(seeds, epochs, args.device, args.out, quick=args.quick)
    if args.command == "finetune":
        from . import finetune

        lr = args.lr if args.lr is not None else (1e-3 if args.model in finetune.PRESETS else 2e-5)
        return finetune.main(
            args.model,
            args.data,
            args.arms,
            args.examples,
            args.eval_examples,
            args.generate,
            lr,
            args.warmup,
            args.max_length,
            args.seed,
            args.device,
            args.out,
        )
    if args.command == "validate":
        from . import validate

        if args.circuits < 1 or args.batch < 1:
            raise SystemExit("validate: --circuits and --batch must be positive")
        return validate.main(args.circuits, args.batch, args.seed, args.backends, args.json)
    if args.command == "bench":
        run_all = not (args.kernels or args.step)
        status = 0
        for name in benchmark_arguments.BENCHMARKS:
            if run_all or getattr(args, name):
                status |= benchmark_arguments.run(name, args)
        return status
    from . import info

    return info.main()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
