// kiln Status -> Python exception. kiln/errors.py defines the classes (kiln.Error and one
// subclass per StatusCode) and registers them here by code name at import time.
#include "common.h"

namespace kiln::python {

namespace {

// StatusCodeName -> exception class; owned by the module (never freed: the module lives as
// long as the interpreter).
PyObject* g_error_classes = nullptr;

PyObject* ErrorClassFor(StatusCode code) {
  if (g_error_classes != nullptr) {
    PyObject* cls = PyDict_GetItemString(g_error_classes, StatusCodeName(code));  // borrowed
    if (cls != nullptr) return cls;
  }
  return PyExc_RuntimeError;
}

}  // namespace

void BindErrors(py::module_& m) {
  py::dict classes;
  m.attr("_error_classes") = classes;
  g_error_classes = classes.ptr();
  m.def(
      "_status_code_names",
      [] {
        std::vector<std::string> names;
        for (StatusCode c :
             {StatusCode::kInvalidArgument, StatusCode::kNotFound, StatusCode::kUnimplemented,
              StatusCode::kFailedPrecondition, StatusCode::kResourceExhausted,
              StatusCode::kDataLoss, StatusCode::kInternal}) {
          names.emplace_back(StatusCodeName(c));
        }
        return names;
      },
      "The StatusCode names kiln/errors.py must register a class for.");
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      PyErr_SetString(ErrorClassFor(e.status().code()), e.status().message().c_str());
    }
  });
}

}  // namespace kiln::python
