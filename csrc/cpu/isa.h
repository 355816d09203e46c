// Declarations shared by the translation units compiled once per instruction
// set. SP_ISA names the namespace (generic, avx2, avx512), SP_VECTOR_BYTES the
// width of one native SIMD register and SP_VECTOR_PIECES how many of them one
// lane value spans; all come from CMakeLists.txt.
#pragma once

#include "kernels.h"
#include "simd.h"

#ifndef SP_ISA
#error "SP_ISA must name the instruction set this file is compiled for"
#endif
#ifndef SP_VECTOR_BYTES
#error "SP_VECTOR_BYTES must give the SIMD width in bytes"
#endif
#ifndef SP_VECTOR_PIECES
#define SP_VECTOR_PIECES 1
#endif

namespace sp::cpu::SP_ISA {

template <class T>
using Lanes = WideOps<T, SP_VECTOR_BYTES, SP_VECTOR_PIECES>;

void simulate(const Program& prog, const SimulateParams& p);
void step(const Program& prog, const StepParams& p);
void backward(const Program& prog, const BackwardParams& p);

}  // namespace sp::cpu::SP_ISA
