// Exact-duplicate hashing of sparse count rows on a canonical gene space.
#pragma once
#include <cstdint>

#include "kernels/status.hpp"

namespace scurate {

// Hashes each row of a CSR chunk (`indptr` has n_rows + 1 entries, relative to `indices` and
// `data`) as the multiset of its nonzero (canonical gene, count) pairs.
//
// `gene_map[c]` is the canonical gene of column c, or -1 to leave the column out. A row's
// hash is the finalized sum of one 64-bit mix per pair, so it does not depend on column
// order, on how columns are laid out, or on the value type: the same counts stored as int32 or
// as float64 hash alike. Writes `hashes[i]` and `nnz[i]` (pairs hashed). Values that are
// negative or not whole numbers are counted in `n_nonintegral` (the caller skips such a
// source); they are hashed by their integer part. Rows run in parallel (OpenMP); the outputs,
// and the entry an out-of-range column is reported at (the first), do not depend on the
// number of threads.
template <class Index, class Value>
Status hash_count_rows(const int64_t* indptr, int64_t n_rows, const Index* indices,
                       const Value* data, int64_t n_values, const int32_t* gene_map, int64_t n_cols,
                       uint64_t* hashes, uint32_t* nnz, int64_t* n_nonintegral);

}  // namespace scurate
