// The AdamW element update of the fused step, shared by the CPU and CUDA
// kernels: they differ in how they walk the tensors (docs/design.md, The
// mathematics, says which elements form circuit groups), never in the formula.
#pragma once

#include <cmath>
#include <cstdint>

#include "inline.h"

namespace sp {

// The hyperparameters of one step call, as the optimizer's param group holds them.
struct AdamWHyper {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  double quantum_weight = 0.1;  // lambda, the weight of the circuit term
  bool maximize = false;
  bool amsgrad = false;  // divide by the running maximum of v (torch's amsgrad=True)
  // 16-bit parameters only: write p rounded stochastically (rounding.h), the random bits keyed by
  // this seed, each tensor's rounding_stream and its step number.
  bool stochastic_rounding = false;
  std::uint32_t rounding_seed = 0;
  // The circuit term's units (the option perturbation): false, the paper's lr lambda e g beside the
  // Adam update; true ("preconditioned"), lambda e g added to the bias-corrected first moment before
  // Adam's division, so that it moves p in the same normalised units as m.
  bool preconditioned = false;
};

// Which circuit term an element update applies (AdamWHyper::preconditioned says which a step wants).
enum class Term : int {
  kNone,            // plain AdamW: no circuit term
  kPaper,           // p -= lr lambda e g beside the Adam update
  kPreconditioned,  // m + lambda (1 - b1^t) e g in m's place under Adam's division
  kEither,          // both, by the constants' weights, the unused one 0: no branch, one code path
};

// The constants of one tensor's step, in the math type S.
template <class S>
struct AdamWConstants {
  S decay;  // 1 - lr * weight_decay
  // m.lerp_(g, w) with w = 1 - beta1, as torch computes it: m + w (g - m) below w = 0.5, else
  // g - (g - m)(1 - w), exact at w = 1 (beta1 = 0) where the first form can lose a small g to
  // cancellation against m. Both are (m or g) + lerp_factor * (g - m); the factor's sign bit says
  // which (w, or -(1 - w), which is -0 at w = 1).
  S lerp_factor;
  S beta2;
  S one_minus_beta2;
  S step_size;              // lr / (1 - beta1^t)
  S bias_correction2_sqrt;  // sqrt(1 - beta2^t)
  S eps;
  // The circuit term's weights, one of them 0: lr * lambda beside the Adam update (the paper's),
  // or, preconditioned, lambda (1 - beta1^t) on e g added to m before Adam's division (so that
  // m_hat gains lambda e g).
  S lr_lambda;
  S moment_lambda;
  S grad_sign;  // -1 under maximize
};

// The constants for step t (the count after this step's increment) at learning
// rate lr (the group's, or the one read from the device), computed in C and
// rounded once to S. The CPU computes them in double, as torch's fused AdamW
// computes its bias corrections, once per tensor and call. The GPU computes them
// per thread (from the device step counter, so a step needs no host value) in
// S: a double pow inlined into the step kernel cost 2-4% of its time on the
// H200 (measured A/B at 2^26 and 2^28 parameters), more than its rounding is worth.
template <class S, class C = double>
SP_INLINE AdamWConstants<S> adamw_constants(const AdamWHyper& h, C lr, C t) {
  const C one(1);
  const C beta1 = static_cast<C>(h.beta1), beta2 = static_cast<C>(h.beta2);
  AdamWConstants<S> c;
  c.decay = static_cast<S>(one - lr * static_cast<C>(h.weight_decay));
  const S w = static_cast<S>(one - beta1);
  c.lerp_factor = w < static_cast<S>(0.5) ? w : -(static_cast<S>(1) - w);
  c.beta2 = static_cast<S>(beta2);
  c.one_minus_beta2 = static_cast<S>(one - beta2);
  const C bias_correction1 = one - std::pow(beta1, t);
  c.step_size = static_cast<S>(lr / bias_correction1);
  c.bias_correction2_sqrt = static_cast<S>(std::sqrt(one - std::pow(beta2, t)));
  c.eps = static_cast<S>(h.eps);
  const C lambda = static_cast<C>(h.quantum_weight);
  c.lr_lambda = h.preconditioned ? S(0) : static_cast<S>(lr * lambda);
  c.moment_lambda = h.preconditioned ? static_cast<S>(lambda * bias_correction1) : S(0);
  c.grad_sign = static_cast<S>(h.maximize ? -1.0 : 1.0);
  return c;
}

// One element's update, in torch's order of operations:
//   p *= 1 - lr wd;  m.lerp_(g, 1 - b1);  v = b2 v + (1 - b2) g^2;
//   p -= step_size m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// then the circuit term of kTerm: p -= lr lambda e g (the paper's), or, preconditioned, m + lambda
// (1 - b1^t) e g in m's place under the division, i.e. p -= lr (m_hat + lambda e g) / (sqrt(v_hat)
// + eps). kEither computes both with the constants' weights, one of them 0; the CUDA product-state
// kernel instantiates the one it needs, where either's extra live constant cost 16 registers. g is
// the signed gradient (times c.grad_sign): the circuit that gave e read it too. e is not read
// without a circuit term. With AMSGrad (kAmsgrad) v_max = max(v_max, v), NaN-propagating as
// torch.maximum, takes v's place under the root; v_max is neither read nor written without it.
template <Term kTerm, bool kAmsgrad, class S>
SP_INLINE void adamw_update(S& p, S& m, S& v, S& v_max, S g, S e, const AdamWConstants<S>& c) {
  m = (std::signbit(c.lerp_factor) ? g : m) + c.lerp_factor * (g - m);
  v = c.beta2 * v + c.one_minus_beta2 * (g * g);
  S root_of = v;
  if constexpr (kAmsgrad) {
    v_max = (v > v_max || v != v) ? v : v_max;
    root_of = v_max;
  }
  const S denom = std::sqrt(root_of) / c.bias_correction2_sqrt + c.eps;
  S updated = p * c.decay;
  if constexpr (kTerm == Term::kNone) {
    p = updated - c.step_size * (m / denom);
  } else {
    const S term = e * g;
    S moment = m;
    if constexpr (kTerm != Term::kPaper) moment = m + c.moment_lambda * term;
    updated = updated - c.step_size * (moment / denom);
    if constexpr (kTerm != Term::kPreconditioned) updated = updated - c.lr_lambda * term;
    p = updated;
  }
}

}  // namespace sp
