// The CPU kernels' entry points. Each is compiled once per instruction set
// (kernels.cpp, with SP_ISA naming the namespace); dispatch.cpp chooses one at
// run time, so a wheel built here never executes an instruction its CPU lacks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../circuit.h"
#include "../kernel_types.h"

namespace sp::cpu {

using sp::Coverage;
using sp::DType;
using sp::ParamType;
using sp::StepTensor;

// Batched simulation of `batch` circuits sharing one program. Strides are in
// elements, so non-contiguous inputs need no copy.
struct SimulateParams {
  const void* params = nullptr;  // [batch, n]; may be null when the program reads no parameter
  std::int64_t params_stride[2] = {0, 0};
  const void* grads = nullptr;  // [batch, n]; may be null when the program reads no gradient
  std::int64_t grads_stride[2] = {0, 0};
  void* out = nullptr;    // [batch, n] expectations, contiguous
  void* state = nullptr;  // [batch, 2^n] interleaved complex, contiguous; null: not wanted
  std::int64_t batch = 0;
  DType dtype = DType::kFloat32;
  int num_threads = 0;  // 0: the OpenMP default
};

struct StepParams {
  const StepTensor* tensors = nullptr;
  int n_tensors = 0;
  ParamType dtype = ParamType::kFloat32;  // shared by every tensor of the call
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2, quantum_weight = 0.1;
  bool maximize = false;
  Coverage coverage = Coverage::kPaper;
  int num_threads = 0;  // 0: the OpenMP default
};

// Gradients of L = sum_k weights[b, k] e[b, k] with respect to params and grads
// (the adjoint method; see adjoint.h). Inputs as in SimulateParams.
struct BackwardParams {
  const void* params = nullptr;
  std::int64_t params_stride[2] = {0, 0};
  const void* grads = nullptr;
  std::int64_t grads_stride[2] = {0, 0};
  const void* weights = nullptr;  // [batch, n], contiguous: dL/de
  void* d_params = nullptr;       // [batch, n], contiguous; null: not wanted
  void* d_grads = nullptr;        // [batch, n], contiguous; null: not wanted
  std::int64_t batch = 0;
  DType dtype = DType::kFloat32;
  int num_threads = 0;
};

struct KernelTable {
  const char* isa;
  void (*simulate)(const Program&, const SimulateParams&);
  void (*step)(const Program&, const StepParams&);
  void (*backward)(const Program&, const BackwardParams&);
};

// Instruction sets this build carries, best first, and whether this CPU runs them.
std::vector<std::string> compiled_isas();
std::vector<std::string> supported_isas();
// The table in use: the best supported ISA unless set_isa chose another.
const KernelTable& kernels();
void set_isa(const std::string& name);  // throws std::invalid_argument if unsupported

}  // namespace sp::cpu
