// The only file that sees Python: validate, release the GIL, compute, return.
#include <omp.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <utility>

#include "kernels/kcenter.hpp"

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
}
