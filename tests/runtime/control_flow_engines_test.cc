// Engines inside If / Loop bodies (convert/convert_bodies.h): the converter segments each body
// with the same parameters, the body's EngineOps run their engines, the summary counts them,
// and the converted model round-trips through ONNX.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "io/npy/npy.h"
#include "io/onnx/onnx_import.h"
#include "io/tf/tfjs_import.h"
#include "ir/graph.h"
#include "kiln/convert.h"
#include "kiln/session.h"
#include "ops/op_test_util.h"
#include "runtime/onnx_builder.h"
#include "runtime/onnx_graph_util.h"

namespace kiln {
namespace {

using testing::AddNode;
using testing::GraphAttr;
using testing::OnnxBuilder;
using testing::TypedValue;

void IntsAttr(onnxpb::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnxpb::AttributeProto::INTS);
  for (auto x : v) a->add_ints(x);
}

std::vector<float> RandomValues(size_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

void FloatInit(onnxpb::GraphProto* g, const std::string& name, std::vector<int64_t> dims,
               uint32_t seed, float scale) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(1);
  size_t n = 1;
  for (auto d : dims) {
    t->add_dims(d);
    n *= static_cast<size_t>(d);
  }
  for (float v : RandomValues(n, seed, scale)) t->add_float_data(v);
}

double RelL2(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.dims(), want.dims());
  if (got.dims() != want.dims()) return 1e9;
  double num = 0, den = 0;
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    const double d = got.GetAsDouble(i) - want.GetAsDouble(i);
    num += d * d;
    den += want.GetAsDouble(i) * want.GetAsDouble(i);
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

// Loop(M, cond=true, h0) over body(i, c, h):  (M and stop are inputs: the trip count depends
// on the data fed, min(M, stop + 1))
//   h' = Tanh(MatMul(Relu(MatMul(h, W1) + b1), W2) + x)    W1, b1: outer-scope initializers;
//                                                          W2: the body's own; x: graph input
//   c' = i < stop;  scan output: h'
// The body declares no shape for h (the converter takes it from h0: a fixed point).
// `batch`: dimension 0 of h0 and x (-1: unknown); `h0_rank_known` false declares h0 without
// a shape.
OnnxBuilder LoopModel(int64_t batch = 2, bool h0_rank_known = true) {
  OnnxBuilder b(13);
  b.Input("M", 7, {});
  if (h0_rank_known) {
    b.Input("h0", 1, {batch, 16});
  } else {
    TypedValue(b.model().mutable_graph()->add_input(), "h0", 1, {}, /*with_shape=*/false);
  }
  b.Input("x", 1, {batch, 16}).Input("stop", 7, {});
  b.Output("h", 1, {batch, 16}).Output("trace", 1, {-1, batch, 16});
  auto* g = b.model().mutable_graph();
  FloatInit(g, "W1", {16, 16}, 11, 0.5f);
  FloatInit(g, "b1", {16}, 12, 0.5f);
  auto* t = g->add_initializer();
  t->set_name("true_c");
  t->set_data_type(9);
  t->add_int32_data(1);
  onnxpb::GraphProto body;
  body.set_name("loop_body");
  TypedValue(body.add_input(), "i", 7, {});
  TypedValue(body.add_input(), "c_in", 9, {});
  TypedValue(body.add_input(), "h_in", 1, {}, /*with_shape=*/false);
  FloatInit(&body, "W2", {16, 16}, 13, 0.5f);
  AddNode(&body, "MatMul", {"h_in", "W1"}, {"t1"});
  AddNode(&body, "Add", {"t1", "b1"}, {"t2"});
  AddNode(&body, "Relu", {"t2"}, {"t3"});
  AddNode(&body, "MatMul", {"t3", "W2"}, {"t4"});
  AddNode(&body, "Add", {"t4", "x"}, {"t5"});
  AddNode(&body, "Tanh", {"t5"}, {"h_out"});
  AddNode(&body, "Less", {"i", "stop"}, {"c_out"});
  TypedValue(body.add_output(), "c_out", 9, {});
  TypedValue(body.add_output(), "h_out", 1, {}, false);
  TypedValue(body.add_output(), "h_out", 1, {}, false);
  auto* loop = b.Node("Loop", {"M", "true_c", "h0"}, {"h", "trace"}, "loop");
  GraphAttr(loop, "body", body);
  return b;
}

// If(c) with two branches reading x [1,4,8,8] from the outer scope:
//   then: Relu(Conv(Relu(Conv(x, K1) + ...), K2)) + x      else: Sigmoid(Mul(Relu(x), s) + x)
OnnxBuilder IfModel() {
  OnnxBuilder b(13);
  b.Input("c", 9, {}).Input("x", 1, {1, 4, 8, 8}).Output("y", 1, {1, 4, 8, 8});
  auto* g = b.model().mutable_graph();
  FloatInit(g, "K1", {4, 4, 3, 3}, 21, 0.3f);
  FloatInit(g, "s", {1, 4, 1, 1}, 23, 1.0f);
  onnxpb::GraphProto then_b;
  then_b.set_name("then");
  FloatInit(&then_b, "K2", {4, 4, 3, 3}, 22, 0.3f);
  IntsAttr(AddNode(&then_b, "Conv", {"x", "K1"}, {"a1"}), "pads", {1, 1, 1, 1});
  AddNode(&then_b, "Relu", {"a1"}, {"a2"});
  IntsAttr(AddNode(&then_b, "Conv", {"a2", "K2"}, {"a3"}), "pads", {1, 1, 1, 1});
  AddNode(&then_b, "Add", {"a3", "x"}, {"a4"});
  AddNode(&then_b, "Relu", {"a4"}, {"y_then"});
  TypedValue(then_b.add_output(), "y_then", 1, {1, 4, 8, 8});
  onnxpb::GraphProto else_b;
  else_b.set_name("else");
  AddNode(&else_b, "Relu", {"x"}, {"e1"});
  AddNode(&else_b, "Mul", {"e1", "s"}, {"e2"});
  AddNode(&else_b, "Add", {"e2", "x"}, {"e3"});
  AddNode(&else_b, "Sigmoid", {"e3"}, {"y_else"});
  TypedValue(else_b.add_output(), "y_else", 1, {1, 4, 8, 8});
  auto* n = b.Node("If", {"c"}, {"y"}, "branch");
  GraphAttr(n, "then_branch", then_b);
  GraphAttr(n, "else_branch", else_b);
  return b;
}

Graph Import(const OnnxBuilder& b, const std::string& name) {
  auto g = ImportOnnxBytes(b.Serialize(), name, "");
  EXPECT_TRUE(g.ok()) << g.status();
  return g.ok() ? std::move(g).value() : Graph();
}

// EngineOps inside the bodies of `graph`'s nodes (nested too).
int BodyEngines(const Graph& graph) {
  int n = 0;
  for (const auto& node : graph.nodes) {
    for (const auto& [name, attr] : node.attrs) {
      if (attr.type != AttrType::kGraph || attr.g == nullptr) continue;
      for (const auto& inner : attr.g->nodes) n += inner.op_type == "EngineOp" ? 1 : 0;
      n += BodyEngines(*attr.g);
    }
  }
  return n;
}

std::string TempPath(const std::string& file) {
  auto dir = std::filesystem::temp_directory_path() /
             ("kiln_cf_engines_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / file).string();
}

Feeds LoopFeeds(int64_t m, int64_t stop, uint32_t seed, int64_t batch = 2) {
  return {{"M", Tensor::Scalar<int64_t>(m)},
          {"h0", testing::RandomTensor(DataType::kFloat32, {batch, 16}, seed)},
          {"x", testing::RandomTensor(DataType::kFloat32, {batch, 16}, seed + 1)},
          {"stop", Tensor::Scalar<int64_t>(stop)}};
}

TEST(ControlFlowEngines, LoopBodyGetsAStaticEngineAndMatchesNative) {
  Graph g = Import(LoopModel(), "cf_engines_loop.onnx");
  ConversionParams params;
  params.minimum_segment_size = 3;
  auto converted = CreateInferenceGraph(g, params);
  ASSERT_TRUE(converted.ok()) << converted.status();
  const ConversionSummary& summary = converted->summary();
  EXPECT_EQ(BodyEngines(converted->graph()), 1) << summary.ToString();
  ASSERT_EQ(summary.engines.size(), 1u) << summary.ToString();
  EXPECT_EQ(summary.engines[0].status, "built") << summary.ToString();
  EXPECT_EQ(summary.engines[0].scope, "Loop 'loop' body");
  EXPECT_EQ(summary.engines[0].num_nodes, 6);  // MatMul Add Relu MatMul Add Tanh
  ASSERT_EQ(summary.subgraphs.size(), 1u);
  EXPECT_EQ(summary.subgraphs[0], "Loop 'loop' body: 1 engine, 6/7 nodes");
  EXPECT_NE(summary.ToString().find("kiln_engine_0 (in Loop 'loop' body)"), std::string::npos);
  // Its native segment is in the root's library; W1 and b1 moved into it.
  const std::string key = [&] {
    for (const auto& n : converted->graph().nodes) {
      if (n.op_type == "Loop") {
        for (const auto& in : n.attrs.at("body").g->nodes) {
          if (in.op_type == "EngineOp") return in.attrs.at("segment_func").s;
        }
      }
    }
    return std::string();
  }();
  ASSERT_TRUE(converted->graph().functions.count(key)) << key;
  EXPECT_TRUE(converted->graph().functions.at(key)->initializers.count("W1"));
  EXPECT_FALSE(converted->graph().initializers.count("W1"));

  auto native = Session::FromGraph(g);
  ASSERT_TRUE(native.ok()) << native.status();
  auto engine = Session::FromGraph(converted->graph());
  ASSERT_TRUE(engine.ok()) << engine.status();
  const std::string path = TempPath("loop.kiln.onnx");
  ASSERT_TRUE(converted->Save(path).ok());
  auto reloaded = Session::Load(path);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  // The engine must run (no silent native fallback) for every trip count; the data decides it:
  // min(M, stop + 1).
  ::setenv("KILN_ALLOW_NATIVE_FALLBACK", "0", 1);
  for (auto [m, stop, want_iters] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {5, 100, 5}, {9, 2, 3}, {1, 7, 1}}) {
    Feeds feeds = LoopFeeds(m, stop, 100 + static_cast<uint32_t>(m));
    auto want = (*native)->Run(feeds);
    ASSERT_TRUE(want.ok()) << want.status();
    ASSERT_EQ((*want)[1].dims(), (std::vector<int64_t>{want_iters, 2, 16}));
    for (const auto* s : {engine->get(), reloaded->get()}) {
      auto got = s->Run(feeds);
      ASSERT_TRUE(got.ok()) << got.status();
      for (size_t k = 0; k < want->size(); ++k) {
        EXPECT_LE(RelL2((*got)[k], (*want)[k]), 1e-5) << "output " << k << " m=" << m;
      }
    }
  }
  ::unsetenv("KILN_ALLOW_NATIVE_FALLBACK");
  // The reloaded model still has its engine inside the body.
  auto reloaded_graph = ImportOnnxFile(path);
  ASSERT_TRUE(reloaded_graph.ok()) << reloaded_graph.status();
  EXPECT_EQ(BodyEngines(*reloaded_graph), 1);
  auto info = InspectModel(path);
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_FALSE(info->control_flow.empty());
  EXPECT_EQ(info->control_flow[0].engines, 1);
  ASSERT_EQ(info->engines.size(), 1u);
  EXPECT_EQ(info->engines[0].status, "ready");
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

TEST(ControlFlowEngines, MinimumSegmentSizeAppliesInsideBodies) {
  Graph g = Import(LoopModel(), "cf_engines_loop.onnx");
  ConversionParams params;
  params.minimum_segment_size = 7;  // the body has a 6-node chain
  auto converted = CreateInferenceGraph(g, params);
  ASSERT_TRUE(converted.ok()) << converted.status();
  EXPECT_EQ(BodyEngines(converted->graph()), 0);
  EXPECT_TRUE(converted->summary().engines.empty());
  ASSERT_EQ(converted->summary().subgraphs.size(), 1u);
  EXPECT_EQ(converted->summary().subgraphs[0], "Loop 'loop' body: 0 engines, 0/7 nodes");
}

// Loop-carried h of shape [N, 16] (N unknown): the seed keeps N unknown, dimension 0 is the
// batch, so the static engine is built for max_batch_size and serves N <= 4.
TEST(ControlFlowEngines, LoopCarriedBatchDimensionBuildsForMaxBatch) {
  Graph g = Import(LoopModel(-1), "cf_engines_loop_batch.onnx");
  ConversionParams params;
  params.max_batch_size = 4;
  auto converted = CreateInferenceGraph(g, params);
  ASSERT_TRUE(converted.ok()) << converted.status();
  ASSERT_EQ(converted->summary().engines.size(), 1u) << converted->summary().ToString();
  EXPECT_EQ(converted->summary().engines[0].status, "built");
  auto native = Session::FromGraph(g);
  auto engine = Session::FromGraph(converted->graph());
  ASSERT_TRUE(native.ok()) << native.status();
  ASSERT_TRUE(engine.ok()) << engine.status();
  ::setenv("KILN_ALLOW_NATIVE_FALLBACK", "0", 1);
  for (int64_t batch : {1, 3, 4}) {
    Feeds feeds = LoopFeeds(4, 10, 200 + static_cast<uint32_t>(batch), batch);
    auto want = (*native)->Run(feeds);
    auto got = (*engine)->Run(feeds);
    ASSERT_TRUE(want.ok()) << want.status();
    ASSERT_TRUE(got.ok()) << got.status();
    for (size_t k = 0; k < want->size(); ++k) {
      EXPECT_LE(RelL2((*got)[k], (*want)[k]), 1e-5) << "batch " << batch;
    }
  }
  ::unsetenv("KILN_ALLOW_NATIVE_FALLBACK");
}

// A loop-carried value of unknown rank: its readers stay native (static and dynamic mode),
// the rest of the body still converts only if it forms a segment; results unchanged.
TEST(ControlFlowEngines, LoopCarriedUnknownRankStaysNative) {
  Graph g = Import(LoopModel(2, /*h0_rank_known=*/false), "cf_engines_loop_rank.onnx");
  for (bool dynamic : {false, true}) {
    ConversionParams params;
    params.is_dynamic_op = dynamic;
    auto converted = CreateInferenceGraph(g, params);
    ASSERT_TRUE(converted.ok()) << converted.status();
    EXPECT_EQ(BodyEngines(converted->graph()), 0) << converted->summary().ToString();
    ASSERT_EQ(converted->summary().subgraphs.size(), 1u);
    EXPECT_EQ(converted->summary().subgraphs[0], "Loop 'loop' body: 0 engines, 0/7 nodes");
    auto native = Session::FromGraph(g);
    auto engine = Session::FromGraph(converted->graph());
    ASSERT_TRUE(native.ok()) << native.status();
    ASSERT_TRUE(engine.ok()) << engine.status();
    Feeds feeds = LoopFeeds(3, 10, 300);
    auto want = (*native)->Run(feeds);
    auto got = (*engine)->Run(feeds);
    ASSERT_TRUE(want.ok()) << want.status();
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_LE(RelL2((*got)[0], (*want)[0]), 1e-6);
  }
}

// A Loop whose body holds an If: the then branch's chain (reading the body's loop-carried h
// and the root's W1 / b1) becomes an engine two levels down.
//   body(i, c, h):  c' = i < stop;  h' = If(c') then Tanh(MatMul(Relu(MatMul(h,W1)+b1), W2))
//                                               else Sigmoid(h)
TEST(ControlFlowEngines, NestedIfInsideLoopBody) {
  OnnxBuilder b(13);
  b.Input("M", 7, {}).Input("h0", 1, {2, 16}).Input("stop", 7, {});
  b.Output("h", 1, {2, 16});
  auto* g = b.model().mutable_graph();
  FloatInit(g, "W1", {16, 16}, 41, 0.5f);
  FloatInit(g, "b1", {16}, 42, 0.5f);
  auto* t = g->add_initializer();
  t->set_name("true_c");
  t->set_data_type(9);
  t->add_int32_data(1);
  onnxpb::GraphProto then_b, else_b, body;
  FloatInit(&then_b, "W2", {16, 16}, 43, 0.5f);
  AddNode(&then_b, "MatMul", {"h_in", "W1"}, {"t1"});
  AddNode(&then_b, "Add", {"t1", "b1"}, {"t2"});
  AddNode(&then_b, "Relu", {"t2"}, {"t3"});
  AddNode(&then_b, "MatMul", {"t3", "W2"}, {"t4"});
  AddNode(&then_b, "Tanh", {"t4"}, {"y_then"});
  TypedValue(then_b.add_output(), "y_then", 1, {2, 16});  // If infers from declared outputs
  AddNode(&else_b, "Sigmoid", {"h_in"}, {"y_else"});
  TypedValue(else_b.add_output(), "y_else", 1, {2, 16});
  TypedValue(body.add_input(), "i", 7, {});
  TypedValue(body.add_input(), "c_in", 9, {});
  TypedValue(body.add_input(), "h_in", 1, {}, false);
  AddNode(&body, "Less", {"i", "stop"}, {"c_out"});
  auto* inner = AddNode(&body, "If", {"c_out"}, {"h_out"});
  inner->set_name("inner");
  GraphAttr(inner, "then_branch", then_b);
  GraphAttr(inner, "else_branch", else_b);
  TypedValue(body.add_output(), "c_out", 9, {});
  TypedValue(body.add_output(), "h_out", 1, {}, false);
  GraphAttr(b.Node("Loop", {"M", "true_c", "h0"}, {"h"}, "loop"), "body", body);
  Graph graph = Import(b, "cf_engines_nested.onnx");
  auto converted = CreateInferenceGraph(graph, ConversionParams());
  ASSERT_TRUE(converted.ok()) << converted.status();
  const ConversionSummary& summary = converted->summary();
  EXPECT_EQ(BodyEngines(converted->graph()), 1) << summary.ToString();
  ASSERT_EQ(summary.subgraphs.size(), 3u) << summary.ToString();
  EXPECT_EQ(summary.subgraphs[0], "Loop 'loop' body: 0 engines, 0/2 nodes");
  EXPECT_EQ(summary.subgraphs[1], "Loop 'loop' body / If 'inner' else_branch: 0 engines, 0/1 nodes");
  EXPECT_EQ(summary.subgraphs[2], "Loop 'loop' body / If 'inner' then_branch: 1 engine, 5/5 nodes");
  EXPECT_FALSE(converted->graph().initializers.count("W1"));  // moved into the segment
  auto native = Session::FromGraph(graph);
  ASSERT_TRUE(native.ok()) << native.status();
  auto engine = Session::FromGraph(converted->graph());
  ASSERT_TRUE(engine.ok()) << engine.status();
  const std::string path = TempPath("nested.kiln.onnx");
  ASSERT_TRUE(converted->Save(path).ok());
  auto reloaded = Session::Load(path);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  ::setenv("KILN_ALLOW_NATIVE_FALLBACK", "0", 1);
  for (auto [m, stop] : std::vector<std::pair<int64_t, int64_t>>{{6, 2}, {3, 10}}) {
    Feeds feeds = {{"M", Tensor::Scalar<int64_t>(m)},
                   {"h0", testing::RandomTensor(DataType::kFloat32, {2, 16}, 50 + stop)},
                   {"stop", Tensor::Scalar<int64_t>(stop)}};
    auto want = (*native)->Run(feeds);
    ASSERT_TRUE(want.ok()) << want.status();
    for (const auto* s : {engine->get(), reloaded->get()}) {
      auto got = s->Run(feeds);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_LE(RelL2((*got)[0], (*want)[0]), 1e-5) << "m=" << m;
    }
  }
  ::unsetenv("KILN_ALLOW_NATIVE_FALLBACK");
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

// Scan over xs [T, 2, 16] with state h [2, 16]: h' = Tanh(MatMul(h, W) + x_t), scanned out.
// The body declares no shapes: the state is seeded from h0 (a fixed point), x_t from xs
// without its scan axis.
TEST(ControlFlowEngines, ScanBodyGetsAnEngine) {
  OnnxBuilder b(13);
  b.Input("h0", 1, {2, 16}).Input("xs", 1, {-1, 2, 16});
  b.Output("h", 1, {2, 16}).Output("ys", 1, {-1, 2, 16});
  FloatInit(b.model().mutable_graph(), "W", {16, 16}, 61, 0.5f);
  onnxpb::GraphProto body;
  TypedValue(body.add_input(), "h_in", 1, {}, false);
  TypedValue(body.add_input(), "x_t", 1, {}, false);
  AddNode(&body, "MatMul", {"h_in", "W"}, {"t1"});
  AddNode(&body, "Add", {"t1", "x_t"}, {"t2"});
  AddNode(&body, "Tanh", {"t2"}, {"h_out"});
  TypedValue(body.add_output(), "h_out", 1, {}, false);
  TypedValue(body.add_output(), "h_out", 1, {}, false);
  auto* scan = b.Node("Scan", {"h0", "xs"}, {"h", "ys"}, "scan");
  GraphAttr(scan, "body", body);
  auto* n = scan->add_attribute();
  n->set_name("num_scan_inputs");
  n->set_type(onnxpb::AttributeProto::INT);
  n->set_i(1);
  Graph graph = Import(b, "cf_engines_scan.onnx");
  auto converted = CreateInferenceGraph(graph, ConversionParams());
  ASSERT_TRUE(converted.ok()) << converted.status();
  const ConversionSummary& summary = converted->summary();
  EXPECT_EQ(BodyEngines(converted->graph()), 1) << summary.ToString();
  ASSERT_EQ(summary.subgraphs.size(), 1u) << summary.ToString();
  EXPECT_EQ(summary.subgraphs[0], "Scan 'scan' body: 1 engine, 3/3 nodes");
  auto native = Session::FromGraph(graph);
  auto engine = Session::FromGraph(converted->graph());
  ASSERT_TRUE(native.ok()) << native.status();
  ASSERT_TRUE(engine.ok()) << engine.status();
  ::setenv("KILN_ALLOW_NATIVE_FALLBACK", "0", 1);
  for (int64_t steps : {1, 5}) {
    Feeds feeds = {{"h0", testing::RandomTensor(DataType::kFloat32, {2, 16}, 70)},
                   {"xs", testing::RandomTensor(DataType::kFloat32, {steps, 2, 16}, 71)}};
    auto want = (*native)->Run(feeds);
    auto got = (*engine)->Run(feeds);
    ASSERT_TRUE(want.ok()) << want.status();
    ASSERT_TRUE(got.ok()) << got.status();
    for (size_t k = 0; k < want->size(); ++k) {
      EXPECT_LE(RelL2((*got)[k], (*want)[k]), 1e-5) << "steps " << steps;
    }
  }
  ::unsetenv("KILN_ALLOW_NATIVE_FALLBACK");
}

TEST(ControlFlowEngines, IfBranchesGetEnginesAndMatchNative) {
  Graph g = Import(IfModel(), "cf_engines_if.onnx");
  ConversionParams params;
  auto converted = CreateInferenceGraph(g, params);
  ASSERT_TRUE(converted.ok()) << converted.status();
  const ConversionSummary& summary = converted->summary();
  EXPECT_EQ(BodyEngines(converted->graph()), 2) << summary.ToString();
  ASSERT_EQ(summary.subgraphs.size(), 2u) << summary.ToString();
  EXPECT_EQ(summary.subgraphs[0], "If 'branch' else_branch: 1 engine, 4/4 nodes");
  EXPECT_EQ(summary.subgraphs[1], "If 'branch' then_branch: 1 engine, 5/5 nodes");
  for (const auto& e : summary.engines) EXPECT_EQ(e.status, "built") << summary.ToString();
  auto native = Session::FromGraph(g);
  ASSERT_TRUE(native.ok()) << native.status();
  auto engine = Session::FromGraph(converted->graph());
  ASSERT_TRUE(engine.ok()) << engine.status();
  const std::string path = TempPath("if.kiln.onnx");
  ASSERT_TRUE(converted->Save(path).ok());
  auto reloaded = Session::Load(path);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  ::setenv("KILN_ALLOW_NATIVE_FALLBACK", "0", 1);
  for (bool c : {true, false}) {
    Feeds feeds = {{"c", Tensor::Scalar<bool>(c)},
                   {"x", testing::RandomTensor(DataType::kFloat32, {1, 4, 8, 8}, c ? 31 : 32)}};
    auto want = (*native)->Run(feeds);
    ASSERT_TRUE(want.ok()) << want.status();
    for (const auto* s : {engine->get(), reloaded->get()}) {
      auto got = s->Run(feeds);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_LE(RelL2((*got)[0], (*want)[0]), 1e-5) << "branch " << c;
    }
  }
  ::unsetenv("KILN_ALLOW_NATIVE_FALLBACK");
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

// faceboxes (TF.js, a TF1 while frame for its NMS map_fn): converted with the body segmented,
// still matches the TF.js reference outputs (tests/data/tfjs_fixtures/faceboxes) as closely as
// the unconverted graph does. Its loop body has no op the CPU engine takes (int32 / sequence /
// NMS ops), so the body stays native: the summary says so.
TEST(ControlFlowEngines, FaceboxesConvertedMatchesTfjs) {
  namespace fs = std::filesystem;
  const char* env = std::getenv("KILN_TFJS_MODELS_DIR");
  const fs::path model =
      fs::path(env != nullptr ? env : KILN_SOURCE_DIR "/.cache/tfjs/package/models") /
      "faceboxes.json";
  const fs::path fixture = KILN_SOURCE_DIR "/tests/data/tfjs_fixtures/faceboxes";
  if (!fs::exists(model) || !fs::exists(fixture / "input_0.npy")) {
    GTEST_SKIP() << "no faceboxes model at " << model << ": run scripts/fetch_tfjs_models.sh";
  }
  auto g = ImportTfjsModel(model.string());
  ASSERT_TRUE(g.ok()) << g.status();
  ConversionParams params;
  params.input_shapes["image_tensor:0"] = {1, 192, 192, 3};
  auto converted = CreateInferenceGraph(*g, params);
  ASSERT_TRUE(converted.ok()) << converted.status();
  const ConversionSummary& summary = converted->summary();
  ASSERT_EQ(summary.subgraphs.size(), 1u) << summary.ToString();
  EXPECT_EQ(summary.subgraphs[0].rfind("Loop 'nms/map/while/LoopCond' body: 0 engines, 0/", 0),
            0u)
      << summary.subgraphs[0];
  EXPECT_GE(summary.engines.size(), 1u);
  auto input = ReadNpyFile((fixture / "input_0.npy").string());
  ASSERT_TRUE(input.ok()) << input.status();
  auto native = Session::FromGraph(*g);
  ASSERT_TRUE(native.ok()) << native.status();
  auto engine = Session::FromGraph(converted->graph());
  ASSERT_TRUE(engine.ok()) << engine.status();
  const std::vector<std::string> outs = {"scores:0", "boxes:0", "num_boxes:0"};
  auto want = (*native)->Run({{"image_tensor:0", *input}}, outs);
  auto got = (*engine)->Run({{"image_tensor:0", *input}}, outs);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_TRUE(got.ok()) << got.status();
  for (size_t k = 0; k < outs.size(); ++k) {
    auto ref = ReadNpyFile((fixture / ("output_" + std::to_string(k) + ".npy")).string());
    ASSERT_TRUE(ref.ok()) << ref.status();
    ASSERT_EQ((*got)[k].dims(), ref->dims()) << outs[k];
    int bad_native = 0, bad_converted = 0;
    for (int64_t i = 0; i < ref->num_elements(); ++i) {
      const double r = ref->GetAsDouble(i), tol = 1e-4 + 1e-3 * std::abs(r);
      bad_native += std::abs((*want)[k].GetAsDouble(i) - r) > tol ? 1 : 0;
      bad_converted += std::abs((*got)[k].GetAsDouble(i) - r) > tol ? 1 : 0;
    }
    EXPECT_LE(bad_converted, bad_native) << outs[k];
    EXPECT_EQ(bad_converted, 0) << outs[k];
  }
}

}  // namespace
}  // namespace kiln
