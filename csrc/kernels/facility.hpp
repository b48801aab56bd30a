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
// `Index` is int32_t or int64_t: a million cells' graph in int32 takes half the memory.
template <class Index>
Status facility_location(const int64_t* indptr, const Index* indices, const float* values,
                         int64_t n_rows, int64_t budget, int64_t sample, uint64_t seed,
                         int64_t* order, double* objective, Interrupt* interrupt = nullptr);

// The graph facility location reads (by candidate), from each cell's neighbour list: row j
// lists j itself (similarity 1) and every cell i whose list `near[i, :]` holds j, with
// `sim[i, c]` where near[i, c] == j; within a row the cells come in increasing order (i and j
// itself in their place). `near` (n x k, int32) holds rows of 0..n-1, or -1 for none (that
// entry is skipped); `sim` (n x k) is finite and >= 0 where near is not -1.
// covering_counts writes `indptr` (n + 1 entries); covering_fill then writes `indices` and
// `values` (indptr[n] entries each). One pass each, no sort: the lists are read in cell order.
Status covering_counts(const int32_t* near, int64_t n, int64_t k, int64_t* indptr);
Status covering_fill(const int32_t* near, const float* sim, int64_t n, int64_t k,
                     const int64_t* indptr, int32_t* indices, float* values);

// The same a block of cells at a time, for lists too large to hold whole: rows first ..
// first + rows - 1 of `near`/`sim` (the block's own rows, k wide). covering_count_block adds
// the block's entries to `counts` (n + 1 entries, zeroed by the caller, prefix-summed by the
// caller after the last block); covering_fill_block writes them at `next` (n entries, a copy
// of indptr's first n the caller keeps between blocks). Blocks must come in cell order.
Status covering_count_block(const int32_t* near, int64_t first, int64_t rows, int64_t n, int64_t k,
                            int64_t* counts);
Status covering_fill_block(const int32_t* near, const float* sim, int64_t first, int64_t rows,
                           int64_t n, int64_t k, const int64_t* indptr, int64_t* next,
                           int32_t* indices, float* values);

}  // namespace scurate
