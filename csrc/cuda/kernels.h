// The CUDA kernels' entry points (host functions; the kernels are in *.cu).
// They take the params of params.h, read their launch flags from the host
// program, pass the kernels params.device_program, and launch on params.stream
// without a host synchronisation.
#pragma once

#include "../params.h"

namespace sp::cuda {

void simulate(const SimulateParams& p);
// Adjoint-method gradients of sum(weights * expectations).
void backward(const BackwardParams& p);
void step(const StepParams& p);

// How many devices there are, and the current one's compute capability and
// multiprocessor count, for `info`; all zero when there is none.
struct DeviceInfo {
  int count = 0;
  int major = 0, minor = 0, multiprocessors = 0;
};
DeviceInfo device_info();

}  // namespace sp::cuda
