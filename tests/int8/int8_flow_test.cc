// INT8 end to end on a small CNN (conv+bias+relu, a residual add, a strided conv, global pool,
// Gemm): the two-step calibration flow (calibration graph -> Session -> CalibGraphToInferGraph),
// the one-call form, the calibration cache round trip and mismatch, ranges from Q/DQ and
// fake-quant nodes (use_calibration=false), per-layer fallback and the INT8 layers themselves.
// At the end: per-layer FP32 constraints (fp32_layers) and the BF16 accuracy budget on the same
// CNN.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/cpu_test_util.h"
#include "cli/cli_runner.h"
#include "convert/engine_op_def.h"
#include "engine/calibrator.h"
#include "io/npy/npy.h"
#include "io/onnx/onnx_export.h"
#include "io/onnx/onnx_import.h"
#include "kiln/convert.h"
#include "kiln/session.h"
#include "runtime/engine_op.h"

namespace kiln {
namespace {

using testing_cpu::SegmentBuilder;

Tensor Normal(std::vector<int64_t> dims, uint32_t seed, float sigma) {
  Tensor t = Tensor::Empty(DataType::kFloat32, std::move(dims));
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, sigma);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.mutable_data<float>()[i] = g(rng);
  return t;
}

// He-initialised weights of `fan_in` inputs.
Tensor Weights(std::vector<int64_t> dims, int64_t fan_in, uint32_t seed) {
  return Normal(std::move(dims), seed, std::sqrt(2.f / static_cast<float>(fan_in)));
}

double RelL2(const Tensor& a, const Tensor& b) { return testing_cpu::RelL2(a, b); }

AttrMap ConvAttrs(int64_t stride) {
  return {{"kernel_shape", Attr::Ints({3, 3})},
          {"pads", Attr::Ints({1, 1, 1, 1})},
          {"strides", Attr::Ints({stride, stride})}};
}

// x[N,3,16,16] -> conv 16 + relu -> conv 16 + residual + relu -> conv 32 /2 + relu ->
// global average pool -> flatten -> Gemm 10 (trans_b: the Gemm's B is [10, 32]).
// `qdq`: a QuantizeLinear/DequantizeLinear pair in front of every conv / Gemm input.
Graph SmallCnn(bool trans_b = false, bool qdq = false, bool skip_one_qdq = false,
               bool deconv = false) {
  SegmentBuilder b;
  b.In("x", {-1, 3, 16, 16});
  b.Init("w1", Weights({16, 3, 3, 3}, 27, 1)).Init("b1", Normal({16}, 2, 0.1f));
  b.Init("w2", Weights({16, 16, 3, 3}, 144, 3)).Init("b2", Normal({16}, 4, 0.1f));
  b.Init("w3", Weights({32, 16, 3, 3}, 144, 5)).Init("b3", Normal({32}, 6, 0.1f));
  b.Init("wf", trans_b ? Weights({10, 32}, 32, 7) : Weights({32, 10}, 32, 7));
  b.Init("bf", Normal({10}, 8, 0.1f));
  auto in = [&](const std::string& v, float amax, bool is_unsigned, bool skip = false) {
    if (!qdq || skip) return v;
    const std::string s = v + "_scale", z = v + "_zp";
    b.Init(s, Tensor::Scalar<float>(amax / (is_unsigned ? 255.f : 127.f)));
    if (is_unsigned) {
      b.Init(z, Tensor::Scalar<uint8_t>(0));
    } else {
      b.Init(z, Tensor::Scalar<int8_t>(0));
    }
    b.Op("QuantizeLinear", {v, s, z}, {v + "_q"});
    b.Op("DequantizeLinear", {v + "_q", s, z}, {v + "_dq"});
    return v + "_dq";
  };
  b.Op("Conv", {in("x", 4.f, false), "w1", "b1"}, {"c1"}, ConvAttrs(1));
  b.Op("Relu", {"c1"}, {"r1"});
  b.Op("Conv", {in("r1", 6.f, true), "w2", "b2"}, {"c2"}, ConvAttrs(1));
  b.Op("Add", {"c2", "r1"}, {"a2"});
  b.Op("Relu", {"a2"}, {"r2"});
  b.Op("Conv", {in("r2", 8.f, true, skip_one_qdq), "w3", "b3"}, {"c3"}, ConvAttrs(2));
  b.Op("Relu", {"c3"}, {"r3"});
  std::string pool_in = "r3";
  if (deconv) {  // ConvTranspose 32 -> 32, 2x2 stride 2: no INT8 kernel
    b.Init("wd", Weights({32, 32, 2, 2}, 128, 9));
    b.Op("ConvTranspose", {"r3", "wd"}, {"d"},
         {{"kernel_shape", Attr::Ints({2, 2})}, {"strides", Attr::Ints({2, 2})}});
    pool_in = "d";
  }
  b.Op("GlobalAveragePool", {pool_in}, {"p"});
  b.Op("Flatten", {"p"}, {"f"});
  b.Op("Gemm", {in("f", 4.f, true), "wf", "bf"}, {"y"},
       trans_b ? AttrMap{{"transB", Attr::Int(1)}} : AttrMap{});
  b.Out("y");
  Graph g = b.graph();
  g.name = "small_cnn";
  return g;
}

ConversionParams Int8Params() {
  ConversionParams p;
  p.precision_mode = "INT8";
  p.max_batch_size = 4;
  p.minimum_segment_size = 1;
  p.input_shapes["x"] = {-1, 3, 16, 16};
  return p;
}

std::vector<Tensor> RunGraph(const Graph& g, const Tensor& x) {
  auto s = Session::FromGraph(g);
  EXPECT_TRUE(s.ok()) << s.status();
  if (!s.ok()) return {};
  auto out = (*s)->Run({{"x", x}});
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : std::vector<Tensor>{};
}

std::vector<const Node*> EngineOps(const Graph& g) {
  std::vector<const Node*> out;
  for (const Node& n : g.nodes) {
    if (n.op_type == kEngineOpType && n.domain == kEngineOpDomain) out.push_back(&n);
  }
  return out;
}

int Int8Layers(const ConversionSummary& s) {
  int n = 0;
  for (const auto& e : s.engines) {
    auto it = e.layer_precisions.find("INT8");
    if (it != e.layer_precisions.end()) n += it->second;
  }
  return n;
}

std::vector<Feeds> CalibrationFeeds(int batches, uint32_t seed) {
  std::vector<Feeds> feeds;
  for (int i = 0; i < batches; ++i) feeds.push_back({{"x", Normal({4, 3, 16, 16}, seed + i, 1.f)}});
  return feeds;
}

// Rel. L2 of the INT8 graph's output against FP32 (the original graph) on fresh inputs.
double Int8Error(const Graph& int8_graph, const Graph& fp32_graph, double* argmax_agree) {
  double worst = 0;
  int agree = 0, total = 0;
  for (int i = 0; i < 4; ++i) {
    const Tensor x = Normal({4, 3, 16, 16}, 1000 + i, 1.f);
    auto a = RunGraph(int8_graph, x), b = RunGraph(fp32_graph, x);
    if (a.empty() || b.empty()) return INFINITY;
    worst = std::max(worst, RelL2(a[0], b[0]));
    for (int r = 0; r < 4; ++r) {
      const float* pa = a[0].data<float>() + r * 10;
      const float* pb = b[0].data<float>() + r * 10;
      agree += std::max_element(pa, pa + 10) - pa == std::max_element(pb, pb + 10) - pb;
      ++total;
    }
  }
  if (argmax_agree != nullptr) *argmax_agree = static_cast<double>(agree) / total;
  return worst;
}

TEST(Int8Flow, TwoStepCalibration) {
  const Graph g = SmallCnn();
  auto calib = CreateInferenceGraph(g, Int8Params());
  ASSERT_TRUE(calib.ok()) << calib.status();
  const auto ops = EngineOps(calib->graph());
  ASSERT_FALSE(ops.empty());
  for (const Node* n : ops) {
    EXPECT_EQ(n->FindAttr("calibration_data")->s.rfind(kCalibratePrefix, 0), 0u);
    EXPECT_EQ(n->FindAttr("serialized_engine")->s, "");
  }
  // Never calibrated: an error that says so.
  auto early = CalibGraphToInferGraph(*calib);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(early.status().message().find("never calibrated"), std::string::npos) << early.status();

  // The calibration graph runs in FP32: same outputs as the original graph.
  {
    auto session = Session::FromGraph(calib->graph());
    ASSERT_TRUE(session.ok()) << session.status();
    for (const Feeds& f : CalibrationFeeds(8, 10)) {
      auto out = (*session)->Run(f);
      ASSERT_TRUE(out.ok()) << out.status();
      EXPECT_LT(RelL2((*out)[0], RunGraph(g, f[0].second)[0]), 1e-5);
    }
  }
  auto infer = CalibGraphToInferGraph(*calib);
  ASSERT_TRUE(infer.ok()) << infer.status();
  EXPECT_EQ(Int8Layers(infer->summary()), 4) << infer->summary().ToString();
  for (const Node* n : EngineOps(infer->graph())) {
    const std::string& data = n->FindAttr("calibration_data")->s;
    EXPECT_EQ(data.rfind("kiln-calibration-table 1", 0), 0u) << data;
    auto table = CalibrationTable::Parse(data, "attr");
    ASSERT_TRUE(table.ok()) << table.status();
    EXPECT_EQ(table->calibrator, "entropy");
    // x, r1, r2, f (INT8 layers' inputs) and c2 (the conv branch of the residual add).
    EXPECT_EQ(table->ranges.size(), 5u);
    EXPECT_EQ(table->ranges.count("c2"), 1u);
    EXPECT_GE(table->ranges.at("r1").min, 0.f);
    EXPECT_LT(table->ranges.at("x").min, 0.f);
    EXPECT_FALSE(n->FindAttr("serialized_engine")->s.empty());
    if (getenv("KILN_INT8_DEBUG")) std::cout << data;
  }
  double agree = 0;
  const double err = Int8Error(infer->graph(), g, &agree);
  EXPECT_LT(err, 5e-2);
  EXPECT_GT(err, 1e-6) << "INT8 output identical to FP32: the INT8 layers did not run";
  EXPECT_GE(agree, 0.85);
  std::cout << "INT8 vs FP32 on the small CNN: rel L2 " << err << ", argmax agreement " << agree
            << "\n";
}

TEST(Int8Flow, OneCallCacheRoundTripAndMismatch) {
  const Graph g = SmallCnn();
  const std::string dir = ::testing::TempDir() + "/kiln_int8_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  ConversionParams p = Int8Params();
  p.calibration_method = "minmax";
  p.calibration_cache = dir + "/table.txt";
  p.calibration_feeds = CalibrationFeeds(4, 20);
  int64_t progress = 0;
  p.calibration_progress = [&](int64_t done, int64_t total) {
    progress = done;
    EXPECT_EQ(total, 4);
  };
  auto first = CreateInferenceGraph(g, p);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(progress, 4);
  EXPECT_EQ(Int8Layers(first->summary()), 4);
  ASSERT_TRUE(std::filesystem::exists(p.calibration_cache));
  auto table = CalibrationTable::ReadFile(p.calibration_cache);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->calibrator, "minmax");

  // From the cache alone: no data, the same engines (same outputs, bit for bit).
  ConversionParams again = Int8Params();
  again.calibration_cache = p.calibration_cache;
  auto second = CreateInferenceGraph(g, again);
  ASSERT_TRUE(second.ok()) << second.status();
  const Tensor x = Normal({3, 3, 16, 16}, 77, 1.f);
  auto a = RunGraph(first->graph(), x), b = RunGraph(second->graph(), x);
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(RelL2(a[0], b[0]), 0.0);
  const double err = RelL2(a[0], RunGraph(g, x)[0]);
  EXPECT_LT(err, 5e-2);
  EXPECT_GT(err, 1e-6);

  // Saved and loaded: the embedded INT8 plans are accepted (same ranges, same fingerprint) and
  // give the same outputs; a corrupted calibration_data is an error naming the node.
  {
    const std::string saved = dir + "/int8.onnx";
    ASSERT_TRUE(first->Save(saved).ok());
    auto loaded = Session::Load(saved);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    auto c = (*loaded)->Run({{"x", x}});
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(RelL2((*c)[0], a[0]), 0.0);
    Graph broken = first->graph();
    for (Node& n : broken.nodes) {
      if (n.op_type == kEngineOpType) n.attrs["calibration_data"] = Attr::String("garbage");
    }
    auto bad_session = Session::FromGraph(broken);
    ASSERT_FALSE(bad_session.ok());
    EXPECT_NE(bad_session.status().message().find("kiln_engine_0"), std::string::npos)
        << bad_session.status();
  }
  // A table that does not match the graph names the tensors that differ.
  CalibrationTable bad = *table;
  bad.ranges["stale_tensor"] = bad.ranges.at("r2");
  bad.ranges.erase("r2");
  ASSERT_TRUE(bad.WriteFile(p.calibration_cache).ok());
  auto mismatch = CreateInferenceGraph(g, again);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.status().message().find("'r2'"), std::string::npos) << mismatch.status();
  EXPECT_NE(mismatch.status().message().find("'stale_tensor'"), std::string::npos);
  EXPECT_NE(mismatch.status().message().find("table.txt"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(Int8Flow, BadParameters) {
  ConversionParams p = Int8Params();
  p.calibration_method = "kl";
  auto r = CreateInferenceGraph(SmallCnn(), p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("calibration_method"), std::string::npos);
  p = Int8Params();
  p.calibration_table = "not a table";
  r = CreateInferenceGraph(SmallCnn(), p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("calibration_table"), std::string::npos) << r.status();
  p = Int8Params();
  p.calibration_feeds = {{{"x", Normal({4, 3, 9, 9}, 1, 1.f)}}};  // wrong shape
  r = CreateInferenceGraph(SmallCnn(), p);
  EXPECT_FALSE(r.ok());
  // A non-calibration graph.
  auto fp32 = CreateInferenceGraph(SmallCnn(), ConversionParams());
  ASSERT_TRUE(fp32.ok()) << fp32.status();
  EXPECT_FALSE(CalibGraphToInferGraph(*fp32).ok());
}

TEST(Int8Flow, RangesFromQdqWithoutCalibration) {
  const Graph fp32 = SmallCnn();
  ConversionParams p = Int8Params();
  p.use_calibration = false;
  auto r = CreateInferenceGraph(SmallCnn(false, /*qdq=*/true), p);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Int8Layers(r->summary()), 4) << r->summary().ToString();
  for (const Node& n : r->graph().nodes) {
    EXPECT_NE(n.op_type, "QuantizeLinear") << "Q/DQ pairs are folded into the INT8 layers";
  }
  const double err = Int8Error(r->graph(), fp32, nullptr);
  EXPECT_LT(err, 8e-2);
  EXPECT_GT(err, 1e-6);
  // One tensor without a range: an error naming it.
  auto missing = CreateInferenceGraph(SmallCnn(false, true, /*skip_one_qdq=*/true), p);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("'r2'"), std::string::npos) << missing.status();
}

TEST(Int8Flow, RangesFromFakeQuant) {
  // x -> FakeQuantWithMinMax(kiln, TF's FakeQuantWithMinMaxVars) -> the CNN: x's range from it.
  Graph g = SmallCnn();
  Node fq;
  fq.name = "fq";
  fq.op_type = "FakeQuantWithMinMax";
  fq.domain = "kiln";
  fq.inputs = {"x", "fq_min", "fq_max"};
  fq.outputs = {"x_fq"};
  g.initializers["fq_min"] = Tensor::Scalar<float>(-4.f);
  g.initializers["fq_max"] = Tensor::Scalar<float>(4.f);
  g.opset_imports["kiln"] = 1;
  for (Node& n : g.nodes) {
    for (auto& in : n.inputs) {
      if (in == "x") in = "x_fq";
    }
  }
  g.nodes.insert(g.nodes.begin(), fq);
  ConversionParams p = Int8Params();
  p.use_calibration = false;
  auto r = CreateInferenceGraph(g, p);
  ASSERT_FALSE(r.ok()) << "r1, r2, f have no range";
  EXPECT_NE(r.status().message().find("'r1'"), std::string::npos) << r.status();
  EXPECT_EQ(r.status().message().find("'x'"), std::string::npos) << r.status();
}

// Per-layer fallback: ConvTranspose has no INT8 kernel; it runs in a floating precision inside
// the same engine, the convs and the Gemm (transposed B) in INT8.
TEST(Int8Flow, PerLayerFallback) {
  const Graph g = SmallCnn(/*trans_b=*/true, false, false, /*deconv=*/true);
  ConversionParams p = Int8Params();
  p.calibration_feeds = CalibrationFeeds(4, 30);
  auto r = CreateInferenceGraph(g, p);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->summary().engines.size(), 1u);
  const auto& prec = r->summary().engines[0].layer_precisions;
  EXPECT_EQ(prec.count("INT8") ? prec.at("INT8") : 0, 4) << r->summary().ToString();
  EXPECT_GE(prec.size(), 2u);
  EXPECT_LT(Int8Error(r->graph(), g, nullptr), 1e-1);
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// The accuracy budget keeps the most harmful layers in higher precision until the output error
// on the calibration batches is within the budget, and reports them.
TEST(Int8Flow, AccuracyBudget) {
  const Graph g = SmallCnn();
  ConversionParams p = Int8Params();
  p.calibration_feeds = CalibrationFeeds(3, 40);
  auto all = CreateInferenceGraph(g, p);  // no budget
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE(all->summary().int8_kept_float.empty());
  EXPECT_EQ(Int8Layers(all->summary()), 4);
  p.max_accuracy_loss = 0.006;
  auto r = CreateInferenceGraph(g, p);
  ASSERT_TRUE(r.ok()) << r.status();
  const ConversionSummary& s = r->summary();
  EXPECT_FALSE(s.int8_kept_float.empty()) << s.ToString();
  EXPECT_EQ(Int8Layers(s), 4 - static_cast<int>(s.int8_kept_float.size()));
  EXPECT_NE(s.int8_accuracy.find("budget 0.006)"), std::string::npos) << s.int8_accuracy;
  EXPECT_NE(s.ToString().find("kept in higher precision"), std::string::npos);
  // Within the budget on the calibration batches (rel. L2 over all of them, as the budget).
  double num = 0, den = 0;
  for (const Feeds& f : p.calibration_feeds) {
    auto a = RunGraph(r->graph(), f[0].second), b = RunGraph(g, f[0].second);
    ASSERT_FALSE(a.empty());
    ASSERT_FALSE(b.empty());
    for (int64_t i = 0; i < b[0].num_elements(); ++i) {
      const double d = a[0].data<float>()[i] - b[0].data<float>()[i];
      num += d * d;
      den += static_cast<double>(b[0].data<float>()[i]) * b[0].data<float>()[i];
    }
  }
  EXPECT_LE(std::sqrt(num / den), 0.00601);
  // A budget every layer meets keeps none.
  p.max_accuracy_loss = 10;
  auto loose = CreateInferenceGraph(g, p);
  ASSERT_TRUE(loose.ok()) << loose.status();
  EXPECT_TRUE(loose->summary().int8_kept_float.empty());
  EXPECT_EQ(Int8Layers(loose->summary()), 4);
}

}  // namespace
}  // namespace kiln

// `kiln convert --precision int8 --calib-data DIR --calib-cache FILE`, then from the cache alone;
// bad calibration data is an error naming the file.
namespace kiln {
namespace {

TEST(Int8Cli, ConvertWithCalibrationDataAndCache) {
  const std::string dir = ::testing::TempDir() + "/kiln_int8_cli_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir + "/calib");
  const std::string model = dir + "/cnn.onnx";
  ASSERT_TRUE(WriteOnnxFile(SmallCnn(), model).ok());
  int i = 0;
  for (const Feeds& f : CalibrationFeeds(3, 50)) {
    ASSERT_TRUE(WriteNpyFile(dir + "/calib/b" + std::to_string(i++) + ".npy", f[0].second).ok());
  }
  const std::string common = "convert " + model +
                             " --precision int8 --input-shape x=-1,3,16,16 --max-batch-size 4" +
                             " --calib-cache " + dir + "/table.txt -o " + dir + "/out.onnx";
  auto r = testing::Kiln(common + " --calib-data " + dir + "/calib --calib-method percentile");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("calibrating [##"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("3/3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("INT8 x4"), std::string::npos) << r.output;
  auto table = CalibrationTable::ReadFile(dir + "/table.txt");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->calibrator, "percentile");
  r = testing::Kiln(common);  // the cache alone
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("INT8 x4"), std::string::npos) << r.output;
  r = testing::Kiln("run " + dir + "/out.onnx --shape x=2,3,16,16");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // Bad data: a file that is not .npy, a missing directory.
  std::filesystem::remove(dir + "/table.txt");
  { std::ofstream(dir + "/calib/b9.npy") << "not an array"; }
  r = testing::Kiln(common + " --calib-data " + dir + "/calib");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("b9.npy"), std::string::npos) << r.output;
  r = testing::Kiln(common + " --calib-data " + dir + "/nope");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("no such file or directory"), std::string::npos) << r.output;
  r = testing::Kiln(common + " --calib-data " + dir + "/calib --calib-method kl");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("'kl'"), std::string::npos) << r.output;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kiln

// Per-layer precision constraints (ConversionParams::fp32_layers) and the FP16 / BF16 accuracy
// budget, on the small CNN in BF16.
namespace kiln {
namespace {

ConversionParams Bf16Params() {
  ConversionParams p = Int8Params();
  p.precision_mode = "BF16";
  return p;
}

bool Has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Rel. L2 of `converted` against the unconverted graph over every batch of `feeds`.
double ErrorOn(const Graph& converted, const Graph& g, const std::vector<Feeds>& feeds) {
  double num = 0, den = 0;
  for (const Feeds& f : feeds) {
    auto a = RunGraph(converted, f[0].second), b = RunGraph(g, f[0].second);
    if (a.empty() || b.empty()) return 1e30;
    for (int64_t i = 0; i < b[0].num_elements(); ++i) {
      const double d = a[0].data<float>()[i] - b[0].data<float>()[i];
      num += d * d;
      den += static_cast<double>(b[0].data<float>()[i]) * b[0].data<float>()[i];
    }
  }
  return std::sqrt(num / den);
}

// A named conv stays in FP32 inside a BF16 engine; the constraint travels with the EngineOp
// (attribute fp32_layers, part of the plan's build config) through an ONNX round trip.
TEST(PrecisionConstraints, Fp32LayersStayFp32InBf16Engine) {
  if (!CpuHasKernel(Precision::kBF16)) GTEST_SKIP() << "this CPU has no BF16 kernel";
  const Graph g = SmallCnn();
  auto plain = CreateInferenceGraph(g, Bf16Params());
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_EQ(plain->summary().engines.size(), 1u);
  const std::vector<std::string>& all = plain->summary().engines[0].reduced_layers;
  ASSERT_TRUE(Has(all, "c1_node") && Has(all, "c2_node")) << plain->summary().ToString();

  ConversionParams p = Bf16Params();
  p.fp32_layers = {"c2_node", "not_in_the_model"};
  auto r = CreateInferenceGraph(g, p);
  ASSERT_TRUE(r.ok()) << r.status();
  const std::vector<std::string>& reduced = r->summary().engines[0].reduced_layers;
  EXPECT_FALSE(Has(reduced, "c2_node")) << r->summary().ToString();
  EXPECT_TRUE(Has(reduced, "c1_node")) << r->summary().ToString();
  const std::vector<const Node*> ops = EngineOps(r->graph());
  ASSERT_EQ(ops.size(), 1u);
  const Attr* a = ops[0]->FindAttr("fp32_layers");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->strings, std::vector<std::string>{"c2_node"});  // only this segment's nodes

  auto bytes = ExportOnnx(r->graph());
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto back = ImportOnnxBytes(*bytes, "round trip", "");
  ASSERT_TRUE(back.ok()) << back.status();
  RegisterEngineOp();
  const std::vector<const Node*> back_ops = EngineOps(*back);
  ASSERT_EQ(back_ops.size(), 1u);
  const EngineInfo info = InspectEngineOp(*back, *back_ops[0], false, 0);
  EXPECT_EQ(info.status, "ready");
  std::map<std::string, std::string> precision;
  for (const EngineLayerInfo& l : info.layers) precision[l.name] = l.precision;
  EXPECT_EQ(precision["c2_node"], "FP32");
  EXPECT_EQ(precision["c1_node"], "BF16");
  const Tensor x = Normal({2, 3, 16, 16}, 77, 1.f);
  auto y = RunGraph(*back, x), want = RunGraph(g, x);
  ASSERT_FALSE(y.empty());
  ASSERT_FALSE(want.empty());
  EXPECT_LT(RelL2(y[0], want[0]), 3e-2);
}

// The BF16 accuracy budget keeps the most harmful layers in FP32 until the outputs on the given
// batches are within it; a loose budget keeps none; without inputs it is an error.
TEST(PrecisionConstraints, Bf16AccuracyBudget) {
  if (!CpuHasKernel(Precision::kBF16)) GTEST_SKIP() << "this CPU has no BF16 kernel";
  const Graph g = SmallCnn();
  const std::vector<Feeds> feeds = CalibrationFeeds(3, 60);
  auto all = CreateInferenceGraph(g, Bf16Params());
  ASSERT_TRUE(all.ok()) << all.status();
  const double all_bf16 = ErrorOn(all->graph(), g, feeds);
  ASSERT_GT(all_bf16, 1e-4);  // BF16 rounds: there is something to budget

  // The params with a budget of a quarter of the all-BF16 error on `feeds`.
  auto within_quarter = [&](ConversionParams c) {
    c.calibration_feeds = feeds;
    c.max_accuracy_loss = all_bf16 / 4;
    return c;
  };
  ConversionParams p = within_quarter(Bf16Params());
  auto r = CreateInferenceGraph(g, p);
  ASSERT_TRUE(r.ok()) << r.status();
  const ConversionSummary& s = r->summary();
  EXPECT_FALSE(s.fp32_kept_layers.empty()) << s.ToString();
  EXPECT_LE(ErrorOn(r->graph(), g, feeds), p.max_accuracy_loss * 1.0001) << s.ToString();
  for (const std::string& l : s.fp32_kept_layers) {
    EXPECT_FALSE(Has(s.engines[0].reduced_layers, l)) << l;
  }
  EXPECT_EQ(s.precision_accuracy.rfind("BF16: rel. L2", 0), 0u) << s.precision_accuracy;
  EXPECT_NE(s.ToString().find("kept in FP32: layer '"), std::string::npos) << s.ToString();
  EXPECT_NE(s.ToJson().find("\"fp32_kept_layers\": [\""), std::string::npos);

  p.max_accuracy_loss = 10;
  auto loose = CreateInferenceGraph(g, p);
  ASSERT_TRUE(loose.ok()) << loose.status();
  EXPECT_TRUE(loose->summary().fp32_kept_layers.empty());
  EXPECT_EQ(loose->summary().engines[0].reduced_layers, all->summary().engines[0].reduced_layers);

  // INT8 below the BF16 floor: the INT8 budget keeps every layer out of INT8 (in BF16), then
  // keeps layers in FP32 until it is met.
  const ConversionParams q = within_quarter(Int8Params());
  auto int8 = CreateInferenceGraph(g, q);
  ASSERT_TRUE(int8.ok()) << int8.status();
  const ConversionSummary& t = int8->summary();
  EXPECT_NE(t.int8_accuracy.find("not reached: layers kept in FP32 next"), std::string::npos)
      << t.ToString();
  EXPECT_FALSE(t.fp32_kept_layers.empty()) << t.ToString();
  EXPECT_EQ(Int8Layers(t), 0) << t.ToString();
  EXPECT_LE(ErrorOn(int8->graph(), g, feeds), q.max_accuracy_loss * 1.0001) << t.ToString();

  p.calibration_feeds.clear();
  auto none = CreateInferenceGraph(g, p);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(none.status().message().find("calibration_feeds"), std::string::npos)
      << none.status();
}

}  // namespace
}  // namespace kiln
