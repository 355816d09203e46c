// Declarations shared by the translation units compiled once per instruction
// set. SP_ISA names the namespace (generic, avx2, avx512), SP_VECTOR_BYTES the
// width of one native SIMD register and SP_VECTOR_PIECES how many of them one
// lane value spans; all come from CMakeLists.txt.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

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

// The OpenMP team of a call with `work` units (circuits or elements), at least
// `min_work_per_thread` of them per thread: p.num_threads threads (0: the OpenMP
// default), fewer for small work, and one (no parallel region: its wake-up costs
// more than the work, and a process that never opened one keeps an OpenMP runtime
// that survives fork) below twice the minimum.
inline int team_size(const KernelParams& p, std::int64_t work, std::int64_t min_work_per_thread) {
  const std::int64_t wanted = p.num_threads > 0 ? p.num_threads : omp_get_max_threads();
  const std::int64_t useful = work / min_work_per_thread;
  const int n = static_cast<int>(std::max<std::int64_t>(1, std::min(wanted, useful)));
  if (n > 1) mark_parallel_team_opened();
  return n;
}

void simulate(const SimulateParams& p);
void step(const StepParams& p);
void backward(const BackwardParams& p);

}  // namespace sp::cpu::SP_ISA
