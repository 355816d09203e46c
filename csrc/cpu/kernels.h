// The CPU kernels' entry points. Each is compiled once per instruction set
// (kernels.cpp, with SP_ISA naming the namespace); dispatch.cpp chooses one at
// run time, so a wheel built here never executes an instruction its CPU lacks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../circuit.h"

namespace sp::cpu {

enum class DType : int { kFloat32 = 0, kFloat64 = 1 };

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

// Parameter storage types of the fused step. Math is float32 (float64 for
// float64 parameters); exp_avg and exp_avg_sq are float32 for the 16-bit types.
enum class ParamType : int { kFloat32 = 0, kFloat64 = 1, kBFloat16 = 2, kFloat16 = 3 };

// Which coordinates form circuit groups (DESIGN.md section 2).
enum class Coverage : int {
  kPaper = 0,  // the first n elements of each flattened tensor; e = 0 elsewhere
  kAll = 1,    // groups of n consecutive elements of each row; a short tail group reads 0s
};

// One parameter tensor of the fused step: every buffer contiguous, in the
// tensor's logical (row-major) order. The layout is seven 8-byte words so that
// the Python side can pass an int64 array of them without a copy.
struct StepTensor {
  void* param;
  const void* grad;
  void* exp_avg;
  void* exp_avg_sq;
  float* step;  // the state's float32 step counter; the kernel adds 1 before using it
  std::int64_t numel;
  std::int64_t row_length;  // elements per row: numel / size(0) for dim >= 2, else numel
};
static_assert(sizeof(StepTensor) == 7 * sizeof(std::int64_t), "StepTensor is passed as 7 int64 words");

struct StepParams {
  const StepTensor* tensors = nullptr;
  int n_tensors = 0;
  ParamType dtype = ParamType::kFloat32;  // shared by every tensor of the call
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2, quantum_weight = 0.1;
  bool maximize = false;
  Coverage coverage = Coverage::kPaper;
  int num_threads = 0;  // 0: the OpenMP default
};

struct KernelTable {
  const char* isa;
  void (*simulate)(const Program&, const SimulateParams&);
  void (*step)(const Program&, const StepParams&);
};

// Instruction sets this build carries, best first, and whether this CPU runs them.
std::vector<std::string> compiled_isas();
std::vector<std::string> supported_isas();
// The table in use: the best supported ISA unless set_isa chose another.
const KernelTable& kernels();
void set_isa(const std::string& name);  // throws std::invalid_argument if unsupported

}  // namespace sp::cpu
