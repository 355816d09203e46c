// Batched simulation on the GPU: one circuit per thread, the gate math of
// statevector.h on scalars. Inputs may be strided; rows of 16-byte multiples
// that are contiguous and aligned take vector loads.
#include <cuda_runtime.h>

#include <cstdint>

#include "../statevector.h"
#include "batch.cuh"
#include "kernels.h"
#include "ops.cuh"
#include "rows.cuh"

namespace sp::cuda {
namespace {

// kProduct: a product_only program and no statevector wanted (known on the
// host), so the kernel carries no statevector and needs far fewer registers.
template <class T, int N, bool kProduct>
__global__ void __launch_bounds__(kThreads) simulate_kernel(const Program* __restrict__ program,
                                                            const T* __restrict__ params,
                                                            const T* __restrict__ grads, Strides strides,
                                                            bool vector_params, bool vector_grads,
                                                            bool vector_out, T* __restrict__ out,
                                                            T* __restrict__ state, std::int64_t batch) {
  using Ops = ScalarOps<T>;
  const Program& prog = *program;
  const bool read_params = prog.uses_params, read_grads = prog.uses_grads;
  for (std::int64_t b = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; b < batch;
       b += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    T theta[N], grad[N], e[N];  // an input the program never reads stays unset
    if (read_params) load_row<T, N>(params, b, strides.params, vector_params, theta);
    if (read_grads) load_row<T, N>(grads, b, strides.grads, vector_grads, grad);
    if constexpr (kProduct) {
      product_expectations<Ops, N>(prog, theta, grad, e);
    } else {
      State<Ops, N> st;
      run_state<Ops, N>(prog, theta, grad, st);
      state_expectations<Ops, N>(prog, st, e);
      if (state != nullptr) {
        T* row = state + 2 * (b << N);
        for (int i = 0; i < (1 << N); ++i) {
          row[2 * i] = st.re[i];
          row[2 * i + 1] = st.im[i];
        }
      }
    }
    store_row<T, N>(out, b, vector_out, e);
  }
}

template <class T, int N>
void launch(const SimulateParams& p) {
  auto kernel = p.program->product_only && p.state == nullptr ? simulate_kernel<T, N, true>
                                                              : simulate_kernel<T, N, false>;
  launch_batch<T, N>(kernel, p, "simulate kernel launch", aligned16(p.out), static_cast<T*>(p.out),
                     static_cast<T*>(p.state));
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
