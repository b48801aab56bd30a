#include "kernels/dedup.hpp"

#include <omp.h>

#include <cmath>
#include <string>
#include <type_traits>

namespace scurate {
namespace {

// splitmix64's finalizer: a bijection of 64-bit words whose output bits all depend on every
// input bit, so a sum of mixed pairs behaves like a random linear hash of the pair multiset.
inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

constexpr uint64_t kGeneStride = 0x9e3779b97f4a7c15ULL;  // 2^64 / golden ratio

template <class Value>
inline bool as_count(Value v, uint64_t* count) {
    if constexpr (std::is_floating_point_v<Value>) {
        const double d = static_cast<double>(v);
        if (!(d >= 0.0 && d < 9.2e18)) {  // negative, NaN, inf or beyond int64
            *count = 0;
            return false;
        }
        const int64_t whole = static_cast<int64_t>(d);  // truncates toward zero
        *count = static_cast<uint64_t>(whole);
        return static_cast<double>(whole) == d;
    } else {
        if constexpr (std::is_signed_v<Value>) {
            if (v < 0) {
                *count = 0;
                return false;
            }
        }
        *count = static_cast<uint64_t>(v);
        return true;
    }
}

}  // namespace

template <class Index, class Value>
Status hash_count_rows(const int64_t* indptr, int64_t n_rows, const Index* indices,
                       const Value* data, int64_t n_values, const int32_t* gene_map, int64_t n_cols,
                       uint64_t* hashes, uint32_t* nnz, int64_t* n_nonintegral) {
    if (n_rows < 0) return Status::error("indptr: must have at least one entry");
    if (indptr[0] < 0 || indptr[n_rows] > n_values)
        return Status::error("indptr: spans " + std::to_string(indptr[0]) + ".." +
                             std::to_string(indptr[n_rows]) + " but data has " +
                             std::to_string(n_values) + " values");
    for (int64_t i = 0; i < n_rows; ++i) {
        if (indptr[i + 1] < indptr[i])
            return Status::error("indptr: decreases at row " + std::to_string(i));
    }
    int64_t bad_column = -1;
    int64_t nonintegral = 0;
#pragma omp parallel for schedule(dynamic, 256) reduction(+ : nonintegral) \
    reduction(max : bad_column) if (n_rows > 1024)
    for (int64_t i = 0; i < n_rows; ++i) {
        uint64_t sum = 0;
        uint32_t count_pairs = 0;
        for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) {
            const int64_t c = static_cast<int64_t>(indices[p]);
            if (c < 0 || c >= n_cols) {
                bad_column = c < 0 ? 0 : c;
                continue;
            }
            const int32_t g = gene_map[c];
            if (g < 0 || data[p] == Value(0)) continue;
            uint64_t count = 0;
            if (!as_count(data[p], &count)) ++nonintegral;
            sum += mix64(static_cast<uint64_t>(g) * kGeneStride + count);
            ++count_pairs;
        }
        hashes[i] = mix64(sum ^ mix64(count_pairs + 1));
        nnz[i] = count_pairs;
    }
    if (bad_column >= 0)
        return Status::error("indices: column " + std::to_string(bad_column) + " is outside 0.." +
                             std::to_string(n_cols - 1));
    *n_nonintegral = nonintegral;
    return Status();
}

#define SCURATE_HASH_INSTANCE(I, V)                                                             \
    template Status hash_count_rows<I, V>(const int64_t*, int64_t, const I*, const V*, int64_t, \
                                          const int32_t*, int64_t, uint64_t*, uint32_t*,        \
                                          int64_t*);
#define SCURATE_HASH_VALUES(I)         \
    SCURATE_HASH_INSTANCE(I, float)    \
    SCURATE_HASH_INSTANCE(I, double)   \
    SCURATE_HASH_INSTANCE(I, int16_t)  \
    SCURATE_HASH_INSTANCE(I, int32_t)  \
    SCURATE_HASH_INSTANCE(I, int64_t)  \
    SCURATE_HASH_INSTANCE(I, uint16_t) \
    SCURATE_HASH_INSTANCE(I, uint32_t) \
    SCURATE_HASH_INSTANCE(I, uint64_t)
SCURATE_HASH_VALUES(int32_t)
SCURATE_HASH_VALUES(int64_t)
#undef SCURATE_HASH_VALUES
#undef SCURATE_HASH_INSTANCE

}  // namespace scurate
