// Greedy k-center (farthest-first traversal) over a float32 embedding.
#pragma once
#include <cstdint>

#include "kernels/interrupt.hpp"
#include "kernels/status.hpp"

namespace scurate {

// Selects `budget` rows of the row-major `x` (n_rows x dim) in farthest-first order.
//
// `initial` (n_initial rows, may be empty) are centers already chosen: they are never
// returned, and the first pick is the row farthest from them. Without them the first pick
// is `first`. After pick t, `radii[t]` is the covering radius: the largest distance from any
// row to its nearest center. Ties go to the lowest row index, so the result equals a plain
// O(n * budget) traversal; distances are accumulated in double precision.
//
// The traversal keeps every row in the group of its nearest center and skips, by the
// triangle inequality, every group and every row that a new center cannot come closer to
// (Elkan's bound: d(c_j, c_new) >= 2 d(x, c_j) means d(x, c_new) >= d(x, c_j)). Centers
// are screened with a float partial distance over the widest dimensions before the exact test.
// Each group stores its members' distances and coordinates (dimensions by decreasing variance)
// contiguously, sorted by distance, so a scan reads memory sequentially and stops a row's
// distance as soon as its partial sum rules it out.
//
// With `weights` (n_rows finite values >= 0; nullptr for none) each pick is the row of the
// largest weighted distance w_i * d(i, S) instead, ties to the lowest row, and `radii` holds
// that largest weighted distance. Rows still join their nearest center, so the pruning is
// unchanged; a group's weighted farthest row is found again only when it leaves the group.
//
// Writes `order` (budget entries) and `radii` (budget entries). Runs OpenMP threads; the result
// does not depend on their number (no reduction crosses threads). Asks `interrupt` before each
// pick and returns Status::interrupted() when told to stop. Touches no Python object.
Status kcenter(const float* x, int64_t n_rows, int64_t dim, int64_t budget, const int64_t* initial,
               int64_t n_initial, int64_t first, int64_t* order, double* radii,
               Interrupt* interrupt = nullptr, const float* weights = nullptr);

// Returns a Status naming the first row with a NaN or infinite value, if any.
Status check_finite(const float* x, int64_t n_rows, int64_t dim, const char* arg);

}  // namespace scurate
