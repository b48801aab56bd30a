#include "kernels/sketch.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/kcenter.hpp"

namespace scurate {
namespace {

inline uint64_t mix(uint64_t z) {  // splitmix64's finalizer
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// Each dimension's values in sorted order, computed once for every side tried.
class Grid {
  public:
    Grid(const float* x, int64_t n, int64_t dim) : x_(x), n_(n), dim_(dim), sorted_(n * dim) {
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t d = 0; d < dim; ++d) {
            float* col = sorted_.data() + d * n;
            for (int64_t i = 0; i < n; ++i) col[i] = x[i * dim + d];
            std::sort(col, col + n);
        }
    }

    double widest() const {
        double w = 0.0;
        for (int64_t d = 0; d < dim_; ++d) {
            const float* col = sorted_.data() + d * n_;
            w = std::max(w, static_cast<double>(col[n_ - 1]) - static_cast<double>(col[0]));
        }
        return w;
    }

    // Number of boxes at side `unit`; with `box`, also each row's box id.
    int64_t boxes(double unit, int64_t* box) const {
        std::vector<std::vector<float>> starts(dim_);
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t d = 0; d < dim_; ++d) {
            const float* col = sorted_.data() + d * n_;
            std::vector<float>& s = starts[d];
            double start = col[0];
            s.push_back(col[0]);
            for (int64_t i = 1; i < n_; ++i) {
                if (start + unit < static_cast<double>(col[i])) {
                    start = col[i];
                    s.push_back(col[i]);
                }
            }
        }
        struct Key {
            uint64_t a, b;
            int64_t row;
        };
        std::vector<Key> keys(n_);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n_; ++i) {
            uint64_t a = 0x243f6a8885a308d3ULL, b = 0x13198a2e03707344ULL;
            const float* row = x_ + i * dim_;
            for (int64_t d = 0; d < dim_; ++d) {
                const std::vector<float>& s = starts[d];
                const uint64_t k = static_cast<uint64_t>(
                    std::upper_bound(s.begin(), s.end(), row[d]) - s.begin() - 1);
                a = mix(a ^ (k + 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(d + 1)));
                b = mix(b + (k ^ (0xc2b2ae3d27d4eb4fULL * static_cast<uint64_t>(d + 7))));
            }
            keys[i] = Key{a, b, i};
        }
        std::sort(keys.begin(), keys.end(), [](const Key& p, const Key& q) {
            return p.a < q.a || (p.a == q.a && (p.b < q.b || (p.b == q.b && p.row < q.row)));
        });
        int64_t count = 0;
        std::vector<int64_t> first;  // first row of each box, boxes in hash order
        std::vector<int64_t> group(box ? n_ : 0);
        for (int64_t i = 0; i < n_; ++i) {
            if (i == 0 || keys[i].a != keys[i - 1].a || keys[i].b != keys[i - 1].b) {
                ++count;
                if (box) first.push_back(keys[i].row);
            }
            if (box) group[keys[i].row] = count - 1;
        }
        if (box) {  // renumber boxes in order of their first row
            std::vector<int64_t> by_first(count);
            std::iota(by_first.begin(), by_first.end(), 0);
            std::sort(by_first.begin(), by_first.end(),
                      [&](int64_t p, int64_t q) { return first[p] < first[q]; });
            std::vector<int64_t> rank(count);
            for (int64_t r = 0; r < count; ++r) rank[by_first[r]] = r;
            for (int64_t i = 0; i < n_; ++i) box[i] = rank[group[i]];
        }
        return count;
    }

  private:
    const float* x_;
    int64_t n_, dim_;
    std::vector<float> sorted_;
};

Status check(const float* x, int64_t n_rows, int64_t dim) {
    if (n_rows < 1) return Status::error("x: expected at least one row");
    if (dim < 1) return Status::error("x: expected at least one column");
    return check_finite(x, n_rows, dim, "x");
}

}  // namespace

Status grid_boxes(const float* x, int64_t n_rows, int64_t dim, double unit, int64_t* box,
                  int64_t* n_boxes) {
    if (!(unit >= 0.0) || !std::isfinite(unit))
        return Status::error("unit: must be finite and >= 0, got " + std::to_string(unit));
    if (Status st = check(x, n_rows, dim); !st.ok()) return st;
    *n_boxes = Grid(x, n_rows, dim).boxes(unit, box);
    return Status();
}

Status grid_covering(const float* x, int64_t n_rows, int64_t dim, int64_t target, double alpha,
                     int64_t max_iter, int64_t* box, int64_t* n_boxes, double* unit,
                     Interrupt* interrupt) {
    if (target < 1) return Status::error("target: must be >= 1, got " + std::to_string(target));
    if (!(alpha >= 0.0) || !std::isfinite(alpha))
        return Status::error("alpha: must be finite and >= 0, got " + std::to_string(alpha));
    if (max_iter < 1)
        return Status::error("max_iter: must be >= 1, got " + std::to_string(max_iter));
    if (Status st = check(x, n_rows, dim); !st.ok()) return st;
    const Grid grid(x, n_rows, dim);
    const double widest = grid.widest();
    double low = 0.0, high = widest, side = widest / 4.0;
    for (int64_t it = 0; it < max_iter; ++it) {
        if (interrupt != nullptr && interrupt->requested()) return Status::interrupted();
        const int64_t count = grid.boxes(side, nullptr);
        if (count > target * (1.0 + alpha)) {
            low = side;  // too many boxes: widen them
        } else if (count < target / (1.0 + alpha)) {
            high = side;  // too few: narrow them
        } else {
            break;
        }
        const double next = (low + high) / 2.0;
        if (high - low <= 1e-12 * std::max(widest, 1e-30) || next == side) break;
        side = next;
    }
    *unit = side;
    *n_boxes = grid.boxes(side, box);
    return Status();
}

}  // namespace scurate
