#include "kernels/kcenter_covered.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <queue>
#include <string>
#include <utility>
#include <vector>

namespace scurate {
namespace {

// Squared distance, stopping early once the partial sum reaches `bound` (then any value
// >= bound is returned, which the caller treats as "no closer").
inline double dist2_upto(const float* a, const float* b, int64_t dim, double bound) {
    double acc = 0.0;
    int64_t k = 0;
    for (; k + 8 <= dim; k += 8) {
        for (int64_t j = k; j < k + 8; ++j) {
            const double t = static_cast<double>(a[j]) - static_cast<double>(b[j]);
            acc += t * t;
        }
        if (acc >= bound) return acc;
    }
    for (; k < dim; ++k) {
        const double t = static_cast<double>(a[k]) - static_cast<double>(b[k]);
        acc += t * t;
    }
    return acc;
}

struct Entry {
    double d2;
    int64_t row;
};
struct Farther {  // priority: larger distance first, then the lower row
    bool operator()(const Entry& p, const Entry& q) const {
        return p.d2 < q.d2 || (p.d2 == q.d2 && p.row > q.row);
    }
};

}  // namespace

Status kcenter_covered(const float* x, int64_t n_rows, int64_t dim, const float* covered,
                       int64_t budget, int64_t* order, double* radii, Interrupt* interrupt) {
    if (dim < 1) return Status::error("x: expected at least one column");
    if (budget < 0) return Status::error("budget: must be >= 0, got " + std::to_string(budget));
    if (budget > n_rows)
        return Status::error("budget: " + std::to_string(budget) + " is more than the " +
                             std::to_string(n_rows) + " rows");
    const double inf = std::numeric_limits<double>::infinity();
    std::vector<double> bound(n_rows);
    std::vector<int64_t> checked(n_rows, 0);  // picks each row has been compared with
    std::vector<Entry> start;
    start.reserve(n_rows);
    for (int64_t i = 0; i < n_rows; ++i) {
        const float c = covered[i];
        if (std::isnan(c) || c < 0.0f)
            return Status::error("covered: row " + std::to_string(i) +
                                 " is NaN or negative; expected a distance");
        bound[i] = std::isinf(c) ? inf : static_cast<double>(c) * static_cast<double>(c);
        start.push_back({bound[i], i});
    }
    std::priority_queue<Entry, std::vector<Entry>, Farther> heap(Farther{}, std::move(start));
    std::vector<uint8_t> picked(n_rows, 0);
    int64_t n_picked = 0;
    // Each round brings the top row up to date until the top is exact: then it is the
    // farthest row, since every other key is an upper bound on that row's distance. Returns
    // row -1 when the caller's interrupt asks to stop.
    bool stop = false;
    int64_t steps = 0;
    auto farthest = [&]() -> Entry {
        while (true) {
            if (interrupt != nullptr && (++steps & 15) == 0 && interrupt->requested()) {
                stop = true;
                return Entry{0.0, -1};
            }
            Entry top = heap.top();
            heap.pop();
            const int64_t i = top.row;
            if (picked[i]) continue;
            const float* xi = x + i * dim;
            double d2 = bound[i];
            for (int64_t t = checked[i]; t < n_picked; ++t) {
                const double c = dist2_upto(xi, x + order[t] * dim, dim, d2);
                if (c < d2) d2 = c;
            }
            bound[i] = d2;
            checked[i] = n_picked;
            const Entry now{d2, i};
            if (heap.empty() || !Farther{}(now, heap.top())) return now;
            heap.push(now);
        }
    };
    for (int64_t t = 0; t < budget; ++t) {
        const Entry best = farthest();
        if (stop) return Status::interrupted();
        if (t > 0) radii[t - 1] = std::sqrt(best.d2);
        order[t] = best.row;
        picked[best.row] = 1;
        ++n_picked;
    }
    if (budget > 0) {
        if (budget == n_rows) {
            radii[budget - 1] = 0.0;
        } else {
            const Entry next = farthest();
            if (stop) return Status::interrupted();
            radii[budget - 1] = std::sqrt(next.d2);
        }
    }
    return Status();
}

}  // namespace scurate
