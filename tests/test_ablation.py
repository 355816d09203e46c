"""``python -m superpositional ablation``: the grid, its paired statistics and its outputs."""

from __future__ import annotations

import json
import math

import pytest

from superpositional.apps import ablation, cli


def test_the_grid_is_fixed_and_has_every_cell_once():
    arms = ablation.grid(ablation.LAMBDAS)
    assert arms[0].quantum_weight == 0 and arms[0].name == ablation.BASELINE
    cells = {(a.quantum_weight, a.coverage, a.perturbation) for a in arms[1:]}
    assert len(cells) == len(arms) - 1 == 5 * 2 * 2
    assert {a.quantum_weight for a in arms} == {0.0, 0.1, 0.5, 2.0, 10.0, 50.0}
    assert len({a.name for a in arms}) == len(arms)


def test_paired_difference_is_students_interval():
    # differences 1, 2, 3: mean 2, standard deviation 1, t(0.975, 2) = 4.303
    d = ablation.paired_difference([11.0, 12.0, 13.0], [10.0, 10.0, 10.0])
    half = 4.303 / math.sqrt(3)
    assert d["mean"] == pytest.approx(2.0)
    assert d["low"] == pytest.approx(2.0 - half) and d["high"] == pytest.approx(2.0 + half)
    one = ablation.paired_difference([1.0], [0.5])
    assert one == {"mean": 0.5, "low": None, "high": None}
    assert ablation.t_quantile_975(1) == pytest.approx(12.706)
    assert ablation.t_quantile_975(1000) == pytest.approx(1.96)


@pytest.mark.parametrize(
    ("low", "high", "word"),
    [(0.1, 0.5, "better"), (-0.5, -0.1, "worse"), (-0.1, 0.1, "no change"), (None, None, "?")],
)
def test_verdict_reads_the_interval(low, high, word):
    assert ablation.verdict({"mean": 0.0, "low": low, "high": high}) == word


def test_quick_command_writes_the_grid_table_and_plot(tmp_path, capsys):
    assert cli.main(["ablation", "--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "perturbation" in printed and "acc - AdamW, 95% CI" in printed and "baseline" in printed
    result = json.loads((tmp_path / "ablation.json").read_text())
    assert result["grid"]["lambdas"] == [0.0, *ablation.QUICK_LAMBDAS]
    assert result["seeds"] == 1 and result["epochs"] == 1 and result["quick"]
    expected = 1 + len(ablation.QUICK_LAMBDAS) * len(ablation.COVERAGES) * len(ablation.PERTURBATIONS)
    assert len(result["summary"]) == len(result["runs"]) == expected
    cells = {(r["quantum_weight"], r["coverage"], r["perturbation"]) for r in result["summary"][1:]}
    assert cells == {
        (lam, coverage, perturbation)
        for lam in ablation.QUICK_LAMBDAS
        for coverage in ablation.COVERAGES
        for perturbation in ablation.PERTURBATIONS
    }
    for run in result["runs"]:
        assert len(run["accuracy"]) == 1 and 0.0 <= run["accuracy"][0] <= 1.0
    baseline = result["summary"][0]
    assert baseline["arm"] == ablation.BASELINE and baseline["accuracy_difference"]["mean"] == 0.0
    png = tmp_path / "ablation.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
