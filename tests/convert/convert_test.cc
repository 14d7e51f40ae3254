// The converter (src/convert/): parameter validation, segments -> EngineOps + functions,
// static-mode engines with embedded plans, reverts to native nodes, summary, determinism, and
// the converted model's outputs against the unconverted one's (test backend: bit-identical;
// the oneDNN CPU backend: rel. L2 <= 1e-5).
#include "kiln/convert.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "convert/convert_internal.h"
#include "convert/convert_test_util.h"
#include "convert/engine_op_def.h"
#include "convert/segment_hash.h"
#include "engine/engine_cache.h"
#include "convert/test_backend.h"
#include "engine/plan.h"
#include "io/onnx/onnx_export.h"
#include "io/onnx/onnx_import.h"
#include "kiln/session.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using testing::Random;
using testing::RelL2;
using testing::ScopedTestBackend;

const std::string kModel = std::string(KILN_SOURCE_DIR) + "/models/ppocr_cls/model.onnx";

ConversionParams TestParams() {
  ConversionParams p;
  p.backend = "test";
  p.max_batch_size = 4;
  p.input_shapes["x"] = {-1, 3, 48, 192};
  return p;
}

std::vector<Tensor> RunModel(const Graph& g, const Tensor& x) {
  auto session = Session::FromGraph(g);
  EXPECT_TRUE(session.ok()) << session.status();
  if (!session.ok()) return {};
  auto out = (*session)->Run({{"x", x}});
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : std::vector<Tensor>{};
}

int CountEngineOps(const Graph& g) {
  int n = 0;
  for (const auto& node : g.nodes) n += node.domain == "kiln" && node.op_type == "EngineOp";
  return n;
}

// ------------------------------------------------------------------ parameters

TEST(ConversionParams, InvalidValuesNameTheParameter) {
  struct Case {
    std::function<void(ConversionParams&)> set;
    std::string names;
  };
  const std::vector<Case> cases = {
      {[](ConversionParams& p) { p.max_batch_size = -2; }, "max_batch_size"},
      {[](ConversionParams& p) { p.max_batch_size = 0; }, "max_batch_size"},
      {[](ConversionParams& p) { p.max_workspace_size_bytes = -1; }, "max_workspace_size_bytes"},
      {[](ConversionParams& p) { p.minimum_segment_size = -2; }, "minimum_segment_size"},
      {[](ConversionParams& p) { p.maximum_cached_engines = 0; }, "maximum_cached_engines"},
      {[](ConversionParams& p) { p.precision_mode = "FP64"; }, "precision_mode"},
      {[](ConversionParams& p) { p.cached_engine_batches = {0}; }, "cached_engine_batches"},
      {[](ConversionParams& p) { p.backend = "tpu"; }, "backend"},
  };
  for (const auto& c : cases) {
    ConversionParams p;
    c.set(p);
    Status st = ValidateConversionParams(p);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << c.names;
    EXPECT_NE(st.message().find(c.names), std::string::npos) << st.message();
    // The model-taking entry points validate before loading anything.
    auto converted = CreateInferenceGraph("/nonexistent/model.onnx", p);
    EXPECT_EQ(converted.status().code(), StatusCode::kInvalidArgument) << c.names;
  }
  EXPECT_TRUE(ValidateConversionParams(ConversionParams()).ok());
  ConversionParams ok;
  ok.minimum_segment_size = -1;
  ok.precision_mode = "fp32";
  EXPECT_TRUE(ValidateConversionParams(ok).ok());
}

TEST(ConversionParams, PrecisionModes) {
  for (const char* precision : {"FP16", "bf16", "INT8", "fp32"}) {
    ConversionParams p;
    p.precision_mode = precision;
    EXPECT_TRUE(ValidateConversionParams(p).ok()) << precision;
  }
  ConversionParams p;
  p.precision_mode = "int4";
  Status st = ValidateConversionParams(p);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("'int4'"), std::string::npos) << st.message();
}

TEST(ConversionParams, OutputsAndInputShapesMustNameValues) {
  ScopedTestBackend tb;
  ConversionParams p = TestParams();
  p.outputs = {"no_such_value"};
  auto r = CreateInferenceGraph(kModel, p);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("outputs: 'no_such_value'"), std::string::npos) << r.status();
  p = TestParams();
  p.input_shapes["y"] = {1};
  r = CreateInferenceGraph(kModel, p);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("input_shapes"), std::string::npos) << r.status();
  p = TestParams();
  p.input_shapes["x"] = {-1, 4, 48, 192};  // contradicts the declared 3 channels
  EXPECT_EQ(CreateInferenceGraph(kModel, p).status().code(), StatusCode::kInvalidArgument);
}

// ------------------------------------------------------------------ conversion

TEST(Convert, BundledModelWithTestBackend) {
  ScopedTestBackend tb;
  auto original = ImportOnnxFile(kModel);
  ASSERT_TRUE(original.ok());
  auto converted = CreateInferenceGraph(kModel, TestParams());
  ASSERT_TRUE(converted.ok()) << converted.status();
  const ConversionSummary& s = converted->summary();
  ASSERT_FALSE(s.engines.empty());
  EXPECT_GT(s.converted_nodes, 0);
  EXPECT_LE(s.converted_nodes, s.total_nodes);
  const Graph& g = converted->graph();
  EXPECT_EQ(CountEngineOps(g), static_cast<int>(s.engines.size()));
  EXPECT_EQ(g.functions.size(), s.engines.size());
  EXPECT_EQ(g.opset_imports.at("kiln"), 1);
  int segment_nodes = 0;
  for (const auto& node : g.nodes) {
    if (node.op_type != "EngineOp") {
      EXPECT_FALSE(tb.backend.ops.count(node.op_type) && node.op_type == "Conv") << node.name;
      continue;
    }
    EXPECT_EQ(node.name.rfind("kiln_engine_", 0), 0u);
    const std::string key = node.FindAttr("segment_func")->s;
    ASSERT_TRUE(g.functions.count(key)) << key;
    EXPECT_NE(key.find("_segment"), std::string::npos);
    const Graph& seg = *g.functions.at(key);
    segment_nodes += static_cast<int>(seg.nodes.size());
    EXPECT_EQ(seg.inputs, node.inputs);
    EXPECT_EQ(seg.outputs, node.outputs);
    for (const auto& in : seg.inputs) EXPECT_NE(seg.FindValueInfo(in), nullptr) << in;
    EXPECT_FALSE(seg.initializers.empty());
    EXPECT_EQ(node.FindAttr("static_engine")->i, 1);
    EXPECT_EQ(node.FindAttr("max_batch_size")->i, 4);
    EXPECT_EQ(node.FindAttr("backend")->s, "test");
    auto plan = ReadPlan(node.FindAttr("serialized_engine")->s);
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_EQ(plan->first.backend, "test");
    EXPECT_EQ(plan->first.kiln_version, KILN_VERSION);
    EXPECT_EQ(plan->first.device_fingerprint, "test-device-1");
    EXPECT_EQ(plan->first.precision, "FP32");
    auto seg_hash = SegmentContentHash(seg);
    ASSERT_TRUE(seg_hash.ok()) << seg_hash.status();
    EXPECT_EQ(plan->first.content_hash,
              FnvHex(FnvUpdate(*seg_hash, plan->first.build_config)));
  }
  EXPECT_EQ(segment_nodes, s.converted_nodes);
  // Unconverted nodes with ONNX provenance are still the user's originals.
  EXPECT_EQ(tb.backend.builds.load(), static_cast<int>(s.engines.size()));

  // Same outputs as the unconverted model (same reference kernels: bit-identical), and the
  // engines ran.
  const Tensor x = Random({3, 3, 48, 192}, 7);
  std::vector<Tensor> want = RunModel(*original, x);
  const int runs_before = tb.backend.runs.load();
  std::vector<Tensor> got = RunModel(g, x);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(tb.backend.runs.load() - runs_before, static_cast<int>(s.engines.size()));
  for (size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(got[i].BitwiseEqual(want[i])) << i;

  const std::string text = s.ToString();
  EXPECT_NE(text.find("kiln_engine_0"), std::string::npos);
  EXPECT_NE(text.find("not converted"), std::string::npos);
  EXPECT_NE(text.find("Conv x"), std::string::npos);
  const std::string json = s.ToJson();
  EXPECT_NE(json.find("\"engines\": ["), std::string::npos);
  EXPECT_NE(json.find("\"not_converted\": {"), std::string::npos);
  EXPECT_NE(json.find("\"converted_percent\""), std::string::npos);
}

TEST(Convert, SaveLoadRunAndDeterminism) {
  ScopedTestBackend tb;
  const fs::path dir = fs::temp_directory_path() / ("kiln_convert_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto a = CreateInferenceGraph(kModel, TestParams());
  auto b = CreateInferenceGraph(kModel, TestParams());
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(a->Save((dir / "a.onnx").string()).ok());
  ASSERT_TRUE(b->Save((dir / "b.onnx").string()).ok());
  auto bytes_a = ReadFileToString((dir / "a.onnx").string());
  auto bytes_b = ReadFileToString((dir / "b.onnx").string());
  ASSERT_TRUE(bytes_a.ok() && bytes_b.ok());
  EXPECT_GT(bytes_a->size(), 1000u);
  EXPECT_TRUE(*bytes_a == *bytes_b) << "two conversions differ";

  // Load the saved model: functions come back, engines deserialize (no fallback), outputs
  // equal the unconverted model's.
  auto loaded = Session::Load((dir / "a.onnx").string());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->graph().functions.size(), a->summary().engines.size());
  auto original = Session::Load(kModel);
  ASSERT_TRUE(original.ok());
  const Tensor x = Random({2, 3, 48, 192}, 11);
  ::testing::internal::CaptureStderr();
  const int runs_before = tb.backend.runs.load();
  auto got = (*loaded)->Run({{"x", x}});
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(tb.backend.runs.load() - runs_before, static_cast<int>(a->summary().engines.size()));
  EXPECT_EQ(log.find("native segment"), std::string::npos) << log;
  auto want = (*original)->Run({{"x", x}});
  ASSERT_TRUE(want.ok());
  for (size_t i = 0; i < want->size(); ++i) EXPECT_TRUE((*got)[i].BitwiseEqual((*want)[i]));

  // kiln inspect sees each engine and its layers; --profile times them.
  InspectOptions options;
  options.profile = true;
  options.iterations = 2;
  auto info = InspectModel((dir / "a.onnx").string(), options);
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_EQ(info->engines.size(), a->summary().engines.size());
  for (const auto& e : info->engines) {
    EXPECT_EQ(e.status, "ready") << e.node;
    EXPECT_EQ(e.layers.size(), static_cast<size_t>(e.segment_nodes));
    EXPECT_GE(e.profiled_ms, 0);
    for (const auto& l : e.layers) EXPECT_GE(l.ms, 0) << l.name;
  }
  EXPECT_TRUE(info->unsupported.empty());
  fs::remove_all(dir);
}

TEST(Convert, MinimumSegmentSizeMinusOneConvertsNothing) {
  ScopedTestBackend tb;
  ConversionParams p = TestParams();
  p.minimum_segment_size = -1;
  auto r = CreateInferenceGraph(kModel, p);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->summary().engines.empty());
  EXPECT_EQ(CountEngineOps(r->graph()), 0);
  EXPECT_TRUE(r->graph().functions.empty());
}

TEST(Convert, UnknownNonBatchDimsLeaveSegmentsNativeInStaticMode) {
  ScopedTestBackend tb;
  ConversionParams p = TestParams();
  p.input_shapes.clear();  // x stays [?,3,?,?]
  auto r = CreateInferenceGraph(kModel, p);
  ASSERT_TRUE(r.ok()) << r.status();
  bool reported = false;
  for (const auto& [op, reasons] : r->summary().not_converted) {
    for (const auto& [reason, n] : reasons) {
      reported |= reason.find("static mode needs known non-batch dimensions") != std::string::npos;
    }
  }
  EXPECT_TRUE(reported) << r->summary().ToString();
  // Whatever did convert runs; what did not stays the original nodes.
  auto original = ImportOnnxFile(kModel);
  const Tensor x = Random({1, 3, 48, 192}, 3);
  auto want = RunModel(*original, x);
  auto got = RunModel(r->graph(), x);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(got[i].BitwiseEqual(want[i]));
}

TEST(Convert, BuildFailureRevertsToNativeNodes) {
  ScopedTestBackend tb;
  tb.backend.fail_builds = true;
  auto original = ImportOnnxFile(kModel);
  auto r = CreateInferenceGraph(kModel, TestParams());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->summary().engines.empty());
  EXPECT_EQ(r->summary().converted_nodes, 0);
  EXPECT_EQ(CountEngineOps(r->graph()), 0);
  EXPECT_GT(tb.backend.builds.load(), 0);
  const auto& nc = r->summary().not_converted;
  ASSERT_TRUE(nc.count("Conv"));
  bool said = false;
  for (const auto& [reason, n] : nc.at("Conv")) {
    said |= reason.find("engine build failed: layer needs 123 bytes") != std::string::npos;
  }
  EXPECT_TRUE(said) << r->summary().ToString();
  const Tensor x = Random({2, 3, 48, 192}, 5);
  auto want = RunModel(*original, x);
  auto got = RunModel(r->graph(), x);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(got[i].BitwiseEqual(want[i]));
}

TEST(Convert, DenylistKeepsOpsOutOfEngines) {
  ScopedTestBackend tb;
  ConversionParams p = TestParams();
  p.op_denylist = {"Conv"};
  auto r = CreateInferenceGraph(kModel, p);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const auto& [key, fn] : r->graph().functions) {
    for (const auto& n : fn->nodes) EXPECT_NE(n.op_type, "Conv") << key;
  }
  EXPECT_TRUE(r->summary().not_converted.count("Conv"));
}

TEST(Convert, OutputsStayOutsideEngines) {
  ScopedTestBackend tb;
  auto original = ImportOnnxFile(kModel);
  ASSERT_TRUE(original.ok());
  // Keep the output of some Relu in the middle of the network.
  std::string kept;
  for (const auto& n : original->nodes) {
    if (n.op_type == "Relu") kept = n.outputs[0];
  }
  ASSERT_FALSE(kept.empty());
  ConversionParams p = TestParams();
  p.outputs = {kept};
  auto r = CreateInferenceGraph(kModel, p);
  ASSERT_TRUE(r.ok()) << r.status();
  bool produced_outside = false;
  for (const auto& n : r->graph().nodes) {
    if (n.op_type == "EngineOp") continue;
    for (const auto& o : n.outputs) produced_outside |= o == kept;
  }
  EXPECT_TRUE(produced_outside);
}

// ------------------------------------------------------------------ real CPU backend

TEST(Convert, BundledModelWithCpuBackendMatchesReference) {
  ConversionParams p;
  p.max_batch_size = 4;
  p.input_shapes["x"] = {-1, 3, 48, 192};
  auto r = CreateInferenceGraph(kModel, p);
  ASSERT_TRUE(r.ok()) << r.status();
  std::cout << r->summary().ToString();
  auto original = ImportOnnxFile(kModel);
  ASSERT_TRUE(original.ok());
  for (int64_t batch : {1, 4, 6}) {  // 6 > max_batch_size: native fallback
    const Tensor x = Random({batch, 3, 48, 192}, 100 + static_cast<uint32_t>(batch));
    auto want = RunModel(*original, x);
    auto got = RunModel(r->graph(), x);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_LE(RelL2(got[i], want[i]), 1e-5) << "batch " << batch << " output " << i;
    }
  }
}

// ------------------------------------------------------------------ export round trip, run

TEST(Convert, ExportRoundTripGivesBitIdenticalOutputs) {
  std::vector<std::string> paths = {kModel};
  const std::string node_data = "/usr/share/libonnx-testdata/data/node/";
  for (const char* name :
       {"test_conv_with_strides_padding", "test_gemm_default_vector_bias", "test_lstm_defaults",
        "test_maxpool_2d_pads", "test_resize_upsample_scales_cubic"}) {
    if (fs::exists(node_data + name)) paths.push_back(node_data + name + "/model.onnx");
  }
  for (const auto& path : paths) {
    auto g = ImportOnnxFile(path);
    ASSERT_TRUE(g.ok()) << path << ": " << g.status();
    auto bytes = ExportOnnx(*g);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    auto back = ImportOnnxBytes(*bytes, "exported", "");
    ASSERT_TRUE(back.ok()) << back.status();
    auto s1 = Session::FromGraph(*g);
    auto s2 = Session::FromGraph(*back);
    ASSERT_TRUE(s1.ok()) << path << ": " << s1.status();
    ASSERT_TRUE(s2.ok()) << path << ": " << s2.status();
    // The bundled model on random input; conformance models on their own test data.
    Feeds feeds;
    const auto& inputs = (*s1)->inputs();
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (path == kModel) {
        feeds.push_back({inputs[i].name, Random({2, 3, 48, 192}, 1)});
        continue;
      }
      const fs::path pb =
          fs::path(path).parent_path() / "test_data_set_0" / ("input_" + std::to_string(i) + ".pb");
      auto t = ReadTensorProtoFile(pb.string());
      ASSERT_TRUE(t.ok()) << t.status();
      feeds.push_back({inputs[i].name, *t});
    }
    auto o1 = (*s1)->Run(feeds);
    auto o2 = (*s2)->Run(feeds);
    ASSERT_TRUE(o1.ok() && o2.ok()) << path << ": " << o1.status() << " / " << o2.status();
    ASSERT_EQ(o1->size(), o2->size());
    for (size_t i = 0; i < o1->size(); ++i) {
      EXPECT_TRUE((*o1)[i].BitwiseEqual((*o2)[i])) << path << " output " << i;
    }
  }
}

}  // namespace
}  // namespace kiln
