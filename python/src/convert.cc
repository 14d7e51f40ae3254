// kiln._kiln conversion bindings: ConversionParams, ConvertedModel, the converter entry points
// and freezing a MetaGraph + checkpoint. kiln/__init__.py builds the TF-TRT-shaped API
// (create_inference_graph, Converter) on these.

#include "kiln/convert.h"

#include "common.h"
#include "io/onnx/onnx_export.h"
#include "io/tf/freeze.h"
#include "io/tf/graphdef_export.h"
#include "ir/graph.h"
#include "kiln/session.h"
#include "runtime/model_loader.h"

namespace kiln::python {

StatusOr<Graph> GraphFromBytes(const std::string& bytes, const std::string& what);  // session.cc

namespace {

template <typename F>
auto WithoutGil(F&& f) {
  py::gil_scoped_release nogil;
  return f();
}

py::bytes Bytes(StatusOr<std::string> s) { return py::bytes(ValueOrThrow(std::move(s))); }

// TF2's profile strategy names ("Range", "Optimal", "Range+Optimal"), case-insensitive.
ProfileStrategy ParseStrategy(const std::string& name) {
  std::string n;
  for (char ch : name) {
    if (ch != '+' && ch != '_' && ch != '-')
      n += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  if (n == "range") return ProfileStrategy::kRange;
  if (n == "optimal") return ProfileStrategy::kOptimal;
  if (n == "rangeoptimal") return ProfileStrategy::kRangeOptimal;
  throw StatusError(InvalidArgument(
      "profile strategy must be Range, Optimal or Range+Optimal, got '" + name + "'"));
}

std::vector<Feeds> FeedsFromSamples(
    const std::vector<std::vector<std::pair<std::string, py::object>>>& samples) {
  py::module_ np = py::module_::import("numpy");
  std::vector<Feeds> out;
  for (const auto& sample : samples) {
    Feeds feeds;
    for (const auto& [name, value] : sample) {
      feeds.emplace_back(name, TensorFromArray(np.attr("asarray")(value), name));
    }
    out.push_back(std::move(feeds));
  }
  return out;
}

}  // namespace

void BindConvert(py::module_& m) {
  py::class_<ConversionParams>(m, "ConversionParams", "kiln::ConversionParams (kiln/convert.h)")
      .def(py::init<>())
      .def_readwrite("outputs", &ConversionParams::outputs)
      .def_readwrite("max_batch_size", &ConversionParams::max_batch_size)
      .def_readwrite("max_workspace_size_bytes", &ConversionParams::max_workspace_size_bytes)
      .def_readwrite("precision_mode", &ConversionParams::precision_mode)
      .def_readwrite("minimum_segment_size", &ConversionParams::minimum_segment_size)
      .def_readwrite("is_dynamic_op", &ConversionParams::is_dynamic_op)
      .def_readwrite("maximum_cached_engines", &ConversionParams::maximum_cached_engines)
      .def_readwrite("cached_engine_batches", &ConversionParams::cached_engine_batches)
      .def_readwrite("allow_build_at_runtime", &ConversionParams::allow_build_at_runtime)
      .def_readwrite("engine_cache_dir", &ConversionParams::engine_cache_dir)
      .def_readwrite("use_calibration", &ConversionParams::use_calibration)
      .def_readwrite("op_denylist", &ConversionParams::op_denylist)
      .def_readwrite("fp32_layers", &ConversionParams::fp32_layers)
      .def_readwrite("max_engines", &ConversionParams::max_engines)
      .def_readwrite("backend", &ConversionParams::backend)
      .def_readwrite("input_shapes", &ConversionParams::input_shapes)
      .def_readwrite("calibration_method", &ConversionParams::calibration_method)
      .def_readwrite("calibration_percentile", &ConversionParams::calibration_percentile)
      .def_readwrite("calibration_table", &ConversionParams::calibration_table)
      .def_readwrite("calibration_cache", &ConversionParams::calibration_cache)
      .def_readwrite("input_saved_model_tags", &ConversionParams::input_saved_model_tags)
      .def_readwrite("input_saved_model_signature_key",
                     &ConversionParams::input_saved_model_signature_key);

  py::class_<ConvertedModel>(m, "ConvertedModel", "kiln::ConvertedModel (kiln/convert.h)")
      .def("summary_text", [](const ConvertedModel& c) { return c.summary().ToString(); })
      .def("summary_json", [](const ConvertedModel& c) { return c.summary().ToJson(); })
      .def(
          "save",
          [](const ConvertedModel& c, const std::string& path) {
            ThrowIfError(WithoutGil([&] { return c.Save(path); }));
          },
          py::arg("path"), "ConvertedModel::Save: the format follows the path.")
      .def("graphdef_bytes",
           [](const ConvertedModel& c) {
             return Bytes(WithoutGil([&] { return ExportGraphDef(c.graph(), false); }));
           })
      .def("onnx_bytes",
           [](const ConvertedModel& c) {
             return Bytes(WithoutGil([&] { return ExportOnnx(c.graph()); }));
           })
      .def(
          "build_engines",
          [](ConvertedModel& c,
             const std::vector<std::vector<std::pair<std::string, py::object>>>& samples,
             const std::string& strategy) {
            std::vector<Feeds> feeds = FeedsFromSamples(samples);
            const ProfileStrategy s = ParseStrategy(strategy);
            ThrowIfError(WithoutGil([&] { return c.BuildEngines(feeds, s); }));
          },
          py::arg("samples"), py::arg("strategy"),
          "ConvertedModel::BuildEngines: samples are lists of (input name, array) pairs.")
      .def(
          "session",
          [](const ConvertedModel& c, const SessionOptions& options) {
            return SessionFromGraph(c.graph(), options);
          },
          py::arg("options"), "A Session over the converted graph (Session::FromGraph of a copy).")
      .def("graph_inputs", [](const ConvertedModel& c) { return c.graph().inputs; })
      .def("graph_outputs", [](const ConvertedModel& c) { return c.graph().outputs; });

  m.def(
      "convert_path",
      [](const std::string& path, const ConversionParams& params) {
        return ValueOrThrow(WithoutGil([&] { return CreateInferenceGraph(path, params); }));
      },
      py::arg("path"), py::arg("params"), "CreateInferenceGraph(path, params).");
  m.def(
      "convert_bytes",
      [](const std::string& bytes, const std::string& what, const ConversionParams& params) {
        return ValueOrThrow(WithoutGil([&]() -> StatusOr<ConvertedModel> {
          KILN_ASSIGN_OR_RETURN(Graph graph, GraphFromBytes(bytes, what));
          return CreateInferenceGraph(std::move(graph), params);
        }));
      },
      py::arg("data"), py::arg("what"), py::arg("params"),
      "CreateInferenceGraph on a serialized ONNX model or GraphDef.");
  m.def(
      "calib_graph_to_infer_graph",
      [](const ConvertedModel& calib) {
        return ValueOrThrow(WithoutGil([&] { return CalibGraphToInferGraph(calib); }));
      },
      py::arg("calib_graph"), "CalibGraphToInferGraph: INT8 engines from the collected ranges.");
  m.def(
      "model_format",
      [](const std::string& path) { return ModelFormatName(DetectModelFormat(path)); },
      py::arg("path"), "'onnx', 'tf_graphdef', 'saved_model', 'tfjs_graph_model' or 'unknown'.");
  m.def(
      "freeze_meta_graph",
      [](const std::string& meta_path, const std::string& checkpoint,
         const std::vector<std::string>& outputs) {
        return Bytes(WithoutGil([&]() -> StatusOr<std::string> {
          KILN_ASSIGN_OR_RETURN(Graph g, FreezeMetaGraph(meta_path, checkpoint, outputs));
          return ExportGraphDef(g, false);
        }));
      },
      py::arg("meta_graph"), py::arg("checkpoint"), py::arg("outputs"),
      "MetaGraphDef + checkpoint -> frozen GraphDef bytes.");
  m.def(
      "freeze_meta_graph_to_file",
      [](const std::string& meta_path, const std::string& checkpoint,
         const std::vector<std::string>& outputs, const std::string& output_path) {
        ThrowIfError(WithoutGil(
            [&] { return FreezeMetaGraphToFile(meta_path, checkpoint, outputs, output_path); }));
      },
      py::arg("meta_graph"), py::arg("checkpoint"), py::arg("outputs"), py::arg("output_path"),
      "FreezeMetaGraphToFile: written atomically; .pbtxt gives text.");
}

}  // namespace kiln::python
