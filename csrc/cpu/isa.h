// Declarations shared by the translation units compiled once per instruction
// set. SP_ISA names the namespace (generic, avx2, avx512) and SP_VECTOR_BYTES
// the width of one SIMD value; both come from CMakeLists.txt.
#pragma once

#include "kernels.h"
#include "simd.h"

#ifndef SP_ISA
#error "SP_ISA must name the instruction set this file is compiled for"
#endif
#ifndef SP_VECTOR_BYTES
#error "SP_VECTOR_BYTES must give the SIMD width in bytes"
#endif

namespace sp::cpu::SP_ISA {

template <class T>
using Lanes = SimdOps<T, SP_VECTOR_BYTES>;

void simulate(const Program& prog, const SimulateParams& p);

}  // namespace sp::cpu::SP_ISA
