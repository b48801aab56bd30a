#include "kernels/qc.hpp"

#include <algorithm>
#include <limits>
#include <string>

namespace scurate {

template <class Index, class Value>
Status qc_rows(const int64_t* indptr, int64_t n_rows, const Index* indices, const Value* data,
               int64_t n_values, const bool* mito, int64_t n_cols, double* total, int32_t* genes,
               double* mito_total) {
    if (n_rows < 0) return Status::error("indptr: must have at least one entry");
    if (indptr[0] < 0 || indptr[n_rows] > n_values)
        return Status::error("indptr: spans " + std::to_string(indptr[0]) + ".." +
                             std::to_string(indptr[n_rows]) + " but data has " +
                             std::to_string(n_values) + " values");
    for (int64_t i = 0; i < n_rows; ++i) {
        if (indptr[i + 1] < indptr[i])
            return Status::error("indptr: decreases at row " + std::to_string(i));
    }
    int64_t bad_entry = std::numeric_limits<int64_t>::max();
#pragma omp parallel for schedule(dynamic, 256) reduction(min : bad_entry) if (n_rows > 1024)
    for (int64_t i = 0; i < n_rows; ++i) {
        double sum = 0.0;
        double in_mito = 0.0;
        int32_t detected = 0;
        for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) {
            const uint64_t c = static_cast<uint64_t>(indices[p]);
            if (c >= static_cast<uint64_t>(n_cols)) {  // negative indices wrap above n_cols
                bad_entry = std::min(bad_entry, p);
                continue;
            }
            const double v = static_cast<double>(data[p]);
            sum += v;
            detected += v > 0.0;
            if (mito[c]) in_mito += v;
        }
        total[i] = sum;
        genes[i] = detected;
        mito_total[i] = in_mito;
    }
    if (bad_entry != std::numeric_limits<int64_t>::max()) {
        const int64_t row = std::upper_bound(indptr, indptr + n_rows + 1, bad_entry) - indptr - 1;
        return Status::error("indices: column " +
                             std::to_string(static_cast<int64_t>(indices[bad_entry])) + " (row " +
                             std::to_string(row) + ") is outside 0.." + std::to_string(n_cols - 1));
    }
    return Status();
}

#define SCURATE_QC_INSTANCE(I, V)                                                       \
    template Status qc_rows<I, V>(const int64_t*, int64_t, const I*, const V*, int64_t, \
                                  const bool*, int64_t, double*, int32_t*, double*);
#define SCURATE_QC_VALUES(I)         \
    SCURATE_QC_INSTANCE(I, float)    \
    SCURATE_QC_INSTANCE(I, double)   \
    SCURATE_QC_INSTANCE(I, int16_t)  \
    SCURATE_QC_INSTANCE(I, int32_t)  \
    SCURATE_QC_INSTANCE(I, int64_t)  \
    SCURATE_QC_INSTANCE(I, uint16_t) \
    SCURATE_QC_INSTANCE(I, uint32_t) \
    SCURATE_QC_INSTANCE(I, uint64_t)
SCURATE_QC_VALUES(int32_t)
SCURATE_QC_VALUES(int64_t)
#undef SCURATE_QC_VALUES
#undef SCURATE_QC_INSTANCE

}  // namespace scurate
