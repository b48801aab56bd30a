#include "kernels/neighbors.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace scurate {

Status knn_summary(const float* d2, const int64_t* labels, int64_t n_rows, int64_t k,
                   int64_t first_row, int64_t n_mean, int64_t* nn_row, float* nn_dist,
                   float* mean_dist) {
    if (k < 1) return Status::error("labels: expected at least one neighbour column");
    if (n_mean < 1) return Status::error("n_mean: must be >= 1, got " + std::to_string(n_mean));
#pragma omp parallel for schedule(static) if (n_rows > 4096)
    for (int64_t i = 0; i < n_rows; ++i) {
        const int64_t self = first_row + i;
        const float* di = d2 + i * k;
        const int64_t* li = labels + i * k;
        int64_t nearest = -1;
        float nearest_d = std::numeric_limits<float>::quiet_NaN();
        double sum = 0.0;
        int64_t taken = 0;
        for (int64_t j = 0; j < k; ++j) {
            if (li[j] < 0 || li[j] == self) continue;
            const float d = std::sqrt(std::max(di[j], 0.0f));
            if (nearest < 0) {
                nearest = li[j];
                nearest_d = d;
            }
            if (taken < n_mean) {
                sum += d;
                ++taken;
            }
        }
        nn_row[i] = nearest;
        nn_dist[i] = nearest_d;
        mean_dist[i] = taken > 0 ? static_cast<float>(sum / static_cast<double>(taken))
                                 : std::numeric_limits<float>::quiet_NaN();
    }
    return Status();
}

Status row_sq_dists(const float* x, int64_t n_points, int64_t dim, const int64_t* labels,
                    int64_t n_rows, int64_t k, int64_t first_row, float* d2) {
    if (first_row < 0 || first_row + n_rows > n_points)
        return Status::error("first_row: rows " + std::to_string(first_row) + ".." +
                             std::to_string(first_row + n_rows - 1) + " are not all in 0.." +
                             std::to_string(n_points - 1));
    for (int64_t e = 0; e < n_rows * k; ++e)
        if (labels[e] >= n_points)
            return Status::error("labels: row " + std::to_string(labels[e]) +
                                 " is out of range 0.." + std::to_string(n_points - 1));
#pragma omp parallel for schedule(static) if (n_rows * k * dim > (1 << 18))
    for (int64_t i = 0; i < n_rows; ++i) {
        const float* q = x + (first_row + i) * dim;
        for (int64_t j = 0; j < k; ++j) {
            const int64_t other = labels[i * k + j];
            if (other < 0) {
                d2[i * k + j] = std::numeric_limits<float>::infinity();
                continue;
            }
            const float* p = x + other * dim;
            double sum = 0.0;
            for (int64_t c = 0; c < dim; ++c) {
                const double diff = static_cast<double>(q[c]) - static_cast<double>(p[c]);
                sum += diff * diff;
            }
            d2[i * k + j] = static_cast<float>(sum);
        }
    }
    return Status();
}

namespace {

int64_t find_root(std::vector<int64_t>& parent, int64_t x) {
    while (parent[x] != x) {
        parent[x] = parent[parent[x]];  // path halving
        x = parent[x];
    }
    return x;
}

}  // namespace

Status union_find(int64_t n_nodes, const int64_t* a, const int64_t* b, int64_t n_edges,
                  int64_t* group) {
    if (n_nodes < 0) return Status::error("n_nodes: must be >= 0");
    for (int64_t e = 0; e < n_edges; ++e) {
        if (a[e] < 0 || a[e] >= n_nodes || b[e] < 0 || b[e] >= n_nodes)
            return Status::error("edges: edge " + std::to_string(e) + " (" + std::to_string(a[e]) +
                                 ", " + std::to_string(b[e]) + ") names a node outside 0.." +
                                 std::to_string(n_nodes - 1));
    }
    std::vector<int64_t> parent(n_nodes);
    std::vector<int64_t> size(n_nodes, 1);
    for (int64_t i = 0; i < n_nodes; ++i) parent[i] = i;
    for (int64_t e = 0; e < n_edges; ++e) {
        int64_t ra = find_root(parent, a[e]);
        int64_t rb = find_root(parent, b[e]);
        if (ra == rb) continue;
        if (size[ra] < size[rb]) std::swap(ra, rb);
        parent[rb] = ra;
        size[ra] += size[rb];
    }
    // the smallest node of each component: nodes are visited in increasing order, so the
    // first node seen of a component is its smallest
    std::vector<int64_t> smallest(n_nodes, -1);
    for (int64_t i = 0; i < n_nodes; ++i) {
        const int64_t r = find_root(parent, i);
        if (smallest[r] < 0) smallest[r] = i;
        group[i] = size[r] > 1 ? smallest[r] : -1;
    }
    return Status();
}

}  // namespace scurate
