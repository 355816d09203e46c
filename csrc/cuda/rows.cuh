// Rows of a [batch, n] matrix in and out of a thread's registers: one row per
// circuit. Rows that are contiguous, 16-byte aligned and a multiple of 16 bytes
// long take vector loads and stores; any other layout goes element by element.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "ops.cuh"

namespace sp::cuda {

// 16 bytes of a row as a vector type: float4 or double2.
template <class T>
using Vec16 = std::conditional_t<sizeof(T) == 4, float4, double2>;

template <class T, int N>
__device__ __forceinline__ void load_row(const T* __restrict__ src, std::int64_t row, const std::int64_t* stride,
                                         bool vector_rows, T* dst) {
  if constexpr ((N * sizeof(T)) % 16 == 0) {
    if (vector_rows) {
      const Vec16<T>* v = reinterpret_cast<const Vec16<T>*>(src + row * N);
#pragma unroll
      for (int i = 0; i < static_cast<int>(N * sizeof(T) / 16); ++i) {
        const Vec16<T> x = __ldg(v + i);
        if constexpr (sizeof(T) == 4) {
          dst[4 * i] = x.x, dst[4 * i + 1] = x.y, dst[4 * i + 2] = x.z, dst[4 * i + 3] = x.w;
        } else {
          dst[2 * i] = x.x, dst[2 * i + 1] = x.y;
        }
      }
      return;
    }
  }
#pragma unroll
  for (int k = 0; k < N; ++k) dst[k] = src[row * stride[0] + k * stride[1]];
}

template <class T, int N>
__device__ __forceinline__ void store_row(T* __restrict__ dst, std::int64_t row, bool vector_rows, const T* src) {
  if constexpr ((N * sizeof(T)) % 16 == 0) {
    if (vector_rows) {
      Vec16<T>* v = reinterpret_cast<Vec16<T>*>(dst + row * N);
#pragma unroll
      for (int i = 0; i < static_cast<int>(N * sizeof(T) / 16); ++i) {
        if constexpr (sizeof(T) == 4) {
          v[i] = make_float4(src[4 * i], src[4 * i + 1], src[4 * i + 2], src[4 * i + 3]);
        } else {
          v[i] = make_double2(src[2 * i], src[2 * i + 1]);
        }
      }
      return;
    }
  }
#pragma unroll
  for (int k = 0; k < N; ++k) dst[row * N + k] = src[k];
}

// The (row, column) element strides of the two inputs.
struct Strides {
  std::int64_t params[2];
  std::int64_t grads[2];
};

// Whether a strided [batch, N] input can take the vector path.
template <int N>
inline bool vectorizable(const void* p, const std::int64_t* stride) {
  return p != nullptr && stride[0] == N && stride[1] == 1 && aligned16(p);
}

}  // namespace sp::cuda
