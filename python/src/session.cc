// kiln._kiln.Session: kiln::Session with numpy feeds and fetches.
//
// run() converts the feeds under the GIL (borrowing C-contiguous buffers, see arrays.cc),
// releases the GIL for Session::Run (which is const and thread-safe), then wraps the fetched
// tensors without copying. A fetched tensor is copied only when its memory is shared with
// something the caller could otherwise modify through it: a feed (Identity-like graphs), a
// model constant, or another fetched tensor.

#include "kiln/session.h"

#include <algorithm>
#include <atomic>
#include <memory>

#include "common.h"
#include "io/onnx/onnx_import.h"
#include "io/tf/graphdef_import.h"
#include "ir/graph.h"
#include "tensorflow.pb.h"

namespace kiln::python {

// Serialized ONNX ModelProto or TensorFlow GraphDef (binary, else text) -> IR graph.
StatusOr<Graph> GraphFromBytes(const std::string& bytes, const std::string& what) {
  if (bytes.empty()) return InvalidArgument(what + ": empty model bytes");
  // An ONNX ModelProto starts with field 1 (ir_version, varint: 0x08), a GraphDef with field 1
  // (node, length-delimited: 0x0a).
  if (static_cast<unsigned char>(bytes[0]) == 0x08) return ImportOnnxBytes(bytes, what, "");
  tfpb::GraphDef graph_def;
  Status parsed = ParseGraphDef(bytes, /*text=*/false, what, &graph_def);
  if (!parsed.ok()) {
    tfpb::GraphDef as_text;
    if (!ParseGraphDef(bytes, /*text=*/true, what, &as_text).ok()) {
      return InvalidArgument(what + ": not a serialized ONNX model or TensorFlow GraphDef (" +
                             parsed.message() + ")");
    }
    graph_def = std::move(as_text);
  }
  TfImportOptions options;
  options.source = what;
  return ImportGraphDef(graph_def, options);
}

namespace {

// Runs that went into Session::Run without the GIL (kiln._kiln._runs_without_gil(): a test can
// check that run() really lets other Python threads go on).
std::atomic<int64_t> g_runs_without_gil{0};

struct Range {
  const char* begin;
  const char* end;
  bool Overlaps(const Range& o) const { return begin < o.end && o.begin < end; }
};

Range RangeOf(const Tensor& t) {
  const char* p = static_cast<const char*>(t.raw_data());
  return {p, p + t.nbytes()};
}

void AddConstantRanges(const Graph& g, std::vector<Range>* ranges) {
  for (const auto& [name, t] : g.initializers) {
    if (t.raw_data() != nullptr && t.nbytes() > 0) ranges->push_back(RangeOf(t));
  }
  for (const auto& [name, f] : g.functions) {
    if (f) AddConstantRanges(*f, ranges);
  }
}

py::tuple InfoTuple(const TensorInfo& info) {
  py::object shape = py::none();
  if (info.shape.rank_known()) {
    py::list dims;
    for (int64_t d : info.shape.dims()) {
      if (d < 0) {
        dims.append(py::none());
      } else {
        dims.append(py::int_(d));
      }
    }
    shape = py::tuple(dims);
  }
  return py::make_tuple(info.name, DataTypeName(info.dtype), shape);
}

class PySession {
 public:
  explicit PySession(std::unique_ptr<Session> session) : session_(std::move(session)) {
    AddConstantRanges(session_->graph(), &constant_ranges_);
  }

  static std::unique_ptr<PySession> Load(const std::string& path, const SessionOptions& options) {
    StatusOr<std::unique_ptr<Session>> s = [&] {
      py::gil_scoped_release nogil;
      return Session::Load(path, options);
    }();
    return std::make_unique<PySession>(ValueOrThrow(std::move(s)));
  }

  static std::unique_ptr<PySession> FromBytes(const std::string& bytes, const std::string& what,
                                              const SessionOptions& options) {
    StatusOr<std::unique_ptr<Session>> s = [&]() -> StatusOr<std::unique_ptr<Session>> {
      py::gil_scoped_release nogil;
      KILN_ASSIGN_OR_RETURN(Graph graph, GraphFromBytes(bytes, what));
      return Session::FromGraph(std::move(graph), options);
    }();
    return std::make_unique<PySession>(ValueOrThrow(std::move(s)));
  }

  py::list Infos(bool inputs) const {
    py::list out;
    for (const TensorInfo& i : inputs ? session_->inputs() : session_->outputs()) {
      out.append(InfoTuple(i));
    }
    return out;
  }

  std::vector<std::string> OutputNames() const { return session_->graph_output_names(); }

  // feeds: (name, array-like) pairs; fetches: value names (empty = the model's outputs).
  py::list Run(const std::vector<std::pair<std::string, py::object>>& feeds,
               const std::vector<std::string>& fetches) const {
    Feeds tensors;
    tensors.reserve(feeds.size());
    py::module_ np = py::module_::import("numpy");
    for (const auto& [name, value] : feeds) {
      py::array array = np.attr("asarray")(value);
      const TensorInfo* info = FindInput(name);
      if (info != nullptr && info->dtype != DataType::kUndefined &&
          KilnDtype(array.dtype()) != info->dtype) {
        std::optional<py::dtype> want = NumpyDtype(info->dtype);
        if (want && info->dtype != DataType::kString) {
          if (!np.attr("can_cast")(array.dtype(), *want, "same_kind").cast<bool>()) {
            throw StatusError(InvalidArgument("feed '" + name + "': cannot convert " +
                                              py::str(array.dtype()).cast<std::string>() +
                                              " to the input's " + DataTypeName(info->dtype) +
                                              " (numpy 'same_kind' casting)"));
          }
          array = array.attr("astype")(*want);
        }
      }
      tensors.emplace_back(name, TensorFromArray(array, name));
    }
    StatusOr<std::vector<Tensor>> result = [&] {
      py::gil_scoped_release nogil;
      if (!PyGILState_Check()) g_runs_without_gil.fetch_add(1, std::memory_order_relaxed);
      return session_->Run(tensors, fetches);
    }();
    std::vector<Tensor> outputs = ValueOrThrow(std::move(result));

    std::vector<Range> shared = constant_ranges_;
    for (const auto& [name, t] : tensors) shared.push_back(RangeOf(t));
    py::list arrays;
    for (Tensor& t : outputs) {
      const Range r = RangeOf(t);
      const bool aliased =
          r.begin != r.end &&
          std::any_of(shared.begin(), shared.end(), [&](const Range& s) { return s.Overlaps(r); });
      if (r.begin != r.end) shared.push_back(r);
      // Sequence items are not checked one by one: they are always copied.
      const bool copy = aliased || !t.is_tensor();
      arrays.append(copy ? CopyArrayFromTensor(t) : ArrayFromTensor(std::move(t)));
    }
    return arrays;
  }

 private:
  const TensorInfo* FindInput(const std::string& asked) const {
    const std::string name = session_->graph().ResolveName(asked);
    for (const TensorInfo& i : session_->inputs()) {
      if (i.name == name) return &i;
    }
    return nullptr;
  }

  std::unique_ptr<Session> session_;
  std::vector<Range> constant_ranges_;
};

}  // namespace

py::object SessionFromGraph(const Graph& graph, const SessionOptions& options) {
  StatusOr<std::unique_ptr<Session>> s = [&] {
    py::gil_scoped_release nogil;
    return Session::FromGraph(graph, options);
  }();
  return py::cast(std::make_unique<PySession>(ValueOrThrow(std::move(s))));
}

void BindSession(py::module_& m) {
  m.def(
      "_runs_without_gil", [] { return g_runs_without_gil.load(); },
      "Test hook: how many Session.run calls ran the model with the GIL released.");
  py::class_<SessionOptions>(m, "SessionOptions", "kiln::SessionOptions (kiln/session.h)")
      .def(py::init<>())
      .def_readwrite("engine_cache_dir", &SessionOptions::engine_cache_dir)
      .def_property(
          "saved_model_tags", [](const SessionOptions& o) { return o.load.saved_model_tags; },
          [](SessionOptions& o, std::vector<std::string> v) {
            o.load.saved_model_tags = std::move(v);
          })
      .def_property(
          "saved_model_signature_key",
          [](const SessionOptions& o) { return o.load.saved_model_signature_key; },
          [](SessionOptions& o, std::string v) {
            o.load.saved_model_signature_key = std::move(v);
          });
  py::class_<PySession>(m, "Session", "A loaded model (kiln::Session); see kiln.Session.")
      .def_static("load", &PySession::Load, py::arg("path"), py::arg("options"),
                  "Loads a model file or SavedModel directory.")
      .def_static("from_bytes", &PySession::FromBytes, py::arg("data"), py::arg("what"),
                  py::arg("options"), "Loads a serialized ONNX model or TensorFlow GraphDef.")
      .def(
          "inputs", [](const PySession& s) { return s.Infos(true); },
          "[(name, dtype name, shape tuple with None for unknown dims, or None)]")
      .def("outputs", [](const PySession& s) { return s.Infos(false); })
      .def("output_names", &PySession::OutputNames)
      .def("run", &PySession::Run, py::arg("feeds"), py::arg("fetches"),
           "Runs the model; feeds are (name, array) pairs. Returns the fetched arrays in order. "
           "The GIL is released while the model runs.");
}

}  // namespace kiln::python
