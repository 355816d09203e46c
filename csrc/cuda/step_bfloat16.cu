// The step's kernels for bfloat16 parameters (step.cuh).
#include "step.cuh"

namespace sp::cuda {

template void step_typed<__nv_bfloat16>(const StepParams&);

}  // namespace sp::cuda
