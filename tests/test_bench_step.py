"""The step benchmark (``bench/step.py``) in quick mode on the CPU: what its JSON and tables hold.

Timings are never asserted (they depend on the machine and its load): only the workloads, the bytes
each row counts, the formatting, and that a configuration which cannot run is skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import re

import pytest
import torch

from superpositional.apps.benchmarks import arguments, step, step_compile, step_configs, step_report
from superpositional.apps.benchmarks.step_workloads import DTYPES, LLAMA, llama_shapes, numel
from superpositional.backends import available_backends

ROUNDS = 3  # what --quick runs


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[dict, str]:
    """One quick CPU run (a few seconds): its JSON and its tables."""
    out = tmp_path_factory.mktemp("bench-step")
    parser = argparse.ArgumentParser()
    arguments.add_arguments(parser, out, ("step",))
    args = parser.parse_args(["--quick", "--out", str(out)])
    assert step.execute(args) == 0
    data = json.loads((out / "step.json").read_text())
    return data, step_report.table(data)


def _rows(data: dict, workload: str, dtype: str) -> dict[str, dict]:
    return {r["config"]: r for r in data["results"] if r["workload"] == workload and r["dtype"] == dtype}


def test_the_json_holds_both_workloads_and_every_sample(quick):
    data, _ = quick
    assert set(data["workloads"]) == {"single", "llama"}
    llama = data["workloads"]["llama"]
    assert llama["scaled"] and llama["tensors"] == 21 and llama["dtypes"] == ["float32", "bfloat16"]
    assert {(r["workload"], r["dtype"]) for r in data["results"]} == {
        ("single", "float32"),
        ("single", "float64"),
        ("single", "bfloat16"),
        ("single", "float16"),
        ("llama", "float32"),
        ("llama", "bfloat16"),
    }
    assert {r["log2_params"] for r in data["results"] if r["dtype"] == "float32"} == {14, 16, None}
    # The other dtypes run at the largest size only: the bandwidth-by-dtype table.
    assert {r["log2_params"] for r in data["results"] if r["dtype"] == "float64"} == {16}
    for r in data["results"]:
        assert len(r["seconds_all"]) == ROUNDS and r["seconds"] > 0
        assert r["params"] == (2 ** r["log2_params"] if r["workload"] == "single" else llama["params"])
    for workload, dtype in {(r["workload"], r["dtype"]) for r in data["results"]}:
        rows = _rows(data, workload, dtype)
        assert rows[step_configs.PEER]["vs_adamw_fused"] == 1.0
        copy = next(r for r in rows.values() if r["kind"] == "copy")
        assert copy["copy_fraction"] == 1.0
    assert data["compile"] == []  # the torch.compile peer is a GPU row


def test_every_row_counts_the_bytes_of_its_storage_dtypes(quick):
    data, _ = quick
    for r in data["results"]:
        p = DTYPES[r["param_dtype"]].itemsize
        if r["kind"] == "copy":
            assert r["state_dtype"] is None and r["bytes_per_param"] == 2 * p
            continue
        s = DTYPES[r["state_dtype"]].itemsize
        assert r["bytes_per_param"] == 3 * p + (6 if r["amsgrad"] else 4) * s, r["config"]
        # torch keeps states in the parameter's dtype; ours in float32 for 16-bit parameters unless
        # asked for the parameter's dtype.
        sixteen = r["param_dtype"] in ("bfloat16", "float16")
        expected = "float32" if r["kind"] == "ours" and sixteen and "state=param" not in r["config"] else None
        assert r["state_dtype"] == (expected or r["param_dtype"]), r["config"]
    single32, single16 = _rows(data, "single", "float32"), _rows(data, "llama", "bfloat16")
    assert single32["adamw fused"]["bytes_per_param"] == 28
    assert single32["adamw fused amsgrad"]["bytes_per_param"] == 36
    assert single16["adamw fused"]["bytes_per_param"] == 14
    if "cpu" in available_backends():
        assert single32["ours all entangled(4) amsgrad"]["bytes_per_param"] == 36
        assert single16["ours paper paper(4)"]["bytes_per_param"] == 22
        assert single16["ours paper paper(4) state=param"]["bytes_per_param"] == 14
        assert single16["ours all entangled(4) state=param sr"]["bytes_per_param"] == 14


def test_bytes_per_param():
    assert step_configs.bytes_per_param(torch.bfloat16, torch.float32) == 22
    assert step_configs.bytes_per_param(torch.bfloat16, torch.bfloat16) == 14
    assert step_configs.bytes_per_param(torch.float32, torch.float32) == 28
    assert step_configs.bytes_per_param(torch.float32, torch.float32, amsgrad=True) == 36
    assert step_configs.bytes_per_param(torch.float64, None) == 16


def test_nothing_is_skipped_where_the_kernel_exists(quick):
    data, _ = quick
    if "cpu" in available_backends():
        assert data["skipped"] == []
        assert "ours all entangled(4) state=param sr" in _rows(data, "llama", "bfloat16")


def test_the_tables_never_print_zero_bandwidth(quick):
    _, text = quick
    assert re.search(r"(?<![\d.])0 GB/s", text) is None
    assert "nan" not in text.lower() and "e+0" not in text
    assert "Llama-like list, 21 tensors" in text and "host time per step" in text
    assert "effective bandwidth by parameter dtype" in text
    assert step_report.significant(0.000123) == "0.000123"
    assert step_report.significant(0.0456) == "0.0456"
    assert step_report.significant(12.345) == "12.3"
    assert step_report.significant(4321.4) == "4321"


def test_host_time_on_the_cpu_is_the_tiny_list(quick):
    data, _ = quick
    assert {h["list"] for h in data["host"]} == {"tiny"}  # the full list's CPU time is compute
    for h in data["host"]:
        assert h["tensors"] == 219 and h["params"] == 219 * 16
        assert len(h["seconds_all"]) == step.QUICK_HOST_CALLS["tiny"]
    peers = [h for h in data["host"] if h["config"] == step_configs.PEER]
    assert {h["dtype"] for h in peers} == {"float32", "bfloat16"}
    assert all(h["vs_adamw_fused"] == 1.0 for h in peers)


def test_titles_show_the_version_when_the_commit_is_unknown():
    assert step_report.run_label({"commit": "unknown", "version": "1.2.3"}) == "superpositional 1.2.3"
    assert step_report.run_label({"commit": "abc1234", "version": "1.2.3"}) == "commit abc1234"


def test_plan_full_size_on_the_gpu():
    cases, layout = step.plan("cuda", False, ["single", "llama"], None, None)
    assert len(llama_shapes(LLAMA)) == 219 and 373e6 < numel(llama_shapes(LLAMA)) < 375e6
    assert layout["llama"]["tensors"] == 219 and not layout["llama"]["scaled"]
    assert [c.dtype for c in cases if c.workload == "llama"] == ["float32", "bfloat16"]
    assert layout["single"]["log2_sizes"] == step.SIZES["cuda"]
    cpu_cases, cpu_layout = step.plan("cpu", False, ["llama"], ["bfloat16"], None)
    assert cpu_layout["llama"]["scaled"] and "single" not in cpu_layout
    assert [c.dtype for c in cpu_cases] == ["bfloat16"]
    names = [c.name for c in step_configs.configurations(cases[-1], "cuda")]
    assert step_configs.COMPILE not in names  # bfloat16: no torch.compile row
    names = [c.name for c in step_configs.configurations(cases[-2], "cuda")]
    assert step_configs.COMPILE not in names and names[0] == step_configs.PEER  # the list: no compile row
    single = next(c for c in cases if c.workload == "single" and c.dtype == "float32")
    assert step_configs.COMPILE in [c.name for c in step_configs.configurations(single, "cuda")]


def _fresh() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    shapes = [(3, 8), (5,)]
    return (
        [torch.randn(s, generator=generator) for s in shapes],
        [torch.randn(s, generator=generator) for s in shapes],
    )


def test_the_compile_peer_falls_back_and_never_raises(monkeypatch):
    def no_fullgraph(fn, fullgraph=False, **_):
        if fullgraph:
            raise RuntimeError("graph break")
        return fn  # eager: what matters here is the fallback, not the compiler

    monkeypatch.setattr(step_compile.torch, "compile", no_fullgraph)
    runner, params, info = step_compile.compiled_step(_fresh)
    assert info["mode"] == "default" and "fullgraph: RuntimeError: graph break" in info["error"]
    before = [p.clone() for p in params]
    runner()
    assert all(not torch.equal(a, b) for a, b in zip(before, params))
    if "cpu" in available_backends():  # the formula is ours: one step from the same start agrees
        ours = [torch.nn.Parameter(p) for p in _fresh()[0]]
        for p, g in zip(ours, _fresh()[1]):
            p.grad = g
        opt = step_configs.SuperpositionalAdamW(
            ours, coverage="all", circuit=step_compile.circuits.entangled(4), backend="cpu"
        )
        opt.step()
        assert max(float((a - b.detach()).abs().max()) for a, b in zip(before, ours)) < 1e-6

    def broken(fn, fullgraph=False, **_):
        raise RuntimeError(f"no compiler (fullgraph={fullgraph})")

    monkeypatch.setattr(step_compile.torch, "compile", broken)
    runner, params, info = step_compile.compiled_step(_fresh)
    assert runner is None and params == [] and info["mode"] is None
    assert "fullgraph=True" in info["error"] and "fullgraph=False" in info["error"]
