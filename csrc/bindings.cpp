// The only file that sees Python: validate, release the GIL, compute, return.
#include <omp.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <utility>

#include "kernels/dedup.hpp"
#include "kernels/facility.hpp"
#include "kernels/interrupt.hpp"
#include "kernels/kcenter.hpp"
#include "kernels/kcenter_covered.hpp"
#include "kernels/neighbors.hpp"
#include "kernels/qc.hpp"
#include "kernels/sketch.hpp"

namespace py = pybind11;

namespace {

template <class T>
using carray = py::array_t<T, py::array::c_style>;

// The caller's array as it is, or an error naming the argument; never a silent copy.
template <class T>
carray<T> expect(const py::array& a, const char* arg, py::ssize_t ndim) {
    if (!py::isinstance<carray<T>>(a)) {
        const bool contiguous = a.flags() & py::array::c_style;
        throw py::type_error(std::string(arg) + ": expected C-contiguous " +
                             std::string(py::str(py::dtype::of<T>())) + ", got " +
                             std::string(py::str(a.dtype())) +
                             (contiguous ? "" : " (not contiguous: use np.ascontiguousarray)"));
    }
    if (a.ndim() != ndim)
        throw py::value_error(std::string(arg) + ": expected a " + std::to_string(ndim) +
                              "-D array, got " + std::to_string(a.ndim()) + "-D");
    return py::reinterpret_borrow<carray<T>>(a);
}

// Ctrl-C for a kernel that runs without the GIL: every poll interval the kernel's thread takes
// the GIL and runs Python's signal handlers (PyErr_CheckSignals).
// A handler that raises (KeyboardInterrupt from SIGINT, or whatever a user's handler raises)
// stops the kernel at its next check; the exception is kept and rethrown once the kernel has
// returned, with the GIL held again.
class SignalInterrupt {
  public:
    // Built with the GIL held. Python runs signal handlers on its main thread only: elsewhere
    // there is nothing to poll, and taking the GIL every interval would only slow the kernel.
    SignalInterrupt() {
        const py::module_ threading = py::module_::import("threading");
        if (threading.attr("current_thread")().is(threading.attr("main_thread")()))
            interrupt_ = scurate::Interrupt(&SignalInterrupt::poll, this);
    }
    SignalInterrupt(const SignalInterrupt&) = delete;  // the Interrupt points at this object
    SignalInterrupt& operator=(const SignalInterrupt&) = delete;

    scurate::Interrupt* get() { return &interrupt_; }

    // After the kernel: rethrows the handler's exception, or a kernel error as ValueError.
    void raise_if_failed(const scurate::Status& st) const {
        if (st.is_interrupted() && error_) throw *error_;
        if (!st.ok()) throw py::value_error(st.message());
    }

  private:
    static bool poll(void* self) {
        py::gil_scoped_acquire gil;
        if (PyErr_CheckSignals() == 0) return false;
        static_cast<SignalInterrupt*>(self)->error_ = std::make_unique<py::error_already_set>();
        return true;
    }

    std::unique_ptr<py::error_already_set> error_;
    scurate::Interrupt interrupt_;  // asks no one, off the main thread
};

std::pair<py::array_t<int64_t>, py::array_t<double>> kcenter(const py::array& x, int64_t budget,
                                                             const py::object& initial,
                                                             int64_t first,
                                                             const py::object& weights) {
    auto emb = expect<float>(x, "x", 2);
    carray<int64_t> seeds;
    if (initial.is_none()) {
        seeds = carray<int64_t>(0);
    } else {
        seeds = expect<int64_t>(py::reinterpret_borrow<py::array>(initial), "initial", 1);
    }
    carray<float> w;
    if (!weights.is_none()) {
        w = expect<float>(py::reinterpret_borrow<py::array>(weights), "weights", 1);
        if (w.shape(0) != emb.shape(0))
            throw py::value_error("weights: has " + std::to_string(w.shape(0)) + " entries for " +
                                  std::to_string(emb.shape(0)) + " rows of x");
    }
    if (budget < 0) throw py::value_error("budget: must be >= 0, got " + std::to_string(budget));
    py::array_t<int64_t> order(budget);
    py::array_t<double> radii(budget);
    scurate::Status st;
    SignalInterrupt interrupt;
    {
        py::gil_scoped_release nogil;
        st = scurate::kcenter(emb.data(), emb.shape(0), emb.shape(1), budget, seeds.data(),
                              seeds.shape(0), first, order.mutable_data(), radii.mutable_data(),
                              interrupt.get(), weights.is_none() ? nullptr : w.data());
    }
    interrupt.raise_if_failed(st);
    return {order, radii};
}

void check_finite(const py::array& x, const std::string& arg) {
    auto emb = expect<float>(x, arg.c_str(), 2);
    scurate::Status st;
    {
        py::gil_scoped_release nogil;
        st = scurate::check_finite(emb.data(), emb.shape(0), emb.shape(1), arg.c_str());
    }
    if (!st.ok()) throw py::value_error(st.message());
}

// ---- duplicate and neighbour scoring ----

template <class Index, class Value>
int64_t hash_typed(const carray<int64_t>& indptr, const py::array& indices, const py::array& data,
                   const carray<int32_t>& gene_map, uint64_t* hashes, uint32_t* nnz) {
    auto idx = expect<Index>(indices, "indices", 1);
    auto val = expect<Value>(data, "data", 1);
    if (idx.shape(0) != val.shape(0))
        throw py::value_error("indices and data: lengths differ (" + std::to_string(idx.shape(0)) +
                              " and " + std::to_string(val.shape(0)) + ")");
    int64_t nonintegral = 0;
    scurate::Status st;
    {
        py::gil_scoped_release nogil;
        st = scurate::hash_count_rows<Index, Value>(indptr.data(), indptr.shape(0) - 1, idx.data(),
                                                    val.data(), val.shape(0), gene_map.data(),
                                                    gene_map.shape(0), hashes, nnz, &nonintegral);
    }
    if (!st.ok()) throw py::value_error(st.message());
    return nonintegral;
}

// Types are matched by dtype equality, not by numpy's descriptor object: a store (zarr) may
// hand float32 data whose descriptor is an equal copy ('<f4'), not numpy's own one.
template <class Index>
int64_t hash_values(const carray<int64_t>& indptr, const py::array& indices, const py::array& data,
                    const carray<int32_t>& gene_map, uint64_t* hashes, uint32_t* nnz) {
    const auto dt = data.dtype();
    if (dt.equal(py::dtype::of<float>()))
        return hash_typed<Index, float>(indptr, indices, data, gene_map, hashes, nnz);
    if (dt.equal(py::dtype::of<double>()))
        return hash_typed<Index, double>(indptr, indices, data, gene_map, hashes, nnz);
    if (dt.equal(py::dtype::of<int16_t>()))
        return hash_typed<Index, int16_t>(indptr, indices, data, gene_map, hashes, nnz);
    if (dt.equal(py::dtype::of<int32_t>()))
        return hash_typed<Index, int32_t>(indptr, indices, data, gene_map, hashes, nnz);
    if (dt.equal(py::dtype::of<int64_t>()))
        return hash_typed<Index, int64_t>(indptr, indices, data, gene_map, hashes, nnz);
    if (dt.equal(py::dtype::of<uint16_t>()))
        return hash_typed<Index, uint16_t>(indptr, indices, data, gene_map, hashes, nnz);
    if (dt.equal(py::dtype::of<uint32_t>()))
        return hash_typed<Index, uint32_t>(indptr, indices, data, gene_map, hashes, nnz);
    if (dt.equal(py::dtype::of<uint64_t>()))
        return hash_typed<Index, uint64_t>(indptr, indices, data, gene_map, hashes, nnz);
    throw py::type_error("data: expected a float, int or uint array, got " +
                         std::string(py::str(dt)));
}

py::tuple hash_count_rows(const py::array& indptr, const py::array& indices, const py::array& data,
                          const py::array& gene_map) {
    auto ptr = expect<int64_t>(indptr, "indptr", 1);
    auto map = expect<int32_t>(gene_map, "gene_map", 1);
    if (ptr.shape(0) < 1) throw py::value_error("indptr: must have at least one entry");
    const py::ssize_t n_rows = ptr.shape(0) - 1;
    py::array_t<uint64_t> hashes(n_rows);
    py::array_t<uint32_t> nnz(n_rows);
    int64_t nonintegral = 0;
    if (indices.dtype().equal(py::dtype::of<int32_t>())) {
        nonintegral = hash_values<int32_t>(ptr, indices, data, map, hashes.mutable_data(),
                                           nnz.mutable_data());
    } else if (indices.dtype().equal(py::dtype::of<int64_t>())) {
        nonintegral = hash_values<int64_t>(ptr, indices, data, map, hashes.mutable_data(),
                                           nnz.mutable_data());
    } else {
        throw py::type_error("indices: expected int32 or int64, got " +
                             std::string(py::str(indices.dtype())));
    }
    return py::make_tuple(hashes, nnz, nonintegral);
}

py::tuple knn_summary(const py::array& d2, const py::array& labels, int64_t first_row,
                      int64_t n_mean) {
    auto dist = expect<float>(d2, "d2", 2);
    auto lab = expect<int64_t>(labels, "labels", 2);
    if (dist.shape(0) != lab.shape(0) || dist.shape(1) != lab.shape(1))
        throw py::value_error("d2 and labels: shapes differ");
    const py::ssize_t n = dist.shape(0);
    py::array_t<int64_t> nn_row(n);
    py::array_t<float> nn_dist(n);
    py::array_t<float> mean_dist(n);
    scurate::Status st;
    {
        py::gil_scoped_release nogil;
        st = scurate::knn_summary(dist.data(), lab.data(), n, dist.shape(1), first_row, n_mean,
                                  nn_row.mutable_data(), nn_dist.mutable_data(),
                                  mean_dist.mutable_data());
    }
    if (!st.ok()) throw py::value_error(st.message());
    return py::make_tuple(nn_row, nn_dist, mean_dist);
}

py::array_t<float> row_sq_dists(const py::array& x, const py::array& labels, int64_t first_row) {
    auto pts = expect<float>(x, "x", 2);
    auto lab = expect<int64_t>(labels, "labels", 2);
    const py::ssize_t n = lab.shape(0), k = lab.shape(1);
    py::array_t<float> d2({n, k});
    scurate::Status st;
    {
        py::gil_scoped_release nogil;
        st = scurate::row_sq_dists(pts.data(), pts.shape(0), pts.shape(1), lab.data(), n, k,
                                   first_row, d2.mutable_data());
    }
    if (!st.ok()) throw py::value_error(st.message());
    return d2;
}

py::array_t<int64_t> union_find(int64_t n_nodes, const py::array& a, const py::array& b) {
    auto ea = expect<int64_t>(a, "a", 1);
    auto eb = expect<int64_t>(b, "b", 1);
    if (ea.shape(0) != eb.shape(0)) throw py::value_error("a and b: lengths differ");
    if (n_nodes < 0) throw py::value_error("n_nodes: must be >= 0");
    py::array_t<int64_t> group(n_nodes);
    scurate::Status st;
    {
        py::gil_scoped_release nogil;
        st = scurate::union_find(n_nodes, ea.data(), eb.data(), ea.shape(0), group.mutable_data());
    }
    if (!st.ok()) throw py::value_error(st.message());
    return group;
}

std::pair<py::array_t<int64_t>, py::array_t<double>> kcenter_covered(const py::array& x,
                                                                     const py::array& covered,
                                                                     int64_t budget) {
    auto emb = expect<float>(x, "x", 2);
    auto cov = expect<float>(covered, "covered", 1);
    if (cov.shape(0) != emb.shape(0))
        throw py::value_error("covered: has " + std::to_string(cov.shape(0)) + " entries for " +
                              std::to_string(emb.shape(0)) + " rows of x");
    if (budget < 0) throw py::value_error("budget: must be >= 0, got " + std::to_string(budget));
    py::array_t<int64_t> order(budget);
    py::array_t<double> radii(budget);
    scurate::Status st;
    SignalInterrupt interrupt;
    {
        py::gil_scoped_release nogil;
        st = scurate::check_finite(emb.data(), emb.shape(0), emb.shape(1), "x");
        if (st.ok())
            st = scurate::kcenter_covered(emb.data(), emb.shape(0), emb.shape(1), cov.data(),
                                          budget, order.mutable_data(), radii.mutable_data(),
                                          interrupt.get());
    }
    interrupt.raise_if_failed(st);
    return {order, radii};
}

}  // namespace

// ---- issue 5: facility location and grid covering (policies) -------------------------------
namespace {

template <class Index>
std::pair<py::array_t<int64_t>, py::array_t<double>> facility_location_of(
    const carray<int64_t>& ptr, const py::array& indices, const carray<float>& val, int64_t budget,
    int64_t sample, uint64_t seed) {
    auto idx = expect<Index>(indices, "indices", 1);
    const int64_t n = ptr.shape(0) - 1;
    if (idx.shape(0) != val.shape(0))
        throw py::value_error("indices and values: expected the same length, got " +
                              std::to_string(idx.shape(0)) + " and " +
                              std::to_string(val.shape(0)));
    if (ptr.at(n) != idx.shape(0))
        throw py::value_error("indptr[-1] = " + std::to_string(ptr.at(n)) + ": expected " +
                              std::to_string(idx.shape(0)) + " (the length of indices)");
    py::array_t<int64_t> order(budget);
    py::array_t<double> objective(budget);
    scurate::Status st;
    SignalInterrupt interrupt;
    {
        py::gil_scoped_release nogil;
        st = scurate::facility_location<Index>(ptr.data(), idx.data(), val.data(), n, budget,
                                               sample, seed, order.mutable_data(),
                                               objective.mutable_data(), interrupt.get());
    }
    interrupt.raise_if_failed(st);
    return {order, objective};
}

std::pair<py::array_t<int64_t>, py::array_t<double>> facility_location(
    const py::array& indptr, const py::array& indices, const py::array& values, int64_t budget,
    int64_t sample, uint64_t seed) {
    auto ptr = expect<int64_t>(indptr, "indptr", 1);
    auto val = expect<float>(values, "values", 1);
    if (ptr.shape(0) < 1) throw py::value_error("indptr: expected n_rows + 1 >= 1 entries");
    const int64_t n = ptr.shape(0) - 1;
    if (budget < 0 || budget > n)
        throw py::value_error("budget: must be between 0 and the " + std::to_string(n) +
                              " rows, got " + std::to_string(budget));
    if (sample < 0) throw py::value_error("sample: must be >= 0, got " + std::to_string(sample));
    if (py::isinstance<carray<int32_t>>(indices))  // int32: no int64 copy of a large graph
        return facility_location_of<int32_t>(ptr, indices, val, budget, sample, seed);
    return facility_location_of<int64_t>(ptr, indices, val, budget, sample, seed);
}

std::tuple<py::array_t<int64_t>, py::array_t<int32_t>, py::array_t<float>> covering_graph(
    const py::array& near, const py::array& sim) {
    auto nb = expect<int32_t>(near, "near", 2);
    auto sv = expect<float>(sim, "sim", 2);
    if (nb.shape(0) != sv.shape(0) || nb.shape(1) != sv.shape(1))
        throw py::value_error("near and sim: expected the same shape");
    const int64_t n = nb.shape(0), k = nb.shape(1);
    py::array_t<int64_t> indptr(n + 1);
    scurate::Status st;
    {
        py::gil_scoped_release nogil;
        st = scurate::covering_counts(nb.data(), n, k, indptr.mutable_data());
    }
    if (!st.ok()) throw py::value_error(st.message());
    const int64_t nnz = indptr.at(n);
    py::array_t<int32_t> indices(nnz);
    py::array_t<float> values(nnz);
    {
        py::gil_scoped_release nogil;
        st = scurate::covering_fill(nb.data(), sv.data(), n, k, indptr.data(),
                                    indices.mutable_data(), values.mutable_data());
    }
    if (!st.ok()) throw py::value_error(st.message());
    return {indptr, indices, values};
}

void covering_count_block(const py::array& near, int64_t first, const py::array& counts) {
    auto nb = expect<int32_t>(near, "near", 2);
    auto ct = expect<int64_t>(counts, "counts", 1);
    const int64_t n = ct.shape(0) - 1, rows = nb.shape(0), k = nb.shape(1);
    if (n < 0 || first < 0 || first + rows > n)
        throw py::value_error("near: rows " + std::to_string(first) + ".." +
                              std::to_string(first + rows - 1) + " are not cells of counts");
    int64_t* out = ct.mutable_data();
    scurate::Status st;
    {
        py::gil_scoped_release nogil;
        st = scurate::covering_count_block(nb.data(), first, rows, n, k, out);
    }
    if (!st.ok()) throw py::value_error(st.message());
}

void covering_fill_block(const py::array& near, const py::array& sim, int64_t first,
                         const py::array& indptr, const py::array& next, const py::array& indices,
                         const py::array& values) {
    auto nb = expect<int32_t>(near, "near", 2);
    auto sv = expect<float>(sim, "sim", 2);
    auto ptr = expect<int64_t>(indptr, "indptr", 1);
    auto nx = expect<int64_t>(next, "next", 1);
    auto idx = expect<int32_t>(indices, "indices", 1);
    auto val = expect<float>(values, "values", 1);
    const int64_t n = ptr.shape(0) - 1, rows = nb.shape(0), k = nb.shape(1);
    if (sv.shape(0) != rows || sv.shape(1) != k)
        throw py::value_error("near and sim: expected the same shape");
    if (n < 0 || nx.shape(0) != n || first < 0 || first + rows > n)
        throw py::value_error("near: rows " + std::to_string(first) + ".." +
                              std::to_string(first + rows - 1) + " are not cells of indptr");
    if (idx.shape(0) != ptr.at(n) || val.shape(0) != ptr.at(n))
        throw py::value_error("indices and values: expected indptr[-1] entries each");
    int64_t* cursor = nx.mutable_data();
    int32_t* out_idx = idx.mutable_data();
    float* out_val = val.mutable_data();
    scurate::Status st;
    {
        py::gil_scoped_release nogil;
        st = scurate::covering_fill_block(nb.data(), sv.data(), first, rows, n, k, ptr.data(),
                                          cursor, out_idx, out_val);
    }
    if (!st.ok()) throw py::value_error(st.message());
}

std::pair<py::array_t<int64_t>, int64_t> grid_boxes(const py::array& x, double unit) {
    auto emb = expect<float>(x, "x", 2);
    py::array_t<int64_t> box(emb.shape(0));
    int64_t n_boxes = 0;
    scurate::Status st;
    {
        py::gil_scoped_release nogil;
        st = scurate::grid_boxes(emb.data(), emb.shape(0), emb.shape(1), unit, box.mutable_data(),
                                 &n_boxes);
    }
    if (!st.ok()) throw py::value_error(st.message());
    return {box, n_boxes};
}

std::tuple<py::array_t<int64_t>, int64_t, double> grid_covering(const py::array& x, int64_t target,
                                                                double alpha, int64_t max_iter) {
    auto emb = expect<float>(x, "x", 2);
    py::array_t<int64_t> box(emb.shape(0));
    int64_t n_boxes = 0;
    double unit = 0.0;
    scurate::Status st;
    SignalInterrupt interrupt;
    {
        py::gil_scoped_release nogil;
        st = scurate::grid_covering(emb.data(), emb.shape(0), emb.shape(1), target, alpha, max_iter,
                                    box.mutable_data(), &n_boxes, &unit, interrupt.get());
    }
    interrupt.raise_if_failed(st);
    return {box, n_boxes, unit};
}

void bind_policies(py::module_& m) {
    m.def("facility_location", &facility_location, py::arg("indptr"), py::arg("indices"),
          py::arg("values"), py::arg("budget"), py::kw_only(), py::arg("sample") = 0,
          py::arg("seed") = 0,
          R"doc(Greedy facility location over a sparse similarity graph (CSR by candidate).

Row j of (indptr, indices, values) lists the cells i that candidate j covers (int32 or int64)
and sim(i, j) (float32, finite, >= 0). Returns (order, objective): the picks in greedy order (int64) and
F = sum_i max_{j picked} sim(i, j) after each pick. sample = 0 (or >= n_rows): exact lazy
greedy, ties to the lowest row. sample > 0: stochastic greedy, each pick the best of
``sample`` candidates not yet picked, drawn from a stream seeded by ``seed``.)doc");
    m.def(
        "covering_count_block", &covering_count_block, py::arg("near"), py::arg("first"),
        py::arg("counts"),
        R"doc(Add the block's entries (cells first.., rows of near) to counts (n + 1, int64).)doc");
    m.def(
        "covering_fill_block", &covering_fill_block, py::arg("near"), py::arg("sim"),
        py::arg("first"), py::arg("indptr"), py::arg("next"), py::arg("indices"), py::arg("values"),
        R"doc(Write the block's entries (cells first..) at next (advanced), as covering_graph.)doc");
    m.def("covering_graph", &covering_graph, py::arg("near"), py::arg("sim"),
          R"doc(Facility location's graph by candidate from each cell's neighbour list.

near (n, k) int32: each cell's neighbours (-1: none); sim (n, k) float32: the similarity
of each listed neighbour (finite, >= 0). Returns (indptr int64, indices int32, values
float32): row j lists j itself (1.0) and every cell i that lists j, in increasing order.)doc");
    m.def(
        "grid_boxes", &grid_boxes, py::arg("x"), py::arg("unit"),
        R"doc(Plaid grid boxes of side ``unit`` over a float32 (n, d) array (geosketch's covering).

Returns (box, n_boxes): each row's box id, numbered by first row, and the number of boxes.)doc");
    m.def("grid_covering", &grid_covering, py::arg("x"), py::arg("target"), py::kw_only(),
          py::arg("alpha") = 0.1, py::arg("max_iter") = 100,
          R"doc(The plaid grid whose number of boxes is near ``target`` (side found by bisection).

Returns (box, n_boxes, unit).)doc");
}

// ---- per-cell QC values (issue 17) ----

template <class Index, class Value>
void qc_typed(const carray<int64_t>& indptr, const py::array& indices, const py::array& data,
              const carray<bool>& mito, double* total, int32_t* genes, double* mito_total) {
    auto idx = expect<Index>(indices, "indices", 1);
    auto val = expect<Value>(data, "data", 1);
    if (idx.shape(0) != val.shape(0))
        throw py::value_error("indices and data: lengths differ (" + std::to_string(idx.shape(0)) +
                              " and " + std::to_string(val.shape(0)) + ")");
    scurate::Status st;
    {
        py::gil_scoped_release nogil;
        st = scurate::qc_rows<Index, Value>(indptr.data(), indptr.shape(0) - 1, idx.data(),
                                            val.data(), val.shape(0), mito.data(), mito.shape(0),
                                            total, genes, mito_total);
    }
    if (!st.ok()) throw py::value_error(st.message());
}

template <class Index>
void qc_values(const carray<int64_t>& indptr, const py::array& indices, const py::array& data,
               const carray<bool>& mito, double* total, int32_t* genes, double* mito_total) {
    const auto dt = data.dtype();
    if (dt.equal(py::dtype::of<float>()))
        return qc_typed<Index, float>(indptr, indices, data, mito, total, genes, mito_total);
    if (dt.equal(py::dtype::of<double>()))
        return qc_typed<Index, double>(indptr, indices, data, mito, total, genes, mito_total);
    if (dt.equal(py::dtype::of<int16_t>()))
        return qc_typed<Index, int16_t>(indptr, indices, data, mito, total, genes, mito_total);
    if (dt.equal(py::dtype::of<int32_t>()))
        return qc_typed<Index, int32_t>(indptr, indices, data, mito, total, genes, mito_total);
    if (dt.equal(py::dtype::of<int64_t>()))
        return qc_typed<Index, int64_t>(indptr, indices, data, mito, total, genes, mito_total);
    if (dt.equal(py::dtype::of<uint16_t>()))
        return qc_typed<Index, uint16_t>(indptr, indices, data, mito, total, genes, mito_total);
    if (dt.equal(py::dtype::of<uint32_t>()))
        return qc_typed<Index, uint32_t>(indptr, indices, data, mito, total, genes, mito_total);
    if (dt.equal(py::dtype::of<uint64_t>()))
        return qc_typed<Index, uint64_t>(indptr, indices, data, mito, total, genes, mito_total);
    throw py::type_error("data: expected a float, int or uint array, got " +
                         std::string(py::str(dt)));
}

py::tuple qc_rows(const py::array& indptr, const py::array& indices, const py::array& data,
                  const py::array& mito) {
    auto ptr = expect<int64_t>(indptr, "indptr", 1);
    auto mask = expect<bool>(mito, "mito", 1);
    if (ptr.shape(0) < 1) throw py::value_error("indptr: must have at least one entry");
    const py::ssize_t n_rows = ptr.shape(0) - 1;
    py::array_t<double> total(n_rows);
    py::array_t<int32_t> genes(n_rows);
    py::array_t<double> mito_total(n_rows);
    if (indices.dtype().equal(py::dtype::of<int32_t>())) {
        qc_values<int32_t>(ptr, indices, data, mask, total.mutable_data(), genes.mutable_data(),
                           mito_total.mutable_data());
    } else if (indices.dtype().equal(py::dtype::of<int64_t>())) {
        qc_values<int64_t>(ptr, indices, data, mask, total.mutable_data(), genes.mutable_data(),
                           mito_total.mutable_data());
    } else {
        throw py::type_error("indices: expected int32 or int64, got " +
                             std::string(py::str(indices.dtype())));
    }
    return py::make_tuple(total, genes, mito_total);
}

void bind_qc(py::module_& m) {
    m.def("qc_rows", &qc_rows, py::arg("indptr"), py::arg("indices"), py::arg("data"),
          py::arg("mito"),
          R"doc(Per CSR row: (total counts float64, detected genes int32: values above zero,
counts in the columns mito marks float64). indptr is int64 (n_rows + 1, relative to
indices/data), indices int32/int64, data any int or float type, mito bool per column.)doc");
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "scurate's native kernels (private: use the scurate package)";
    m.attr("__version__") = SCURATE_VERSION;
    m.attr("has_cuda") = static_cast<bool>(SCURATE_HAS_CUDA);
    m.def("max_threads", &omp_get_max_threads, "OpenMP threads the kernels use.");
    m.def("kcenter", &kcenter, py::arg("x"), py::arg("budget"), py::kw_only(),
          py::arg("initial") = py::none(), py::arg("first") = 0, py::arg("weights") = py::none(),
          R"doc(Greedy k-center (farthest-first traversal) over a float32 (n, d) embedding.

Returns (order, radii): the picked rows in priority order (int64) and, after each pick,
the covering radius (float64, the largest distance of any row to its nearest pick).
``initial`` (int64 rows) are centers already chosen, never returned; without them the
first pick is ``first``. Ties go to the lowest row index. ``weights`` (float32 per row,
finite, >= 0): each pick maximizes weight * distance instead, and radii hold that maximum.)doc");
    m.def("check_finite", &check_finite, py::arg("x"), py::arg("arg") = "x",
          "Raise ValueError naming the first row of x with NaN or inf.");

    // duplicate and neighbour scoring
    m.def("hash_count_rows", &hash_count_rows, py::arg("indptr"), py::arg("indices"),
          py::arg("data"), py::arg("gene_map"),
          R"doc(Hash each CSR row as the multiset of its nonzero (gene_map[column], count) pairs.

indptr is int64 (n_rows + 1, relative to indices/data), indices int32/int64, data any int or
float type, gene_map int32 per column (-1 leaves a column out). Returns (hashes uint64,
nnz uint32: pairs hashed per row, n_nonintegral: values that are negative or not whole).)doc");
    m.def("row_sq_dists", &row_sq_dists, py::arg("x"), py::arg("labels"), py::arg("first_row"),
          R"doc(Squared L2 distances (float32, summed in double in one fixed order) from rows
first_row + i of x to their neighbours labels[i, :] (int64, -1: none, written as inf).)doc");
    m.def("knn_summary", &knn_summary, py::arg("d2"), py::arg("labels"), py::arg("first_row"),
          py::arg("n_mean"),
          R"doc(Per query row of a pool-against-itself kNN result (squared L2, FAISS layout;
query i is pool row first_row + i, its own entry skipped): (nearest other row int64,
its distance float32, mean distance over the first n_mean other neighbours float32).)doc");
    m.def("union_find", &union_find, py::arg("n_nodes"), py::arg("a"), py::arg("b"),
          "Components of the graph with edges (a[e], b[e]): the smallest node of each "
          "component of two nodes or more, -1 for a node on its own.");
    m.def("kcenter_covered", &kcenter_covered, py::arg("x"), py::arg("covered"), py::arg("budget"),
          R"doc(Farthest-first traversal where row i starts at distance covered[i] (float32, to a
reference corpus outside x; inf for none). Returns (order, radii) as kcenter does.)doc");

    bind_policies(m);  // issue 5
    bind_qc(m);        // issue 17
}
