// Grid covering for geometric sketching (the plaid covering of geosketch).
#pragma once
#include <cstdint>

#include "kernels/interrupt.hpp"
#include "kernels/status.hpp"

namespace scurate {

// Puts each row of the row-major `x` (n_rows x dim) in a box of a plaid grid of side `unit`.
//
// Along each dimension, the sorted values are cut into intervals greedily: an interval starts
// at the smallest value not yet covered and holds every value up to start + unit, so empty
// stretches of the axis get no interval (as geosketch's gs_gap). A box is one interval per
// dimension; rows with the same intervals share a box. Box ids in `box` are numbered in order
// of their first row (0, 1, ...); their count goes to `n_boxes`. Boxes are told apart by two
// independent 64-bit hashes of the interval vector.
Status grid_boxes(const float* x, int64_t n_rows, int64_t dim, double unit, int64_t* box,
                  int64_t* n_boxes);

// Searches the side `unit` by bisection, as geosketch does, until the number of non-empty
// boxes is within [target / (1 + alpha), target * (1 + alpha)] (or `max_iter` steps, or the
// side cannot be refined), then writes that grid as `grid_boxes` does and the side to `unit`.
// Asks `interrupt` before each step and returns Status::interrupted() when told to stop.
Status grid_covering(const float* x, int64_t n_rows, int64_t dim, int64_t target, double alpha,
                     int64_t max_iter, int64_t* box, int64_t* n_boxes, double* unit,
                     Interrupt* interrupt = nullptr);

}  // namespace scurate
