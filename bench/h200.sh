#!/usr/bin/env bash
# One session on the lent H200 (see the device tool's README): build there, test, sanitize, validate
# against Aer and benchmark:  bash bench/h200.sh all  (about 7 minutes), or the stages separately:
# bash bench/h200.sh build-test  /  bash bench/h200.sh bench  /  bash bench/h200.sh sanitize [PYTEST_K]
# / bash bench/h200.sh profile [DTYPE]  (Nsight Compute on the step kernels)
# The paper's experiments on the GPU (each stage fits one 10-minute device call):
# bash bench/h200.sh demo  /  [ARMS="..."] [LR=...] bash bench/h200.sh finetune MODEL SEED...
# Simulation kernels (issue 17): bash bench/h200.sh simulate  (the simulate and gradient tests, then
# bench/statevector.py with the cuStateVec rows when .whl/custatevec/ carries custatevec-cu13,
# bench/adjoint.py and bench/simulate_overhead.py), then bash bench/h200.sh simulate-check (the four
# compute-sanitizer tools on tests/sanitize_cuda.py and validate against Aer, with Qiskit in .whl/);
# bash bench/h200.sh adjoint  (the product adjoint's tests, memcheck, ncu and bench/adjoint.py).
# Logs and results go to $OUT; Qiskit (and for finetune, transformers) come as carried wheels in
# .whl/ and .whl/ft/, installed once per machine into /tmp/site. The device's copy of the tree has no
# .git: pass SUPERPOSITIONAL_COMMIT=<commit> in the command so the results record it.
set -uo pipefail
OUT=${OUT:-/tmp/h200-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
log="$OUT/$1.log"
exec > >(tee -a "$log") 2>&1

if ls .whl/*.whl >/dev/null 2>&1 && [ ! -e /tmp/site/.installed ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl $(ls .whl/ft/*.whl 2>/dev/null) && touch /tmp/site/.installed
fi
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site

# The tests of tests/test_cuda.py that the simulation stages run.
SIMULATE_TESTS="simulate or statevector or presets or every_output or attention or adjoint or backward or product"

# compute-sanitizer with each named tool on tests/sanitize_cuda.py (every CUDA entry point once),
# without the caching allocator so that each tensor is its own allocation.
sanitize_entry_points() {
  for tool in "$@"; do
    echo "== compute-sanitizer --tool $tool: tests/sanitize_cuda.py"
    PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool "$tool" --error-exitcode 3 \
      python3 tests/sanitize_cuda.py 2>&1 | tail -3
    echo "$tool exit: ${PIPESTATUS[0]}"
  done
}

case "$1" in
  all)
    bash "$0" build-test
    tests=$?
    bash "$0" bench
    exit $tests
    ;;
  build-test)
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv
    time python3 -m pip install --no-build-isolation --no-deps -q . || exit 1
    python3 -m superpositional info
    python3 -m pytest -q tests/test_cuda.py tests/test_kernel.py tests/test_optimizer.py tests/test_simulate.py \
      tests/test_aer.py tests/test_compile.py tests/test_optimizer_errors.py tests/test_gradients.py \
      tests/test_nn.py tests/test_finetune.py tests/test_compile_step.py tests/test_drop_in.py \
      tests/test_torch_contract.py tests/test_state_dtype.py tests/test_stochastic_rounding.py \
      tests/test_reliability.py -p no:cacheprovider || status=1
    sanitize_entry_points memcheck racecheck initcheck synccheck
    exit ${status:-0}
    ;;
  sanitize)
    # compute-sanitizer on the GPU test suite, about 7 minutes for all of tests/test_cuda.py;
    # an optional second argument is a pytest -k expression that runs part of it. Without the caching
    # allocator every tensor is its own cudaMalloc, so memcheck sees an access past a tensor's end
    # instead of inside a pooled segment; the two tests that need the pool (graph capture, allocation
    # counts) run unsanitized in build-test. The other tools on the short program that calls every
    # entry point once (each tool is far slower than memcheck per launch).
    python3 -m pip install --no-build-isolation --no-deps -q . || exit 1
    select="not graph_replay and not allocates_nothing${2:+ and ($2)}"
    echo "== compute-sanitizer --tool memcheck: pytest tests/test_cuda.py -k '$select'"
    PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck --error-exitcode 3 --leak-check no \
      python3 -m pytest -v -p no:cacheprovider tests/test_cuda.py -k "$select" >"$OUT/memcheck.log" 2>&1
    echo "memcheck exit: $? ($(grep -c PASSED "$OUT/memcheck.log") tests passed)"
    grep -E "^=========|passed|failed" "$OUT/memcheck.log" | tail -4
    sanitize_entry_points racecheck initcheck synccheck
    ;;
  profile)
    # Nsight Compute on the step kernels (bench/profile_step.py): the third launch of each, with the
    # clocks left alone (METHOD.md). A second argument names the dtype (default float32).
    ncu --clock-control none --kernel-name regex:'step_kernel|adam' --launch-skip 2 --launch-count 3 \
      --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
      --section InstructionStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
      python3 bench/profile_step.py --dtype "${2:-float32}" >"$OUT/ncu-${2:-float32}.txt" 2>&1
    echo "ncu exit: $?"
    grep -E "step_kernel|adam|Duration|DRAM Throughput|Memory Throughput|Compute \(SM\)|Registers Per|Achieved Occupancy|Issue Slots Busy|Executed Ipc A|No Eligible|Warp Cycles Per Issued" \
      "$OUT/ncu-${2:-float32}.txt" | cut -c1-150
    ;;
  bench)
    python3 -m superpositional validate --circuits 1000 --backends cuda --json "$OUT/validate-cuda.json" \
      2>/dev/null | tail -8
    python3 bench/kernels.py --device cuda --out "$OUT" 2>/dev/null
    python3 bench/step.py --device cuda --out "$OUT" 2>/dev/null
    ;;
  simulate)
    time python3 -m pip install --no-build-isolation --no-deps -q . || exit 1
    if ls .whl/custatevec/*.whl >/dev/null 2>&1; then
      python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/custatevec .whl/custatevec/*.whl
      export PYTHONPATH="/tmp/custatevec:${PYTHONPATH:-}"
    fi
    python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py \
      -k "$SIMULATE_TESTS" || status=1
    # Progress bars and any traceback go to bench.err.
    python3 bench/statevector.py --device cuda --out "$OUT" 2>>"$OUT/bench.err"
    python3 bench/adjoint.py --device cuda --out "$OUT" 2>>"$OUT/bench.err"
    python3 bench/simulate_overhead.py --device cuda --out "$OUT" 2>>"$OUT/bench.err"
    exit ${status:-0}
    ;;
  adjoint)
    # The product adjoint alone: its tests, memcheck, Nsight Compute on attention(4)'s backward, and
    # bench/adjoint.py.
    time python3 -m pip install --no-build-isolation --no-deps -q . || exit 1
    python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py \
      -k "$SIMULATE_TESTS" || status=1
    sanitize_entry_points memcheck
    ncu --clock-control none --kernel-name regex:backward_kernel --launch-skip 2 --launch-count 1 \
      --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
      --section InstructionStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
      --section SchedulerStats --section SourceCounters \
      python3 bench/profile_simulate.py --qubits 4 --backward >"$OUT/ncu-backward-attention4.txt" 2>&1
    echo "ncu exit: $?"
    python3 bench/adjoint.py --device cuda --out "$OUT" 2>>"$OUT/bench.err"
    exit ${status:-0}
    ;;
  simulate-check)
    # The checks that do not fit beside simulate's benchmarks in one call: the four
    # compute-sanitizer tools (synccheck matters: the statevector kernel's shuffles name the whole
    # warp) and Aer against the CUDA backend (Qiskit's wheels in .whl/).
    python3 -c "import superpositional" 2>/dev/null || python3 -m pip install --no-build-isolation --no-deps -q . \
      || exit 1
    sanitize_entry_points memcheck synccheck initcheck racecheck
    python3 -m superpositional validate --circuits 1000 --backends cuda --json "$OUT/validate-cuda.json" \
      2>/dev/null | tail -8
    ;;
  demo)
    python3 -m superpositional demo --full --device cuda --out "$OUT/demo-cuda" 2>&1 | grep -v "it/s]$"
    ;;
  finetune)
    model=$2
    shift 2
    for seed in "$@"; do
      # ARMS (space-separated, e.g. ablation cells lambda=10,coverage=all,perturbation=preconditioned)
      # and LR override the arms and the learning rate.
      # shellcheck disable=SC2086
      python3 -m superpositional finetune --model "$model" --device cuda --seed "$seed" ${LR:+--lr "$LR"} \
        --arms ${ARMS:-adamw sgd-0.1 sgd-0.5 sgd-all-0.5} --out "$OUT/finetune-$model-$seed${LR:+-lr$LR}" 2>&1 \
        | grep -v "step/s]$"
    done
    ;;
esac
