// Gradients of batched simulation on the GPU: one circuit per thread runs the
// adjoint sweep of adjoint.h (the CPU backward's gate math) on scalars, its two
// statevectors in the thread's local memory.
#include <cuda_runtime.h>

#include <cstdint>

#include "../adjoint.h"
#include "kernels.h"
#include "ops.cuh"
#include "rows.cuh"

namespace sp::cuda {
namespace {

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

template <class T, int N>
void launch(const BackwardParams& p) {
  const T* params = static_cast<const T*>(p.params);
  const T* grads = static_cast<const T*>(p.grads);
  Strides strides{{p.params_stride[0], p.params_stride[1]}, {p.grads_stride[0], p.grads_stride[1]}};
  // The weights and both outputs are contiguous [batch, N]: one vector decision covers them.
  const bool vector_io = aligned16(p.weights) && (p.d_params == nullptr || aligned16(p.d_params)) &&
                         (p.d_grads == nullptr || aligned16(p.d_grads));
  backward_kernel<T, N><<<grid_for(p.batch), kThreads, 0, static_cast<cudaStream_t>(p.stream)>>>(
      p.program, params, grads, strides, vectorizable<N>(params, strides.params),
      vectorizable<N>(grads, strides.grads), static_cast<const T*>(p.weights), vector_io,
      static_cast<T*>(p.d_params), static_cast<T*>(p.d_grads), p.batch);
  check(cudaGetLastError(), "backward kernel launch");
}

template <class T>
void launch_typed(const BackwardParams& p) {
  with_qubit_count(p.n_qubits, [&](auto n) { launch<T, decltype(n)::value>(p); });
}

}  // namespace

void simulate_backward(const BackwardParams& p) {
  if (p.batch == 0 || (p.d_params == nullptr && p.d_grads == nullptr)) return;
  if (p.dtype == DType::kFloat64) {
    launch_typed<double>(p);
  } else {
    launch_typed<float>(p);
  }
}

}  // namespace sp::cuda
