// The fused step on the GPU: one thread per group of consecutive elements. The
// circuit launches use groups of N, the circuit's qubit count (coverage "all";
// for "paper" only each tensor's first group); the plain pass, which has no
// circuit, uses groups of 16 bytes of parameters. Each thread reads its p, g, m,
// v once (16- or 8-byte vector loads where aligned), evaluates its circuit in
// registers on the start-of-step values, and writes p, m, v, updated by
// adamw.h's element update (p rounded stochastically by rounding.h when the step
// asks for it). One launch covers up to kTensorsPerLaunch tensors; no host
// synchronisation; the step counters and, optionally, the learning rate live in
// device memory, so the step can be captured in a CUDA graph.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "../adamw.h"
#include "../rounding.h"
#include "../statevector.h"
#include "kernels.h"
#include "ops.cuh"

namespace sp::cuda {
namespace {

constexpr int kTensorsPerLaunch = 128;

// Passed by value as the kernel's parameters (CUDA >= 12.1 takes up to 32 KiB).
struct Launch {
  StepTensor tensors[kTensorsPerLaunch];
  std::int64_t first_unit[kTensorsPerLaunch + 1];  // prefix sums of the units (groups) per tensor
  bool rows_split[kTensorsPerLaunch];              // groups follow rows whose length N does not divide
  int n_tensors;
};

// What a launch computes per group: plain AdamW, or AdamW with the group's
// circuit as a product state or as a full statevector. Separate instantiations
// keep the plain pass free of the circuits' registers.
enum Circuits : int { kNone = 0, kProductState = 1, kStatevector = 2 };

// How a parameter type converts to and from its math type: the 16-bit types go
// through float, rounding to nearest even as torch does.
template <class P>
struct Storage {
  static __device__ __forceinline__ MathOf<P> to_math(P x) { return x; }
  static __device__ __forceinline__ P from_math(MathOf<P> x) { return x; }
};

template <>
struct Storage<__nv_bfloat16> {
  static __device__ __forceinline__ float to_math(__nv_bfloat16 x) { return __bfloat162float(x); }
  static __device__ __forceinline__ __nv_bfloat16 from_math(float x) { return __float2bfloat16_rn(x); }
};

template <>
struct Storage<__half> {
  static __device__ __forceinline__ float to_math(__half x) { return __half2float(x); }
  static __device__ __forceinline__ __half from_math(float x) { return __float2half_rn(x); }
};

// A full group of N P's as vectors of the widest width, 16 or 8 bytes, that
// divides it evenly (kCount 0 when neither does).
template <class P, int N>
struct GroupVectors {
  static constexpr int kBytes = (N * sizeof(P)) % 16 == 0 ? 16 : (N * sizeof(P)) % 8 == 0 ? 8 : 0;
  static constexpr int kCount = kBytes == 0 ? 0 : N * static_cast<int>(sizeof(P)) / kBytes;
  using Raw = std::conditional_t<kBytes == 16, uint4, uint2>;
};

// Loads `count` (<= N) values starting at src, as the math type; the rest read 0.
// A full group at aligned addresses moves as GroupVectors, through the read-only cache.
template <class P, int N>
__device__ __forceinline__ void load_group(const P* __restrict__ src, int count, bool aligned, MathOf<P>* dst) {
  using Vectors = GroupVectors<P, N>;
  using Raw = typename Vectors::Raw;
  if (Vectors::kCount > 0 && count == N && aligned) {
    alignas(16) P raw[N];
#pragma unroll
    for (int i = 0; i < Vectors::kCount; ++i)
      reinterpret_cast<Raw*>(raw)[i] = __ldg(reinterpret_cast<const Raw*>(src) + i);
#pragma unroll
    for (int k = 0; k < N; ++k) dst[k] = Storage<P>::to_math(raw[k]);
    return;
  }
#pragma unroll
  for (int k = 0; k < N; ++k) dst[k] = k < count ? Storage<P>::to_math(src[k]) : MathOf<P>(0);
}

// The inverse of load_group for the values [from, count): a whole aligned group
// (from 0, count N) as vectors, else element by element.
template <class P, int N>
__device__ __forceinline__ void store_group(P* __restrict__ dst, int from, int count, bool aligned,
                                            const MathOf<P>* src) {
  using Vectors = GroupVectors<P, N>;
  using Raw = typename Vectors::Raw;
  if (Vectors::kCount > 0 && from == 0 && count == N && aligned) {
    alignas(16) P raw[N];
#pragma unroll
    for (int k = 0; k < N; ++k) raw[k] = Storage<P>::from_math(src[k]);
#pragma unroll
    for (int i = 0; i < Vectors::kCount; ++i) reinterpret_cast<Raw*>(dst)[i] = reinterpret_cast<const Raw*>(raw)[i];
    return;
  }
#pragma unroll
  for (int k = 0; k < N; ++k)
    if (k >= from && k < count) dst[k] = Storage<P>::from_math(src[k]);
}

// The constants of one tensor's step (adamw.h), from the device step counter
// before this step's increment and the learning rate in device memory when
// given: read on the device, so the step needs no host synchronisation.
template <class S>
__device__ __forceinline__ AdamWConstants<S> tensor_constants(const AdamWHyper& hyper,
                                                              const float* __restrict__ lr_device,
                                                              const float* step) {
  const S lr = lr_device != nullptr ? static_cast<S>(*lr_device) : static_cast<S>(hyper.lr);
  return adamw_constants<S, S>(hyper, lr, static_cast<S>(*step + 1.0f));
}

// A 16-bit parameter's new values rounded stochastically to its format (so that
// store_group's round-to-nearest is then exact); the first at element `index`.
template <class P, int N>
__device__ __forceinline__ void round_group_stochastically(float* values, std::uint32_t key, std::int64_t index) {
#pragma unroll
  for (int k = 0; k < N; ++k) {
    const std::uint32_t r = rounding_bits(key, index + k);
    if constexpr (std::is_same_v<P, __nv_bfloat16>) {
      values[k] = round_bfloat16_stochastically(values[k], r);
    } else {
      values[k] = round_float16_stochastically(values[k], r);
    }
  }
}

// M: the storage type of the states (the math type, or a 16-bit P itself).
// skip: elements at the start of each tensor left to another launch (coverage "paper").
// kAmsgrad: each group also reads and writes its max_exp_avg_sq.
// kTerm: the circuit term's form (adamw.h): kNone exactly when there are no circuits.
template <class P, class M, int N, int kCircuits, bool kAmsgrad, Term kTerm>
__global__ void __launch_bounds__(kThreads) step_kernel(const Program* __restrict__ program, const Launch launch,
                                                        const AdamWHyper hyper, const float* __restrict__ lr_device,
                                                        std::int64_t skip) {
  using S = MathOf<P>;
  using Ops = ScalarOps<S>;
  const std::int64_t total = launch.first_unit[launch.n_tensors];
  constexpr bool kMayRound = !std::is_same_v<P, S>;  // 16-bit parameters
  const bool rounds = kMayRound && hyper.stochastic_rounding;
  int tensor = -1;
  AdamWConstants<S> c{};
  std::uint32_t rounding{};
  for (std::int64_t unit = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; unit < total;
       unit += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    if (tensor < 0 || unit >= launch.first_unit[tensor + 1] || unit < launch.first_unit[tensor]) {
      int lo = 0, hi = launch.n_tensors - 1;  // the tensor whose units contain `unit`
      while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (launch.first_unit[mid] <= unit) lo = mid; else hi = mid - 1;
      }
      tensor = lo;
      const StepTensor& entered = launch.tensors[tensor];
      c = tensor_constants<S>(hyper, lr_device, entered.step);
      if (rounds)
        rounding = rounding_key(hyper.rounding_seed, entered.rounding_stream,
                                static_cast<std::uint32_t>(*entered.step + 1.0f));
    }
    const StepTensor& t = launch.tensors[tensor];
    const std::int64_t local = unit - launch.first_unit[tensor];
    std::int64_t offset;
    int count;
    if (launch.rows_split[tensor]) {
      const std::int64_t per_row = (t.row_length + N - 1) / N;
      const std::int64_t r = local / per_row, k = local % per_row;
      offset = r * t.row_length + k * N;
      count = static_cast<int>(min(static_cast<std::int64_t>(N), t.row_length - k * N));
    } else {
      offset = local * N;
      count = static_cast<int>(min(static_cast<std::int64_t>(N), t.numel - offset));
    }
    // The elements before `skip` belong to another launch: only a plain pass skips (so the circuit
    // kernels keep their registers), and only in its first group or groups.
    int from = 0;
    if constexpr (kCircuits == kNone) {
      if (offset < skip) from = static_cast<int>(min(static_cast<std::int64_t>(count), skip - offset));
      if (from == count) continue;
    }
    P* p = static_cast<P*>(t.param) + offset;
    const P* g = static_cast<const P*>(t.grad) + offset;
    M* m = static_cast<M*>(t.exp_avg) + offset;
    M* v = static_cast<M*>(t.exp_avg_sq) + offset;
    M* v_max = kAmsgrad ? static_cast<M*>(t.max_exp_avg_sq) + offset : nullptr;
    const bool aligned =
        aligned16(p) && aligned16(g) && aligned16(m) && aligned16(v) && (!kAmsgrad || aligned16(v_max));
    S pv[N], gv[N], mv[N], vv[N], wv[N], e[N];
    load_group<P, N>(p, count, aligned, pv);
    load_group<P, N>(g, count, aligned, gv);
    load_group<M, N>(m, count, aligned, mv);
    load_group<M, N>(v, count, aligned, vv);
    if constexpr (kAmsgrad) load_group<M, N>(v_max, count, aligned, wv);
#pragma unroll
    for (int k = 0; k < N; ++k) gv[k] *= c.grad_sign;
    if constexpr (kCircuits == kProductState) {
      product_expectations<Ops, N>(*program, pv, gv, e);
    } else if constexpr (kCircuits == kStatevector) {
      State<Ops, N> st;
      run_state<Ops, N>(*program, pv, gv, st);
      state_expectations<Ops, N>(*program, st, e);
    }
    static_assert((kCircuits == kNone) == (kTerm == Term::kNone), "a circuit term exactly with circuits");
#pragma unroll
    for (int k = 0; k < N; ++k)
      adamw_update<kTerm, kAmsgrad>(pv[k], mv[k], vv[k], wv[k], gv[k], kTerm != Term::kNone ? e[k] : S(0), c);
    if constexpr (kMayRound) {
      if (rounds) round_group_stochastically<P, N>(pv, rounding, offset);
    }
    store_group<P, N>(p, from, count, aligned, pv);
    store_group<M, N>(m, from, count, aligned, mv);
    store_group<M, N>(v, from, count, aligned, vv);
    if constexpr (kAmsgrad) store_group<M, N>(v_max, from, count, aligned, wv);
  }
}

// Runs after the step kernel on the same stream, so every thread above saw the old count.
__global__ void increment_steps(const Launch launch) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < launch.n_tensors) *launch.tensors[i].step += 1.0f;
}

// How a launch divides each tensor into units (groups of N elements).
enum class Units {
  kSlices,         // N-element slices of the flattened tensor
  kCircuitGroups,  // coverage "all": slices, or per-row groups where N does not divide the rows
  kFirstGroups,    // coverage "paper": the first slice only
};

template <int N>
Launch make_launch(const StepParams& p, int first, int count, Units units) {
  Launch launch;
  launch.n_tensors = count;
  launch.first_unit[0] = 0;
  for (int i = 0; i < count; ++i) {
    const StepTensor& t = p.tensors[first + i];
    launch.tensors[i] = t;
    const bool split = units == Units::kCircuitGroups && t.numel > 0 && t.row_length % N != 0;
    launch.rows_split[i] = split;
    std::int64_t n_units = t.numel == 0 ? 0
                           : split      ? (t.numel / t.row_length) * ((t.row_length + N - 1) / N)
                                        : (t.numel + N - 1) / N;
    if (units == Units::kFirstGroups) n_units = n_units > 0 ? 1 : 0;
    launch.first_unit[i + 1] = launch.first_unit[i] + n_units;
  }
  return launch;
}

template <class P, class M, int N, int kCircuits>
void launch_step(const StepParams& p, const Launch& launch, std::int64_t skip) {
  const std::int64_t total = launch.first_unit[launch.n_tensors];
  if (total == 0) return;
  const auto stream = static_cast<cudaStream_t>(p.stream);
  auto go = [&](auto amsgrad, auto term) {
    step_kernel<P, M, N, kCircuits, decltype(amsgrad)::value, decltype(term)::value>
        <<<grid_for(total), kThreads, 0, stream>>>(p.device_program, launch, p.hyper, p.lr_device, skip);
  };
  // The product-state kernels get the one term a step asks for (its registers decide the kernel's
  // occupancy); the statevector kernels, long past that point, compute either.
  auto with_term = [&](auto amsgrad) {
    if constexpr (kCircuits == kNone) {
      go(amsgrad, std::integral_constant<Term, Term::kNone>{});
    } else if constexpr (kCircuits == kStatevector) {
      go(amsgrad, std::integral_constant<Term, Term::kEither>{});
    } else if (p.hyper.preconditioned) {
      go(amsgrad, std::integral_constant<Term, Term::kPreconditioned>{});
    } else {
      go(amsgrad, std::integral_constant<Term, Term::kPaper>{});
    }
  };
  if (p.hyper.amsgrad) {
    with_term(std::true_type{});
  } else {
    with_term(std::false_type{});
  }
  check(cudaGetLastError(), "step kernel launch");
}

// The plain pass's group width, whatever the circuit's: 16 bytes of parameters
// (8 bfloat16 or float16 values, whose float32 states then move as two 16-byte
// vectors), and at least 4 elements, so that float32 and float64 threads move as
// much as a circuit group of 4.
template <class P>
constexpr int kPlainWidth = sizeof(P) >= 4 ? 4 : static_cast<int>(16 / sizeof(P));

template <class P, class M, int N>
void launch_chunk(const StepParams& p, int first, int count) {
  constexpr int kWidth = kPlainWidth<P>;
  const Launch slices = make_launch<kWidth>(p, first, count, Units::kSlices);
  auto with_circuits = [&](const Launch& l) {
    if (p.program->product_only) {
      launch_step<P, M, N, kProductState>(p, l, 0);
    } else {
      launch_step<P, M, N, kStatevector>(p, l, 0);
    }
  };
  if (p.hyper.quantum_weight == 0.0) {
    launch_step<P, M, kWidth, kNone>(p, slices, 0);
  } else if (p.coverage == Coverage::kAll) {
    with_circuits(make_launch<N>(p, first, count, Units::kCircuitGroups));
  } else {
    // Coverage "paper": a plain pass over all but each tensor's first N elements,
    // and one circuit per tensor on those. The two touch disjoint elements; both
    // read the step counter before it moves.
    launch_step<P, M, kWidth, kNone>(p, slices, N);
    with_circuits(make_launch<N>(p, first, count, Units::kFirstGroups));
  }
  const auto stream = static_cast<cudaStream_t>(p.stream);
  increment_steps<<<(count + 127) / 128, 128, 0, stream>>>(slices);
  check(cudaGetLastError(), "step counter launch");
}

template <class P, class M, int N>
void launch_all(const StepParams& p) {
  for (int first = 0; first < p.n_tensors; first += kTensorsPerLaunch)
    launch_chunk<P, M, N>(p, first, std::min(kTensorsPerLaunch, p.n_tensors - first));
}

}  // namespace

// P the parameters' storage type; a 16-bit P keeps its states in float or in P itself.
template <class P>
void step_typed(const StepParams& p) {
  with_qubit_count(p.program->n_qubits, [&](auto n) {
    constexpr int N = decltype(n)::value;
    if constexpr (!std::is_same_v<P, MathOf<P>>) {
      if (p.state_type != ParamType::kFloat32) return launch_all<P, P, N>(p);
    }
    launch_all<P, MathOf<P>, N>(p);
  });
}

}  // namespace sp::cuda
