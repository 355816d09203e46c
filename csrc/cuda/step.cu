// The fused step on the GPU: one thread per group of N consecutive elements
// (coverage "all"; for "paper" the groups only partition the work and just the
// first carries a circuit). Each thread reads its p, g, m, v once (16-byte
// loads where aligned), evaluates its circuit in registers on the start-of-step
// values, and writes p, m, v. One launch covers up to kTensorsPerLaunch tensors;
// no host synchronisation; the step counters and, optionally, the learning rate
// live in device memory, so the step can be captured in a CUDA graph.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

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

struct Hyper {
  double lr, beta1, beta2, eps, weight_decay, quantum_weight;
  const float* lr_device;
  bool maximize;
  bool skip_first;  // leave each tensor's first group to another launch (coverage "paper")
};

// What a launch computes per group: plain AdamW, or AdamW with the group's
// circuit as a product state or as a full statevector. Separate instantiations
// keep the plain pass free of the circuits' registers.
enum Circuits : int { kNone = 0, kProductState = 1, kStatevector = 2 };

template <class P>
using MathOf = std::conditional_t<std::is_same_v<P, double>, double, float>;

template <class P>
__device__ __forceinline__ MathOf<P> to_math(P x) {
  if constexpr (std::is_same_v<P, __nv_bfloat16>) {
    return __bfloat162float(x);
  } else if constexpr (std::is_same_v<P, __half>) {
    return __half2float(x);
  } else {
    return x;
  }
}

template <class P>
__device__ __forceinline__ P from_math(MathOf<P> x) {
  if constexpr (std::is_same_v<P, __nv_bfloat16>) {
    return __float2bfloat16_rn(x);
  } else if constexpr (std::is_same_v<P, __half>) {
    return __float2half_rn(x);
  } else {
    return x;
  }
}

// Loads `count` (<= N) values starting at src, as the math type; the rest read 0.
// A full group whose bytes are a multiple of 16 (or 8) and aligned moves as
// 16-byte (8-byte) vectors.
template <class P, int N>
__device__ __forceinline__ void load_group(const P* __restrict__ src, int count, bool aligned, MathOf<P>* dst) {
  constexpr int kBytes = N * static_cast<int>(sizeof(P));
  if (count == N && aligned) {
    if constexpr (kBytes % 16 == 0) {
      alignas(16) P raw[N];
#pragma unroll
      for (int i = 0; i < kBytes / 16; ++i)
        reinterpret_cast<uint4*>(raw)[i] = __ldg(reinterpret_cast<const uint4*>(src) + i);
#pragma unroll
      for (int k = 0; k < N; ++k) dst[k] = to_math<P>(raw[k]);
      return;
    } else if constexpr (kBytes % 8 == 0) {
      alignas(16) P raw[N];
#pragma unroll
      for (int i = 0; i < kBytes / 8; ++i)
        reinterpret_cast<uint2*>(raw)[i] = __ldg(reinterpret_cast<const uint2*>(src) + i);
#pragma unroll
      for (int k = 0; k < N; ++k) dst[k] = to_math<P>(raw[k]);
      return;
    }
  }
#pragma unroll
  for (int k = 0; k < N; ++k) dst[k] = k < count ? to_math<P>(src[k]) : MathOf<P>(0);
}

template <class P, int N>
__device__ __forceinline__ void store_group(P* __restrict__ dst, int count, bool aligned, const MathOf<P>* src) {
  constexpr int kBytes = N * static_cast<int>(sizeof(P));
  if (count == N && aligned) {
    if constexpr (kBytes % 16 == 0 || kBytes % 8 == 0) {
      alignas(16) P raw[N];
#pragma unroll
      for (int k = 0; k < N; ++k) raw[k] = from_math<P>(src[k]);
      if constexpr (kBytes % 16 == 0) {
#pragma unroll
        for (int i = 0; i < kBytes / 16; ++i) reinterpret_cast<uint4*>(dst)[i] = reinterpret_cast<const uint4*>(raw)[i];
      } else {
#pragma unroll
        for (int i = 0; i < kBytes / 8; ++i) reinterpret_cast<uint2*>(dst)[i] = reinterpret_cast<const uint2*>(raw)[i];
      }
      return;
    }
  }
#pragma unroll
  for (int k = 0; k < N; ++k)
    if (k < count) dst[k] = from_math<P>(src[k]);
}

__device__ __forceinline__ bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

// Per-tensor constants of this step, in the math type S (torch's fused AdamW
// also computes its bias corrections on the device from the step tensor).
template <class S>
struct TensorConstants {
  S decay, one_minus_beta1, beta2, one_minus_beta2, step_size, bias_correction2_sqrt, eps, lr_lambda, grad_sign;
};

template <class S>
__device__ TensorConstants<S> constants(const Hyper& h, const float* step) {
  const S t = static_cast<S>(*step + 1.0f);
  const S lr = h.lr_device != nullptr ? static_cast<S>(*h.lr_device) : static_cast<S>(h.lr);
  TensorConstants<S> c;
  c.decay = S(1) - lr * static_cast<S>(h.weight_decay);
  c.one_minus_beta1 = S(1) - static_cast<S>(h.beta1);
  c.beta2 = static_cast<S>(h.beta2);
  c.one_minus_beta2 = S(1) - static_cast<S>(h.beta2);
  c.step_size = lr / (S(1) - pow(static_cast<S>(h.beta1), t));
  c.bias_correction2_sqrt = sqrt(S(1) - pow(static_cast<S>(h.beta2), t));
  c.eps = static_cast<S>(h.eps);
  c.lr_lambda = lr * static_cast<S>(h.quantum_weight);
  c.grad_sign = h.maximize ? S(-1) : S(1);
  return c;
}

template <class P, int N, int kCircuits>
__global__ void __launch_bounds__(kThreads) step_kernel(const Program* __restrict__ program, const Launch launch,
                                                        const Hyper h) {
  using S = MathOf<P>;
  using Ops = ScalarOps<S>;
  const std::int64_t total = launch.first_unit[launch.n_tensors];
  int tensor = -1;
  TensorConstants<S> c{};
  for (std::int64_t unit = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; unit < total;
       unit += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    if (tensor < 0 || unit >= launch.first_unit[tensor + 1] || unit < launch.first_unit[tensor]) {
      int lo = 0, hi = launch.n_tensors - 1;  // the tensor whose units contain `unit`
      while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (launch.first_unit[mid] <= unit) lo = mid; else hi = mid - 1;
      }
      tensor = lo;
      c = constants<S>(h, launch.tensors[tensor].step);
    }
    const StepTensor& t = launch.tensors[tensor];
    const std::int64_t local = unit - launch.first_unit[tensor];
    if (h.skip_first && local == 0) continue;
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
    P* p = static_cast<P*>(t.param) + offset;
    const P* g = static_cast<const P*>(t.grad) + offset;
    S* m = static_cast<S*>(t.exp_avg) + offset;
    S* v = static_cast<S*>(t.exp_avg_sq) + offset;
    const bool aligned = aligned16(p) && aligned16(g) && aligned16(m) && aligned16(v);
    S pv[N], gv[N], mv[N], vv[N], e[N];
    load_group<P, N>(p, count, aligned, pv);
    load_group<P, N>(g, count, aligned, gv);
    load_group<S, N>(m, count, aligned, mv);
    load_group<S, N>(v, count, aligned, vv);
#pragma unroll
    for (int k = 0; k < N; ++k) gv[k] *= c.grad_sign;
    if constexpr (kCircuits == kProductState) {
      product_expectations<Ops, N>(*program, pv, gv, e);
    } else if constexpr (kCircuits == kStatevector) {
      State<Ops, N> st;
      run_state<Ops, N>(*program, pv, gv, st);
      state_expectations<Ops, N>(*program, st, e);
    }
#pragma unroll
    for (int k = 0; k < N; ++k) {
      // torch's order: p *= 1 - lr wd; m.lerp_(g, 1 - b1); v = v b2 + (1 - b2) g^2;
      // p -= step_size m / (sqrt(v) / sqrt(bc2) + eps); then - lr lam e g.
      mv[k] = mv[k] + c.one_minus_beta1 * (gv[k] - mv[k]);
      vv[k] = c.beta2 * vv[k] + c.one_minus_beta2 * (gv[k] * gv[k]);
      const S denom = sqrt(vv[k]) / c.bias_correction2_sqrt + c.eps;
      S updated = pv[k] * c.decay - c.step_size * (mv[k] / denom);
      if constexpr (kCircuits != kNone) updated = updated - c.lr_lambda * e[k] * gv[k];
      pv[k] = updated;
    }
    store_group<P, N>(p, count, aligned, pv);
    store_group<S, N>(m, count, aligned, mv);
    store_group<S, N>(v, count, aligned, vv);
  }
}

// Runs after the step kernel on the same stream, so every thread above saw the old count.
__global__ void increment_steps(const Launch launch) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < launch.n_tensors) *launch.tensors[i].step += 1.0f;
}

// The units (groups) of each tensor: per-row groups where N does not divide the
// rows of coverage "all", else N-element slices of the flattened tensor.
template <int N>
Launch make_launch(const StepParams& p, int first, int count, bool first_groups_only) {
  Launch launch;
  launch.n_tensors = count;
  launch.first_unit[0] = 0;
  for (int i = 0; i < count; ++i) {
    const StepTensor& t = p.tensors[first + i];
    launch.tensors[i] = t;
    const bool split = p.coverage == Coverage::kAll && t.numel > 0 && t.row_length % N != 0;
    launch.rows_split[i] = split && !first_groups_only;
    std::int64_t units = t.numel == 0 ? 0
                         : split      ? (t.numel / t.row_length) * ((t.row_length + N - 1) / N)
                                      : (t.numel + N - 1) / N;
    if (first_groups_only) units = units > 0 ? 1 : 0;
    launch.first_unit[i + 1] = launch.first_unit[i] + units;
  }
  return launch;
}

template <class P, int N, int kCircuits>
void launch_step(const StepParams& p, const Launch& launch, bool skip_first) {
  const std::int64_t total = launch.first_unit[launch.n_tensors];
  if (total == 0) return;
  const Hyper h{p.lr, p.beta1, p.beta2, p.eps, p.weight_decay, p.quantum_weight, p.lr_device, p.maximize,
                skip_first};
  step_kernel<P, N, kCircuits><<<grid_for(total), kThreads, 0, static_cast<cudaStream_t>(p.stream)>>>(
      p.program, launch, h);
  check(cudaGetLastError(), "step kernel launch");
}

template <class P, int N>
void launch_chunk(const StepParams& p, int first, int count) {
  const Launch launch = make_launch<N>(p, first, count, false);
  const bool quantum = p.quantum_weight != 0.0;
  auto with_circuits = [&](const Launch& l, bool skip_first) {
    if (p.product_only) {
      launch_step<P, N, kProductState>(p, l, skip_first);
    } else {
      launch_step<P, N, kStatevector>(p, l, skip_first);
    }
  };
  if (!quantum) {
    launch_step<P, N, kNone>(p, launch, false);
  } else if (p.coverage == Coverage::kAll) {
    with_circuits(launch, false);
  } else {
    // Coverage "paper": a plain pass over all but each tensor's first group,
    // and one circuit per tensor for the first groups. The two touch disjoint
    // elements; both read the step counter before it moves.
    launch_step<P, N, kNone>(p, launch, true);
    with_circuits(make_launch<N>(p, first, count, true), false);
  }
  const auto stream = static_cast<cudaStream_t>(p.stream);
  increment_steps<<<(count + 127) / 128, 128, 0, stream>>>(launch);
  check(cudaGetLastError(), "step counter launch");
}

template <class P, int N>
void launch_all(const StepParams& p) {
  for (int first = 0; first < p.n_tensors; first += kTensorsPerLaunch)
    launch_chunk<P, N>(p, first, std::min(kTensorsPerLaunch, p.n_tensors - first));
}

template <class P>
void launch_typed(const StepParams& p) {
  with_qubit_count(p.n_qubits, [&](auto n) { launch_all<P, decltype(n)::value>(p); });
}

}  // namespace

void step(const StepParams& p) {
  switch (p.dtype) {
    case ParamType::kFloat32: return launch_typed<float>(p);
    case ParamType::kFloat64: return launch_typed<double>(p);
    case ParamType::kBFloat16: return launch_typed<__nv_bfloat16>(p);
    case ParamType::kFloat16: return launch_typed<__half>(p);
  }
}

}  // namespace sp::cuda
