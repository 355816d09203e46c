"""What the commands show a user (issue 18): table headers, arm names, the noise caveat on timings,
the plots' legends and titles, the help texts, and that ``--help`` answers without importing torch.

No timing is asserted: the timings here are made up, to check what is printed about them.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
import torch

from superpositional.apps import arm_names, demo, demo_report, finetune, finetune_report, output, timings
from superpositional.apps.benchmarks import kernels, step_report
from superpositional.apps.cli import _parser
from superpositional.apps.cli import main as cli


@pytest.fixture
def idle(monkeypatch):
    """The machine reads as idle, so that only the spreads decide whether a caveat is printed."""
    monkeypatch.setattr(output, "machine_load", lambda: (0.1, 2))
    monkeypatch.setattr(timings, "machine_load", lambda: (0.1, 2))


def _run(arm: str, seed: int, accuracy: list[float], seconds: list[float]) -> demo.Run:
    return demo.Run(arm, seed, accuracy=accuracy, epoch_seconds=seconds, loss=[0.5] * len(accuracy))


def _runs(noisy: bool) -> list[demo.Run]:
    """Two seeds of Adam and one other arm, three epochs; epoch times steady, or all over the place."""
    steady, wild = [2.0, 2.02, 1.99], [1.0, 3.0, 2.0]
    return [
        _run(arm, seed, [0.6 + 0.1 * i + 0.01 * seed + 0.02 * (arm != "adam") for i in range(3)], seconds)
        for seed in range(2)
        for arm, seconds in (("adam", steady), ("sp-adamw-0.5", wild if noisy else [2.4, 2.43, 2.41]))
    ]


def _caution(text: str) -> str:
    """The caution paragraph that ends a report, its line breaks read as spaces ("" if none)."""
    return " ".join(text[text.index("caution:") :].split()) if "caution:" in text else ""


# -- arm names ------------------------------------------------------------------------------------


def test_arms_are_named_after_their_optimizer_and_old_names_still_work():
    assert tuple(demo.ARMS) == arm_names.DEMO_ARMS
    assert tuple(finetune.ARMS) == arm_names.FINETUNE_ARMS
    for name in (*demo.ARMS, *finetune.ARMS):
        assert not name.startswith("sgd"), name  # "sgd" reads as plain SGD
    assert demo.resolve_arms(["adam", "sgd-0.5", "sp-adamw-0.5"]) == ["adam", "sp-adamw-0.5"]
    for old, new in arm_names.ALIASES.items():
        assert finetune.optimizer_factory(old) is finetune.ARMS[new]
    with pytest.raises(SystemExit, match="unknown arms"):
        demo.resolve_arms(["sgd-9"])


def test_the_help_lists_every_arm_and_the_default_folders():
    commands = _parser()._subparsers._group_actions[0].choices
    # As printed, with line breaks read as spaces (a name is never broken: see cli._HelpFormatter).
    demo_help, finetune_help, bench_help = (
        " ".join(commands[name].format_help().split()) for name in ("demo", "finetune", "bench")
    )
    for name in (*demo.ARMS, *arm_names.ALIASES):
        assert name in demo_help, name
    for name in (*finetune.ARMS, *arm_names.ALIASES, "lambda=L"):
        assert name in finetune_help, name
    assert "default demo-results" in demo_help and "default finetune-results" in finetune_help
    assert "default bench-results" in bench_help


def test_help_answers_without_importing_torch():
    # A fresh interpreter: here torch is long imported.
    check = textwrap.dedent(
        """
        import sys
        from superpositional.apps.cli import main
        for command in ("demo", "ablation", "finetune", "validate", "bench", "info"):
            try:
                main([command, "--help"])
            except SystemExit:
                pass
        assert "torch" not in sys.modules, "torch was imported to print --help"
        import superpositional as sp
        assert "torch" not in sys.modules, "import superpositional imported torch"
        """
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--arms" in done.stdout


def test_the_lazy_package_keeps_every_public_name():
    import superpositional as sp
    import superpositional.simulate  # binds the submodule's name on the package: the function stays

    assert callable(sp.simulate) and sp.simulate.__module__ == "superpositional.simulate"
    assert sp.SuperpositionalAdamW.__name__ == "SuperpositionalAdamW"
    assert sp.backends.available_backends() == sp.available_backends()
    assert set(sp.__all__) <= set(dir(sp))
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        sp.nothing_here  # noqa: B018


# -- the demo -------------------------------------------------------------------------------------


def test_demo_table_headers_are_unique(idle):
    assert len(set(demo_report.HEADER)) == len(demo_report.HEADER)
    text = demo_report.report(demo_report.summarize(_runs(noisy=False)))
    assert re.split(r"\s{2,}", text.splitlines()[0].strip()) == demo_report.HEADER
    assert "sp-adamw-0.5: SuperpositionalAdamW, lambda 0.5" in text  # which optimizer an arm is


def test_demo_time_ratios_are_paired_and_carry_their_spread(idle):
    summary = demo_report.summarize(_runs(noisy=False))
    ratio = summary["sp-adamw-0.5"]["time_vs_adam"]
    assert ratio["samples"] == 6  # 2 seeds x 3 epochs, each against Adam's epoch of the same round
    assert ratio["median"] == pytest.approx(1.2, rel=0.02)
    text = demo_report.report(summary)
    assert "sp-adamw-0.5: 1.20x ±" in text
    assert "caution" not in text


def test_demo_prints_a_caveat_when_its_timings_are_noise(idle, monkeypatch):
    text = demo_report.report(demo_report.summarize(_runs(noisy=True)))
    assert "caution: these epoch timings are not to be trusted" in _caution(text)
    assert "sp-adamw-0.5 s/epoch" in _caution(text)
    # Steady timings on a busy machine: a caveat too, naming the load.
    monkeypatch.setattr(timings, "machine_load", lambda: (5.0, 2))
    text = demo_report.report(demo_report.summarize(_runs(noisy=False)))
    assert "the machine is busy (load average 5.0 on 2 CPUs)" in _caution(text)


def test_the_runs_own_load_is_not_called_busy(idle, monkeypatch):
    # A demo alone on an idle 2-CPU machine ends with a load average near 2: its own threads.
    monkeypatch.setattr(timings, "machine_load", lambda: (2.3, 2))
    assert "caution" not in demo_report.report(demo_report.summarize(_runs(noisy=False)))


def test_interleaved_arms_learn_what_they_learn_alone():
    task = demo.TaskConfig(length=8, vocab=6, train=96, test=64)
    data = (demo.make_task(task, task.train, 1, 0.05), demo.make_task(task, task.test, 2, 0.0))
    arms = ["adam", "sp-adamw-0.5"]
    together = demo.train_interleaved(arms, 3, 2, task, torch.device("cpu"), data)
    for run in together:
        alone = demo.train_one(run.arm, 3, 2, task, torch.device("cpu"), data)
        assert run.loss == alone.loss and run.accuracy == alone.accuracy, run.arm


def test_the_learning_curves_tell_the_arms_apart():
    pytest.importorskip("matplotlib")
    fig = demo_report.figure(_runs(noisy=False))
    legends = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes]
    assert len(legends) == 2  # the curves, and each arm's difference to Adam
    curves, differences = legends
    assert {"adam", "sp-adamw-0.5", "90% test accuracy", "bars: ±1 std over 2 seeds"} <= set(curves)
    assert "sp-adamw-0.5 - adam" in differences and "adam (no difference)" in differences
    assert "bars: ±1 std over seeds" in differences
    assert fig.axes[0].get_title()


# -- finetune -------------------------------------------------------------------------------------


def test_finetune_table_headers_are_unique_and_the_plot_shows_differences():
    pytest.importorskip("matplotlib")
    assert len(set(finetune_report.HEADER)) == len(finetune_report.HEADER)
    losses = [2.0 - 0.01 * i for i in range(100)]
    results = {
        arm: {
            "losses": [x + shift for x in losses],
            "mean_loss": 1.5 + shift,
            "eval_loss": 1.4,
            "accuracy": None,
        }
        for arm, shift in (("adamw", 0.0), ("sp-adamw-0.1", 2e-6), ("sp-adamw-0.5", -2e-6))
    }
    fig = finetune_report.figure(results, "fine-tuning tiny: 100 steps")
    top, bottom = fig.axes
    assert top.get_title() == "fine-tuning tiny: 100 steps"
    labels = [t.get_text() for t in bottom.get_legend().get_texts()]
    assert labels[:2] == ["sp-adamw-0.1 - adamw", "sp-adamw-0.5 - adamw"]
    # The difference panel resolves what the loss panel cannot: 2e-6 apart.
    assert max(abs(y) for line in bottom.get_lines()[:2] for y in line.get_ydata()) == pytest.approx(2e-6)


def test_finetune_says_when_the_warmup_is_longer_than_the_run():
    assert finetune.warmup_steps(500, 40) == 10
    note = finetune.warmup_note(500, 40)
    assert note is not None and "--warmup 500" in note and "40 steps" in note and "over 10 steps" in note
    assert finetune.warmup_note(8, 40) is None


# -- the benchmarks -------------------------------------------------------------------------------


def _kernel_rows(seconds: list[float]) -> list[dict]:
    return [
        {
            "circuit": "paper(4)",
            "backend": backend,
            "batch": 1000,
            "seconds": sorted(seconds)[len(seconds) // 2] * factor,
            "seconds_all": [s * factor for s in seconds],
            "circuits_per_s": 1000 / (sorted(seconds)[len(seconds) // 2] * factor),
        }
        for backend, factor in (("cpu", 3.0), ("torch", 1.0))  # the kernel slower: a ratio below 1
    ]


def test_kernel_table_shows_spreads_small_ratios_and_a_caveat_for_noise(idle):
    calm = {"device": "cpu", "rounds": 5, "results": _kernel_rows([1e-3, 1.01e-3, 0.99e-3, 1e-3, 1.02e-3])}
    text = kernels.table(calm)
    row = text.splitlines()[3]  # after the title, the header and its rule
    assert row.split()[:2] == ["paper(4)", "1e+03"] and row.count("±") == 2
    assert row.endswith("0.333x")  # not "0x"
    assert "caution" not in text
    noisy = {"device": "cpu", "rounds": 5, "results": _kernel_rows([1e-3, 5e-3, 1e-3, 3e-3, 0.5e-3])}
    text = kernels.table(noisy)
    assert "caution: these kernel timings are not to be trusted" in _caution(text)
    assert "paper(4) 1e+03 cpu" in _caution(text)


def test_step_tables_show_spreads_and_a_caveat_for_noise(idle):
    def row(config: str, samples: list[float]) -> dict:
        return {
            "workload": "llama",
            "dtype": "float32",
            "log2_params": None,
            "params": 1000,
            "tensors": 2,
            "config": config,
            "kind": "peer" if config == "adamw fused" else "ours",
            "state_dtype": "float32",
            "amsgrad": False,
            "bytes_per_param": 28,
            "seconds": sorted(samples)[1],
            "seconds_all": samples,
            "gbytes_per_s": 0.0123,
            "copy_fraction": 0.5,
            "vs_adamw_fused": 1.0,
            "extra_bytes": None,
        }

    layout = {"llama": {"tensors": 2, "params": 1000, "dtypes": ["float32"]}}
    data = {"device": "cpu", "rounds": 3, "workloads": layout, "host": [], "compile": [], "skipped": []}
    calm = {**data, "results": [row("adamw fused", [1e-3, 1.01e-3, 1.02e-3]), row("ours", [2e-3] * 3)]}
    text = step_report.table(calm)
    assert "0.0123" in text and "caution" not in text
    noisy = {**data, "results": [row("adamw fused", [1e-3, 4e-3, 2e-3]), row("ours", [2e-3] * 3)]}
    text = step_report.table(noisy)
    assert "caution: these step timings are not to be trusted" in _caution(text)
    assert "adamw fused (llama float32)" in _caution(text)


def test_the_spread_and_its_threshold():
    calm = timings.summarize([1.0, 1.02, 0.98, 1.01, 0.99])
    assert calm.median == 1.0 and not calm.noisy and calm.spread_text().startswith("±")
    wild = timings.summarize([1.0, 2.0, 0.5, 1.5, 0.7])
    assert wild.noisy and wild.spread > timings.NOISY_SPREAD
    single = timings.summarize([1.0])
    assert single.spread is None and single.spread_text() == "±?" and not single.noisy


def test_old_demo_arm_names_on_the_command_line(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    task = demo.TaskConfig(length=8, vocab=6, train=64, test=32)
    assert demo.main(1, 1, "cpu", tmp_path, ["adam", "sgd-0.5"], task=task) == 0
    printed = capsys.readouterr().out
    assert "note: arm sgd-0.5 is now called sp-adamw-0.5" in printed
    assert "sp-adamw-0.5" in printed.split("note:")[-1]
    assert (tmp_path / "learning_curves.png").stat().st_size > 1000


def test_cli_demo_help_exits_cleanly():
    with pytest.raises(SystemExit) as done:
        cli(["demo", "--help"])
    assert done.value.code == 0
