#include "kernels/kcenter.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "kernels/prefetch.hpp"

namespace scurate {
namespace {

// A row's distance to a center is summed in double over the dimensions in their stored order,
// four lanes at a time, the lanes combined as (a0 + a1) + (a2 + a3). Every term is >= 0 and
// rounding is monotone, so the combined partial sum after any block never exceeds the final
// sum: a scan can stop as soon as the partial sum reaches a bound, and the decision is exact.
// The rows are read where the caller keeps them (often a memory-mapped file); each group keeps
// only its members' distances, rows and leading dimensions (those of largest variance), 48
// bytes a member, so the traversal's own memory is a fraction of the embedding's.
constexpr int kLanes = 4;
constexpr int kLead = 8;  // leading dimensions, stored apart from the rest for a cheap first test
// A partial sum over the leading dimensions, taken in another order than the row's distance,
// may exceed that distance's leading part by rounding: it excludes a row only when it is above
// the bound by more than this relative slack (far above double rounding over a few hundred
// terms).
constexpr double kLeadSlack = 1e-12;

#if defined(__GNUC__) || defined(__clang__)
// GCC and Clang vector extensions: one AVX register of doubles where the target has one.
typedef double Lanes __attribute__((vector_size(4 * sizeof(double))));
typedef float Floats4 __attribute__((vector_size(4 * sizeof(float))));
inline Lanes zero_lanes() { return Lanes{0.0, 0.0, 0.0, 0.0}; }
inline void add_sq(Lanes& acc, const float* a, const float* b) {
    Floats4 fa, fb;
    std::memcpy(&fa, a, sizeof fa);
    std::memcpy(&fb, b, sizeof fb);
    const Lanes t = __builtin_convertvector(fa, Lanes) - __builtin_convertvector(fb, Lanes);
    acc += t * t;
}
#else
struct Lanes {
    double v[kLanes];
    double operator[](int k) const { return v[k]; }
};
inline Lanes zero_lanes() { return Lanes{{0.0, 0.0, 0.0, 0.0}}; }
inline void add_sq(Lanes& acc, const float* a, const float* b) {
    for (int k = 0; k < kLanes; ++k) {
        const double t = static_cast<double>(a[k]) - static_cast<double>(b[k]);
        acc.v[k] += t * t;
    }
}
#endif
// Prefetches the n floats at p, one cache line at a time.
inline void prefetch_row(const float* p, int64_t n) {
    const char* b = reinterpret_cast<const char*>(p);
    const int64_t bytes = n * static_cast<int64_t>(sizeof(float));
    for (int64_t off = 0; off < bytes; off += 64) prefetch(b + off);
    if (bytes > 0) prefetch(b + bytes - 1);
}
inline double total(const Lanes& a) { return (a[0] + a[1]) + (a[2] + a[3]); }

// Adds the squared differences of the last dim % kLanes coordinates (zero-padded).
inline void add_sq_rest(Lanes& acc, const float* a, const float* b, int64_t rest) {
    float pa[kLanes] = {0.0f, 0.0f, 0.0f, 0.0f}, pb[kLanes] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t k = 0; k < rest; ++k) {
        pa[k] = a[k];
        pb[k] = b[k];
    }
    add_sq(acc, pa, pb);
}

// Squared distance between two rows as stored, into `d2`, when it is below `bound`; false as
// soon as a partial sum (every 2 * kLanes dimensions) reaches the bound. The one order every
// row-to-center distance is summed in, so that equal rows are at equal distances.
inline bool row_dist2_below(const float* a, const float* b, int64_t dim, double bound, double* d2) {
    Lanes acc = zero_lanes();
    int64_t k = 0;
    for (; k + 2 * kLanes <= dim; k += 2 * kLanes) {
        add_sq(acc, a + k, b + k);
        add_sq(acc, a + k + kLanes, b + k + kLanes);
        if (total(acc) >= bound) return false;
    }
    if (k + kLanes <= dim) {
        add_sq(acc, a + k, b + k);
        k += kLanes;
    }
    if (k < dim) add_sq_rest(acc, a + k, b + k, dim - k);
    *d2 = total(acc);
    return *d2 < bound;
}

// Squared distance between two points stored as (lead, tail) in variance order; `n_tail` is a
// multiple of kLanes (padded with zeros).
inline double vdist2(const float* lead_a, const float* tail_a, const float* lead_b,
                     const float* tail_b, int64_t n_tail) {
    Lanes acc = zero_lanes();
    for (int k = 0; k < kLead; k += kLanes) add_sq(acc, lead_a + k, lead_b + k);
    for (int64_t k = 0; k < n_tail; k += kLanes) add_sq(acc, tail_a + k, tail_b + k);
    return total(acc);
}

// The farthest row of a group: largest squared distance, ties to the lowest row index; `slot`
// is the group it belongs to.
struct Best {
    double d2 = -1.0;
    int64_t row = std::numeric_limits<int64_t>::max();
    int64_t slot = -1;
    void offer(const Best& o) {
        if (o.d2 > d2 || (o.d2 == d2 && o.row < row)) *this = o;
    }
};

// A tournament tree over center slots, so the farthest row overall is found in O(log k).
class Tournament {
  public:
    explicit Tournament(int64_t capacity) {
        size_ = 1;
        while (size_ < capacity) size_ <<= 1;
        tree_.assign(2 * size_, Best{});
    }
    void set(int64_t slot, const Best& b) {
        int64_t i = slot + size_;
        tree_[i] = b;
        for (i >>= 1; i >= 1; i >>= 1) {
            Best m = tree_[2 * i];
            m.offer(tree_[2 * i + 1]);
            tree_[i] = m;
        }
    }
    const Best& top() const { return tree_[1]; }
    const Best& leaf(int64_t slot) const { return tree_[slot + size_]; }

  private:
    int64_t size_;
    std::vector<Best> tree_;
};

// A row on its way into a new group: its new distance, its row and where its leading
// coordinates are (nullptr: gathered from the row).
struct Key {
    double d2;
    int64_t row;
    const float* lead;  // kLead floats in variance order
};

// Order within a group: ascending distance, ties by descending row. The back is then the
// group's farthest row (lowest index among ties), and the rows a new center might come closer
// to (Elkan: 4 d2 > d(c, p)^2) are a suffix, found by binary search.
inline bool key_less(const Key& a, const Key& b) {
    return a.d2 < b.d2 || (a.d2 == b.d2 && a.row > b.row);
}

// Sorts `v` with up to `threads` OpenMP threads: sorted pieces, then rounds of pairwise
// merges. The order is total (rows are distinct), so the result does not depend on threads.
void parallel_sort(std::vector<Key>& v, std::vector<Key>& tmp, int threads) {
    const int64_t n = static_cast<int64_t>(v.size());
    int pieces = 1;
    while (pieces < threads && n / (2 * pieces) >= 16384) pieces *= 2;
    if (pieces == 1) {
        std::sort(v.begin(), v.end(), key_less);
        return;
    }
    std::vector<int64_t> bound(pieces + 1);
    for (int s = 0; s <= pieces; ++s) bound[s] = n * s / pieces;
#pragma omp parallel for schedule(static, 1) num_threads(pieces)
    for (int s = 0; s < pieces; ++s)
        std::sort(v.begin() + bound[s], v.begin() + bound[s + 1], key_less);
    tmp.resize(n);
    std::vector<Key>* src = &v;
    std::vector<Key>* dst = &tmp;
    for (int width = 1; width < pieces; width *= 2) {
#pragma omp parallel for schedule(static, 1) num_threads(pieces / (2 * width))
        for (int s = 0; s < pieces; s += 2 * width) {
            const int64_t a = bound[s], b = bound[s + width], c = bound[s + 2 * width];
            std::merge(src->begin() + a, src->begin() + b, src->begin() + b, src->begin() + c,
                       dst->begin() + a, key_less);
        }
        std::swap(src, dst);
    }
    if (src != &v) v.swap(tmp);
}

// An allocator that leaves new elements uninitialized: group arrays are written right after
// they grow, and zeroing them first would be one more pass over fresh memory.
template <class T>
struct NoInit : std::allocator<T> {
    template <class U>
    struct rebind {
        using other = NoInit<U>;
    };
    NoInit() = default;
    template <class U>
    NoInit(const NoInit<U>&) noexcept {}
    template <class U>
    void construct(U* p) noexcept {
        ::new (static_cast<void*>(p)) U;
    }
    template <class U, class... A>
    void construct(U* p, A&&... a) {
        ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
    }
};
template <class T>
using Array = std::vector<T, NoInit<T>>;

// The members of one center, as a structure of arrays sorted by key_less, so that a scan
// reads sequentially what its first test needs: the distance and the leading dimensions of
// every candidate; the whole row is read only for candidates the leading dimensions cannot
// exclude. A row that leaves becomes a hole (row -1, leading coordinates +inf, which no test
// lets through) and holes are compacted away once they are a quarter of the group.
struct Group {
    Array<double> d2;
    Array<int64_t> row;
    Array<float> lead;  // kLead per member
    Array<double> w2;   // with weights: each member's squared weight
    int64_t holes = 0;
    int64_t size() const { return static_cast<int64_t>(d2.size()); }
};

constexpr int64_t kChunk = 8192;             // candidates per OpenMP task when scanning groups
constexpr int64_t kBlock = 512;              // centers screened together
constexpr int64_t kParallelCenters = 16384;  // centers above which screening is threaded
constexpr int64_t kMinChunk = 256;           // candidates per task at the least
constexpr int64_t kAhead = 8;                // rows prefetched ahead in the second pass of a scan
constexpr int64_t kParallelCopy = 65536;     // members above which a copy is split among threads

class Traversal {
  public:
    // `w2`: each row's squared weight, or nullptr for none (all 1).
    Traversal(const float* x, int64_t n, int64_t dim, int64_t capacity, const double* w2)
        : x_(x), n_(n), dim_(dim), w2_(w2), tournament_(capacity) {
        stale_.assign(w2_ != nullptr ? capacity : 0, 1);
        dims_ = dims_by_variance();
        n_tail_ = std::max<int64_t>(0, dim_ - kLead);
        n_tail_ = (n_tail_ + kLanes - 1) / kLanes * kLanes;
        stride_ = kLead + n_tail_;
        threads_ = std::max(1, omp_get_max_threads());
        out_d2_.resize(threads_);
        out_row_.resize(threads_);
        out_lead_.resize(threads_);
        pass_idx_.assign(threads_, std::vector<int64_t>(kChunk));
        groups_.reserve(capacity);
        capacity_ = capacity;
        center_lead_.assign(kLead * capacity, 0.0f);
        center_limit_.assign(capacity, -1.0f);
        screened_.resize(threads_);
    }

    // Until stop_tracking, remembers the group of every row, so that add_center can take rows
    // whose group the caller does not know (the initial centers).
    void track_rows() { slot_of_.assign(n_, 0); }
    void stop_tracking() { std::vector<int64_t>().swap(slot_of_); }

    // Makes row p a center: every row that p comes closer to moves into p's group. `home` is
    // p's group (farthest().slot), or -1 while rows are tracked.
    void add_center(int64_t p, int64_t home) {
        const int64_t slot = static_cast<int64_t>(centers_.size());
        centers_.push_back(p);
        center_coords_.resize((slot + 1) * stride_);
        gather(p, center_coords_.data() + slot * stride_);
        for (int k = 0; k < kLead; ++k)
            center_lead_[k * capacity_ + slot] = center_coords_[slot * stride_ + k];
        if (slot == 0) {
            first_center(p);
        } else {
            next_center(p, slot, home < 0 ? slot_of_[p] : home);
        }
    }

    const Best& farthest() const { return tournament_.top(); }

  private:
    const float* row(int64_t i) const { return x_ + i * dim_; }
    const float* center(int64_t j) const { return center_coords_.data() + j * stride_; }

    // Row i's coordinates in variance order, zero-padded to stride_.
    void gather(int64_t i, float* out) const {
        const float* a = row(i);
        for (int64_t k = 0; k < stride_; ++k) out[k] = k < dim_ ? a[dims_[k]] : 0.0f;
    }
    // Row i's leading coordinates (the first kLead of gather).
    void gather_lead(int64_t i, float* out) const {
        const float* a = row(i);
        for (int k = 0; k < kLead; ++k) out[k] = k < dim_ ? a[dims_[k]] : 0.0f;
    }

    // Dimensions by decreasing variance, so a partial distance over the first ones is a
    // tight lower bound of the whole. Each dimension's sums run over the rows in order, one
    // thread per block of dimensions, so the order (and the distances summed in it) does not
    // depend on the number of threads.
    std::vector<int64_t> dims_by_variance() const {
        std::vector<double> sum(dim_, 0.0), sq(dim_, 0.0);
        const int64_t blocks = std::min<int64_t>(dim_, std::max(1, omp_get_max_threads()));
#pragma omp parallel for schedule(static, 1) if (blocks > 1 && n_ * dim_ > 65536)
        for (int64_t b = 0; b < blocks; ++b) {
            const int64_t lo = dim_ * b / blocks, hi = dim_ * (b + 1) / blocks;
            std::vector<double> s(hi - lo, 0.0), q(hi - lo, 0.0);  // no shared cache lines
            for (int64_t i = 0; i < n_; ++i) {
                const float* r = row(i) + lo;
                const float* r0 = x_ + lo;
                for (int64_t k = 0; k < hi - lo; ++k) {
                    const double v = static_cast<double>(r[k]) - r0[k];  // shifted by row 0
                    s[k] += v;
                    q[k] += v * v;
                }
            }
            std::copy(s.begin(), s.end(), sum.begin() + lo);
            std::copy(q.begin(), q.end(), sq.begin() + lo);
        }
        std::vector<double> var(dim_);
        for (int64_t k = 0; k < dim_; ++k) var[k] = sq[k] / n_ - (sum[k] / n_) * (sum[k] / n_);
        std::vector<int64_t> order(dim_);
        for (int64_t k = 0; k < dim_; ++k) order[k] = k;
        std::stable_sort(order.begin(), order.end(),
                         [&](int64_t a, int64_t b) { return var[a] > var[b]; });
        return order;
    }

    // Fills a new group from keys sorted by key_less, splitting the copy among threads.
    void fill_group(Group& g, const std::vector<Key>& keys, int64_t slot) {
        const int64_t m = static_cast<int64_t>(keys.size());
        g.d2.resize(m);
        g.row.resize(m);
        g.lead.resize(m * kLead);
        g.w2.resize(w2_ != nullptr ? m : 0);
        g.holes = 0;
        const bool tracking = !slot_of_.empty();
#pragma omp parallel for schedule(static) if (m > kParallelCopy)
        for (int64_t i = 0; i < m; ++i) {
            if (i + kAhead < m) {
                const Key& a = keys[i + kAhead];
                prefetch(a.lead != nullptr ? a.lead : row(a.row));
            }
            const Key& k = keys[i];
            g.d2[i] = k.d2;
            g.row[i] = k.row;
            if (w2_ != nullptr) g.w2[i] = w2_[k.row];
            if (tracking) slot_of_[k.row] = slot;
            if (k.lead != nullptr)
                std::memcpy(&g.lead[i * kLead], k.lead, kLead * sizeof(float));
            else
                gather_lead(k.row, &g.lead[i * kLead]);
        }
    }

    void first_center(int64_t p) {
        // Every other row joins group 0, its leading coordinates gathered from the row.
        keys_.resize(n_ - 1);
        const float* c = row(p);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n_; ++i) {
            if (i == p) continue;
            double d2 = 0.0;
            row_dist2_below(row(i), c, dim_, std::numeric_limits<double>::infinity(), &d2);
            keys_[i < p ? i : i - 1] = Key{d2, i, nullptr};
        }
        parallel_sort(keys_, sort_tmp_, threads_);
        groups_.emplace_back();
        fill_group(groups_.back(), keys_, 0);
        if (!slot_of_.empty()) slot_of_[p] = -1;
        set_best(0);
        // 48 bytes a row: too big to keep as scratch; later groups are far smaller
        std::vector<Key>().swap(keys_);
        std::vector<Key>().swap(sort_tmp_);
    }

    // Groups whose farthest member might come closer to p (Elkan: d(c_j, p) < 2 max_j), in
    // slot order, with d(c_j, p)^2. A float partial distance over the leading dimensions,
    // vectorized across centers, rejects most centers; the survivors get the exact test.
    void affected_groups(int64_t slot, int64_t home) {
        const float* q = center(slot);
        const int team = slot > kParallelCenters ? threads_ : 1;
        const int64_t n_blocks = (slot + kBlock - 1) / kBlock;
        for (std::vector<int64_t>& v : screened_) v.clear();
#pragma omp parallel num_threads(team) if (team > 1)
        {
            std::vector<int64_t>& mine = screened_[omp_get_thread_num()];
            float s[kBlock];
            // Static schedule: thread t gets the t-th run of blocks, so the lists concatenate
            // in slot order.
#pragma omp for schedule(static) nowait
            for (int64_t b = 0; b < n_blocks; ++b) {
                const int64_t j0 = b * kBlock;
                const int64_t jn = std::min(kBlock, slot - j0);
                for (int64_t j = 0; j < jn; ++j) s[j] = 0.0f;
                for (int k = 0; k < kLead; ++k) {
                    const float* lk = center_lead_.data() + k * capacity_ + j0;
                    const float qk = q[k];
#pragma omp simd
                    for (int64_t j = 0; j < jn; ++j) s[j] += (lk[j] - qk) * (lk[j] - qk);
                }
                const float* lim = center_limit_.data() + j0;
                for (int64_t j = 0; j < jn; ++j)
                    if (s[j] <= lim[j] || j0 + j == home) mine.push_back(j0 + j);
            }
        }
        survivors_.clear();
        for (const std::vector<int64_t>& v : screened_)
            survivors_.insert(survivors_.end(), v.begin(), v.end());
        const int64_t ns = static_cast<int64_t>(survivors_.size());
        cc2_all_.resize(ns);
        double* d = cc2_all_.data();
#pragma omp parallel for schedule(static) if (ns > 1024)
        for (int64_t i = 0; i < ns; ++i) {
            if (i + kAhead < ns) prefetch_row(center(survivors_[i + kAhead]), stride_);
            const int64_t j = survivors_[i];
            const float* c = center(j);
            const double e = vdist2(c, c + kLead, q, q + kLead, n_tail_);
            // The slack keeps rounding from excluding a group that sits exactly on the bound.
            d[i] = (j == home || e * (1.0 - 1e-9) < 4.0 * group_far_[j]) ? e : -1.0;
        }
        affected_.clear();
        cc2_.clear();
        for (int64_t i = 0; i < ns; ++i) {
            if (d[i] >= 0.0) {
                affected_.push_back(survivors_[i]);
                cc2_.push_back(d[i]);
            }
        }
    }

    // The first index of the ascending d2[0, n) with 4 d2 > bound. Candidates are usually most
    // of a group, so the search gallops from the front: its first probes share the cache lines
    // that the scan reads next, where a plain binary search misses the cache at every step.
    static int64_t first_candidate(const double* d2, int64_t n, double bound) {
        int64_t lo = 0, hi = 1;  // d2[lo - 1] is not a candidate; d2[hi - 1] is unknown
        while (hi <= n && !(4.0 * d2[hi - 1] > bound)) {
            lo = hi;
            hi *= 2;
        }
        hi = std::min(hi, n);
        return std::partition_point(d2 + lo, d2 + hi,
                                    [bound](double v) { return !(4.0 * v > bound); }) -
               d2;
    }

    // A chunk of one group's candidate suffix, scanned by one task.
    struct Task {
        int64_t group;  // slot
        int64_t begin, end;
        int64_t left;  // rows that left (became holes)
    };

    // Makes member m of group g a hole.
    void make_hole(Group& g, int64_t m) const {
        g.row[m] = -1;
        for (int k = 0; k < kLead; ++k)
            g.lead[m * kLead + k] = std::numeric_limits<float>::infinity();
    }

    void next_center(int64_t p, int64_t slot, int64_t home) {
        if (!slot_of_.empty()) slot_of_[p] = -1;
        {
            // p leaves its group; when picked as the farthest row it is the group's back.
            Group& g = groups_[home];
            int64_t m = g.size() - 1;
            while (m >= 0 && g.row[m] != p) --m;
            make_hole(g, m);
            ++g.holes;
            if (w2_ != nullptr) stale_[home] = 1;
        }
        affected_groups(slot, home);
        const int64_t ng = static_cast<int64_t>(affected_.size());

        // Candidates of each affected group: rows with 4 d2 > d(c, p)^2 (Elkan), a suffix. The
        // slack keeps rounding from excluding a row that sits on the bound.
        const float* c = center(slot);
        ranges_.clear();
        int64_t n_cand = 0;
        for (int64_t a = 0; a < ng; ++a) {
            // Late in a traversal many small groups are visited, each a few cold cache misses:
            // fetch the group records, then their distances, ahead of use.
            if (a + 2 * kAhead < ng) prefetch(&groups_[affected_[a + 2 * kAhead]]);
            if (a + kAhead < ng) {
                const Group& h = groups_[affected_[a + kAhead]];
                if (h.size() > 0) prefetch(h.d2.data());
            }
            const Group& g = groups_[affected_[a]];
            if (g.size() == 0) continue;
            const double elkan = cc2_[a] * (1.0 - 1e-9);
            const int64_t s = first_candidate(g.d2.data(), g.size(), elkan);
            if (s < g.size()) ranges_.push_back(Task{affected_[a], s, g.size(), 0});
            n_cand += g.size() - s;
        }
        // Chunks small enough to share among threads, large enough to amortize a task.
        const int64_t chunk = std::clamp<int64_t>(n_cand / (8 * threads_), kMinChunk, kChunk);
        tasks_.clear();
        for (const Task& r : ranges_)
            for (int64_t b = r.begin; b < r.end; b += chunk)
                tasks_.push_back(Task{r.group, b, std::min<int64_t>(b + chunk, r.end), 0});
        const int64_t nt = static_cast<int64_t>(tasks_.size());
        for (int t = 0; t < threads_; ++t) {
            out_d2_[t].clear();
            out_row_[t].clear();
            out_lead_[t].clear();
        }

        const float* crow = row(p);
#pragma omp parallel for schedule(dynamic, 1) if (n_cand > 2 * kMinChunk)
        for (int64_t t = 0; t < nt; ++t) {
            if (t + 2 < nt) {
                const Task& next = tasks_[t + 2];
                const Group& h = groups_[next.group];
                prefetch(h.lead.data() + next.begin * kLead);
                prefetch(h.d2.data() + next.begin);
                prefetch(h.row.data() + next.begin);
            }
            Task& task = tasks_[t];
            Group& g = groups_[task.group];
            const int tid = omp_get_thread_num();
            std::vector<double>& od2 = out_d2_[tid];
            std::vector<int64_t>& orow = out_row_[tid];
            std::vector<float>& olead = out_lead_[tid];
            const double* d2 = g.d2.data();
            const float* lead = g.lead.data();
            // Pass 1 reads only distances and leading dimensions (sequentially) and keeps the
            // rows they cannot exclude; holes never pass (+inf).
            int64_t* idx = pass_idx_[tid].data();
            int64_t np = 0;
            for (int64_t m = task.begin; m < task.end; ++m) {
                Lanes acc = zero_lanes();
                add_sq(acc, lead + m * kLead, c);
                add_sq(acc, lead + m * kLead + kLanes, c + kLanes);
                idx[np] = m;
                np += total(acc) * (1.0 - kLeadSlack) < d2[m];
            }
            // Pass 2 sums those rows' distances over all their dimensions, in the stored order,
            // prefetching the rows ahead, and stops a row once the sum reaches its distance.
            int64_t left = 0;
            for (int64_t j = 0; j < np; ++j) {
                if (j + kAhead < np) prefetch_row(row(g.row[idx[j + kAhead]]), dim_);
                const int64_t m = idx[j];
                double dn = 0.0;
                if (!row_dist2_below(row(g.row[m]), crow, dim_, d2[m], &dn)) continue;
                od2.push_back(dn);
                orow.push_back(g.row[m]);
                olead.insert(olead.end(), lead + m * kLead, lead + (m + 1) * kLead);
                // a group whose weighted farthest row leaves must look for its next one
                if (w2_ != nullptr && g.row[m] == tournament_.leaf(task.group).row)
                    stale_[task.group] = 1;
                make_hole(g, m);
                ++left;
            }
            task.left = left;
        }

        // Only groups that lost rows (and p's home) changed. Their holes at the back are dropped,
        // so that the back is the group's farthest row; groups that are a quarter holes are
        // compacted.
        changed_.clear();
        changed_.push_back(home);
        for (int64_t t = 0; t < nt; ++t) {
            if (tasks_[t].left == 0) continue;
            groups_[tasks_[t].group].holes += tasks_[t].left;
            if (changed_.back() != tasks_[t].group) changed_.push_back(tasks_[t].group);
        }
        std::sort(changed_.begin(), changed_.end());
        changed_.erase(std::unique(changed_.begin(), changed_.end()), changed_.end());
        compact_.clear();
        for (int64_t j : changed_) {
            Group& g = groups_[j];
            int64_t m = g.size();
            while (m > 0 && g.row[m - 1] < 0) --m;
            if (m < g.size()) {
                g.holes -= g.size() - m;
                g.d2.resize(m);
                g.row.resize(m);
                g.lead.resize(m * kLead);
                if (w2_ != nullptr) g.w2.resize(m);
            }
            if (g.holes > 0 && 4 * g.holes >= g.size()) compact_.push_back(j);
        }
        const int64_t nc = static_cast<int64_t>(compact_.size());
#pragma omp parallel for schedule(dynamic, 1) if (nc > 1)
        for (int64_t i = 0; i < nc; ++i) compact(groups_[compact_[i]]);

        // The rows that moved, sorted, form p's group.
        keys_.clear();
        for (int t = 0; t < threads_; ++t) {
            const int64_t m = static_cast<int64_t>(out_d2_[t].size());
            for (int64_t i = 0; i < m; ++i)
                keys_.push_back(
                    Key{out_d2_[t][i], out_row_[t][i], out_lead_[t].data() + i * kLead});
        }
        parallel_sort(keys_, sort_tmp_, threads_);
        groups_.emplace_back();
        fill_group(groups_.back(), keys_, slot);
        for (int64_t j : changed_) set_best(j);
        set_best(slot);
    }

    // Removes the holes of a group in place, keeping the order; a group left with much more
    // memory than it needs gives it back.
    void compact(Group& g) const {
        const int64_t m = g.size();
        int64_t w = 0;
        for (int64_t i = 0; i < m; ++i) {
            if (g.row[i] < 0) continue;
            if (w != i) {
                g.d2[w] = g.d2[i];
                g.row[w] = g.row[i];
                std::memcpy(&g.lead[w * kLead], &g.lead[i * kLead], kLead * sizeof(float));
                if (w2_ != nullptr) g.w2[w] = g.w2[i];
            }
            ++w;
        }
        g.d2.resize(w);
        g.row.resize(w);
        g.lead.resize(w * kLead);
        if (w2_ != nullptr) g.w2.resize(w);
        g.holes = 0;
        if (g.d2.capacity() > 1024 && g.d2.capacity() > 3 * static_cast<size_t>(w)) {
            g.d2.shrink_to_fit();
            g.row.shrink_to_fit();
            g.lead.shrink_to_fit();
            g.w2.shrink_to_fit();
        }
    }

    void set_best(int64_t slot) {
        if (static_cast<int64_t>(group_far_.size()) <= slot) group_far_.resize(slot + 1);
        Best b;
        const Group& g = groups_[slot];
        if (g.size() > 0) b = Best{g.d2.back(), g.row.back(), slot};
        group_far_[slot] = b.d2;
        // A float bound on 4 far (relative slack far above float rounding; +inf past the float
        // range); -1 for a group with no row farther than 0, which no center can improve.
        const double limit = 4.0 * b.d2 * (1.0 + 1e-4);
        center_limit_[slot] = !(b.d2 > 0.0) ? -1.0f
                              : limit < std::numeric_limits<float>::max()
                                  ? static_cast<float>(limit) + 1e-30f
                                  : std::numeric_limits<float>::infinity();
        if (w2_ != nullptr) {
            // The tournament holds the largest weighted distance w^2 d2, ties to the lowest
            // row. Members never change distance while they stay, so it changes only when its
            // row leaves (stale_), and is then found again by one pass over the group.
            if (!stale_[slot]) return;
            stale_[slot] = 0;
            b = Best{};
            for (int64_t m = 0; m < g.size(); ++m)
                if (g.row[m] >= 0) b.offer(Best{g.w2[m] * g.d2[m], g.row[m], slot});
        }
        const Best& old = tournament_.leaf(slot);
        if (b.d2 != old.d2 || b.row != old.row) tournament_.set(slot, b);
    }

  private:
    const float* x_;
    int64_t n_, dim_;
    const double* w2_;            // squared weights per row, or nullptr
    std::vector<uint8_t> stale_;  // with weights: per group, its weighted farthest row left
    int threads_ = 1;
    std::vector<int64_t> dims_;         // dimensions by decreasing variance
    int64_t n_tail_ = 0;                // dimensions after the leading ones, padded to kLanes
    int64_t stride_ = 0;                // kLead + n_tail_
    std::vector<int64_t> slot_of_;      // while tracking: each row's group; -1 for centers
    std::vector<int64_t> centers_;      // the row of each center slot
    std::vector<float> center_coords_;  // each center's coordinates in variance order
    std::vector<Group> groups_;         // members of each center
    std::vector<double> group_far_;     // farthest squared distance in each group
    Tournament tournament_;
    // Scratch of next_center, kept so that steps do not allocate.
    std::vector<double> cc2_all_, cc2_;
    int64_t capacity_ = 0;             // center slots
    std::vector<float> center_lead_;   // leading coordinates of the centers, dimension-major
    std::vector<float> center_limit_;  // per center slot: see set_best
    std::vector<std::vector<int64_t>> screened_;  // per thread
    std::vector<int64_t> survivors_;
    std::vector<int64_t> affected_, compact_, changed_;
    std::vector<Task> tasks_, ranges_;
    std::vector<std::vector<double>> out_d2_;  // rows that moved, per thread
    std::vector<std::vector<int64_t>> out_row_;
    std::vector<std::vector<float>> out_lead_;
    std::vector<Key> keys_, sort_tmp_;
    std::vector<std::vector<int64_t>> pass_idx_;  // rows past the first test, per thread
};

}  // namespace

Status check_finite(const float* x, int64_t n_rows, int64_t dim, const char* arg) {
    int64_t bad = n_rows;
#pragma omp parallel for schedule(static) reduction(min : bad)
    for (int64_t i = 0; i < n_rows; ++i) {
        for (int64_t k = 0; k < dim; ++k) {
            if (!std::isfinite(x[i * dim + k])) {
                bad = std::min(bad, i);
                break;
            }
        }
    }
    if (bad < n_rows)
        return Status::error(std::string(arg) + ": row " + std::to_string(bad) +
                             " contains NaN or inf");
    return Status();
}

Status kcenter(const float* x, int64_t n_rows, int64_t dim, int64_t budget, const int64_t* initial,
               int64_t n_initial, int64_t first, int64_t* order, double* radii,
               Interrupt* interrupt, const float* weights) {
    if (dim < 1) return Status::error("x: expected at least one column");
    if (budget < 0) return Status::error("budget: must be >= 0, got " + std::to_string(budget));
    std::vector<uint8_t> seen(n_rows, 0);
    for (int64_t s = 0; s < n_initial; ++s) {
        const int64_t r = initial[s];
        if (r < 0 || r >= n_rows)
            return Status::error("initial[" + std::to_string(s) + "] = " + std::to_string(r) +
                                 " is out of range for " + std::to_string(n_rows) + " rows");
        if (seen[r])
            return Status::error("initial[" + std::to_string(s) + "] = " + std::to_string(r) +
                                 " is repeated");
        seen[r] = 1;
    }
    if (budget > n_rows - n_initial)
        return Status::error("budget: " + std::to_string(budget) + " is more than the " +
                             std::to_string(n_rows - n_initial) + " rows not already chosen");
    if (budget == 0) return Status();
    if (n_initial == 0 && (first < 0 || first >= n_rows))
        return Status::error("first: " + std::to_string(first) + " is out of range for " +
                             std::to_string(n_rows) + " rows");
    if (Status st = check_finite(x, n_rows, dim, "x"); !st.ok()) return st;
    std::vector<double> w2;
    if (weights != nullptr) {
        w2.resize(n_rows);
        for (int64_t i = 0; i < n_rows; ++i) {
            if (!std::isfinite(weights[i]) || weights[i] < 0.0f)
                return Status::error("weights[" + std::to_string(i) + "] = " +
                                     std::to_string(weights[i]) + ": expected finite and >= 0");
            w2[i] = static_cast<double>(weights[i]) * static_cast<double>(weights[i]);
        }
    }

    Traversal tr(x, n_rows, dim, n_initial + budget, weights != nullptr ? w2.data() : nullptr);
    if (n_initial > 0) tr.track_rows();
    for (int64_t s = 0; s < n_initial; ++s) {
        if (interrupt != nullptr && interrupt->requested()) return Status::interrupted();
        tr.add_center(initial[s], -1);
    }
    tr.stop_tracking();
    for (int64_t t = 0; t < budget; ++t) {
        if (interrupt != nullptr && interrupt->requested()) return Status::interrupted();
        const bool seed = t == 0 && n_initial == 0;
        const int64_t p = seed ? first : tr.farthest().row;
        tr.add_center(p, seed ? -1 : tr.farthest().slot);
        order[t] = p;
        radii[t] = std::sqrt(std::max(tr.farthest().d2, 0.0));
    }
    return Status();
}

}  // namespace scurate
