// The only file that knows Python. It takes raw pointers (tensor.data_ptr()),
// sizes, strides and enums (DType, ParamType, Coverage), checks what it can,
// fills the kernels' params (params.h) and calls the kernels with the GIL
// released. Nothing here links or includes libtorch.
#include <pybind11/pybind11.h>
#include <pybind11/complex.h>
#include <pybind11/stl.h>

#include <complex>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "circuit.h"
#include "compile.h"
#include "cpu/kernels.h"
#include "params.h"
#ifdef SP_WITH_CUDA
#include "cuda/kernels.h"
#endif

namespace py = pybind11;

namespace {

using GateTuple = std::tuple<int, int, int, int, int, double, double>;  // kind, q0, q1, source, index, scale, offset
using ObservableTuple = std::tuple<std::string, bool>;                   // pauli, negative

std::uint8_t small(int value, const char* what) {
  if (value < 0 || value > 255) throw std::invalid_argument(std::string(what) + " out of range");
  return static_cast<std::uint8_t>(value);
}

sp::Program compile_program(int n_qubits, const std::vector<GateTuple>& gate_tuples,
                            const std::vector<ObservableTuple>& observable_tuples, bool keep_state) {
  std::vector<sp::Gate> gates;
  gates.reserve(gate_tuples.size());
  for (const auto& [kind, q0, q1, source, index, scale, offset] : gate_tuples) {
    sp::Gate g{};
    g.kind = small(kind, "gate kind");
    g.q0 = small(q0, "qubit index");
    g.q1 = small(q1, "qubit index");
    g.angle = sp::Angle{scale, offset, small(source, "angle source"), small(index, "angle input index")};
    gates.push_back(g);
  }
  std::vector<sp::Observable> observables;
  for (const auto& [pauli, negative] : observable_tuples) {
    if (pauli.size() != 1) throw std::invalid_argument("an observable is one of 'X', 'Y', 'Z', got '" + pauli + "'");
    observables.push_back(sp::Observable{pauli[0], negative});
  }
  return sp::compile(n_qubits, gates, observables, keep_state);
}

const void* as_pointer(std::uintptr_t address) { return reinterpret_cast<const void*>(address); }
void* as_mutable(std::uintptr_t address) { return reinterpret_cast<void*>(address); }

// `out` is the output buffer (or, for the backward pass, the upstream gradient).
void check_simulate_inputs(const sp::Program& prog, std::int64_t batch, std::uintptr_t params, std::uintptr_t grads,
                           std::uintptr_t out) {
  if (batch < 0) throw std::invalid_argument("batch must be non-negative");
  if (prog.uses_params && params == 0) throw std::invalid_argument("this circuit reads parameters: pass params");
  if (prog.uses_grads && grads == 0) throw std::invalid_argument("this circuit reads gradients: pass grads");
  if (out == 0) throw std::invalid_argument("no output buffer");
}

using Stride = std::pair<std::int64_t, std::int64_t>;

// The strided [batch, n] inputs of simulate and backward, as Python passes them.
struct BatchArgs {
  std::uintptr_t params;
  Stride params_stride;
  std::uintptr_t grads;
  Stride grads_stride;
  std::int64_t batch;
  sp::DType dtype;
};

// Fills the batch part of simulate's or backward's params, after checking it;
// `out` as for check_simulate_inputs.
void set_batch(sp::BatchParams& p, const sp::Program& prog, const BatchArgs& in, std::uintptr_t out) {
  check_simulate_inputs(prog, in.batch, in.params, in.grads, out);
  p.program = &prog;
  p.params = as_pointer(in.params);
  p.params_stride[0] = in.params_stride.first;
  p.params_stride[1] = in.params_stride.second;
  p.grads = as_pointer(in.grads);
  p.grads_stride[0] = in.grads_stride.first;
  p.grads_stride[1] = in.grads_stride.second;
  p.batch = in.batch;
  p.dtype = in.dtype;
}

// The fused step's tensor table: `address` holds n rows laid out as sp::StepTensor.
const sp::StepTensor* checked_tensor_table(std::uintptr_t address, int n, bool amsgrad) {
  if (n < 0) throw std::invalid_argument("n_tensors must be non-negative");
  if (n > 0 && address == 0) throw std::invalid_argument("no tensor table");
  const auto* tensors = reinterpret_cast<const sp::StepTensor*>(address);
  for (int i = 0; i < n; ++i) {
    const sp::StepTensor& t = tensors[i];
    if (t.numel < 0 || (t.numel > 0 && (t.row_length <= 0 || t.numel % t.row_length != 0)))
      throw std::invalid_argument("tensor " + std::to_string(i) + ": row_length must divide numel");
    if (t.step == nullptr ||
        (t.numel > 0 && (!t.param || !t.grad || !t.exp_avg || !t.exp_avg_sq || (amsgrad && !t.max_exp_avg_sq))))
      throw std::invalid_argument("tensor " + std::to_string(i) + ": missing buffer");
  }
  return tensors;
}

// The execution contexts: all that a CPU and a CUDA binding of one entry point
// differ in. Each sets its fields of the params and runs its backend's kernel.
struct OnCpu {
  int num_threads;  // 0: the OpenMP default
  void place(sp::KernelParams& p) const { p.num_threads = num_threads; }
  static void run(const sp::SimulateParams& p) { sp::cpu::kernels().simulate(p); }
  static void run(const sp::BackwardParams& p) { sp::cpu::kernels().backward(p); }
  static void run(const sp::StepParams& p) { sp::cpu::kernels().step(p); }
};

#ifdef SP_WITH_CUDA
struct OnCuda {
  std::uintptr_t program;  // a device copy of the Program (see Program.to_bytes)
  std::uintptr_t stream;   // a cudaStream_t
  void place(sp::KernelParams& p) const {
    if (program == 0) throw std::invalid_argument("no device program");
    p.device_program = reinterpret_cast<const sp::Program*>(program);
    p.stream = as_mutable(stream);
  }
  static void run(const sp::SimulateParams& p) { sp::cuda::simulate(p); }
  static void run(const sp::BackwardParams& p) { sp::cuda::backward(p); }
  static void run(const sp::StepParams& p) { sp::cuda::step(p); }
};
#endif

// Runs the kernel with the GIL released: the params hold no Python object.
template <class On, class Params>
void run_on(const On& on, Params& p) {
  on.place(p);
  py::gil_scoped_release release;
  On::run(p);
}

template <class On>
void simulate(const On& on, const sp::Program& prog, const BatchArgs& in, std::uintptr_t out, std::uintptr_t state) {
  sp::SimulateParams p;
  set_batch(p, prog, in, out);
  p.out = as_mutable(out);
  p.state = as_mutable(state);
  run_on(on, p);
}

template <class On>
void backward(const On& on, const sp::Program& prog, const BatchArgs& in, std::uintptr_t weights,
              std::uintptr_t d_params, std::uintptr_t d_grads) {
  sp::BackwardParams p;
  set_batch(p, prog, in, weights);
  p.weights = as_pointer(weights);
  p.d_params = as_mutable(d_params);
  p.d_grads = as_mutable(d_grads);
  run_on(on, p);
}

// `tensors` is the address of an int64 array of n_tensors rows of 9 words laid
// out as sp::StepTensor (pointers, numel, row_length, rounding_stream).
template <class On>
void step(const On& on, const sp::Program& prog, std::uintptr_t tensors, int n_tensors, sp::ParamType dtype,
          sp::ParamType state_type, const sp::AdamWHyper& hyper, std::uintptr_t lr_device, sp::Coverage coverage) {
  const bool sixteen_bit = dtype == sp::ParamType::kBFloat16 || dtype == sp::ParamType::kFloat16;
  if (state_type != dtype && !(sixteen_bit && state_type == sp::ParamType::kFloat32))
    throw std::invalid_argument("state_type must be the parameters' type, or float32 for 16-bit parameters");
  sp::StepParams p;
  p.program = &prog;
  p.tensors = checked_tensor_table(tensors, n_tensors, hyper.amsgrad);
  p.n_tensors = n_tensors;
  p.dtype = dtype;
  p.state_type = state_type;
  p.hyper = hyper;
  p.lr_device = reinterpret_cast<const float*>(lr_device);
  p.coverage = coverage;
  run_on(on, p);
}

py::tuple observable_tuple(const sp::PauliString& s) { return py::make_tuple(s.x_mask, s.z_mask, bool(s.negative)); }

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "superpositional's compiled core: circuit compiler and statevector kernels";

  py::class_<sp::Program>(m, "Program", "A circuit compiled for the kernels (read-only).")
      .def_property_readonly("n_qubits", [](const sp::Program& p) { return p.n_qubits; })
      .def_property_readonly("n_gates", [](const sp::Program& p) { return p.n_gates; })
      .def_property_readonly("n_blocks", [](const sp::Program& p) { return p.n_blocks; })
      .def_property_readonly("product_only", [](const sp::Program& p) { return bool(p.product_only); })
      .def_property_readonly("uses_params", [](const sp::Program& p) { return bool(p.uses_params); })
      .def_property_readonly("uses_grads", [](const sp::Program& p) { return bool(p.uses_grads); })
      .def_property_readonly("prefix_lengths",
                             [](const sp::Program& p) {
                               std::vector<int> lengths;
                               for (int q = 0; q < p.n_qubits; ++q)
                                 lengths.push_back(p.prefix_begin[q + 1] - p.prefix_begin[q]);
                               return lengths;
                             })
      .def_property_readonly("initial_states",
                             [](const sp::Program& p) {
                               py::list states;
                               for (int q = 0; q < p.n_qubits; ++q) {
                                 const double* a = p.initial[q];
                                 states.append(py::make_tuple(std::complex<double>(a[0], a[1]),
                                                              std::complex<double>(a[2], a[3])));
                               }
                               return states;
                             },
                             "Per qubit: its state after the leading constant gates, folded at compile time.")
      .def_property_readonly("real_prefix_qubits",
                             [](const sp::Program& p) {
                               std::vector<int> qubits;
                               for (int q = 0; q < p.n_qubits; ++q)
                                 if (p.real_prefix >> q & 1u) qubits.push_back(q);
                               return qubits;
                             })
      .def_property_readonly("blocks",
                             [](const sp::Program& p) {
                               py::list blocks;
                               for (int b = 0; b < p.n_blocks; ++b) {
                                 const sp::Block& blk = p.blocks[b];
                                 const char* kind = blk.kind == sp::kFused ? "fused" : blk.kind == sp::kBlockCX ? "cx" : "cz";
                                 blocks.append(py::make_tuple(kind, blk.q0, blk.q1, blk.count));
                               }
                               return blocks;
                             })
      .def("to_bytes",
           [](const sp::Program& p) { return py::bytes(reinterpret_cast<const char*>(&p), sizeof(sp::Program)); },
           "The plain struct's bytes, to copy to a device as-is.")
      .def_property_readonly("observables",
                             [](const sp::Program& p) {
                               py::list out;
                               for (int k = 0; k < p.n_qubits; ++k) out.append(observable_tuple(p.observables[k]));
                               return out;
                             },
                             "Per output: (x_mask, z_mask, negative), the signed Pauli string measured.");

  m.def("compile", &compile_program, py::arg("n_qubits"), py::arg("gates"), py::arg("observables"),
        py::arg("keep_state"),
        "Compile gates (kind, q0, q1, source, index, scale, offset) and observables (pauli, negative).");
  py::enum_<sp::DType>(m, "DType", "The float type of simulate's and backward's inputs and outputs.")
      .value("float32", sp::DType::kFloat32)
      .value("float64", sp::DType::kFloat64);
  py::enum_<sp::ParamType>(m, "ParamType", "The parameter type of a fused step call (every tensor of it).")
      .value("float32", sp::ParamType::kFloat32)
      .value("float64", sp::ParamType::kFloat64)
      .value("bfloat16", sp::ParamType::kBFloat16)
      .value("float16", sp::ParamType::kFloat16);
  py::enum_<sp::Coverage>(m, "Coverage", "Which elements of a tensor form circuit groups.")
      .value("paper", sp::Coverage::kPaper)
      .value("all", sp::Coverage::kAll);

  m.def(
      "simulate_cpu",
      [](const sp::Program& prog, std::uintptr_t params, Stride params_stride, std::uintptr_t grads,
         Stride grads_stride, std::uintptr_t out, std::uintptr_t state, std::int64_t batch, sp::DType dtype,
         int num_threads) {
        simulate(OnCpu{num_threads}, prog, {params, params_stride, grads, grads_stride, batch, dtype}, out, state);
      },
      py::arg("program"), py::arg("params"), py::arg("params_stride"), py::arg("grads"), py::arg("grads_stride"),
      py::arg("out"), py::arg("state"), py::arg("batch"), py::arg("dtype"), py::arg("num_threads"),
      "Expectations (and optionally statevectors) of a batch of circuits (CPU).");
  m.def(
      "simulate_backward_cpu",
      [](const sp::Program& prog, std::uintptr_t params, Stride params_stride, std::uintptr_t grads,
         Stride grads_stride, std::uintptr_t weights, std::uintptr_t d_params, std::uintptr_t d_grads,
         std::int64_t batch, sp::DType dtype, int num_threads) {
        backward(OnCpu{num_threads}, prog, {params, params_stride, grads, grads_stride, batch, dtype}, weights,
                 d_params, d_grads);
      },
      py::arg("program"), py::arg("params"), py::arg("params_stride"), py::arg("grads"), py::arg("grads_stride"),
      py::arg("weights"), py::arg("d_params"), py::arg("d_grads"), py::arg("batch"), py::arg("dtype"),
      py::arg("num_threads"),
      "Adjoint-method gradients of sum(weights * expectations) with respect to params and grads (CPU).");
  m.def(
      "step_cpu",
      [](const sp::Program& prog, std::uintptr_t tensors, int n_tensors, sp::ParamType dtype,
         sp::ParamType state_type, double lr, std::uintptr_t lr_device, double beta1, double beta2, double eps,
         double weight_decay, double quantum_weight, bool maximize, bool amsgrad, bool stochastic_rounding,
         std::uint32_t rounding_seed, bool preconditioned, sp::Coverage coverage, int num_threads) {
        step(OnCpu{num_threads}, prog, tensors, n_tensors, dtype, state_type,
             {lr, beta1, beta2, eps, weight_decay, quantum_weight, maximize, amsgrad, stochastic_rounding,
              rounding_seed, preconditioned},
             lr_device, coverage);
      },
      py::arg("program"), py::arg("tensors"), py::arg("n_tensors"), py::arg("dtype"), py::arg("state_type"),
      py::arg("lr"), py::arg("lr_device"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
      py::arg("weight_decay"), py::arg("quantum_weight"), py::arg("maximize"), py::arg("amsgrad"),
      py::arg("stochastic_rounding"), py::arg("rounding_seed"), py::arg("preconditioned"), py::arg("coverage"),
      py::arg("num_threads"),
      "The fused AdamW + circuit step over many tensors (CPU).");

  m.def("cpu_isa", [] { return std::string(sp::cpu::kernels().isa); }, "The instruction set the CPU kernels use.");
  m.def("compiled_cpu_isas", &sp::cpu::compiled_isas);
  m.def("parallel_team_opened", &sp::cpu::parallel_team_opened,
        "Whether a CPU kernel of this process has opened an OpenMP team of more than one thread.");
  m.def("supported_cpu_isas", &sp::cpu::supported_isas);
  m.def("set_cpu_isa", &sp::cpu::set_isa, py::arg("name"));

  m.attr("max_qubits") = sp::kMaxQubits;
  m.attr("max_gates") = sp::kMaxGates;
  m.attr("gate_kinds") = py::dict(py::arg("h") = int(sp::kH), py::arg("x") = int(sp::kX), py::arg("rx") = int(sp::kRX),
                                  py::arg("ry") = int(sp::kRY), py::arg("rz") = int(sp::kRZ),
                                  py::arg("cx") = int(sp::kCX), py::arg("cz") = int(sp::kCZ));
  m.attr("angle_sources") =
      py::dict(py::arg("const") = int(sp::kConst), py::arg("param") = int(sp::kParam), py::arg("grad") = int(sp::kGrad));
#ifdef SP_WITH_CUDA
  m.attr("cuda_compiled") = true;
  m.def(
      "simulate_cuda",
      [](const sp::Program& prog, std::uintptr_t program, std::uintptr_t params, Stride params_stride,
         std::uintptr_t grads, Stride grads_stride, std::uintptr_t out, std::uintptr_t state, std::int64_t batch,
         sp::DType dtype, std::uintptr_t stream) {
        simulate(OnCuda{program, stream}, prog, {params, params_stride, grads, grads_stride, batch, dtype}, out,
                 state);
      },
      py::arg("host_program"), py::arg("program"), py::arg("params"), py::arg("params_stride"), py::arg("grads"),
      py::arg("grads_stride"), py::arg("out"), py::arg("state"), py::arg("batch"), py::arg("dtype"),
      py::arg("stream"), "Expectations (and optionally statevectors) of a batch of circuits (CUDA).");
  m.def(
      "simulate_backward_cuda",
      [](const sp::Program& prog, std::uintptr_t program, std::uintptr_t params, Stride params_stride,
         std::uintptr_t grads, Stride grads_stride, std::uintptr_t weights, std::uintptr_t d_params,
         std::uintptr_t d_grads, std::int64_t batch, sp::DType dtype, std::uintptr_t stream) {
        backward(OnCuda{program, stream}, prog, {params, params_stride, grads, grads_stride, batch, dtype}, weights,
                 d_params, d_grads);
      },
      py::arg("host_program"), py::arg("program"), py::arg("params"), py::arg("params_stride"), py::arg("grads"),
      py::arg("grads_stride"), py::arg("weights"), py::arg("d_params"), py::arg("d_grads"), py::arg("batch"),
      py::arg("dtype"), py::arg("stream"),
      "Adjoint-method gradients of sum(weights * expectations) with respect to params and grads (CUDA).");
  m.def(
      "step_cuda",
      [](const sp::Program& prog, std::uintptr_t program, std::uintptr_t tensors, int n_tensors, sp::ParamType dtype,
         sp::ParamType state_type, double lr, std::uintptr_t lr_device, double beta1, double beta2, double eps,
         double weight_decay, double quantum_weight, bool maximize, bool amsgrad, bool stochastic_rounding,
         std::uint32_t rounding_seed, bool preconditioned, sp::Coverage coverage, std::uintptr_t stream) {
        step(OnCuda{program, stream}, prog, tensors, n_tensors, dtype, state_type,
             {lr, beta1, beta2, eps, weight_decay, quantum_weight, maximize, amsgrad, stochastic_rounding,
              rounding_seed, preconditioned},
             lr_device, coverage);
      },
      py::arg("host_program"), py::arg("program"), py::arg("tensors"), py::arg("n_tensors"), py::arg("dtype"),
      py::arg("state_type"), py::arg("lr"), py::arg("lr_device"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
      py::arg("weight_decay"), py::arg("quantum_weight"), py::arg("maximize"), py::arg("amsgrad"),
      py::arg("stochastic_rounding"), py::arg("rounding_seed"), py::arg("preconditioned"), py::arg("coverage"),
      py::arg("stream"), "The fused AdamW + circuit step over many tensors (CUDA).");
  m.def("cuda_devices", [] {
    const sp::cuda::DeviceInfo info = sp::cuda::device_info();
    return py::dict(py::arg("count") = info.count, py::arg("capability") = py::make_tuple(info.major, info.minor),
                    py::arg("multiprocessors") = info.multiprocessors);
  });
  m.attr("cuda_architectures") = std::string(SP_CUDA_ARCHITECTURES);
#else
  m.attr("cuda_compiled") = false;
#endif
  m.attr("compiler") = std::string(__VERSION__);
}
