// Reductions over k-nearest-neighbour lists: nearest other cell, local density, and
// near-duplicate groups by union-find.
#pragma once
#include <cstdint>

#include "kernels/status.hpp"

namespace scurate {

// Summarizes a FAISS search result of a block of pool rows against the pool itself.
//
// `d2` and `labels` are (n_rows x k), squared L2 distances and neighbour rows in increasing
// distance (label -1: no neighbour, as FAISS pads). Query i is pool row `first_row + i`; its
// own entry is skipped wherever it appears (exact copies can come before it). For each query,
// writes the nearest other row and its distance, and the mean distance over its first
// `n_mean` other neighbours (NaN when it has none). Rows run in parallel (OpenMP).
Status knn_summary(const float* d2, const int64_t* labels, int64_t n_rows, int64_t k,
                   int64_t first_row, int64_t n_mean, int64_t* nn_row, float* nn_dist,
                   float* mean_dist);

// Squared L2 distances from query rows to their listed neighbours, summed in double in one
// fixed order (FAISS's own come from BLAS, whose sums change in the last bits with the
// number of threads). `x` is (n_points x dim); query i is row `first_row + i`; `labels` is
// (n_rows x k), -1 for no neighbour (written as +inf). Rows run in parallel (OpenMP).
Status row_sq_dists(const float* x, int64_t n_points, int64_t dim, const int64_t* labels,
                    int64_t n_rows, int64_t k, int64_t first_row, float* d2);

// Connected components of the graph on n_nodes nodes with edges (a[e], b[e]), by union-find
// with path halving and union by smaller root. `group[i]` is the smallest node of i's
// component when the component has two nodes or more, else -1; so the result does not depend
// on edge order.
Status union_find(int64_t n_nodes, const int64_t* a, const int64_t* b, int64_t n_edges,
                  int64_t* group);

}  // namespace scurate
