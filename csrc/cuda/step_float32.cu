// The step's kernels for float32 parameters (step.cuh).
#include "step.cuh"

namespace sp::cuda {

template void step_typed<float>(const StepParams&);

}  // namespace sp::cuda
