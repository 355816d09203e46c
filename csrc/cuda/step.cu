// The step's entry point: one translation unit per parameter type (step_<type>.cu)
// instantiates step.cuh's kernels, so a parallel build compiles them side by side.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels.h"

namespace sp::cuda {

template <class P>
void step_typed(const StepParams& p);

extern template void step_typed<float>(const StepParams&);
extern template void step_typed<double>(const StepParams&);
extern template void step_typed<__nv_bfloat16>(const StepParams&);
extern template void step_typed<__half>(const StepParams&);

void step(const StepParams& p) {
  switch (p.dtype) {
    case ParamType::kFloat32: return step_typed<float>(p);
    case ParamType::kFloat64: return step_typed<double>(p);
    case ParamType::kBFloat16: return step_typed<__nv_bfloat16>(p);
    case ParamType::kFloat16: return step_typed<__half>(p);
  }
}

}  // namespace sp::cuda
