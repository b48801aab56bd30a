// Facility location over a sparse similarity graph: lazy greedy, or stochastic greedy.
#pragma once
#include <cstdint>

#include "kernels/interrupt.hpp"
#include "kernels/status.hpp"

namespace scurate {

// Maximizes F(S) = sum_i max_{j in S} sim(i, j) greedily, one pick at a time.
//
// The graph is given by candidate: row j of the CSR arrays (`indptr`, n_rows + 1 entries;
// `indices`, `values`, indptr[n_rows] entries) lists the cells i that j covers and sim(i, j)
// (finite, >= 0; a cell absent from the row has similarity 0 to j). Each pick is the candidate
// with the largest gain F(S + j) - F(S), ties to the lowest row, exactly as a plain greedy
// that recomputes every gain; the lazy evaluation (Minoux) only skips candidates whose stale
// upper bound cannot win. Gains are summed in double.
//
// With `sample` > 0 (and below n_rows) the greedy is stochastic ("lazier than lazy greedy",
// Mirzasoleiman et al. 2015): each pick draws `sample` candidates uniformly, without
// replacement, from those not yet picked (all of them once fewer remain) and takes the one
// of largest gain, ties to the lowest row; the lazy bounds skip sampled candidates whose
// stale bound cannot win. The draws come from a splitmix64 stream started at `seed`, one pick
// after another, so a run's first m picks are the run with budget m. `sample` <= 0 is the
// exact lazy greedy above (`seed` unused).
//
// Writes `order` (budget rows) and `objective` (F after each pick). The initial gains use
// OpenMP threads, one candidate each, so nothing depends on their number. Asks `interrupt`
// between steps and returns Status::interrupted() when told to stop. Touches no Python
// object.
Status facility_location(const int64_t* indptr, const int64_t* indices, const float* values,
                         int64_t n_rows, int64_t budget, int64_t sample, uint64_t seed,
                         int64_t* order, double* objective, Interrupt* interrupt = nullptr);

}  // namespace scurate
