// Launching a kernel over a batch of circuits (simulate, backward): one thread,
// or one group of a warp's lanes, per circuit; the strided [batch, n] inputs of
// params.h are the kernel's leading arguments.
#pragma once

#include <cuda_runtime.h>

#include "../params.h"
#include "ops.cuh"
#include "rows.cuh"

namespace sp::cuda {

// Launches kernel(device program, params, grads, strides, vector_params,
// vector_grads, rest..., batch) on p.stream, over p.batch circuits of kLanes
// threads each, or kCircuits circuits per thread.
template <class T, int N, int kLanes = 1, int kCircuits = 1, class... Kernel, class... Rest>
void launch_batch(void (*kernel)(Kernel...), const BatchParams& p, const char* what, Rest... rest) {
  static_assert(kLanes == 1 || kCircuits == 1, "a circuit spans lanes, or a lane holds circuits");
  const T* params = static_cast<const T*>(p.params);
  const T* grads = static_cast<const T*>(p.grads);
  const Strides strides{{p.params_stride[0], p.params_stride[1]}, {p.grads_stride[0], p.grads_stride[1]}};
  kernel<<<grid_for((p.batch * kLanes + kCircuits - 1) / kCircuits), kThreads, 0, static_cast<cudaStream_t>(p.stream)>>>(
      p.device_program, params, grads, strides, vectorizable<N>(params, strides.params),
      vectorizable<N>(grads, strides.grads), rest..., p.batch);
  check(cudaGetLastError(), what);
}

}  // namespace sp::cuda
