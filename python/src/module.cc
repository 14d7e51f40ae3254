// kiln._kiln: the extension module behind the `kiln` Python package (python/kiln/). Thin
// bindings of the C++ API; the Python-facing API, its defaults and docstrings are in
// kiln/__init__.py.
#include "common.h"
#include "kiln/session.h"

PYBIND11_MODULE(_kiln, m) {
  namespace py = pybind11;
  m.doc() = "kiln's C++ API (use the `kiln` package, not this module)";
  m.def("version", [] { return std::string(kiln::Version()); });
  kiln::python::BindErrors(m);
  kiln::python::BindSession(m);
  kiln::python::BindConvert(m);
  m.def(
      "_borrows",
      [](const py::array& a) {
        kiln::Tensor t = kiln::python::TensorFromArray(a, "array");
        return t.raw_data() == a.data();
      },
      "Test hook: whether a feed of this array is used in place (no copy).");
}
