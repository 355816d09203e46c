// Gradients of batched simulation on the GPU: the adjoint sweep of adjoint.h (the
// CPU backward's gate math), on each qubit's 2-vectors in registers for product
// programs (several circuits per thread), else on two statevectors in a thread's
// local memory.
#include <cuda_runtime.h>

#include <cstdint>

#include "../adjoint.h"
#include "batch.cuh"
#include "kernels.h"
#include "lanes.cuh"
#include "ops.cuh"
#include "rows.cuh"

namespace sp::cuda {
namespace {

// A program with blocks: the statevector sweep, one circuit per thread, psi and
// lambda in the thread's local memory.
template <class T, int N>
__global__ void __launch_bounds__(kThreads) backward_kernel(const Program* __restrict__ program,
                                                            const T* __restrict__ params,
                                                            const T* __restrict__ grads, Strides strides,
                                                            bool vector_params, bool vector_grads,
                                                            const T* __restrict__ weights, bool vector_io,
                                                            T* __restrict__ d_params, T* __restrict__ d_grads,
                                                            std::int64_t batch) {
  using Ops = ScalarOps<T>;
  const Program& prog = *program;
  const std::int64_t weight_stride[2] = {N, 1};
  for (std::int64_t b = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; b < batch;
       b += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    T theta[N], grad[N], w[N], d_theta[N], d_grad[N];
#pragma unroll
    for (int k = 0; k < N; ++k) theta[k] = grad[k] = T(0);
    if (prog.uses_params) load_row<T, N>(params, b, strides.params, vector_params, theta);
    if (prog.uses_grads) load_row<T, N>(grads, b, strides.grads, vector_grads, grad);
    load_row<T, N>(weights, b, weight_stride, vector_io, w);
    State<Ops, N> psi, lambda;
    adjoint_gradients<Ops, N>(prog, theta, grad, w, psi, lambda, d_theta, d_grad);
    if (d_params != nullptr) store_row<T, N>(d_params, b, vector_io, d_theta);
    if (d_grads != nullptr) store_row<T, N>(d_grads, b, vector_io, d_grad);
  }
}

// A product_only program (known on the host): each qubit's 2-vectors in
// registers, K circuits per thread (lanes.cuh).
template <class T, int N, int K>
__global__ void __launch_bounds__(kThreads) product_backward_kernel(
    const Program* __restrict__ program, const T* __restrict__ params, const T* __restrict__ grads,
    Strides strides, bool vector_params, bool vector_grads, const T* __restrict__ weights, bool vector_io,
    T* __restrict__ d_params, T* __restrict__ d_grads, std::int64_t batch) {
  using Ops = LaneOps<T, K>;
  using V = typename Ops::V;
  const Program& prog = *program;
  const std::int64_t weight_stride[2] = {N, 1};
  const std::int64_t thread = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x * K;
  for (std::int64_t base = (thread & ~std::int64_t{31}) * K + (thread & 31); base < batch; base += step) {
    const LaneRows<K> rows(base, batch);
    V theta[N], grad[N], w[N], d_theta[N], d_grad[N];
#pragma unroll
    for (int k = 0; k < N; ++k) theta[k] = grad[k] = Ops::splat(0);
    if (prog.uses_params) load_lanes<T, N, K>(params, rows, strides.params, vector_params, theta);
    if (prog.uses_grads) load_lanes<T, N, K>(grads, rows, strides.grads, vector_grads, grad);
    load_lanes<T, N, K>(weights, rows, weight_stride, vector_io, w);
    product_gradients<Ops, N>(prog, theta, grad, w, d_theta, d_grad);
    if (d_params != nullptr) store_lanes<T, N, K>(d_params, rows, vector_io, d_theta);
    if (d_grads != nullptr) store_lanes<T, N, K>(d_grads, rows, vector_io, d_grad);
  }
}

template <class T, int N>
void launch(const BackwardParams& p) {
  // The weights and both outputs are contiguous [batch, N]: one vector decision covers them.
  const bool vector_io = aligned16(p.weights) && (p.d_params == nullptr || aligned16(p.d_params)) &&
                         (p.d_grads == nullptr || aligned16(p.d_grads));
  const auto* weights = static_cast<const T*>(p.weights);
  auto* d_params = static_cast<T*>(p.d_params);
  auto* d_grads = static_cast<T*>(p.d_grads);
  if (p.program->product_only) {
    constexpr int K = product_circuits_per_thread<T, N>();
    launch_batch<T, N, 1, K>(product_backward_kernel<T, N, K>, p, "backward kernel launch", weights, vector_io,
                             d_params, d_grads);
  } else {
    launch_batch<T, N>(backward_kernel<T, N>, p, "backward kernel launch", weights, vector_io, d_params, d_grads);
  }
}

}  // namespace

void backward(const BackwardParams& p) {
  if (p.batch == 0 || (p.d_params == nullptr && p.d_grads == nullptr)) return;
  with_batch_types(p.dtype, p.program->n_qubits, [&](auto t, auto n) { launch<decltype(t), decltype(n)::value>(p); });
}

}  // namespace sp::cuda
