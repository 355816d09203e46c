// What every CUDA file shares: the lane policy of the kernels (one circuit per
// thread, plain scalars, CUDA's own accurate sincos), the alignment test of the
// vector paths, launch error checks and the grid size.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace sp::cuda {

template <class T>
struct ScalarOps {
  using S = T;
  using V = T;
  static __device__ __forceinline__ V splat(S s) { return s; }
  static __device__ __forceinline__ void sincos(V x, V& s, V& c);
};

template <>
__device__ __forceinline__ void ScalarOps<float>::sincos(float x, float& s, float& c) {
  ::sincosf(x, &s, &c);
}

template <>
__device__ __forceinline__ void ScalarOps<double>::sincos(double x, double& s, double& c) {
  ::sincos(x, &s, &c);
}

__host__ __device__ inline bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

// Threads per block and a grid that fills the device a few times over; kernels
// loop over their work with a grid stride.
constexpr int kThreads = 256;

inline int grid_for(std::int64_t work) {
  static int multiprocessors = [] {
    int device = 0, count = 0;
    check(cudaGetDevice(&device), "cudaGetDevice");
    check(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
    return count;
  }();
  const std::int64_t needed = (work + kThreads - 1) / kThreads;
  const std::int64_t cap = static_cast<std::int64_t>(multiprocessors) * 16;
  return static_cast<int>(needed < 1 ? 1 : (needed < cap ? needed : cap));
}

}  // namespace sp::cuda
