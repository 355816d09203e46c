// Batched simulation on the GPU, the gate math of statevector.h. Product programs
// (no statevector wanted) run on each qubit's 2-vector, several circuits per
// thread (lanes.cuh);
// every other program holds its statevector in registers, one circuit per lane
// group of a warp (group_state.cuh). Inputs may be strided; rows of 16-byte
// multiples that are contiguous and aligned take vector loads.
#include <cuda_runtime.h>

#include <cstdint>

#include "../statevector.h"
#include "batch.cuh"
#include "group_state.cuh"
#include "kernels.h"
#include "lanes.cuh"
#include "ops.cuh"
#include "rows.cuh"

namespace sp::cuda {
namespace {

// K circuits per thread (lanes.cuh).
template <class T, int N, int K>
__global__ void __launch_bounds__(kThreads) product_kernel(const Program* __restrict__ program,
                                                           const T* __restrict__ params,
                                                           const T* __restrict__ grads, Strides strides,
                                                           bool vector_params, bool vector_grads, bool vector_out,
                                                           T* __restrict__ out, std::int64_t batch) {
  using Ops = LaneOps<T, K>;
  using V = typename Ops::V;
  const Program& prog = *program;
  const std::int64_t thread = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x * K;
  for (std::int64_t base = (thread & ~std::int64_t{31}) * K + (thread & 31); base < batch; base += step) {
    const LaneRows<K> rows(base, batch);
    V theta[N], grad[N], e[N];  // an input the program never reads stays unset
    if (prog.uses_params) load_lanes<T, N, K>(params, rows, strides.params, vector_params, theta);
    if (prog.uses_grads) load_lanes<T, N, K>(grads, rows, strides.grads, vector_grads, grad);
    product_expectations<Ops, N>(prog, theta, grad, e);
    store_lanes<T, N, K>(out, rows, vector_out, e);
  }
}

template <class T, int N>
__global__ void __launch_bounds__(kThreads) statevector_kernel(const Program* __restrict__ program,
                                                               const T* __restrict__ params,
                                                               const T* __restrict__ grads, Strides strides,
                                                               bool vector_params, bool vector_grads,
                                                               bool vector_out, T* __restrict__ out,
                                                               T* __restrict__ state, std::int64_t batch) {
  using Group = GroupState<T, N>;
  constexpr int kLaneBits = Group::kLaneBits;
  const Program& prog = *program;
  const std::int64_t thread = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  const std::int64_t groups = (static_cast<std::int64_t>(gridDim.x) * blockDim.x) >> kLaneBits;
  // The groups of a warp make the same trips, since shuffles need every lane of it: the loop runs
  // while the warp's first group has a circuit, and a group past the batch's end computes the last
  // circuit again and stores nothing.
  std::int64_t warp_first = (thread & ~std::int64_t{31}) >> kLaneBits;
  for (std::int64_t b = thread >> kLaneBits; warp_first < batch; b += groups, warp_first += groups) {
    const bool active = b < batch;
    const std::int64_t row = active ? b : batch - 1;
    T theta[N], grad[N], e[N];  // an input the program never reads stays unset
    if (prog.uses_params) load_row<T, N>(params, row, strides.params, vector_params, theta);
    if (prog.uses_grads) load_row<T, N>(grads, row, strides.grads, vector_grads, grad);
    Group psi(static_cast<int>(threadIdx.x) & (Group::kLanes - 1));
    psi.prepare(prog, theta, grad);
    psi.apply_blocks(prog, theta, grad);
    if (state != nullptr && active) psi.store(state + 2 * (row << N));
    psi.expectations(prog, e);
    if (active && (threadIdx.x & (Group::kLanes - 1)) == 0) store_row<T, N>(out, row, vector_out, e);
  }
}

template <class T, int N>
void launch(const SimulateParams& p) {
  const bool vector_out = aligned16(p.out);
  if (p.program->product_only && p.state == nullptr) {
    constexpr int K = product_circuits_per_thread<T, N>();
    launch_batch<T, N, 1, K>(product_kernel<T, N, K>, p, "simulate kernel launch", vector_out,
                             static_cast<T*>(p.out));
  } else {
    launch_batch<T, N, GroupLayout<T, N>::kLanes>(statevector_kernel<T, N>, p, "simulate kernel launch", vector_out,
                                                  static_cast<T*>(p.out), static_cast<T*>(p.state));
  }
}

}  // namespace

void simulate(const SimulateParams& p) {
  if (p.batch == 0) return;
  with_batch_types(p.dtype, p.program->n_qubits, [&](auto t, auto n) { launch<decltype(t), decltype(n)::value>(p); });
}

DeviceInfo device_info() {
  DeviceInfo info;
  if (cudaGetDeviceCount(&info.count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    info.count = 0;
    return info;
  }
  if (info.count == 0) return info;
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&info.major, cudaDevAttrComputeCapabilityMajor, device), "attribute");
  check(cudaDeviceGetAttribute(&info.minor, cudaDevAttrComputeCapabilityMinor, device), "attribute");
  check(cudaDeviceGetAttribute(&info.multiprocessors, cudaDevAttrMultiProcessorCount, device), "attribute");
  return info;
}

}  // namespace sp::cuda
