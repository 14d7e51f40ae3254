// If / Loop / Scan / SequenceMap through Session: subgraphs compiled once, outer-scope values,
// loop-carried values and scan outputs, the iteration cap, and bad bodies.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <thread>

#include "io/onnx/onnx_import.h"
#include "ir/graph.h"
#include "kiln/convert.h"
#include "kiln/session.h"
#include "ops/op_test_util.h"
#include "runtime/control_flow.h"
#include "runtime/onnx_builder.h"
#include "runtime/onnx_graph_util.h"

namespace kiln {
namespace {

using testing::AddNode;
using testing::GraphAttr;
using testing::OnnxBuilder;
using testing::TypedValue;

void IntAttr(onnxpb::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnxpb::AttributeProto::INT);
  a->set_i(v);
}

void IntsAttr(onnxpb::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnxpb::AttributeProto::INTS);
  for (auto x : v) a->add_ints(x);
}

std::unique_ptr<Session> Load(const OnnxBuilder& b) {
  auto g = ImportOnnxBytes(b.Serialize(), "cf.onnx", "");
  EXPECT_TRUE(g.ok()) << g.status();
  if (!g.ok()) return nullptr;
  auto s = Session::FromGraph(std::move(g).value());
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(s).value() : nullptr;
}

// Loop(M, cond) over body(i, cond, acc):
//   acc' = acc * w + x[i]      (w: outer-scope graph input, x: outer-scope [M,3] input)
//   cond' = i < stop           (stop: outer-scope scalar)
//   scan = acc'                (stacked: [iterations, 3])
OnnxBuilder LoopModel() {
  OnnxBuilder b(13);
  b.Input("M", 7, {}).Input("cond", 9, {}).Input("acc0", 1, {3}).Input("w", 1, {3});
  b.Input("x", 1, {-1, 3}).Input("stop", 7, {});
  b.Output("acc", 1, {3}).Output("trace", 1, {-1, 3});
  onnxpb::GraphProto body;
  body.set_name("loop_body");
  TypedValue(body.add_input(), "i", 7, {});
  TypedValue(body.add_input(), "c_in", 9, {});
  TypedValue(body.add_input(), "acc_in", 1, {3});
  AddNode(&body, "Mul", {"acc_in", "w"}, {"scaled"});
  AddNode(&body, "Gather", {"x", "i"}, {"row"});
  AddNode(&body, "Add", {"scaled", "row"}, {"acc_out"});
  AddNode(&body, "Less", {"i", "stop"}, {"c_out"});
  AddNode(&body, "Identity", {"acc_out"}, {"scan_out"});
  TypedValue(body.add_output(), "c_out", 9, {});
  TypedValue(body.add_output(), "acc_out", 1, {3});
  TypedValue(body.add_output(), "scan_out", 1, {3});
  auto* loop = b.Node("Loop", {"M", "cond", "acc0"}, {"acc", "trace"}, "loop");
  GraphAttr(loop, "body", body);
  return b;
}

struct LoopFeeds {
  Feeds feeds;
  std::vector<float> acc0, w, x;
};

LoopFeeds MakeLoopFeeds(int64_t m, int64_t stop, bool cond, uint32_t seed) {
  LoopFeeds f;
  Tensor acc0 = testing::RandomTensor(DataType::kFloat32, {3}, seed);
  Tensor w = testing::RandomTensor(DataType::kFloat32, {3}, seed + 1);
  Tensor x = testing::RandomTensor(DataType::kFloat32, {m, 3}, seed + 2);
  f.acc0 = testing::Values<float>(acc0);
  f.w = testing::Values<float>(w);
  f.x = testing::Values<float>(x);
  f.feeds = {{"M", Tensor::Scalar<int64_t>(m)}, {"cond", Tensor::Scalar<bool>(cond)},
             {"acc0", acc0}, {"w", w}, {"x", x}, {"stop", Tensor::Scalar<int64_t>(stop)}};
  return f;
}

TEST(ControlFlow, LoopCarriesStateStacksScanOutputsAndReadsOuterScope) {
  auto s = Load(LoopModel());
  ASSERT_NE(s, nullptr);
  for (auto [m, stop] : std::vector<std::pair<int64_t, int64_t>>{{5, 100}, {6, 2}}) {
    LoopFeeds f = MakeLoopFeeds(m, stop, true, 7 + static_cast<uint32_t>(m));
    auto out = s->Run(f.feeds);
    ASSERT_TRUE(out.ok()) << out.status();
    // Reference: iterations run while i < M and the previous cond holds.
    std::vector<float> acc = f.acc0;
    std::vector<std::vector<float>> trace;
    for (int64_t i = 0; i < m; ++i) {
      for (int c = 0; c < 3; ++c) acc[c] = acc[c] * f.w[c] + f.x[i * 3 + c];
      trace.push_back(acc);
      if (!(i < stop)) break;
    }
    ASSERT_EQ((*out)[1].dims(), (std::vector<int64_t>{static_cast<int64_t>(trace.size()), 3}));
    EXPECT_EQ(testing::Values<float>((*out)[0]), acc);
    for (size_t t = 0; t < trace.size(); ++t) {
      for (int c = 0; c < 3; ++c) EXPECT_EQ((*out)[1].data<float>()[t * 3 + c], trace[t][c]);
    }
  }
}

TEST(ControlFlow, ConcurrentRunsOfOneSessionAgree) {
  auto s = Load(LoopModel());
  ASSERT_NE(s, nullptr);
  LoopFeeds f = MakeLoopFeeds(9, 100, true, 17);
  auto want = s->Run(f.feeds);
  ASSERT_TRUE(want.ok()) << want.status();
  std::vector<std::thread> threads;
  std::vector<int> agree(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      bool same = true;
      for (int r = 0; r < 20; ++r) {
        auto got = s->Run(f.feeds);
        same = same && got.ok() && (*got)[0].BitwiseEqual((*want)[0]) &&
               (*got)[1].BitwiseEqual((*want)[1]);
      }
      agree[t] = same;
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_TRUE(agree[t]) << "thread " << t;
}

TEST(ControlFlow, LoopWithFalseConditionRunsNoIteration) {
  auto s = Load(LoopModel());
  ASSERT_NE(s, nullptr);
  LoopFeeds f = MakeLoopFeeds(4, 100, false, 3);
  auto out = s->Run(f.feeds);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(testing::Values<float>((*out)[0]), f.acc0);
  EXPECT_EQ((*out)[1].dims(), (std::vector<int64_t>{0, 3}));
}

TEST(ControlFlow, LoopIterationCapStopsARunawayLoop) {
  auto s = Load(LoopModel());
  ASSERT_NE(s, nullptr);
  LoopFeeds f = MakeLoopFeeds(50, 1000, true, 11);
  setenv("KILN_MAX_LOOP_ITERATIONS", "20", 1);
  auto out = s->Run(f.feeds);
  unsetenv("KILN_MAX_LOOP_ITERATIONS");
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("KILN_MAX_LOOP_ITERATIONS"), std::string::npos)
      << out.status();
  EXPECT_NE(out.status().message().find("'loop'"), std::string::npos) << out.status();
  EXPECT_EQ(MaxLoopIterations(), 10'000'000);
}

// If(c) then: y = x * a (a: outer scope) else: y = x - a, each branch with a nested If reading
// the outermost value too.
TEST(ControlFlow, IfRunsTheChosenBranchWithOuterScopeValues) {
  OnnxBuilder b(13);
  b.Input("c", 9, {}).Input("x", 1, {4}).Input("a", 1, {4}).Output("y", 1, {4});
  onnxpb::GraphProto then_g, else_g, inner_then, inner_else;
  AddNode(&inner_then, "Mul", {"x", "a"}, {"t_y"});
  TypedValue(inner_then.add_output(), "t_y", 1, {4});
  AddNode(&inner_else, "Sub", {"x", "a"}, {"e_y"});
  TypedValue(inner_else.add_output(), "e_y", 1, {4});
  // then: a nested If on the same cond (always true there) to exercise two levels of scope.
  auto* nested = AddNode(&then_g, "If", {"c"}, {"then_y"});
  GraphAttr(nested, "then_branch", inner_then);
  GraphAttr(nested, "else_branch", inner_else);
  TypedValue(then_g.add_output(), "then_y", 1, {4});
  AddNode(&else_g, "Sub", {"x", "a"}, {"else_y"});
  TypedValue(else_g.add_output(), "else_y", 1, {4});
  auto* n = b.Node("If", {"c"}, {"y"}, "if");
  GraphAttr(n, "then_branch", then_g);
  GraphAttr(n, "else_branch", else_g);
  auto s = Load(b);
  ASSERT_NE(s, nullptr);
  Tensor x = testing::RandomTensor(DataType::kFloat32, {4}, 21);
  Tensor a = testing::RandomTensor(DataType::kFloat32, {4}, 22);
  for (bool c : {true, false}) {
    auto out = s->Run({{"c", Tensor::Scalar<bool>(c)}, {"x", x}, {"a", a}});
    ASSERT_TRUE(out.ok()) << out.status();
    for (int i = 0; i < 4; ++i) {
      const float xv = x.data<float>()[i], av = a.data<float>()[i];
      EXPECT_EQ((*out)[0].data<float>()[i], c ? xv * av : xv - av);
    }
  }
}

// Scan (opset 9+): a running sum over axis 1 of x [2,5], read in reverse, with the sums stacked
// in forward order along output axis 1.
TEST(ControlFlow, ScanWithAxesAndDirections) {
  OnnxBuilder b(11);
  b.Input("init", 1, {2}).Input("x", 1, {2, 5}).Output("sum", 1, {2}).Output("partials", 1, {2, 5});
  onnxpb::GraphProto body;
  TypedValue(body.add_input(), "s_in", 1, {2});
  TypedValue(body.add_input(), "col", 1, {2});
  AddNode(&body, "Add", {"s_in", "col"}, {"s_out"});
  AddNode(&body, "Identity", {"s_out"}, {"p_out"});
  TypedValue(body.add_output(), "s_out", 1, {2});
  TypedValue(body.add_output(), "p_out", 1, {2});
  auto* n = b.Node("Scan", {"init", "x"}, {"sum", "partials"}, "scan");
  GraphAttr(n, "body", body);
  IntAttr(n, "num_scan_inputs", 1);
  IntsAttr(n, "scan_input_axes", {1});
  IntsAttr(n, "scan_input_directions", {1});
  IntsAttr(n, "scan_output_axes", {-1});
  auto s = Load(b);
  ASSERT_NE(s, nullptr);
  Tensor init = testing::RandomTensor(DataType::kFloat32, {2}, 31);
  Tensor x = testing::RandomTensor(DataType::kFloat32, {2, 5}, 32);
  auto out = s->Run({{"init", init}, {"x", x}});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ((*out)[1].dims(), (std::vector<int64_t>{2, 5}));
  for (int r = 0; r < 2; ++r) {
    float acc = init.data<float>()[r];
    for (int t = 0; t < 5; ++t) {
      acc += x.data<float>()[r * 5 + (4 - t)];
      EXPECT_FLOAT_EQ((*out)[1].data<float>()[r * 5 + t], acc);
    }
    EXPECT_FLOAT_EQ((*out)[0].data<float>()[r], acc);
  }
}

// SplitToSequence -> SequenceMap(body: x * k, k from the outer scope) -> ConcatFromSequence.
TEST(ControlFlow, SequenceMapOverASplitSequence) {
  OnnxBuilder b(17);
  b.Input("x", 1, {6, 2}).Input("k", 1, {2}).Output("y", 1, {6, 2});
  onnxpb::GraphProto body;
  TypedValue(body.add_input(), "item", 1, {}, /*with_shape=*/false);
  AddNode(&body, "Mul", {"item", "k"}, {"scaled"});
  TypedValue(body.add_output(), "scaled", 1, {}, false);
  b.Node("SplitToSequence", {"x"}, {"seq"}, "split");
  auto* map = b.Node("SequenceMap", {"seq"}, {"mapped"}, "map");
  GraphAttr(map, "body", body);
  auto* concat = b.Node("ConcatFromSequence", {"mapped"}, {"y"}, "concat");
  IntAttr(concat, "axis", 0);
  auto s = Load(b);
  ASSERT_NE(s, nullptr);
  Tensor x = testing::RandomTensor(DataType::kFloat32, {6, 2}, 41);
  Tensor k = testing::RandomTensor(DataType::kFloat32, {2}, 42);
  auto out = s->Run({{"x", x}, {"k", k}});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ((*out)[0].dims(), (std::vector<int64_t>{6, 2}));
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ((*out)[0].data<float>()[i], x.data<float>()[i] * k.data<float>()[i % 2]);
  }
}

TEST(ControlFlow, BadBodiesAreErrorsNotCrashes) {
  {  // the body produces too few outputs for the node
    OnnxBuilder b = LoopModel();
    auto* body = b.model().mutable_graph()->mutable_node(0)->mutable_attribute(0)->mutable_g();
    body->mutable_output()->RemoveLast();
    auto g = ImportOnnxBytes(b.Serialize(), "bad.onnx", "");
    ASSERT_TRUE(g.ok()) << g.status();
    auto s = Session::FromGraph(std::move(g).value());
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.status().message().find("'loop'"), std::string::npos) << s.status();
  }
  {  // the body reads a value nothing defines
    OnnxBuilder b = LoopModel();
    auto* body = b.model().mutable_graph()->mutable_node(0)->mutable_attribute(0)->mutable_g();
    body->mutable_node(0)->set_input(1, "nowhere");
    auto g = ImportOnnxBytes(b.Serialize(), "bad.onnx", "");
    ASSERT_TRUE(g.ok()) << g.status();
    auto s = Session::FromGraph(std::move(g).value());
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.status().message().find("nowhere"), std::string::npos) << s.status();
  }
  {  // a feed of the wrong type
    auto s = Load(LoopModel());
    ASSERT_NE(s, nullptr);
    LoopFeeds f = MakeLoopFeeds(3, 10, true, 5);
    f.feeds[0].second = Tensor::FromVector<double>({2.5});  // M must be an integer
    auto out = s->Run(f.feeds);
    EXPECT_FALSE(out.ok());
  }
}

// Conversion keeps control-flow nodes out of engines (a backend never takes them) while the
// nodes around them may become an engine, even one whose output only the Loop body reads.
//   x ─▶ Relu ─▶ Mul(w) ─▶ Add(b) ─▶ h ┄┄(read inside the body)┄┄▶ Loop(M=3: acc += h) ─▶ acc
TEST(ControlFlow, ConversionLeavesLoopsOutsideEngines) {
  OnnxBuilder b(13);
  b.Input("x", 1, {2, 4}).Input("acc0", 1, {2, 4}).Output("acc", 1, {2, 4});
  b.FloatInitializer("w", {4}, {0.5f, -1.5f, 2.0f, 0.25f});
  b.FloatInitializer("bias", {4}, {0.1f, 0.2f, -0.3f, 0.4f});
  b.Node("Relu", {"x"}, {"r"}, "relu");
  b.Node("Mul", {"r", "w"}, {"m"}, "mul");
  b.Node("Add", {"m", "bias"}, {"h"}, "add");
  auto* m = b.model().mutable_graph()->add_initializer();
  m->set_name("M");
  m->set_data_type(7);
  m->add_int64_data(3);
  onnxpb::GraphProto body;
  TypedValue(body.add_input(), "i", 7, {});
  TypedValue(body.add_input(), "c_in", 9, {});
  TypedValue(body.add_input(), "acc_in", 1, {2, 4});
  AddNode(&body, "Add", {"acc_in", "h"}, {"acc_out"});
  AddNode(&body, "Identity", {"c_in"}, {"c_out"});
  TypedValue(body.add_output(), "c_out", 9, {});
  TypedValue(body.add_output(), "acc_out", 1, {2, 4});
  auto* loop = b.Node("Loop", {"M", "", "acc0"}, {"acc"}, "loop");
  GraphAttr(loop, "body", body);
  auto g = ImportOnnxBytes(b.Serialize(), "cf_convert.onnx", "");
  ASSERT_TRUE(g.ok()) << g.status();
  ConversionParams params;  // converting needs only the op table, not the runtime's kernels
  auto converted = CreateInferenceGraph(*g, params);
  ASSERT_TRUE(converted.ok()) << converted.status();
  auto native = Session::FromGraph(*g);
  ASSERT_TRUE(native.ok()) << native.status();
  bool has_loop = false, has_engine = false;
  for (const Node& n : converted->graph().nodes) {
    has_loop |= n.op_type == "Loop";
    has_engine |= n.op_type == "EngineOp";
  }
  EXPECT_TRUE(has_loop);
  EXPECT_TRUE(has_engine) << converted->summary().ToString();
  auto session = Session::FromGraph(converted->graph());
  ASSERT_TRUE(session.ok()) << session.status();
  Tensor x = testing::RandomTensor(DataType::kFloat32, {2, 4}, 61);
  Tensor acc0 = testing::RandomTensor(DataType::kFloat32, {2, 4}, 62);
  auto want = (*native)->Run({{"x", x}, {"acc0", acc0}});
  auto got = (*session)->Run({{"x", x}, {"acc0", acc0}});
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(testing::TensorsNear((*got)[0], (*want)[0], 1e-5, 1e-6));
  const float* a0 = acc0.data<float>();
  for (int i = 0; i < 8; ++i) {  // acc0 + 3 * h, h computed here
    const float w[4] = {0.5f, -1.5f, 2.0f, 0.25f}, bias[4] = {0.1f, 0.2f, -0.3f, 0.4f};
    const float h = std::max(x.data<float>()[i], 0.0f) * w[i % 4] + bias[i % 4];
    EXPECT_NEAR((*want)[0].data<float>()[i], a0[i] + 3 * h, 1e-5);
  }
}

}  // namespace
}  // namespace kiln
