// Shared pieces of the kiln._kiln extension module (python/src/).
//
// Errors: every kiln Status that is not OK becomes a StatusError, which the module's exception
// translator raises as the kiln.errors class for its code (kiln/errors.py registers the classes
// at import). Arrays: numpy <-> kiln::Tensor without copies where the layout allows.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>  // in every file of the module: type casters must agree

#include <exception>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/session.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::python {

namespace py = pybind11;

// A failed Status in flight to Python.
class StatusError : public std::exception {
 public:
  explicit StatusError(Status status) : status_(std::move(status)) {}
  const Status& status() const { return status_; }
  const char* what() const noexcept override { return status_.message().c_str(); }

 private:
  Status status_;
};

inline void ThrowIfError(const Status& status) {
  if (!status.ok()) throw StatusError(status);
}

template <typename T>
T ValueOrThrow(StatusOr<T>&& result) {
  if (!result.ok()) throw StatusError(result.status());
  return std::move(result).value();
}

// errors.cc
void BindErrors(py::module_& m);

// arrays.cc
// The numpy dtype of a kiln DataType; kString maps to object; none for bfloat16/undefined.
std::optional<py::dtype> NumpyDtype(DataType dtype);
// The kiln DataType of a numpy dtype (native byte order only), or kUndefined.
DataType KilnDtype(const py::dtype& dtype);
// A Tensor over `array` for input `name`. When the array is C-contiguous, aligned, in native
// byte order and of a numeric dtype, the Tensor borrows its buffer (and keeps a reference to
// the array); otherwise the data is copied. Throws StatusError on unsupported dtypes.
Tensor TensorFromArray(const py::array& array, const std::string& name);
// A numpy array over `tensor`'s storage (the array keeps the storage alive); strings become an
// object array of bytes (a copy). An ONNX sequence becomes a list of arrays, an empty optional
// None.
py::object ArrayFromTensor(Tensor tensor);
// Like ArrayFromTensor, but the arrays own a copy of the data.
py::object CopyArrayFromTensor(const Tensor& tensor);

// session.cc, convert.cc
void BindSession(py::module_& m);
void BindConvert(py::module_& m);
// A kiln._kiln.Session over `graph` (a copy of it: Session::FromGraph), GIL released.
py::object SessionFromGraph(const Graph& graph, const SessionOptions& options);

}  // namespace kiln::python
