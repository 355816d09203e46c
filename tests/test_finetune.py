"""The fine-tuning command: its generated data, its encoding, and a tiny end-to-end run."""

from __future__ import annotations

import json
import re

import pytest
import torch

from superpositional.apps import finetune
from superpositional.apps.cli import main as cli


@pytest.fixture(autouse=True)
def _needs_transformers():
    pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")


def test_generated_problems_are_gsm8k_format_and_correct():
    for record in finetune.generate_problems(300, seed=7):
        assert set(record) == {"question", "answer"}
        steps, final = record["answer"].rsplit("\n#### ", 1)
        # Every step "a op b = c" is right, and the last result is the final answer.
        results = []
        for a, op, b, c in re.findall(r"(\d+) ([-+*/]) (\d+) = (\d+)", steps):
            assert eval(f"{a} {op} {b}") == int(c)
            results.append(c)
        assert results and results[-1] == final


def test_jsonl_loader_reads_records_and_names_bad_lines(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"question": "q1", "answer": "a #### 1"}\n\n{"question": "q2"}\n')
    with pytest.raises(ValueError, match=r"data\.jsonl:3"):
        finetune.load_jsonl(path)
    path.write_text('{"question": "q1", "answer": "a #### 1", "extra": 3}\n')
    assert finetune.load_jsonl(path) == [{"question": "q1", "answer": "a #### 1"}]


def test_loss_covers_the_answer_only():
    records = finetune.generate_problems(20, seed=1)
    tokenizer = finetune.train_tokenizer(records, vocab_size=300)
    ids, labels = finetune.encode(records[0], tokenizer, max_length=512)
    assert ids.shape == labels.shape
    answer = labels[labels != -100]
    assert answer[-1] == tokenizer.eos_token_id
    prompt_length = int((labels == -100).sum())
    assert tokenizer.decode(ids[:prompt_length], skip_special_tokens=True).startswith("Question:")
    assert "####" in tokenizer.decode(answer, skip_special_tokens=True)


def test_tiny_run_writes_the_table_and_results(tmp_path, capsys):
    status = cli(
        [
            "finetune",
            "--examples",
            "40",
            "--eval-examples",
            "8",
            "--generate",
            "2",
            "--warmup",
            "8",
            "--arms",
            "adamw",
            "sp-adamw-0.5",
            "lambda=2,coverage=all,perturbation=preconditioned",
            "--out",
            str(tmp_path),
        ]
    )
    assert status == 0
    assert "mean train loss" in capsys.readouterr().out
    result = json.loads((tmp_path / "finetune.json").read_text())
    assert set(result["results"]) == {
        "adamw",
        "sp-adamw-0.5",
        "lambda=2,coverage=all,perturbation=preconditioned",
    }
    for run in result["results"].values():
        assert len(run["losses"]) == 40 and run["eval_loss"] > 0
    # Same initial weights and data order: the first step's loss is identical for every arm.
    first = [run["losses"][0] for run in result["results"].values()]
    assert first[1] == pytest.approx(first[0], rel=1e-6) and first[2] == pytest.approx(first[0], rel=1e-6)


def test_unknown_arm_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="unknown arms"):
        cli(["finetune", "--arms", "sgd-9", "--out", str(tmp_path)])


def test_a_grid_cell_is_an_arm_with_its_options():
    make = finetune.optimizer_factory("lambda=10,coverage=all,perturbation=preconditioned")
    optimizer = make([torch.nn.Parameter(torch.zeros(3))], 3e-4)
    options = optimizer.group_options(0)
    assert options["quantum_weight"] == 10.0 and options["lr"] == 3e-4 and options["weight_decay"] == 0.01
    assert (options["coverage"], options["perturbation"]) == ("all", "preconditioned")
    default = finetune.optimizer_factory("lambda=0.5")([torch.nn.Parameter(torch.zeros(3))], 1e-3)
    assert (default.group_options(0)["coverage"], default.group_options(0)["perturbation"]) == (
        "paper",
        "paper",
    )


@pytest.mark.parametrize(
    "arm",
    [
        "lambda=x",
        "lambda=1,coverage=most",
        "lambda=1,perturbation=pre",
        "lambda=1,flavour=a",
        "lambda=",
        "sgd-9",
    ],
)
def test_bad_arms_are_refused_before_training(arm, tmp_path):
    with pytest.raises(SystemExit, match="unknown arms"):
        cli(["finetune", "--arms", "adamw", arm, "--out", str(tmp_path)])
    assert not (tmp_path / "finetune.json").exists()
