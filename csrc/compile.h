// Compiles a circuit (a list of gates and one Pauli observable per qubit) into
// the Program that the kernels run. Host only.
//
// Passes, in order:
//  1. Tail absorption (skipped when the statevector itself is wanted): walking
//     back from the end, a Clifford gate (H, X, CX, CZ) with no later gate on its
//     qubits is moved into the observables (O -> G^dagger O G, which keeps them
//     Pauli strings), and a rotation that commutes with every observable is
//     dropped. Both leave every expectation unchanged.
//  2. Product prefix: the one-qubit gates of a qubit before its first two-qubit
//     gate act on a 2-vector; the state starts as the tensor product of those.
//  3. Fusion: the remaining runs of one-qubit gates on a qubit between two-qubit
//     gates become one 2x2 unitary each.
// Invalid input raises std::invalid_argument with a message naming the problem.
#pragma once

#include <vector>

#include "circuit.h"

namespace sp {

struct Observable {
  char pauli;  // 'X', 'Y' or 'Z'
  bool negative;
};

Program compile(int n_qubits, const std::vector<Gate>& gates, const std::vector<Observable>& observables,
                bool keep_state);

}  // namespace sp
