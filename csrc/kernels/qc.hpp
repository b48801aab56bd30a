// Per-cell quality values of sparse count rows: total counts, detected genes, mitochondrial counts.
#pragma once
#include <cstdint>

#include "kernels/status.hpp"

namespace scurate {

// For each row of a CSR chunk (`indptr` has n_rows + 1 entries, relative to `indices` and
// `data`): the sum of its values (`total`), how many of its values are above zero (`genes`),
// and the sum of its values in the columns `mito` marks (`mito_total`; `mito` has n_cols
// entries). Rows run in parallel (OpenMP); each row is summed in its own order, so the outputs
// do not depend on the number of threads. An out-of-range column is reported at its first entry.
template <class Index, class Value>
Status qc_rows(const int64_t* indptr, int64_t n_rows, const Index* indices, const Value* data,
               int64_t n_values, const bool* mito, int64_t n_cols, double* total, int32_t* genes,
               double* mito_total);

}  // namespace scurate
