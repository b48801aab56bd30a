#include "kernels/kcenter.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
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

constexpr int64_t kChunk = 4096;  // rows per OpenMP task when scanning groups
constexpr int64_t kLead = 8;      // leading dimensions kept contiguous for a cheap lower bound

class Traversal {
public:
    Traversal(const float* x, int64_t n, int64_t dim, int64_t capacity)
        : x_(x), n_(n), dim_(dim), d2_(n, std::numeric_limits<double>::infinity()),
          slot_of_(n, -1), tournament_(capacity) {
        dims_ = dims_by_variance();
        n_lead_ = std::min<int64_t>(dim_, kLead);
        lead_.resize(n_ * n_lead_);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n_; ++i)
            for (int64_t k = 0; k < n_lead_; ++k) lead_[i * n_lead_ + k] = x_[i * dim_ + dims_[k]];
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
        slot_of_[p] = slot;
        d2_[p] = -1.0;  // a center is covered and never picked again
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

    void first_center(int64_t p) {
        members_.emplace_back();
        std::vector<int64_t>& all = members_.back();
        all.reserve(n_ - 1);
        for (int64_t i = 0; i < n_; ++i)
            if (i != p) all.push_back(i);
        const float* c = row(p);
        Best best;
#pragma omp parallel
        {
            Best local;
#pragma omp for schedule(static) nowait
            for (int64_t i = 0; i < n_; ++i) {
                if (i == p) continue;
                d2_[i] = dist2(row(i), c, dim_);
                slot_of_[i] = 0;
                local.offer(d2_[i], i);
            }
#pragma omp critical
            best.offer(local);
        }
        set_best(0, best);
    }

    // Groups whose farthest member might come closer to p (Elkan: d(c_j, p) < 2 max_j), in
    // slot order. A float partial distance over the widest dimensions rejects most centers
    // after a few of them; the survivors get the exact test.
    void affected_groups(int64_t p, int64_t home, std::vector<int64_t>& groups,
                         std::vector<double>& cc2) const {
        const int64_t m = static_cast<int64_t>(centers_.size());
        std::vector<float> q(dim_);
        for (int64_t k = 0; k < dim_; ++k) q[k] = x_[p * dim_ + dims_[k]];
        std::vector<double> d(m, -1.0);  // exact squared distance where affected, else -1
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
        for (int64_t j = 0; j < m; ++j) {
            if (d[j] >= 0.0) {
                groups.push_back(j);
                cc2.push_back(d[j]);
            }
        }
    }

    void next_center(int64_t p, int64_t slot) {
        const int64_t home = slot_of_[p];
        std::vector<int64_t> groups;
        std::vector<double> cc2;
        affected_groups(p, home, groups, cc2);
        const int64_t ng = static_cast<int64_t>(groups.size());

        // One task per chunk of each affected group's members; flags: 0 stays, 1 moves to p,
        // 2 is p itself.
        std::vector<int64_t> offset(ng + 1, 0);
        for (int64_t g = 0; g < ng; ++g)
            offset[g + 1] = offset[g] + static_cast<int64_t>(members_[groups[g]].size());
        std::vector<std::pair<int64_t, int64_t>> tasks;  // (group position, first member)
        for (int64_t g = 0; g < ng; ++g)
            for (int64_t b = 0; b < offset[g + 1] - offset[g]; b += kChunk) tasks.emplace_back(g, b);
        if (static_cast<int64_t>(flag_.size()) < offset[ng]) flag_.resize(offset[ng]);
        uint8_t* flag = flag_.data();
        const float* c = row(p);
        const float* c_lead = lead_.data() + p * n_lead_;
        const int64_t nt = static_cast<int64_t>(tasks.size());
#pragma omp parallel for schedule(dynamic, 1) if (offset[ng] > 2 * kChunk)
        for (int64_t t = 0; t < nt; ++t) {
            const int64_t g = tasks[t].first;
            const std::vector<int64_t>& mem = members_[groups[g]];
            const int64_t end = std::min<int64_t>(tasks[t].second + kChunk, mem.size());
            const double bound = cc2[g];
            for (int64_t m = tasks[t].second; m < end; ++m) {
                const int64_t i = mem[m];
                uint8_t f = 0;
                if (i == p) {
                    f = 2;
                } else if (bound < 4.0 * d2_[i] && !lead_excludes(i, c_lead)) {
                    const double d = dist2(row(i), c, dim_);
                    if (d < d2_[i]) {
                        d2_[i] = d;
                        f = 1;
                    }
                }
                flag[offset[g] + m] = f;
            }
        }

        // Compact each affected group and collect what moved, in group order.
        if (static_cast<int64_t>(moved_.size()) < ng) moved_.resize(ng);
        for (int64_t g = 0; g < ng; ++g) moved_[g].clear();
        std::vector<std::vector<int64_t>>& moved = moved_;
        std::vector<Best> best(ng);
#pragma omp parallel for schedule(dynamic, 1) if (offset[ng] > 2 * kChunk)
        for (int64_t g = 0; g < ng; ++g) {
            std::vector<int64_t>& mem = members_[groups[g]];
            size_t keep = 0;
            for (size_t m = 0; m < mem.size(); ++m) {
                const uint8_t f = flag[offset[g] + m];
                if (f == 0) {
                    best[g].offer(d2_[mem[m]], mem[m]);
                    mem[keep++] = mem[m];
                } else if (f == 1) {
                    moved[g].push_back(mem[m]);
                }
            }
            mem.resize(keep);
        }
        size_t n_moved = 0;
        for (int64_t g = 0; g < ng; ++g) n_moved += moved[g].size();
        members_.emplace_back();
        std::vector<int64_t>& mine = members_.back();
        mine.reserve(n_moved);
        Best mine_best;
        for (int64_t g = 0; g < ng; ++g) {
            for (int64_t i : moved[g]) {
                slot_of_[i] = slot;
                mine_best.offer(d2_[i], i);
            }
            mine.insert(mine.end(), moved[g].begin(), moved[g].end());
            set_best(groups[g], best[g]);
        }
        set_best(slot, mine_best);
    }

    // True when the leading dimensions alone put row i at least as far from the new center as
    // its own: a lower bound read from 32 bytes instead of the whole row.
    bool lead_excludes(int64_t i, const float* c_lead) const {
        const float* a = lead_.data() + i * n_lead_;
        float s = 0.0f;
        for (int64_t k = 0; k < n_lead_; ++k) s += (a[k] - c_lead[k]) * (a[k] - c_lead[k]);
        return static_cast<double>(s) * (1.0 - 1e-4) >= d2_[i];
    }

    void set_best(int64_t slot, const Best& b) {
        if (static_cast<int64_t>(group_far_.size()) <= slot) group_far_.resize(slot + 1);
        group_far_[slot] = b.d2;
        tournament_.set(slot, b);
    }

private:
    const float* x_;
    int64_t n_, dim_;
    std::vector<int64_t> dims_;        // dimensions by decreasing variance
    int64_t n_lead_ = 0;
    std::vector<float> lead_;          // each row's first n_lead_ dimensions in dims_ order
    std::vector<double> d2_;           // squared distance to the nearest center; -1 for centers
    std::vector<int64_t> slot_of_;     // the group (center slot) each row belongs to
    std::vector<int64_t> centers_;     // the row of each center slot
    std::vector<std::vector<int64_t>> members_;  // rows of each group, the center excluded
    std::vector<double> group_far_;        // farthest squared distance in each group
    std::vector<uint8_t> flag_;                  // scratch of next_center, kept to reuse pages
    std::vector<std::vector<int64_t>> moved_;    // scratch of next_center
    std::vector<float> centers_by_variance_;  // center coordinates, dimensions in dims_ order
    Tournament tournament_;
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
