#include "kernels/kcenter.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace scurate {
namespace {

inline double dist2(const float* a, const float* b, int64_t dim) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < dim; ++k) {
        const double t = static_cast<double>(a[k]) - static_cast<double>(b[k]);
        s += t * t;
    }
    return s;
}

// The farthest row of a group: largest squared distance, ties to the lowest row index.
struct Best {
    double d2 = -1.0;
    int64_t row = std::numeric_limits<int64_t>::max();
    void offer(double d, int64_t r) {
        if (d > d2 || (d == d2 && r < row)) {
            d2 = d;
            row = r;
        }
    }
    void offer(const Best& o) { offer(o.d2, o.row); }
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

private:
    int64_t size_;
    std::vector<Best> tree_;
};

constexpr int64_t kChunk = 4096;  // candidate records per OpenMP task when scanning groups
constexpr int kLead = 8;          // leading dimensions kept in each record for a cheap lower bound

// One member of a group: its squared distance to the group's center, its row, and its
// coordinates on the kLead widest dimensions. The scan of a group reads these records
// sequentially; only rows that pass both cheap tests read their full row of `x`.
struct Rec {
    double d2;
    int64_t row;
    float lead[kLead];
};

// Order within a group: ascending distance, ties by descending row. The back is then the
// group's farthest row (lowest index among ties), and the rows a new center might come closer
// to (Elkan: 4 d2 > d(c, p)^2) are a suffix, found by binary search.
inline bool rec_less(const Rec& a, const Rec& b) {
    return a.d2 < b.d2 || (a.d2 == b.d2 && a.row > b.row);
}

// Sorts `v` with up to `threads` OpenMP threads: sorted pieces, then rounds of pairwise
// merges. `tmp` is scratch. The result is the unique sorted order, whatever the thread count.
void parallel_sort(std::vector<Rec>& v, std::vector<Rec>& tmp, int threads) {
    const int64_t n = static_cast<int64_t>(v.size());
    int pieces = 1;
    while (pieces < threads && n / (2 * pieces) >= 32768) pieces *= 2;
    if (pieces == 1) {
        std::sort(v.begin(), v.end(), rec_less);
        return;
    }
    std::vector<int64_t> bound(pieces + 1);
    for (int s = 0; s <= pieces; ++s) bound[s] = n * s / pieces;
#pragma omp parallel for schedule(static, 1) num_threads(pieces)
    for (int s = 0; s < pieces; ++s) std::sort(v.begin() + bound[s], v.begin() + bound[s + 1], rec_less);
    tmp.resize(n);
    std::vector<Rec>* src = &v;
    std::vector<Rec>* dst = &tmp;
    for (int width = 1; width < pieces; width *= 2) {
#pragma omp parallel for schedule(static, 1) num_threads(pieces / (2 * width))
        for (int s = 0; s < pieces; s += 2 * width) {
            const int64_t a = bound[s], b = bound[s + width], c = bound[s + 2 * width];
            std::merge(src->begin() + a, src->begin() + b, src->begin() + b, src->begin() + c,
                       dst->begin() + a, rec_less);
        }
        std::swap(src, dst);
    }
    if (src != &v) v.swap(tmp);
}

class Traversal {
public:
    Traversal(const float* x, int64_t n, int64_t dim, int64_t capacity)
        : x_(x), n_(n), dim_(dim), slot_of_(n, 0), tournament_(capacity) {
        dims_ = dims_by_variance();
        n_lead_ = std::min<int64_t>(dim_, kLead);
        threads_ = omp_get_max_threads();
        groups_.reserve(capacity);
    }

    // Makes row p a center: every row that p comes closer to moves into p's group.
    void add_center(int64_t p) {
        const int64_t slot = static_cast<int64_t>(centers_.size());
        if (slot == 0) {
            first_center(p);
        } else {
            next_center(p, slot);
        }
        centers_.push_back(p);
        for (int64_t k = 0; k < dim_; ++k) centers_by_variance_.push_back(x_[p * dim_ + dims_[k]]);
    }

    const Best& farthest() const { return tournament_.top(); }

private:
    const float* row(int64_t i) const { return x_ + i * dim_; }

    // Dimensions by decreasing variance, so a partial distance over the first ones is a
    // tight lower bound of the whole.
    std::vector<int64_t> dims_by_variance() const {
        std::vector<double> sum(dim_, 0.0), sq(dim_, 0.0);
#pragma omp parallel
        {
            std::vector<double> s(dim_, 0.0), q(dim_, 0.0);
#pragma omp for schedule(static) nowait
            for (int64_t i = 0; i < n_; ++i) {
                const float* r = row(i);
                for (int64_t k = 0; k < dim_; ++k) {
                    const double v = static_cast<double>(r[k]) - x_[k];  // shifted by row 0
                    s[k] += v;
                    q[k] += v * v;
                }
            }
#pragma omp critical
            for (int64_t k = 0; k < dim_; ++k) {
                sum[k] += s[k];
                sq[k] += q[k];
            }
        }
        std::vector<double> var(dim_);
        for (int64_t k = 0; k < dim_; ++k) var[k] = sq[k] / n_ - (sum[k] / n_) * (sum[k] / n_);
        std::vector<int64_t> order(dim_);
        for (int64_t k = 0; k < dim_; ++k) order[k] = k;
        std::stable_sort(order.begin(), order.end(),
                         [&](int64_t a, int64_t b) { return var[a] > var[b]; });
        return order;
    }

    // The record of row i at distance d2; leading dimensions past dim_ are zero on every row.
    void fill(Rec& r, int64_t i, double d2) const {
        r.d2 = d2;
        r.row = i;
        const float* a = row(i);
        for (int k = 0; k < kLead; ++k) r.lead[k] = k < n_lead_ ? a[dims_[k]] : 0.0f;
    }

    void first_center(int64_t p) {
        groups_.emplace_back();
        std::vector<Rec>& all = groups_.back();
        all.resize(n_ - 1);
        const float* c = row(p);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n_; ++i) {
            if (i == p) continue;
            fill(all[i < p ? i : i - 1], i, dist2(row(i), c, dim_));
        }
        parallel_sort(all, sort_tmp_, threads_);
        set_best(0);
    }

    // Groups whose farthest member might come closer to p (Elkan: d(c_j, p) < 2 max_j), in
    // slot order. A float partial distance over the widest dimensions rejects most centers
    // after a few of them; the survivors get the exact test.
    void affected_groups(int64_t p, int64_t home) {
        const int64_t m = static_cast<int64_t>(centers_.size());
        q_.resize(dim_);
        for (int64_t k = 0; k < dim_; ++k) q_[k] = x_[p * dim_ + dims_[k]];
        cc2_all_.assign(m, -1.0);  // exact squared distance where affected, else -1
        const float* q = q_.data();
        double* d = cc2_all_.data();
#pragma omp parallel for schedule(static) if (m > 2048)
        for (int64_t j = 0; j < m; ++j) {
            const double far = group_far_[j];
            if (j != home) {
                if (!(far > 0.0)) continue;
                const float limit = static_cast<float>(4.0 * far * (1.0 + 1e-4)) + 1e-30f;
                const float* c = centers_by_variance_.data() + j * dim_;
                float partial = 0.0f;
                bool out = false;
                for (int64_t k0 = 0; k0 < dim_ && !out; k0 += 8) {
                    const int64_t k1 = std::min<int64_t>(k0 + 8, dim_);
                    for (int64_t k = k0; k < k1; ++k) partial += (c[k] - q[k]) * (c[k] - q[k]);
                    out = partial > limit;
                }
                if (out) continue;
            }
            const double e = dist2(row(centers_[j]), row(p), dim_);
            if (j == home || e < 4.0 * far) d[j] = e;
        }
        affected_.clear();
        cc2_.clear();
        for (int64_t j = 0; j < m; ++j) {
            if (d[j] >= 0.0) {
                affected_.push_back(j);
                cc2_.push_back(d[j]);
            }
        }
    }

    // A chunk of one group's candidate suffix, scanned by one task.
    struct Task {
        int64_t group;  // position in affected_
        int64_t begin, end;
        int64_t keep;  // records kept, compacted to the front of [begin, end)
    };

    void next_center(int64_t p, int64_t slot) {
        const int64_t home = slot_of_[p];
        affected_groups(p, home);
        const int64_t ng = static_cast<int64_t>(affected_.size());

        // The candidates of each affected group are the suffix with 4 d2 > d(c, p)^2; p itself
        // is in its home group's suffix unless it sits on its center (then it is erased here).
        tasks_.clear();
        int64_t n_cand = 0;
        for (int64_t g = 0; g < ng; ++g) {
            std::vector<Rec>& mem = groups_[affected_[g]];
            const double bound = cc2_[g];
            if (affected_[g] == home && !(bound > 0.0)) {
                auto it = std::find_if(mem.begin(), mem.end(),
                                       [p](const Rec& r) { return r.row == p; });
                if (it != mem.end()) mem.erase(it);
            }
            const int64_t s = std::partition_point(mem.begin(), mem.end(),
                                                   [bound](const Rec& r) {
                                                       return !(bound < 4.0 * r.d2);
                                                   }) -
                              mem.begin();
            const int64_t e = static_cast<int64_t>(mem.size());
            for (int64_t b = s; b < e; b += kChunk)
                tasks_.push_back(Task{g, b, std::min<int64_t>(b + kChunk, e), 0});
            n_cand += e - s;
        }
        const int64_t nt = static_cast<int64_t>(tasks_.size());
#ifdef KC_STATS
        st_cand += n_cand;
        st_groups += ng;
        for (int64_t g = 0; g < ng; ++g) st_members += groups_[affected_[g]].size();
#endif
        if (static_cast<int64_t>(task_out_.size()) < nt) task_out_.resize(nt);

        const float* c = row(p);
        float c_lead[kLead];
        for (int k = 0; k < kLead; ++k) c_lead[k] = k < n_lead_ ? c[dims_[k]] : 0.0f;
#pragma omp parallel for schedule(dynamic, 1) if (n_cand > 2 * kChunk)
        for (int64_t t = 0; t < nt; ++t) {
            Task& task = tasks_[t];
            Rec* mem = groups_[affected_[task.group]].data();
            std::vector<Rec>& out = task_out_[t];
            out.clear();
            int64_t keep = task.begin;
            for (int64_t m = task.begin; m < task.end; ++m) {
                const Rec& r = mem[m];
                if (r.row == p) continue;  // the new center leaves its group
                if (!lead_excludes(r, c_lead)) {
#ifdef KC_STATS
#pragma omp atomic
                    st_lead++;
#endif
                    const double d = dist2(row(r.row), c, dim_);
                    if (d < r.d2) {
                        out.push_back(r);
                        out.back().d2 = d;
                        slot_of_[r.row] = slot;
                        continue;
                    }
                }
                if (keep != m) mem[keep] = r;
                ++keep;
            }
            task.keep = keep - task.begin;
        }

        // Close the gaps each chunk left behind; the kept records stay in order.
        int64_t n_moved = 0;
        for (int64_t t = 0; t < nt;) {
            const int64_t g = tasks_[t].group;
            std::vector<Rec>& mem = groups_[affected_[g]];
            int64_t dst = tasks_[t].begin;
            for (; t < nt && tasks_[t].group == g; ++t) {
                if (dst != tasks_[t].begin)
                    std::memmove(mem.data() + dst, mem.data() + tasks_[t].begin,
                                 tasks_[t].keep * sizeof(Rec));
                dst += tasks_[t].keep;
                n_moved += static_cast<int64_t>(task_out_[t].size());
            }
            mem.resize(dst);
            if (mem.capacity() > 4096 && mem.capacity() > 4 * mem.size())
                std::vector<Rec>(mem).swap(mem);  // give back memory of a group that shrank
        }
        for (int64_t g = 0; g < ng; ++g) set_best(affected_[g]);

        groups_.emplace_back();
        std::vector<Rec>& mine = groups_.back();
        mine.resize(n_moved);
        int64_t at = 0;
        for (int64_t t = 0; t < nt; ++t) {
            std::copy(task_out_[t].begin(), task_out_[t].end(), mine.begin() + at);
            at += static_cast<int64_t>(task_out_[t].size());
        }
        parallel_sort(mine, sort_tmp_, threads_);
        set_best(slot);
#ifdef KC_STATS
        st_moved += n_moved;
        if (slot % 1000 == 0 || slot < 10 || slot == 100)
            fprintf(stderr, "slot %ld groups %ld members %ld cand %ld lead %ld moved %ld\n", slot, st_groups, st_members, st_cand, st_lead, st_moved);
#endif
    }

    // True when the leading dimensions alone put the row at least as far from the new center
    // as its own: a lower bound read from the record instead of the whole row.
    static bool lead_excludes(const Rec& r, const float* c_lead) {
        float s = 0.0f;
        for (int k = 0; k < kLead; ++k) s += (r.lead[k] - c_lead[k]) * (r.lead[k] - c_lead[k]);
        return static_cast<double>(s) * (1.0 - 1e-4) >= r.d2;
    }

    void set_best(int64_t slot) {
        if (static_cast<int64_t>(group_far_.size()) <= slot) group_far_.resize(slot + 1);
        Best b;
        const std::vector<Rec>& mem = groups_[slot];
        if (!mem.empty()) b.offer(mem.back().d2, mem.back().row);
        group_far_[slot] = b.d2;
        tournament_.set(slot, b);
    }

private:
    const float* x_;
    int64_t n_, dim_;
    int threads_ = 1;
    std::vector<int64_t> dims_;  // dimensions by decreasing variance
    int64_t n_lead_ = 0;
    std::vector<int64_t> slot_of_;             // the group (center slot) each row belongs to
    std::vector<int64_t> centers_;             // the row of each center slot
    std::vector<std::vector<Rec>> groups_;     // members of each group, sorted by rec_less
    std::vector<double> group_far_;            // farthest squared distance in each group
    std::vector<float> centers_by_variance_;  // center coordinates, dimensions in dims_ order
    Tournament tournament_;
    // Scratch of next_center, kept so that no step allocates.
    std::vector<float> q_;
    std::vector<double> cc2_all_, cc2_;
    std::vector<int64_t> affected_;
    std::vector<Task> tasks_;
    std::vector<std::vector<Rec>> task_out_;
    std::vector<Rec> sort_tmp_;
#ifdef KC_STATS
    int64_t st_cand = 0, st_groups = 0, st_members = 0, st_lead = 0, st_moved = 0;
#endif
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
               int64_t n_initial, int64_t first, int64_t* order, double* radii) {
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

    Traversal tr(x, n_rows, dim, n_initial + budget);
    for (int64_t s = 0; s < n_initial; ++s) tr.add_center(initial[s]);
    for (int64_t t = 0; t < budget; ++t) {
        const int64_t p = (t == 0 && n_initial == 0) ? first : tr.farthest().row;
        tr.add_center(p);
        order[t] = p;
        radii[t] = std::sqrt(std::max(tr.farthest().d2, 0.0));
    }
    return Status();
}

}  // namespace scurate
