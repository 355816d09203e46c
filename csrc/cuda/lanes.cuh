// Several circuits per thread for the product kernels: the lane type Lanes<T, K>
// holds one value of K circuits, the way the CPU kernel's SIMD vectors do, and
// runs statevector.h's and adjoint.h's gate math unchanged.
//
// Why: a product program's kernels interpret the compiled program at run time.
// Nsight Compute on attention(4)'s backward (bench/results/profiles) counted 58
// warp instructions per circuit, of which only 16.6 were FP32 arithmetic; the
// rest load gates, branch on their kinds, select each angle's input and add each
// gradient. With K circuits in a thread that interpretation is paid once for K,
// and the K independent chains hide each other's latency (sincos above all).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "ops.cuh"
#include "rows.cuh"

namespace sp::cuda {

template <class T, int K>
struct Lanes {
  T x[K];
};

#define SP_LANES_BINARY(op)                                                                     \
  template <class T, int K>                                                                     \
  __device__ __forceinline__ Lanes<T, K> operator op(const Lanes<T, K>& a, const Lanes<T, K>& b) { \
    Lanes<T, K> r;                                                                              \
    _Pragma("unroll") for (int i = 0; i < K; ++i) r.x[i] = a.x[i] op b.x[i];                    \
    return r;                                                                                   \
  }                                                                                             \
  template <class T, int K>                                                                     \
  __device__ __forceinline__ Lanes<T, K> operator op(const Lanes<T, K>& a, T b) {               \
    Lanes<T, K> r;                                                                              \
    _Pragma("unroll") for (int i = 0; i < K; ++i) r.x[i] = a.x[i] op b;                         \
    return r;                                                                                   \
  }
SP_LANES_BINARY(+)
SP_LANES_BINARY(-)
SP_LANES_BINARY(*)
#undef SP_LANES_BINARY

template <class T, int K>
__device__ __forceinline__ Lanes<T, K> operator-(const Lanes<T, K>& a) {
  Lanes<T, K> r;
#pragma unroll
  for (int i = 0; i < K; ++i) r.x[i] = -a.x[i];
  return r;
}

// statevector.h's pick, element by element, so that no address is chosen.
template <class T, int K>
__device__ __forceinline__ Lanes<T, K> pick(bool c, const Lanes<T, K>& a, const Lanes<T, K>& b) {
  Lanes<T, K> r;
#pragma unroll
  for (int i = 0; i < K; ++i) r.x[i] = c ? a.x[i] : b.x[i];
  return r;
}

template <class T, int K>
struct LanesOps {
  using S = T;
  using V = Lanes<T, K>;
  static __device__ __forceinline__ V splat(S s) {
    V v;
#pragma unroll
    for (int i = 0; i < K; ++i) v.x[i] = s;
    return v;
  }
  static __device__ __forceinline__ void sincos(const V& a, V& s, V& c) {
#pragma unroll
    for (int i = 0; i < K; ++i) ScalarOps<T>::sincos(a.x[i], s.x[i], c.x[i]);
  }
};

// The gate math's operations for K circuits per thread: plain scalars for one.
template <class T, int K>
using LaneOps = std::conditional_t<K == 1, ScalarOps<T>, LanesOps<T, K>>;

// Circuit j's value in v.
template <class T>
__device__ __forceinline__ T& lane(T& v, int) {
  return v;
}

template <class T, int K>
__device__ __forceinline__ T& lane(Lanes<T, K>& v, int j) {
  return v.x[j];
}

template <class T>
__device__ __forceinline__ const T& lane(const T& v, int) {
  return v;
}

template <class T, int K>
__device__ __forceinline__ const T& lane(const Lanes<T, K>& v, int j) {
  return v.x[j];
}

// Circuits per thread of the product kernels. More than one pays while the K
// copies of a circuit's values stay in registers: small float32 programs.
template <class T, int N>
constexpr int product_circuits_per_thread() {
  return sizeof(T) == 4 && N <= 4 ? 2 : 1;
}

// The rows a thread takes: row j of thread t is (t / 32) * 32K + 32j + t % 32, so that
// each of the K loads of a warp reads 32 consecutive rows. Rows past the batch's end
// repeat its last row (computed, never stored).
template <int K>
struct LaneRows {
  std::int64_t row[K];
  bool valid[K];
  __device__ __forceinline__ LaneRows(std::int64_t thread_base, std::int64_t batch) {
#pragma unroll
    for (int j = 0; j < K; ++j) {
      const std::int64_t r = thread_base + 32 * j;
      valid[j] = r < batch;
      row[j] = valid[j] ? r : batch - 1;
    }
  }
};

// Row `rows.row[j]` of src into lane j of dst[0, N).
template <class T, int N, int K, class V>
__device__ __forceinline__ void load_lanes(const T* __restrict__ src, const LaneRows<K>& rows,
                                           const std::int64_t* stride, bool vector_rows, V* dst) {
#pragma unroll
  for (int j = 0; j < K; ++j) {
    T row[N];
    load_row<T, N>(src, rows.row[j], stride, vector_rows, row);
#pragma unroll
    for (int k = 0; k < N; ++k) lane(dst[k], j) = row[k];
  }
}

// Lane j of src[0, N) into row `rows.row[j]` of the contiguous dst, for the valid rows.
template <class T, int N, int K, class V>
__device__ __forceinline__ void store_lanes(T* __restrict__ dst, const LaneRows<K>& rows, bool vector_rows,
                                            const V* src) {
#pragma unroll
  for (int j = 0; j < K; ++j) {
    if (!rows.valid[j]) continue;
    T row[N];
#pragma unroll
    for (int k = 0; k < N; ++k) row[k] = lane(src[k], j);
    store_row<T, N>(dst, rows.row[j], vector_rows, row);
  }
}

}  // namespace sp::cuda
