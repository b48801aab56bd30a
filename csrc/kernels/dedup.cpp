#include "kernels/dedup.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace scurate {
namespace {

// splitmix64's finalizer: a bijection of 64-bit words whose output bits all depend on every
// input bit, so a sum of mixed pairs behaves like a random linear hash of the pair multiset.
inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

constexpr uint64_t kPairMix = 0x9e3779b97f4a7c15ULL;  // 2^64 / golden ratio, odd

// One 64-bit word per (gene, count) pair: the gene's own random key plus the count, then a
// multiply-xorshift. Distinct pairs collide only if two genes' keys differ by exactly the
// difference of their counts (about 2^-60), and the row hash is confirmed on the rows anyway.
inline uint64_t pair_word(uint64_t gene_key, uint64_t count) {
    uint64_t z = (gene_key + count) * kPairMix;
    return z ^ (z >> 29);
}

// The count a stored value stands for, and whether it is one (a whole number >= 0). NaN, inf,
// negatives and fractions are flagged; the comparisons are branch-free.
template <class Value>
inline uint64_t as_count(Value v, uint64_t& bad) {
    if constexpr (std::is_floating_point_v<Value>) {
        const double d = static_cast<double>(v);
        const bool in_range = d >= 0.0 && d < 9.2e18;  // false for NaN too
        const int64_t whole = in_range ? static_cast<int64_t>(d) : 0;
        bad += !in_range || static_cast<double>(whole) != d;
        return static_cast<uint64_t>(whole);
    } else {
        if constexpr (std::is_signed_v<Value>) bad += v < 0;
        return static_cast<uint64_t>(v);
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
    // each canonical gene's random key, looked up per column: 0 leaves the column out
    std::vector<uint64_t> column_key(static_cast<size_t>(n_cols), 0);
    for (int64_t c = 0; c < n_cols; ++c) {
        const int32_t g = gene_map[c];
        column_key[c] = g < 0 ? 0 : (mix64(static_cast<uint64_t>(g) + 1) | 1);  // never 0
    }
    const uint64_t* key = column_key.data();
    // the first entry whose column is out of range (a min over entries: the same whatever the
    // number of threads); integer sums are exact in any order
    int64_t bad_entry = std::numeric_limits<int64_t>::max();
    int64_t nonintegral = 0;
#pragma omp parallel for schedule(dynamic, 256) reduction(+ : nonintegral) \
    reduction(min : bad_entry) if (n_rows > 1024)
    for (int64_t i = 0; i < n_rows; ++i) {
        uint64_t sum = 0;
        uint64_t row_bad = 0;  // a local, so it stays in a register
        uint32_t count_pairs = 0;
        for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) {
            const uint64_t c = static_cast<uint64_t>(indices[p]);
            if (c >= static_cast<uint64_t>(n_cols)) {  // negative indices wrap above n_cols
                bad_entry = std::min(bad_entry, p);
                continue;
            }
            const uint64_t k = key[c];
            if (k == 0 || data[p] == Value(0)) continue;
            sum += pair_word(k, as_count(data[p], row_bad));
            ++count_pairs;
        }
        hashes[i] = mix64(sum ^ mix64(count_pairs + 1));
        nnz[i] = count_pairs;
        nonintegral += static_cast<int64_t>(row_bad);
    }
    if (bad_entry != std::numeric_limits<int64_t>::max()) {
        const int64_t row = std::upper_bound(indptr, indptr + n_rows + 1, bad_entry) - indptr - 1;
        return Status::error("indices: column " +
                             std::to_string(static_cast<int64_t>(indices[bad_entry])) + " (row " +
                             std::to_string(row) + ") is outside 0.." + std::to_string(n_cols - 1));
    }
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
