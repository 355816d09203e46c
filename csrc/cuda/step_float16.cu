// The step's kernels for float16 parameters (step.cuh).
#include "step.cuh"

namespace sp::cuda {

template void step_typed<__half>(const StepParams&);

}  // namespace sp::cuda
