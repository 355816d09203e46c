// Declarations shared by the translation units compiled once per instruction
// set. SP_ISA names the namespace (generic, avx2, avx512), SP_VECTOR_BYTES the
// width of one native SIMD register and SP_VECTOR_PIECES how many of them one
// lane value spans; all come from CMakeLists.txt.
#pragma once

#include <omp.h>

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

// The OpenMP team of a call: p.num_threads threads, or the OpenMP default for 0.
inline int team_size(const KernelParams& p) { return p.num_threads > 0 ? p.num_threads : omp_get_max_threads(); }

void simulate(const SimulateParams& p);
void step(const StepParams& p);
void backward(const BackwardParams& p);

}  // namespace sp::cpu::SP_ISA
