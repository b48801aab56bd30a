// The only file that sees Python: validate, release the GIL, compute, return.
#include <omp.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <utility>

#include "kernels/facility.hpp"
#include "kernels/kcenter.hpp"
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

std::pair<py::array_t<int64_t>, py::array_t<double>> kcenter(const py::array& x, int64_t budget,
                                                             const py::object& initial,
                                                             int64_t first) {
    auto emb = expect<float>(x, "x", 2);
    carray<int64_t> seeds;
    if (initial.is_none()) {
        seeds = carray<int64_t>(0);
    } else {
        seeds = expect<int64_t>(py::reinterpret_borrow<py::array>(initial), "initial", 1);
    }
    if (budget < 0) throw py::value_error("budget: must be >= 0, got " + std::to_string(budget));
    py::array_t<int64_t> order(budget);
    py::array_t<double> radii(budget);
    scurate::Status st;
    {
        py::gil_scoped_release nogil;
        st = scurate::kcenter(emb.data(), emb.shape(0), emb.shape(1), budget, seeds.data(),
                              seeds.shape(0), first, order.mutable_data(), radii.mutable_data());
    }
    if (!st.ok()) throw py::value_error(st.message());
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

}  // namespace

// ---- issue 5: facility location and grid covering (policies) -------------------------------
namespace {

std::pair<py::array_t<int64_t>, py::array_t<double>> facility_location(const py::array& indptr,
                                                                       const py::array& indices,
                                                                       const py::array& values,
                                                                       int64_t budget) {
    auto ptr = expect<int64_t>(indptr, "indptr", 1);
    auto idx = expect<int64_t>(indices, "indices", 1);
    auto val = expect<float>(values, "values", 1);
    if (ptr.shape(0) < 1) throw py::value_error("indptr: expected n_rows + 1 >= 1 entries");
    const int64_t n = ptr.shape(0) - 1;
    if (idx.shape(0) != val.shape(0))
        throw py::value_error("indices and values: expected the same length, got " +
                              std::to_string(idx.shape(0)) + " and " +
                              std::to_string(val.shape(0)));
    if (ptr.at(n) != idx.shape(0))
        throw py::value_error("indptr[-1] = " + std::to_string(ptr.at(n)) + ": expected " +
                              std::to_string(idx.shape(0)) + " (the length of indices)");
    if (budget < 0 || budget > n)
        throw py::value_error("budget: must be between 0 and the " + std::to_string(n) +
                              " rows, got " + std::to_string(budget));
    py::array_t<int64_t> order(budget);
    py::array_t<double> objective(budget);
    scurate::Status st;
    {
        py::gil_scoped_release nogil;
        st = scurate::facility_location(ptr.data(), idx.data(), val.data(), n, budget,
                                        order.mutable_data(), objective.mutable_data());
    }
    if (!st.ok()) throw py::value_error(st.message());
    return {order, objective};
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
    {
        py::gil_scoped_release nogil;
        st = scurate::grid_covering(emb.data(), emb.shape(0), emb.shape(1), target, alpha, max_iter,
                                    box.mutable_data(), &n_boxes, &unit);
    }
    if (!st.ok()) throw py::value_error(st.message());
    return {box, n_boxes, unit};
}

void bind_policies(py::module_& m) {
    m.def("facility_location", &facility_location, py::arg("indptr"), py::arg("indices"),
          py::arg("values"), py::arg("budget"),
          R"doc(Lazy-greedy facility location over a sparse similarity graph (CSR by candidate).

Row j of (indptr, indices, values) lists the cells i that candidate j covers and sim(i, j)
(float32, finite, >= 0). Returns (order, objective): the picks in greedy order (int64; ties to
the lowest row, as a plain greedy) and F = sum_i max_{j picked} sim(i, j) after each pick.)doc");
    m.def(
        "grid_boxes", &grid_boxes, py::arg("x"), py::arg("unit"),
        R"doc(Plaid grid boxes of side ``unit`` over a float32 (n, d) array (geosketch's covering).

Returns (box, n_boxes): each row's box id, numbered by first row, and the number of boxes.)doc");
    m.def("grid_covering", &grid_covering, py::arg("x"), py::arg("target"), py::kw_only(),
          py::arg("alpha") = 0.1, py::arg("max_iter") = 100,
          R"doc(The plaid grid whose number of boxes is near ``target`` (side found by bisection).

Returns (box, n_boxes, unit).)doc");
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "scurate's native kernels (private: use the scurate package)";
    m.attr("__version__") = SCURATE_VERSION;
    m.attr("has_cuda") = static_cast<bool>(SCURATE_HAS_CUDA);
    m.def("max_threads", &omp_get_max_threads, "OpenMP threads the kernels use.");
    m.def("kcenter", &kcenter, py::arg("x"), py::arg("budget"), py::kw_only(),
          py::arg("initial") = py::none(), py::arg("first") = 0,
          R"doc(Greedy k-center (farthest-first traversal) over a float32 (n, d) embedding.

Returns (order, radii): the picked rows in priority order (int64) and, after each pick,
the covering radius (float64, the largest distance of any row to its nearest pick).
``initial`` (int64 rows) are centers already chosen, never returned; without them the
first pick is ``first``. Ties go to the lowest row index.)doc");
    m.def("check_finite", &check_finite, py::arg("x"), py::arg("arg") = "x",
          "Raise ValueError naming the first row of x with NaN or inf.");
    bind_policies(m);  // issue 5
}
