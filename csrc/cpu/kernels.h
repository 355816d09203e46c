// The CPU kernels' entry points. Each is compiled once per instruction set
// (simulate.cpp, backward.cpp, step.cpp and table.cpp, with SP_ISA naming the
// namespace; see isa.h); dispatch.cpp chooses one table at run time, so a wheel
// built here never executes an instruction its CPU lacks.
#pragma once

#include <string>
#include <vector>

#include "../params.h"

namespace sp::cpu {

// One instruction set's entry points. Each reads params.program and runs on
// params.num_threads OpenMP threads.
struct KernelTable {
  const char* isa;
  void (*simulate)(const SimulateParams&);
  void (*step)(const StepParams&);
  void (*backward)(const BackwardParams&);
};

// Instruction sets this build carries, best first, and whether this CPU runs them.
std::vector<std::string> compiled_isas();
std::vector<std::string> supported_isas();
// The table in use: the best supported ISA unless set_isa chose another.
const KernelTable& kernels();
void set_isa(const std::string& name);  // throws std::invalid_argument if unsupported

// Whether a kernel of this process has opened an OpenMP team of more than one thread. libgomp's
// thread pool does not survive fork: a child of such a process must run single-threaded.
bool parallel_team_opened();
void mark_parallel_team_opened();

}  // namespace sp::cpu
