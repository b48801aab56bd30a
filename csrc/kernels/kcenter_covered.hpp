// Greedy k-center that starts from a corpus already covered elsewhere.
#pragma once
#include <cstdint>

#include "kernels/interrupt.hpp"
#include "kernels/status.hpp"

namespace scurate {

// Farthest-first traversal of the row-major `x` (n_rows x dim) where every row starts at
// distance `covered[i]` (its distance to a reference corpus that is not in `x`; +inf for
// none). Each pick is the row farthest from both the reference and all rows picked before,
// ties to the lowest row; after pick t, `radii[t]` is the largest such distance left.
//
// The reference has no coordinates here, so Elkan's bound does not apply; instead each row's
// current distance is an upper bound kept in a max-heap, and only the row on top is brought
// up to date against the picks made since it was last looked at (lazy evaluation, exact):
// rows the reference already covers closely never reach the top and are never touched.
// Distances are accumulated in double precision. Single-threaded. Asks `interrupt` between
// heap steps and returns Status::interrupted() when told to stop.
Status kcenter_covered(const float* x, int64_t n_rows, int64_t dim, const float* covered,
                       int64_t budget, int64_t* order, double* radii,
                       Interrupt* interrupt = nullptr);

}  // namespace scurate
