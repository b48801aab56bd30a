#include "kernels/facility.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <queue>
#include <string>
#include <vector>

#include "kernels/prefetch.hpp"

namespace scurate {
namespace {

struct Bound {
    double gain;
    int64_t row;
};
// Max-heap order: larger gain first, then lower row.
struct Lower {
    bool operator()(const Bound& a, const Bound& b) const {
        return a.gain < b.gain || (a.gain == b.gain && a.row > b.row);
    }
};

template <class Index>
Status check_graph(const int64_t* indptr, const Index* indices, const float* values,
                   int64_t n_rows) {
    if (indptr[0] != 0)
        return Status::error("indptr[0]: expected 0, got " + std::to_string(indptr[0]));
    for (int64_t j = 0; j < n_rows; ++j) {
        if (indptr[j + 1] < indptr[j])
            return Status::error("indptr: decreases at " + std::to_string(j + 1));
    }
    const int64_t nnz = indptr[n_rows];
    for (int64_t p = 0; p < nnz; ++p) {
        if (indices[p] < 0 || indices[p] >= n_rows)
            return Status::error("indices[" + std::to_string(p) +
                                 "] = " + std::to_string(indices[p]) + " is outside 0.." +
                                 std::to_string(n_rows - 1));
        if (!std::isfinite(values[p]) || values[p] < 0.0f)
            return Status::error("values[" + std::to_string(p) +
                                 "] = " + std::to_string(values[p]) + ": expected finite and >= 0");
    }
    return Status();
}

// splitmix64 (Steele, Lea and Flood 2014): a small seeded stream, the same on every platform.
class SplitMix {
  public:
    explicit SplitMix(uint64_t seed) : state_(seed) {}
    uint64_t next() {
        uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    // Uniform in [0, m), for m < 2^53.
    int64_t below(int64_t m) {
        const double u = static_cast<double>(next() >> 11) * 0x1.0p-53;
        return std::min<int64_t>(static_cast<int64_t>(u * static_cast<double>(m)), m - 1);
    }

  private:
    uint64_t state_;
};

// F(S + j) - F(S) given each cell's similarity to its nearest pick.
template <class Index>
inline double gain_of(const int64_t* indptr, const Index* indices, const float* values,
                      const std::vector<float>& best, int64_t j) {
    double g = 0.0;
    for (int64_t p = indptr[j]; p < indptr[j + 1]; ++p) {
        const double d = static_cast<double>(values[p]) - static_cast<double>(best[indices[p]]);
        if (d > 0.0) g += d;
    }
    return g;
}

template <class Index>
inline void take(const int64_t* indptr, const Index* indices, const float* values,
                 std::vector<float>& best, int64_t j) {
    for (int64_t p = indptr[j]; p < indptr[j + 1]; ++p) {
        float& b = best[indices[p]];
        if (values[p] > b) b = values[p];
    }
}

constexpr int64_t kBatch = 256;  // sampled candidates whose gains are computed together
constexpr int64_t kAhead = 16;   // swaps whose memory is fetched ahead in the sample's shuffle

// Stochastic greedy: see facility.hpp. `bound` holds the first gains (upper bounds).
template <class Index>
Status stochastic(const int64_t* indptr, const Index* indices, const float* values, int64_t n_rows,
                  int64_t budget, int64_t sample, uint64_t seed, std::vector<double> bound,
                  int64_t* order, double* objective, Interrupt* interrupt) {
    // pool[0, remaining): not picked yet; rows and positions held as Index (int32 wherever the
    // graph's indices are), half the memory the shuffle reads at random
    std::vector<Index> pool(n_rows), pos(n_rows);
    std::iota(pool.begin(), pool.end(), Index{0});
    std::iota(pos.begin(), pos.end(), Index{0});
    auto swap_at = [&](int64_t a, int64_t b) {
        std::swap(pool[a], pool[b]);
        pos[pool[a]] = static_cast<Index>(a);
        pos[pool[b]] = static_cast<Index>(b);
    };
    std::vector<float> best(n_rows, 0.0f);
    std::vector<Bound> cand;
    std::vector<int64_t> batch, target;
    std::vector<double> gains;
    SplitMix rng(seed);
    const Lower lower;
    double total = 0.0;
    for (int64_t t = 0; t < budget; ++t) {
        if (interrupt != nullptr && (t & 63) == 63 && interrupt->requested())
            return Status::interrupted();
        const int64_t remaining = n_rows - t;
        const int64_t m = std::min(sample, remaining);
        cand.resize(m);
        // A partial Fisher-Yates shuffle of the pool. Its draws depend on the stream alone, so
        // they are taken first; each swap then reads three places at random in arrays of
        // n_rows entries, which are fetched ahead (the row at a target several swaps ahead
        // may still move before its turn: then the fetch was only wasted).
        target.resize(m);
        for (int64_t i = 0; i < m; ++i) target[i] = i + rng.below(remaining - i);
        for (int64_t i = 0; i < m; ++i) {
            if (i + 2 * kAhead < m) prefetch(&pool[target[i + 2 * kAhead]]);
            if (i + kAhead < m) {
                const Index ahead = pool[target[i + kAhead]];
                prefetch(&bound[ahead]);
                prefetch(&pos[ahead]);
                prefetch(&pos[pool[i + kAhead]]);
            }
            swap_at(i, target[i]);
            cand[i] = Bound{bound[pool[i]], pool[i]};
        }
        // a heap of the sample by stale bound: only the candidates that might win are popped
        std::make_heap(cand.begin(), cand.end(), lower);
        // Candidates leave the heap in batches, largest bound first, and a batch's gains are
        // computed by OpenMP threads (each its own entries; the winner is chosen after, in
        // order, so nothing depends on the threads). Stale bounds are >= gains: once the next
        // bound cannot beat the winner, no candidate left can.
        Bound win{-1.0, -1};
        auto end = cand.end();
        int64_t size = 8;  // batches grow as long as the bounds keep winners in doubt
        while (end != cand.begin() && (win.row < 0 || lower(win, cand.front()))) {
            batch.clear();
            size = std::min(2 * size, kBatch);
            while (end != cand.begin() && static_cast<int64_t>(batch.size()) < size &&
                   (win.row < 0 || lower(win, cand.front()))) {
                batch.push_back(cand.front().row);
                std::pop_heap(cand.begin(), end, lower);
                --end;
            }
            const int64_t nb = static_cast<int64_t>(batch.size());
            gains.resize(nb);
#pragma omp parallel for schedule(static) if (nb >= kBatch / 2)
            for (int64_t b = 0; b < nb; ++b)
                gains[b] = gain_of(indptr, indices, values, best, batch[b]);
            for (int64_t b = 0; b < nb; ++b) {
                bound[batch[b]] = gains[b];
                const Bound now{gains[b], batch[b]};
                if (win.row < 0 || lower(win, now)) win = now;
            }
        }
        take(indptr, indices, values, best, win.row);
        total += win.gain;
        order[t] = win.row;
        objective[t] = total;
        swap_at(pos[win.row], remaining - 1);
    }
    return Status();
}

}  // namespace

template <class Index>
Status facility_location(const int64_t* indptr, const Index* indices, const float* values,
                         int64_t n_rows, int64_t budget, int64_t sample, uint64_t seed,
                         int64_t* order, double* objective, Interrupt* interrupt) {
    if (budget < 0 || budget > n_rows)
        return Status::error("budget: must be between 0 and the " + std::to_string(n_rows) +
                             " rows, got " + std::to_string(budget));
    if (Status st = check_graph(indptr, indices, values, n_rows); !st.ok()) return st;

    std::vector<double> first(n_rows);
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n_rows; ++j) {
        double g = 0.0;
        for (int64_t p = indptr[j]; p < indptr[j + 1]; ++p) g += static_cast<double>(values[p]);
        first[j] = g;
    }
    if (sample > 0 && sample < n_rows)
        return stochastic(indptr, indices, values, n_rows, budget, sample, seed, std::move(first),
                          order, objective, interrupt);
    std::vector<Bound> heap(n_rows);
    for (int64_t j = 0; j < n_rows; ++j) heap[j] = Bound{first[j], j};
    std::priority_queue<Bound, std::vector<Bound>, Lower> queue(Lower{}, std::move(heap));

    std::vector<float> best(n_rows, 0.0f);  // each cell's similarity to its nearest pick
    double total = 0.0;
    int64_t picked = 0;
    int64_t steps = 0;
    while (picked < budget) {
        // a step costs one candidate's row: ask the clock only every 64 of them
        if (interrupt != nullptr && (++steps & 63) == 0 && interrupt->requested())
            return Status::interrupted();
        Bound top = queue.top();
        queue.pop();
        const double g = gain_of(indptr, indices, values, best, top.row);
        // the stale bounds of the others are >= their gains: j wins if it beats the next bound
        const bool wins = queue.empty() || g > queue.top().gain ||
                          (g == queue.top().gain && top.row < queue.top().row);
        if (!wins) {
            queue.push(Bound{g, top.row});
            continue;
        }
        take(indptr, indices, values, best, top.row);
        total += g;
        order[picked] = top.row;
        objective[picked] = total;
        ++picked;
    }
    return Status();
}

template Status facility_location<int32_t>(const int64_t*, const int32_t*, const float*, int64_t,
                                           int64_t, int64_t, uint64_t, int64_t*, double*,
                                           Interrupt*);
template Status facility_location<int64_t>(const int64_t*, const int64_t*, const float*, int64_t,
                                           int64_t, int64_t, uint64_t, int64_t*, double*,
                                           Interrupt*);

namespace {
// near[i, c] = j names no row of n (and is not -1, "none").
Status outside(int64_t i, int64_t c, int32_t j, int64_t n) {
    return Status::error("near[" + std::to_string(i) + ", " + std::to_string(c) +
                         "] = " + std::to_string(j) + " is outside -1.." + std::to_string(n - 1));
}
}  // namespace

Status covering_count_block(const int32_t* near, int64_t first, int64_t rows, int64_t n, int64_t k,
                            int64_t* counts) {
    if (n >= (int64_t{1} << 31))
        return Status::error("near: " + std::to_string(n) + " cells do not fit int32 rows");
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = first + r;
        ++counts[i + 1];  // the cell itself
        for (int64_t c = 0; c < k; ++c) {
            const int32_t j = near[r * k + c];
            if (j == -1) continue;
            if (j < 0 || j >= n) return outside(i, c, j, n);
            ++counts[static_cast<int64_t>(j) + 1];
        }
    }
    return Status();
}

Status covering_fill_block(const int32_t* near, const float* sim, int64_t first, int64_t rows,
                           int64_t n, int64_t k, const int64_t* indptr, int64_t* next,
                           int32_t* indices, float* values) {
    for (int64_t r = 0; r < rows; ++r) {  // cells in order: each row fills in increasing order
        const int64_t i = first + r;
        int64_t& own = next[i];
        if (own >= indptr[i + 1])
            return Status::error("near: row " + std::to_string(i) +
                                 " appears more often than covering_counts counted");
        indices[own] = static_cast<int32_t>(i);
        values[own++] = 1.0f;
        for (int64_t c = 0; c < k; ++c) {
            const int32_t j = near[r * k + c];
            if (j == -1) continue;
            if (j < 0 || j >= n) return outside(i, c, j, n);
            const float s = sim[r * k + c];
            if (!std::isfinite(s) || s < 0.0f)
                return Status::error("sim[" + std::to_string(i) + ", " + std::to_string(c) +
                                     "] = " + std::to_string(s) + ": expected finite and >= 0");
            int64_t& at = next[j];
            if (at >= indptr[j + 1])
                return Status::error("near: row " + std::to_string(j) +
                                     " appears more often than covering_counts counted");
            indices[at] = static_cast<int32_t>(i);
            values[at++] = s;
        }
    }
    return Status();
}

Status covering_counts(const int32_t* near, int64_t n, int64_t k, int64_t* indptr) {
    std::fill(indptr, indptr + n + 1, int64_t{0});
    Status st = covering_count_block(near, 0, n, n, k, indptr);
    if (!st.ok()) return st;
    for (int64_t j = 0; j < n; ++j) indptr[j + 1] += indptr[j];
    return Status();
}

Status covering_fill(const int32_t* near, const float* sim, int64_t n, int64_t k,
                     const int64_t* indptr, int32_t* indices, float* values) {
    std::vector<int64_t> next(indptr, indptr + n);  // where each row's next entry goes
    return covering_fill_block(near, sim, 0, n, n, k, indptr, next.data(), indices, values);
}

}  // namespace scurate
