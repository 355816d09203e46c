// The CUDA kernels' entry points (host functions; the kernels are in *.cu).
// Plain structs in, launches on the caller's stream, no host synchronisation.
#pragma once

#include <cstdint>

#include "../circuit.h"
#include "../kernel_types.h"

namespace sp::cuda {

using sp::Coverage;
using sp::DType;
using sp::ParamType;
using sp::StepTensor;

// As cpu::SimulateParams, with device pointers, the program in device memory and a stream.
struct SimulateParams {
  const Program* program = nullptr;  // device copy of the compiled program
  bool product_only = false;         // host copies of the flags the launch needs
  bool uses_params = false;
  bool uses_grads = false;
  int n_qubits = 0;
  const void* params = nullptr;
  std::int64_t params_stride[2] = {0, 0};
  const void* grads = nullptr;
  std::int64_t grads_stride[2] = {0, 0};
  void* out = nullptr;    // [batch, n], contiguous
  void* state = nullptr;  // [batch, 2^n] interleaved complex, or null
  std::int64_t batch = 0;
  DType dtype = DType::kFloat32;
  void* stream = nullptr;  // cudaStream_t
};

void simulate(const SimulateParams& p);

// Adjoint-method gradients of sum(weights * expectations), as cpu::BackwardParams
// with device pointers.
struct BackwardParams {
  const Program* program = nullptr;  // device copy of the compiled program
  bool uses_params = false;          // host copies of the flags the launch needs
  bool uses_grads = false;
  int n_qubits = 0;
  const void* params = nullptr;
  std::int64_t params_stride[2] = {0, 0};
  const void* grads = nullptr;
  std::int64_t grads_stride[2] = {0, 0};
  const void* weights = nullptr;  // [batch, n], contiguous: dL/de
  void* d_params = nullptr;       // [batch, n], contiguous; null: not wanted
  void* d_grads = nullptr;        // [batch, n], contiguous; null: not wanted
  std::int64_t batch = 0;
  DType dtype = DType::kFloat32;
  void* stream = nullptr;  // cudaStream_t
};

void simulate_backward(const BackwardParams& p);

struct StepParams {
  const Program* program = nullptr;  // device copy of the compiled program
  int n_qubits = 0;
  bool product_only = false;  // host copy of the program's flag
  const StepTensor* tensors = nullptr;  // host array
  int n_tensors = 0;
  ParamType dtype = ParamType::kFloat32;
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2, quantum_weight = 0.1;
  const float* lr_device = nullptr;  // when set (capturable), the learning rate is read from here
  bool maximize = false;
  Coverage coverage = Coverage::kPaper;
  void* stream = nullptr;
};

void step(const StepParams& p);

// The device's name and compute capability, for `info`; empty when no device.
struct DeviceInfo {
  int count = 0;
  int major = 0, minor = 0, multiprocessors = 0;
};
DeviceInfo device_info();

}  // namespace sp::cuda
