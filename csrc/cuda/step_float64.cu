// The step's kernels for float64 parameters (step.cuh).
#include "step.cuh"

namespace sp::cuda {

template void step_typed<double>(const StepParams&);

}  // namespace sp::cuda
