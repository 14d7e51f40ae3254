// numpy arrays <-> kiln::Tensor.
//
// In: a C-contiguous, aligned, native-byte-order numeric array is borrowed (Tensor::Wrap with a
// reference to the array as the owner; the reference is dropped under the GIL); anything else
// is copied into a new Tensor by numpy's own assignment (strides, byte order). Strings (object
// arrays of bytes/str, or 'S'/'U' arrays) are copied into a string Tensor.
// Out: a numeric Tensor becomes an array over its storage whose base is a capsule holding the
// Tensor; bfloat16 is widened to float32 and strings become an object array of bytes (copies).
#include <memory>
#include <optional>

#include "common.h"
#include "kiln/tensor.h"

namespace kiln::python {

namespace {

std::vector<int64_t> DimsOf(const py::array& array) {
  std::vector<int64_t> dims(static_cast<size_t>(array.ndim()));
  for (size_t i = 0; i < dims.size(); ++i) dims[i] = static_cast<int64_t>(array.shape(i));
  return dims;
}

std::vector<py::ssize_t> ShapeOf(const Tensor& t) {
  return std::vector<py::ssize_t>(t.dims().begin(), t.dims().end());
}

// Keeps a Python object alive from C++; the last reference may be dropped on a thread that does
// not hold the GIL (a Tensor freed inside Session::Run), so take it first.
std::shared_ptr<void> KeepAlive(py::object object) {
  return std::shared_ptr<void>(new py::object(std::move(object)), [](void* p) {
    py::gil_scoped_acquire gil;
    delete static_cast<py::object*>(p);
  });
}

Tensor StringTensorFromArray(const py::array& array, const std::string& name) {
  Tensor t = ValueOrThrow(Tensor::Create(DataType::kString, DimsOf(array)));
  py::object flat = py::module_::import("numpy").attr("ravel")(array, "C");
  std::string* out = t.mutable_data<std::string>();
  int64_t i = 0;
  for (py::handle item : flat) {
    if (py::isinstance<py::bytes>(item)) {
      out[i++] = item.cast<std::string>();
    } else if (py::isinstance<py::str>(item)) {
      out[i++] = item.cast<std::string>();  // UTF-8
    } else {
      throw StatusError(InvalidArgument(
          "feed '" + name + "': element " + std::to_string(i) + " of a string array is " +
          py::str(py::type::of(item)).cast<std::string>() + ", not bytes or str"));
    }
  }
  return t;
}

}  // namespace

std::optional<py::dtype> NumpyDtype(DataType dtype) {
  switch (dtype) {
    case DataType::kUndefined:
    case DataType::kBFloat16:
      return std::nullopt;
    case DataType::kString:
      return py::dtype("O");
    default:
      return py::dtype(std::string(DataTypeName(dtype)));
  }
}

DataType KilnDtype(const py::dtype& dtype) {
  const char kind = dtype.kind();
  if (kind == 'O' || kind == 'S' || kind == 'U') return DataType::kString;
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b') return DataType::kUndefined;
  py::dtype native = dtype.attr("newbyteorder")("=");
  std::optional<DataType> t = DataTypeFromName(py::str(native).cast<std::string>());
  return t ? *t : DataType::kUndefined;
}

Tensor TensorFromArray(const py::array& array, const std::string& name) {
  const DataType dtype = KilnDtype(array.dtype());
  if (dtype == DataType::kUndefined) {
    throw StatusError(InvalidArgument("feed '" + name + "': numpy dtype " +
                                      py::str(array.dtype()).cast<std::string>() +
                                      " has no kiln equivalent"));
  }
  if (dtype == DataType::kString) return StringTensorFromArray(array, name);
  const int flags = array.flags();
  const bool borrowable = (flags & py::array::c_style) &&
                          (flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_) &&
                          array.dtype().attr("isnative").cast<bool>();
  if (borrowable) {
    // Kernels never write to their inputs, so a read-only array can be borrowed too.
    return Tensor::Wrap(dtype, DimsOf(array), const_cast<void*>(array.data()), KeepAlive(array));
  }
  Tensor t = ValueOrThrow(Tensor::Create(dtype, DimsOf(array)));
  // A temporary array over the new storage; numpy does the strided, byte-swapping copy.
  py::array view(*NumpyDtype(dtype), ShapeOf(t), t.raw_mutable_data(), py::none());
  py::module_::import("numpy").attr("copyto")(view, array, "unsafe");
  return t;
}

py::object ArrayFromTensor(Tensor tensor) {
  if (tensor.is_none()) return py::none();
  if (tensor.is_sequence()) {
    py::list items;
    for (const Tensor& item : tensor.sequence()) items.append(ArrayFromTensor(item));
    return items;
  }
  if (!tensor.defined()) throw StatusError(Internal("a fetched tensor has no value"));
  const std::vector<py::ssize_t> shape = ShapeOf(tensor);
  if (tensor.dtype() == DataType::kString) {
    py::array out(py::dtype("O"), shape);
    auto** cells = static_cast<PyObject**>(out.mutable_data());
    const std::string* in = tensor.data<std::string>();
    for (int64_t i = 0; i < tensor.num_elements(); ++i) {
      PyObject* b = PyBytes_FromStringAndSize(in[i].data(), static_cast<py::ssize_t>(in[i].size()));
      if (b == nullptr) throw py::error_already_set();
      Py_XDECREF(cells[i]);
      cells[i] = b;
    }
    return out;
  }
  if (tensor.dtype() == DataType::kBFloat16) {
    py::array_t<float> out(shape);
    float* o = out.mutable_data();
    const BFloat16* in = tensor.data<BFloat16>();
    for (int64_t i = 0; i < tensor.num_elements(); ++i) o[i] = static_cast<float>(in[i]);
    return out;
  }
  std::optional<py::dtype> dtype = NumpyDtype(tensor.dtype());
  if (!dtype) {
    throw StatusError(Unimplemented(std::string("cannot return a ") + DataTypeName(tensor.dtype()) +
                                    " tensor to numpy"));
  }
  if (tensor.num_elements() == 0 || tensor.raw_data() == nullptr) return py::array(*dtype, shape);
  void* data = tensor.raw_mutable_data();
  auto* holder = new Tensor(std::move(tensor));
  py::capsule owner(holder, [](void* p) { delete static_cast<Tensor*>(p); });
  return py::array(*dtype, shape, data, owner);
}

py::object CopyArrayFromTensor(const Tensor& tensor) {
  if (!tensor.is_tensor()) {
    py::object items = ArrayFromTensor(tensor);
    if (py::isinstance<py::list>(items)) {
      py::list copies;
      for (py::handle a : items) copies.append(a.attr("copy")());
      return copies;
    }
    return items;
  }
  if (tensor.dtype() == DataType::kString || tensor.dtype() == DataType::kBFloat16) {
    return ArrayFromTensor(tensor);  // already a copy
  }
  return ArrayFromTensor(tensor.Clone());
}

}  // namespace kiln::python
