#include "kernels/facility.hpp"

#include <cmath>
#include <queue>
#include <string>
#include <vector>

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

Status check_graph(const int64_t* indptr, const int64_t* indices, const float* values,
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

}  // namespace

Status facility_location(const int64_t* indptr, const int64_t* indices, const float* values,
                         int64_t n_rows, int64_t budget, int64_t* order, double* objective,
                         Interrupt* interrupt) {
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
        double g = 0.0;
        for (int64_t p = indptr[top.row]; p < indptr[top.row + 1]; ++p) {
            const double d = static_cast<double>(values[p]) - static_cast<double>(best[indices[p]]);
            if (d > 0.0) g += d;
        }
        // the stale bounds of the others are >= their gains: j wins if it beats the next bound
        const bool wins = queue.empty() || g > queue.top().gain ||
                          (g == queue.top().gain && top.row < queue.top().row);
        if (!wins) {
            queue.push(Bound{g, top.row});
            continue;
        }
        for (int64_t p = indptr[top.row]; p < indptr[top.row + 1]; ++p) {
            float& b = best[indices[p]];
            if (values[p] > b) b = values[p];
        }
        total += g;
        order[picked] = top.row;
        objective[picked] = total;
        ++picked;
    }
    return Status();
}

}  // namespace scurate
