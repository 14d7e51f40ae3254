// TensorFlow control flow end to end (issue 12): TF2 functional If / StatelessIf / While /
// StatelessWhile / Case and inlined StatefulPartitionedCall, from hand-built GraphDefs with
// function libraries, run through Session against values computed here; TF1 while frames
// (Enter / Merge / Switch / NextIteration / Exit / LoopCond) and bad control flow.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "io/tf/graphdef_import.h"
#include "kiln/convert.h"
#include "io/tf/tf_tensor.h"
#include "kiln/session.h"
#include "tensorflow.pb.h"

namespace kiln {
namespace {

// ---------------------------------------------------------------- building helpers

tfpb::NodeDef* AddNode(google::protobuf::RepeatedPtrField<tfpb::NodeDef>* nodes,
                       const std::string& name, const std::string& op,
                       std::vector<std::string> inputs = {}) {
  tfpb::NodeDef* n = nodes->Add();
  n->set_name(name);
  n->set_op(op);
  for (auto& i : inputs) n->add_input(i);
  return n;
}
void SetType(tfpb::NodeDef* n, const std::string& a, tfpb::DataType t) {
  (*n->mutable_attr())[a].set_type(t);
}
void SetTypes(tfpb::NodeDef* n, const std::string& a, std::vector<tfpb::DataType> ts) {
  auto* l = (*n->mutable_attr())[a].mutable_list();
  for (auto t : ts) l->add_type(t);
}
void SetFunc(tfpb::NodeDef* n, const std::string& a, const std::string& f) {
  (*n->mutable_attr())[a].mutable_func()->set_name(f);
}
tfpb::NodeDef* AddConst(google::protobuf::RepeatedPtrField<tfpb::NodeDef>* nodes,
                        const std::string& name, const Tensor& t) {
  tfpb::NodeDef* n = AddNode(nodes, name, "Const");
  SetType(n, "dtype", DataTypeToTf(t.dtype()));
  EXPECT_TRUE(TensorToTf(t, (*n->mutable_attr())["value"].mutable_tensor()).ok());
  return n;
}
tfpb::NodeDef* AddPlaceholder(tfpb::GraphDef* gd, const std::string& name, tfpb::DataType t) {
  tfpb::NodeDef* n = AddNode(gd->mutable_node(), name, "Placeholder");
  SetType(n, "dtype", t);
  return n;
}
tfpb::NodeDef* Binary(google::protobuf::RepeatedPtrField<tfpb::NodeDef>* nodes,
                      const std::string& name, const std::string& op, const std::string& a,
                      const std::string& b, tfpb::DataType t) {
  tfpb::NodeDef* n = AddNode(nodes, name, op, {a, b});
  SetType(n, "T", t);
  return n;
}

// A FunctionDef: args (name, type), returns (name, type, tensor ref).
struct Ret {
  std::string name;
  tfpb::DataType type;
  std::string ref;
};
tfpb::FunctionDef* AddFunction(tfpb::GraphDef* gd, const std::string& name,
                               std::vector<std::pair<std::string, tfpb::DataType>> args,
                               std::vector<Ret> rets) {
  tfpb::FunctionDef* f = gd->mutable_library()->add_function();
  f->mutable_signature()->set_name(name);
  for (auto& [a, t] : args) {
    auto* arg = f->mutable_signature()->add_input_arg();
    arg->set_name(a);
    arg->set_type(t);
  }
  for (auto& r : rets) {
    auto* arg = f->mutable_signature()->add_output_arg();
    arg->set_name(r.name);
    arg->set_type(r.type);
    (*f->mutable_ret())[r.name] = r.ref;
  }
  return f;
}

StatusOr<std::unique_ptr<Session>> Load(const tfpb::GraphDef& gd) {
  TfImportOptions opts;
  opts.source = "cf.pb";
  KILN_ASSIGN_OR_RETURN(Graph g, ImportGraphDef(gd, opts));
  return Session::FromGraph(std::move(g));
}

Tensor RandomFloats(std::vector<int64_t> dims, std::mt19937* rng, float lo = -1, float hi = 1) {
  std::uniform_real_distribution<float> d(lo, hi);
  Tensor t = Tensor::Empty(DataType::kFloat32, dims);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.mutable_data<float>()[i] = d(*rng);
  return t;
}
Tensor Int32Scalar(int32_t v) {
  Tensor t = Tensor::Empty(DataType::kInt32, {});
  *t.mutable_data<int32_t>() = v;
  return t;
}

Tensor BoolScalar(bool v) {
  Tensor t = Tensor::Empty(DataType::kBool, {});
  *t.mutable_data<bool>() = v;
  return t;
}

constexpr auto F = tfpb::DT_FLOAT;
constexpr auto I = tfpb::DT_INT32;
constexpr auto B = tfpb::DT_BOOL;

// ---------------------------------------------------------------- TF2 While

// while i < n: acc = acc * w + float(i); i += 1      (n fed: a data-dependent trip count)
tfpb::GraphDef WhileGraph(const std::string& op) {
  tfpb::GraphDef gd;
  AddPlaceholder(&gd, "n", I);
  AddPlaceholder(&gd, "x", F);
  AddPlaceholder(&gd, "w", F);
  AddConst(gd.mutable_node(), "zero", Int32Scalar(0));
  auto* w = AddNode(gd.mutable_node(), "loop", op, {"zero", "n", "x", "w"});
  SetTypes(w, "T", {I, I, F, F});
  SetFunc(w, "cond", "loop_cond");
  SetFunc(w, "body", "loop_body");
  AddNode(gd.mutable_node(), "acc", "Identity", {"loop:2"});
  AddNode(gd.mutable_node(), "count", "Identity", {"loop:0"});

  auto* c = AddFunction(&gd, "loop_cond", {{"i", I}, {"n", I}, {"acc", F}, {"w", F}},
                        {{"ok", B, "less:z:0"}});
  Binary(c->mutable_node_def(), "less", "Less", "i", "n", I);

  auto* b = AddFunction(&gd, "loop_body", {{"i", I}, {"n", I}, {"acc", F}, {"w", F}},
                        {{"i1", I, "inc:z:0"}, {"n1", I, "n_id:output:0"},
                         {"acc1", F, "add:z:0"}, {"w1", F, "w"}});
  AddConst(b->mutable_node_def(), "one", Int32Scalar(1));
  Binary(b->mutable_node_def(), "inc", "AddV2", "i", "one:output:0", I);
  AddNode(b->mutable_node_def(), "n_id", "Identity", {"n"});
  Binary(b->mutable_node_def(), "mul", "Mul", "acc", "w", F);
  auto* cast = AddNode(b->mutable_node_def(), "fi", "Cast", {"i"});
  SetType(cast, "SrcT", I);
  SetType(cast, "DstT", F);
  Binary(b->mutable_node_def(), "add", "AddV2", "mul:z:0", "fi:y:0", F);
  return gd;
}

TEST(TfControlFlow, WhileRunsADataDependentNumberOfIterations) {
  for (const char* op : {"While", "StatelessWhile"}) {
    auto s = Load(WhileGraph(op));
    ASSERT_TRUE(s.ok()) << s.status();
    std::mt19937 rng(41);
    for (int n : {0, 1, 5, 13}) {
      Tensor x = RandomFloats({3}, &rng), w = RandomFloats({3}, &rng);
      auto out = (*s)->Run({{"n:0", Int32Scalar(n)}, {"x:0", x}, {"w:0", w}},
                           {"acc:0", "count:0"});
      ASSERT_TRUE(out.ok()) << out.status();
      std::vector<float> acc(x.data<float>(), x.data<float>() + 3);
      for (int i = 0; i < n; ++i) {
        for (int k = 0; k < 3; ++k) acc[k] = acc[k] * w.data<float>()[k] + static_cast<float>(i);
      }
      EXPECT_EQ((*out)[1].data<int32_t>()[0], std::max(n, 0)) << op << " n=" << n;
      for (int k = 0; k < 3; ++k) {
        EXPECT_NEAR((*out)[0].data<float>()[k], acc[k], 1e-4f) << op << " n=" << n << " k=" << k;
      }
    }
  }
}

TEST(TfControlFlow, WhileIterationCapStopsARunawayLoop) {
  auto s = Load(WhileGraph("While"));
  ASSERT_TRUE(s.ok()) << s.status();
  std::mt19937 rng(5);
  setenv("KILN_MAX_LOOP_ITERATIONS", "50", 1);
  auto out = (*s)->Run({{"n:0", Int32Scalar(1000)}, {"x:0", RandomFloats({3}, &rng)},
                        {"w:0", RandomFloats({3}, &rng)}},
                       {"acc:0"});
  unsetenv("KILN_MAX_LOOP_ITERATIONS");
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("loop"), std::string::npos) << out.status();
}

// ---------------------------------------------------------------- TF2 If and Case

// If(s > 0): then x * y, x + 1 ; else x - y, x * 2
tfpb::GraphDef IfGraph(const std::string& op) {
  tfpb::GraphDef gd;
  AddPlaceholder(&gd, "s", F);
  AddPlaceholder(&gd, "x", F);
  AddPlaceholder(&gd, "y", F);
  AddConst(gd.mutable_node(), "zero", Tensor::FromVector<float>({0.0f}).Reshaped({}).value());
  Binary(gd.mutable_node(), "pos", "Greater", "s", "zero", F);
  auto* n = AddNode(gd.mutable_node(), "cond", op, {"pos", "x", "y"});
  SetTypes(n, "Tin", {F, F});
  SetTypes(n, "Tout", {F, F});
  SetFunc(n, "then_branch", "then_fn");
  SetFunc(n, "else_branch", "else_fn");
  auto* t = AddFunction(&gd, "then_fn", {{"a", F}, {"b", F}},
                        {{"p", F, "mul:z:0"}, {"q", F, "inc:z:0"}});
  Binary(t->mutable_node_def(), "mul", "Mul", "a", "b", F);
  AddConst(t->mutable_node_def(), "one", Tensor::FromVector<float>({1.0f}));
  Binary(t->mutable_node_def(), "inc", "AddV2", "a", "one:output:0", F);
  auto* e = AddFunction(&gd, "else_fn", {{"a", F}, {"b", F}},
                        {{"p", F, "sub:z:0"}, {"q", F, "dbl:z:0"}});
  Binary(e->mutable_node_def(), "sub", "Sub", "a", "b", F);
  AddConst(e->mutable_node_def(), "two", Tensor::FromVector<float>({2.0f}));
  Binary(e->mutable_node_def(), "dbl", "Mul", "a", "two:output:0", F);
  return gd;
}

TEST(TfControlFlow, IfRunsTheBranchThePredicatePicks) {
  for (const char* op : {"If", "StatelessIf"}) {
    auto s = Load(IfGraph(op));
    ASSERT_TRUE(s.ok()) << s.status();
    std::mt19937 rng(7);
    for (int trial = 0; trial < 6; ++trial) {
      Tensor sc = RandomFloats({}, &rng);
      Tensor x = RandomFloats({2, 3}, &rng), y = RandomFloats({2, 3}, &rng);
      auto out = (*s)->Run({{"s:0", sc}, {"x:0", x}, {"y:0", y}}, {"cond:0", "cond:1"});
      ASSERT_TRUE(out.ok()) << out.status();
      const bool pos = sc.data<float>()[0] > 0;
      for (int k = 0; k < 6; ++k) {
        float a = x.data<float>()[k], b = y.data<float>()[k];
        EXPECT_FLOAT_EQ((*out)[0].data<float>()[k], pos ? a * b : a - b);
        EXPECT_FLOAT_EQ((*out)[1].data<float>()[k], pos ? a + 1 : a * 2);
      }
    }
  }
}

TEST(TfControlFlow, CaseRunsTheIndexedBranchAndTheLastOneOutOfRange) {
  tfpb::GraphDef gd;
  AddPlaceholder(&gd, "idx", I);
  AddPlaceholder(&gd, "x", F);
  auto* n = AddNode(gd.mutable_node(), "case", "Case", {"idx", "x"});
  SetTypes(n, "Tin", {F});
  SetTypes(n, "Tout", {F});
  auto* l = (*n->mutable_attr())["branches"].mutable_list();
  const char* ops[] = {"Neg", "Exp", "Abs"};
  for (int b = 0; b < 3; ++b) {
    std::string fname = "branch" + std::to_string(b);
    l->add_func()->set_name(fname);
    auto* f = AddFunction(&gd, fname, {{"a", F}}, {{"r", F, "op:y:0"}});
    auto* u = AddNode(f->mutable_node_def(), "op", ops[b], {"a"});
    SetType(u, "T", F);
  }
  auto s = Load(gd);
  ASSERT_TRUE(s.ok()) << s.status();
  std::mt19937 rng(3);
  for (int idx : {0, 1, 2, 7, -1}) {
    Tensor x = RandomFloats({4}, &rng);
    auto out = (*s)->Run({{"idx:0", Int32Scalar(idx)}, {"x:0", x}}, {"case:0"});
    ASSERT_TRUE(out.ok()) << out.status();
    const int b = idx >= 0 && idx < 3 ? idx : 2;
    for (int k = 0; k < 4; ++k) {
      float a = x.data<float>()[k];
      float want = b == 0 ? -a : b == 1 ? std::exp(a) : std::fabs(a);
      EXPECT_NEAR((*out)[0].data<float>()[k], want, 1e-5f) << "idx=" << idx;
    }
  }
}

// StatefulPartitionedCall inlined; its function holds a StatelessIf (nested functions).
TEST(TfControlFlow, PartitionedCallIsInlinedWithNestedIf) {
  tfpb::GraphDef gd = IfGraph("StatelessIf");
  // Wrap: call(s, x, y) = f(s, x, y) where f holds the If of IfGraph.
  tfpb::GraphDef outer;
  *outer.mutable_library() = gd.library();
  AddPlaceholder(&outer, "s", F);
  AddPlaceholder(&outer, "x", F);
  AddPlaceholder(&outer, "y", F);
  auto* f = AddFunction(&outer, "wrapped", {{"s", F}, {"x", F}, {"y", F}},
                        {{"o", F, "cond:output:1"}});
  AddConst(f->mutable_node_def(), "zero", Tensor::FromVector<float>({0.0f}).Reshaped({}).value());
  Binary(f->mutable_node_def(), "pos", "Greater", "s", "zero:output:0", F);
  auto* n = AddNode(f->mutable_node_def(), "cond", "StatelessIf", {"pos:z:0", "x", "y"});
  SetTypes(n, "Tin", {F, F});
  SetTypes(n, "Tout", {F, F});
  SetFunc(n, "then_branch", "then_fn");
  SetFunc(n, "else_branch", "else_fn");
  auto* call = AddNode(outer.mutable_node(), "call", "StatefulPartitionedCall", {"s", "x", "y"});
  SetFunc(call, "f", "wrapped");
  SetTypes(call, "Tout", {F});
  auto s = Load(outer);
  ASSERT_TRUE(s.ok()) << s.status();
  std::mt19937 rng(9);
  for (int trial = 0; trial < 4; ++trial) {
    Tensor sc = RandomFloats({}, &rng), x = RandomFloats({5}, &rng), y = RandomFloats({5}, &rng);
    auto out = (*s)->Run({{"s:0", sc}, {"x:0", x}, {"y:0", y}}, {"call:0"});
    ASSERT_TRUE(out.ok()) << out.status();
    for (int k = 0; k < 5; ++k) {
      float a = x.data<float>()[k];
      EXPECT_FLOAT_EQ((*out)[0].data<float>()[k], sc.data<float>()[0] > 0 ? a + 1 : a * 2);
    }
  }
}

TEST(TfControlFlow, MissingFunctionIsAnErrorNamingTheNode) {
  tfpb::GraphDef gd = IfGraph("If");
  (*gd.mutable_node(5)->mutable_attr())["else_branch"].mutable_func()->set_name("nope");
  TfImportOptions opts;
  opts.source = "cf.pb";
  auto g = ImportGraphDef(gd, opts);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("'cond'"), std::string::npos) << g.status();
  EXPECT_NE(g.status().message().find("'nope'"), std::string::npos) << g.status();
}

TEST(TfControlFlow, RecursiveFunctionIsRefused) {
  tfpb::GraphDef gd;
  AddPlaceholder(&gd, "p", B);
  AddPlaceholder(&gd, "x", F);
  auto* n = AddNode(gd.mutable_node(), "rec", "If", {"p", "x"});
  SetTypes(n, "Tout", {F});
  SetFunc(n, "then_branch", "self");
  SetFunc(n, "else_branch", "self");
  auto* f = AddFunction(&gd, "self", {{"a", F}}, {{"r", F, "inner:output:0"}});
  AddConst(f->mutable_node_def(), "t", BoolScalar(true));
  auto* in = AddNode(f->mutable_node_def(), "inner", "If", {"t:output:0", "a"});
  SetTypes(in, "Tout", {F});
  SetFunc(in, "then_branch", "self");
  SetFunc(in, "else_branch", "self");
  auto g = ImportGraphDef(gd, {});
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("nested"), std::string::npos) << g.status();
}

// ---------------------------------------------------------------- TF1 while frames

// A TF1 while frame built like tf.while_loop does: Enter -> Merge <- NextIteration, Switch on
// LoopCond, Identity(Switch:1) into the body, Exit(Switch:0).
struct Tf1Frame {
  tfpb::GraphDef* gd;
  std::string p;
  size_t nvars = 0;
  std::string Merge(size_t k) const { return p + "/Merge_" + std::to_string(k); }
  std::string Var(size_t k) const { return p + "/Identity_" + std::to_string(k); }
  std::string Inv(size_t j) const { return p + "/Inv_" + std::to_string(j); }
  std::string Exit(size_t k) const { return p + "/Exit_" + std::to_string(k); }
};
tfpb::NodeDef* Enter(tfpb::GraphDef* gd, const std::string& name, const std::string& frame,
                     const std::string& in, tfpb::DataType t, bool constant) {
  auto* e = AddNode(gd->mutable_node(), name, "Enter", {in});
  SetType(e, "T", t);
  (*e->mutable_attr())["frame_name"].set_s(frame);
  (*e->mutable_attr())["is_constant"].set_b(constant);
  return e;
}
Tf1Frame BeginFrame(tfpb::GraphDef* gd, const std::string& p,
                    std::vector<std::pair<std::string, tfpb::DataType>> vars,
                    std::vector<std::pair<std::string, tfpb::DataType>> invariants) {
  Tf1Frame f{gd, p, vars.size()};
  for (size_t k = 0; k < vars.size(); ++k) {
    const std::string ks = std::to_string(k);
    Enter(gd, p + "/Enter_" + ks, p + "/while_context", vars[k].first, vars[k].second, false);
    auto* m = AddNode(gd->mutable_node(), f.Merge(k), "Merge",
                      {p + "/Enter_" + ks, p + "/NextIteration_" + ks});
    SetType(m, "T", vars[k].second);
  }
  for (size_t j = 0; j < invariants.size(); ++j) {
    Enter(gd, f.Inv(j), p + "/while_context", invariants[j].first, invariants[j].second, true);
  }
  return f;
}
void SetLoopCond(const Tf1Frame& f, const std::string& pred) {
  AddNode(f.gd->mutable_node(), f.p + "/LoopCond", "LoopCond", {pred});
  for (size_t k = 0; k < f.nvars; ++k) {
    const std::string ks = std::to_string(k);
    AddNode(f.gd->mutable_node(), f.p + "/Switch_" + ks, "Switch",
            {f.Merge(k), f.p + "/LoopCond"});
    AddNode(f.gd->mutable_node(), f.Var(k), "Identity", {f.p + "/Switch_" + ks + ":1"});
    AddNode(f.gd->mutable_node(), f.Exit(k), "Exit", {f.p + "/Switch_" + ks});
  }
}
void EndFrame(const Tf1Frame& f, std::vector<std::string> next) {
  for (size_t k = 0; k < next.size(); ++k) {
    AddNode(f.gd->mutable_node(), f.p + "/NextIteration_" + std::to_string(k), "NextIteration",
            {next[k]});
  }
}
// A Const inside the frame (control dependency on the body, as TF places it).
void FrameConst(const Tf1Frame& f, const std::string& name, const Tensor& t) {
  auto* c = AddConst(f.gd->mutable_node(), name, t);
  c->add_input("^" + f.Var(0));
}

// Placeholders n (int32), x, w, acc0 (float) and a while frame `prefix` over (i = 0, acc0),
// with loop invariants (n, w, x), that runs while i < n.
Tf1Frame CountedAccFrame(tfpb::GraphDef* gd, const std::string& prefix) {
  AddPlaceholder(gd, "n", I);
  AddPlaceholder(gd, "x", F);
  AddPlaceholder(gd, "w", F);
  AddPlaceholder(gd, "acc0", F);
  AddConst(gd->mutable_node(), "zero", Int32Scalar(0));
  Tf1Frame f = BeginFrame(gd, prefix, {{"zero", I}, {"acc0", F}}, {{"n", I}, {"w", F}, {"x", F}});
  Binary(gd->mutable_node(), prefix + "/Less", "Less", f.Merge(0), f.Inv(0), I);
  SetLoopCond(f, prefix + "/Less");
  return f;
}

// outer: for i in [0, n): inner: for j in [0, i): acc = acc * w + x
// (nested frames, loop-invariant Enters in both, an inner trip count set by the outer loop).
tfpb::GraphDef NestedTf1Loops() {
  tfpb::GraphDef gd;
  Tf1Frame o = CountedAccFrame(&gd, "outer");
  FrameConst(o, "outer/one", Int32Scalar(1));
  Binary(gd.mutable_node(), "outer/inc", "AddV2", o.Var(0), "outer/one", I);
  FrameConst(o, "outer/zero_j", Int32Scalar(0));
  Tf1Frame in = BeginFrame(&gd, "outer/inner", {{"outer/zero_j", I}, {o.Var(1), F}},
                           {{o.Var(0), I}, {o.Inv(1), F}, {o.Inv(2), F}});
  Binary(gd.mutable_node(), "outer/inner/Less", "Less", in.Merge(0), in.Inv(0), I);
  SetLoopCond(in, "outer/inner/Less");
  FrameConst(in, "outer/inner/one", Int32Scalar(1));
  Binary(gd.mutable_node(), "outer/inner/inc", "AddV2", in.Var(0), "outer/inner/one", I);
  Binary(gd.mutable_node(), "outer/inner/mul", "Mul", in.Var(1), in.Inv(1), F);
  Binary(gd.mutable_node(), "outer/inner/add", "AddV2", "outer/inner/mul", in.Inv(2), F);
  EndFrame(in, {"outer/inner/inc", "outer/inner/add"});
  EndFrame(o, {"outer/inc", in.Exit(1)});
  AddNode(gd.mutable_node(), "result", "Identity", {o.Exit(1)});
  AddNode(gd.mutable_node(), "count", "Identity", {o.Exit(0)});
  return gd;
}

TEST(TfControlFlow, Tf1NestedWhileFramesRunDataDependentTripCounts) {
  auto s = Load(NestedTf1Loops());
  ASSERT_TRUE(s.ok()) << s.status();
  std::mt19937 rng(23);
  for (int n : {0, 1, 4, 7}) {
    Tensor x = RandomFloats({3}, &rng), w = RandomFloats({3}, &rng, 0.5f, 1.0f);
    Tensor acc0 = RandomFloats({3}, &rng);
    auto out = (*s)->Run({{"n:0", Int32Scalar(n)}, {"x:0", x}, {"w:0", w}, {"acc0:0", acc0}},
                         {"result:0", "count:0"});
    ASSERT_TRUE(out.ok()) << out.status();
    std::vector<float> acc(acc0.data<float>(), acc0.data<float>() + 3);
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < i; ++j) {
        for (int k = 0; k < 3; ++k) acc[k] = acc[k] * w.data<float>()[k] + x.data<float>()[k];
      }
    }
    EXPECT_EQ((*out)[1].data<int32_t>()[0], n);
    for (int k = 0; k < 3; ++k) {
      EXPECT_NEAR((*out)[0].data<float>()[k], acc[k], 1e-4f) << "n=" << n << " k=" << k;
    }
  }
}

// for i in [0, n): ta.write(i, x[i] * s); after the loop: ta.stack(), ta.size();
// the input is unstacked into a second TensorArray read in the body (map_fn's pattern).
tfpb::GraphDef TensorArrayLoop() {
  tfpb::GraphDef gd;
  AddPlaceholder(&gd, "x", F);  // [n, 2]
  AddPlaceholder(&gd, "s", F);
  auto* shape = AddNode(gd.mutable_node(), "shape", "Shape", {"x"});
  SetType(shape, "out_type", I);
  AddConst(gd.mutable_node(), "zero", Int32Scalar(0));
  AddConst(gd.mutable_node(), "zero1", Tensor::FromVector<int32_t>({0}));
  AddConst(gd.mutable_node(), "one1", Tensor::FromVector<int32_t>({1}));
  auto* n = AddNode(gd.mutable_node(), "n", "StridedSlice", {"shape", "zero1", "one1", "one1"});
  SetType(n, "T", I);
  SetType(n, "Index", I);
  (*n->mutable_attr())["shrink_axis_mask"].set_i(1);
  auto* in_ta = AddNode(gd.mutable_node(), "in_ta", "TensorArrayV3", {"n"});
  SetType(in_ta, "dtype", F);
  auto* out_ta = AddNode(gd.mutable_node(), "out_ta", "TensorArrayV3", {"n"});
  SetType(out_ta, "dtype", F);
  AddConst(gd.mutable_node(), "one", Int32Scalar(1));
  AddNode(gd.mutable_node(), "range", "Range", {"zero", "n", "one"});
  auto* sc = AddNode(gd.mutable_node(), "scatter", "TensorArrayScatterV3",
                     {"in_ta", "range", "x", "in_ta:1"});
  SetType(sc, "T", F);
  Tf1Frame f = BeginFrame(&gd, "w", {{"zero", I}, {"out_ta:1", F}}, {{"n", I}, {"s", F}});
  Enter(&gd, "w/in_handle", "w/while_context", "in_ta", tfpb::DT_RESOURCE, true);
  Enter(&gd, "w/in_flow", "w/while_context", "scatter", F, true);
  Enter(&gd, "w/out_handle", "w/while_context", "out_ta", tfpb::DT_RESOURCE, true);
  Binary(gd.mutable_node(), "w/Less", "Less", f.Merge(0), f.Inv(0), I);
  SetLoopCond(f, "w/Less");
  auto* rd = AddNode(gd.mutable_node(), "w/read", "TensorArrayReadV3",
                     {"w/in_handle", f.Var(0), "w/in_flow"});
  SetType(rd, "dtype", F);
  Binary(gd.mutable_node(), "w/scaled", "Mul", "w/read", f.Inv(1), F);
  auto* wr = AddNode(gd.mutable_node(), "w/write", "TensorArrayWriteV3",
                     {"w/out_handle", f.Var(0), "w/scaled", f.Var(1)});
  SetType(wr, "T", F);
  FrameConst(f, "w/one", Int32Scalar(1));
  Binary(gd.mutable_node(), "w/inc", "AddV2", f.Var(0), "w/one", I);
  EndFrame(f, {"w/inc", "w/write"});
  AddNode(gd.mutable_node(), "size", "TensorArraySizeV3", {"out_ta", f.Exit(1)});
  AddNode(gd.mutable_node(), "all", "Range", {"zero", "size", "one"});
  auto* g = AddNode(gd.mutable_node(), "stack", "TensorArrayGatherV3", {"out_ta", "all", f.Exit(1)});
  SetType(g, "dtype", F);
  return gd;
}

TEST(TfControlFlow, Tf1TensorArraysAreCarriedThroughTheLoop) {
  auto s = Load(TensorArrayLoop());
  ASSERT_TRUE(s.ok()) << s.status();
  std::mt19937 rng(31);
  for (int n : {1, 3, 6}) {
    Tensor x = RandomFloats({n, 2}, &rng), sc = RandomFloats({}, &rng);
    auto out = (*s)->Run({{"x:0", x}, {"s:0", sc}}, {"stack:0", "size:0"});
    ASSERT_TRUE(out.ok()) << out.status();
    ASSERT_EQ((*out)[0].dims(), (std::vector<int64_t>{n, 2}));
    EXPECT_EQ((*out)[1].data<int32_t>()[0], n);
    for (int k = 0; k < 2 * n; ++k) {
      EXPECT_FLOAT_EQ((*out)[0].data<float>()[k], x.data<float>()[k] * sc.data<float>()[0]);
    }
  }
}

TEST(TfControlFlow, Tf1RunawayLoopIsStoppedByTheCap) {
  auto s = Load(NestedTf1Loops());
  ASSERT_TRUE(s.ok()) << s.status();
  std::mt19937 rng(2);
  setenv("KILN_MAX_LOOP_ITERATIONS", "30", 1);
  auto out = (*s)->Run({{"n:0", Int32Scalar(1 << 30)}, {"x:0", RandomFloats({3}, &rng)},
                        {"w:0", RandomFloats({3}, &rng)}, {"acc0:0", RandomFloats({3}, &rng)}},
                       {"result:0"});
  unsetenv("KILN_MAX_LOOP_ITERATIONS");
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("KILN_MAX_LOOP_ITERATIONS"), std::string::npos)
      << out.status();
}

Status ImportError(const tfpb::GraphDef& gd) {
  TfImportOptions opts;
  opts.source = "bad.pb";
  auto g = ImportGraphDef(gd, opts);
  return g.ok() ? Status::OK() : g.status();
}

TEST(TfControlFlow, Tf1NextIterationWithoutMergeIsAnError) {
  tfpb::GraphDef gd = NestedTf1Loops();
  AddNode(gd.mutable_node(), "outer/NextIteration_stray", "NextIteration", {"outer/inc"});
  Status st = ImportError(gd);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("'outer/NextIteration_stray'"), std::string::npos) << st;
  EXPECT_NE(st.message().find("no matching Merge"), std::string::npos) << st;
}

TEST(TfControlFlow, Tf1ExitOutsideAFrameIsAnError) {
  tfpb::GraphDef gd;
  AddPlaceholder(&gd, "x", F);
  AddNode(gd.mutable_node(), "lost", "Exit", {"x"});
  Status st = ImportError(gd);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("'lost'"), std::string::npos) << st;
  EXPECT_NE(st.message().find("outside any while frame"), std::string::npos) << st;
}

TEST(TfControlFlow, Tf1NonBooleanPredicateIsAnError) {
  tfpb::GraphDef gd = NestedTf1Loops();
  for (auto& n : *gd.mutable_node()) {
    if (n.name() == "outer/LoopCond") n.set_input(0, "outer/pred_f");
  }
  auto* c = AddNode(gd.mutable_node(), "outer/pred_f", "Cast", {"outer/Less"});
  SetType(c, "SrcT", B);
  SetType(c, "DstT", F);
  Status st = ImportError(gd);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("'outer/LoopCond'"), std::string::npos) << st;
  EXPECT_NE(st.message().find("not bool"), std::string::npos) << st;
}

TEST(TfControlFlow, Tf1ValueLeavingAFrameWithoutExitIsAnError) {
  tfpb::GraphDef gd = NestedTf1Loops();
  AddNode(gd.mutable_node(), "peek", "Identity", {"outer/inc"});
  Status st = ImportError(gd);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("'peek'"), std::string::npos) << st;
}

// ---------------------------------------------------------------- TF1 tf.cond

// The nodes tf.cond makes: Switch per outside value, a pivot Identity whose control edge puts
// branch constants into the branch, Merge joining the two sides.
struct Tf1Cond {
  tfpb::GraphDef* gd;
  std::string p, pred;
  std::string In(const std::string& v, int side) const {
    return p + "/Switch_" + v + ":" + std::to_string(side);
  }
};
Tf1Cond BeginCond(tfpb::GraphDef* gd, const std::string& p, const std::string& pred,
                  std::vector<std::string> values) {
  AddNode(gd->mutable_node(), p + "/pred_id", "Identity", {pred});
  auto* sp = AddNode(gd->mutable_node(), p + "/Switch", "Switch", {p + "/pred_id", p + "/pred_id"});
  SetType(sp, "T", B);
  AddNode(gd->mutable_node(), p + "/switch_t", "Identity", {p + "/Switch:1"});
  AddNode(gd->mutable_node(), p + "/switch_f", "Identity", {p + "/Switch:0"});
  for (const auto& v : values) {
    auto* sw = AddNode(gd->mutable_node(), p + "/Switch_" + v, "Switch", {v, p + "/pred_id"});
    SetType(sw, "T", F);
  }
  return {gd, p, p + "/pred_id"};
}

// out = s > 0 ? x * y + 2 : x - y     (also the two branch values through a second Merge)
tfpb::GraphDef CondGraph() {
  tfpb::GraphDef gd;
  AddPlaceholder(&gd, "s", F);
  AddPlaceholder(&gd, "x", F);
  AddPlaceholder(&gd, "y", F);
  AddConst(gd.mutable_node(), "zero", Tensor::FromVector<float>({0.0f}).Reshaped({}).value());
  Binary(gd.mutable_node(), "pos", "Greater", "s", "zero", F);
  Tf1Cond c = BeginCond(&gd, "cond", "pos", {"x", "y"});
  Binary(gd.mutable_node(), "cond/mul", "Mul", c.In("x", 1), c.In("y", 1), F);
  auto* two = AddConst(gd.mutable_node(), "cond/two", Tensor::FromVector<float>({2.0f}));
  two->add_input("^cond/switch_t");
  Binary(gd.mutable_node(), "cond/add", "AddV2", "cond/mul", "cond/two", F);
  Binary(gd.mutable_node(), "cond/sub", "Sub", c.In("x", 0), c.In("y", 0), F);
  auto* m = AddNode(gd.mutable_node(), "cond/Merge", "Merge", {"cond/sub", "cond/add"});
  SetType(m, "T", F);
  Binary(gd.mutable_node(), "out", "Mul", "cond/Merge", "x", F);
  return gd;
}

TEST(TfControlFlow, Tf1CondRunsTheTakenBranch) {
  auto s = Load(CondGraph());
  ASSERT_TRUE(s.ok()) << s.status();
  std::mt19937 rng(13);
  for (int trial = 0; trial < 6; ++trial) {
    Tensor sc = RandomFloats({}, &rng), x = RandomFloats({4}, &rng), y = RandomFloats({4}, &rng);
    auto out = (*s)->Run({{"s:0", sc}, {"x:0", x}, {"y:0", y}}, {"out:0"});
    ASSERT_TRUE(out.ok()) << out.status();
    for (int k = 0; k < 4; ++k) {
      const float a = x.data<float>()[k], b = y.data<float>()[k];
      const float m = sc.data<float>()[0] > 0 ? a * b + 2 : a - b;
      EXPECT_FLOAT_EQ((*out)[0].data<float>()[k], m * a);
    }
  }
}

// for i in [0, n): acc = (i % 2 == 0) ? acc * w : acc + x     (a tf.cond inside a while frame)
TEST(TfControlFlow, Tf1CondInsideAWhileFrame) {
  tfpb::GraphDef gd;
  Tf1Frame f = CountedAccFrame(&gd, "w");
  FrameConst(f, "w/two", Int32Scalar(2));
  Binary(gd.mutable_node(), "w/mod", "FloorMod", f.Var(0), "w/two", I);
  FrameConst(f, "w/zero", Int32Scalar(0));
  Binary(gd.mutable_node(), "w/even", "Equal", "w/mod", "w/zero", I);
  Tf1Cond c = BeginCond(&gd, "w/cond", "w/even", {f.Var(1), f.Inv(1), f.Inv(2)});
  Binary(gd.mutable_node(), "w/cond/mul", "Mul", c.In(f.Var(1), 1), c.In(f.Inv(1), 1), F);
  Binary(gd.mutable_node(), "w/cond/add", "AddV2", c.In(f.Var(1), 0), c.In(f.Inv(2), 0), F);
  auto* m = AddNode(gd.mutable_node(), "w/cond/Merge", "Merge", {"w/cond/add", "w/cond/mul"});
  SetType(m, "T", F);
  FrameConst(f, "w/one", Int32Scalar(1));
  Binary(gd.mutable_node(), "w/inc", "AddV2", f.Var(0), "w/one", I);
  EndFrame(f, {"w/inc", "w/cond/Merge"});
  AddNode(gd.mutable_node(), "result", "Identity", {f.Exit(1)});
  auto s = Load(gd);
  ASSERT_TRUE(s.ok()) << s.status();
  std::mt19937 rng(17);
  for (int n : {0, 1, 2, 5}) {
    Tensor x = RandomFloats({2}, &rng), w = RandomFloats({2}, &rng), acc0 = RandomFloats({2}, &rng);
    auto out = (*s)->Run({{"n:0", Int32Scalar(n)}, {"x:0", x}, {"w:0", w}, {"acc0:0", acc0}},
                         {"result:0"});
    ASSERT_TRUE(out.ok()) << out.status();
    std::vector<float> acc(acc0.data<float>(), acc0.data<float>() + 2);
    for (int i = 0; i < n; ++i) {
      for (int k = 0; k < 2; ++k) {
        acc[k] = i % 2 == 0 ? acc[k] * w.data<float>()[k] : acc[k] + x.data<float>()[k];
      }
    }
    for (int k = 0; k < 2; ++k) EXPECT_FLOAT_EQ((*out)[0].data<float>()[k], acc[k]) << n;
  }
}

TEST(TfControlFlow, Tf1CondNonBooleanPredicateIsAnError) {
  tfpb::GraphDef gd = CondGraph();
  for (auto& n : *gd.mutable_node()) {
    if (n.name() == "cond/pred_id") n.set_input(0, "s");
  }
  Status st = ImportError(gd);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("'cond/Switch'"), std::string::npos) << st;
  EXPECT_NE(st.message().find("not bool"), std::string::npos) << st;
}

TEST(TfControlFlow, Tf1CondBranchReadOutsideMergeIsAnError) {
  tfpb::GraphDef gd = CondGraph();
  AddNode(gd.mutable_node(), "leak", "Identity", {"cond/mul"});
  Status st = ImportError(gd);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("'leak'"), std::string::npos) << st;
}

// ---------------------------------------------------------------- conversion

// relu(x) * 2 + x -> While(acc = tanh(acc) * w, n times) -> sigmoid(acc) + x: engines on both
// sides of the loop, never across it; the converted graph computes the same values.
TEST(TfControlFlow, ConversionBuildsEnginesAroundLoopsNotAcrossThem) {
  tfpb::GraphDef gd;
  for (const char* name : {"x", "w"}) {
    auto* p = AddPlaceholder(&gd, name, F);
    auto* shape = (*p->mutable_attr())["shape"].mutable_shape();
    shape->add_dim()->set_size(2);
    shape->add_dim()->set_size(8);
  }
  AddPlaceholder(&gd, "n", I);
  AddConst(gd.mutable_node(), "two", Tensor::FromVector<float>({2.0f}));
  auto* r = AddNode(gd.mutable_node(), "pre_relu", "Relu", {"x"});
  SetType(r, "T", F);
  Binary(gd.mutable_node(), "pre_mul", "Mul", "pre_relu", "two", F);
  Binary(gd.mutable_node(), "pre_add", "AddV2", "pre_mul", "x", F);
  AddConst(gd.mutable_node(), "zero", Int32Scalar(0));
  auto* w = AddNode(gd.mutable_node(), "loop", "StatelessWhile", {"zero", "n", "pre_add", "w"});
  SetTypes(w, "T", {I, I, F, F});
  SetFunc(w, "cond", "c");
  SetFunc(w, "body", "b");
  auto* c = AddFunction(&gd, "c", {{"i", I}, {"n", I}, {"acc", F}, {"w", F}},
                        {{"ok", B, "less:z:0"}});
  Binary(c->mutable_node_def(), "less", "Less", "i", "n", I);
  auto* b = AddFunction(&gd, "b", {{"i", I}, {"n", I}, {"acc", F}, {"w", F}},
                        {{"i1", I, "inc:z:0"}, {"n1", I, "n"}, {"a1", F, "mul:z:0"},
                         {"w1", F, "w"}});
  AddConst(b->mutable_node_def(), "one", Int32Scalar(1));
  Binary(b->mutable_node_def(), "inc", "AddV2", "i", "one:output:0", I);
  auto* t = AddNode(b->mutable_node_def(), "tanh", "Tanh", {"acc"});
  SetType(t, "T", F);
  Binary(b->mutable_node_def(), "mul", "Mul", "tanh:y:0", "w", F);
  // Loop outputs have unknown shapes to the converter; a Reshape to [2, 8] restores them.
  AddConst(gd.mutable_node(), "shape28", Tensor::FromVector<int32_t>({2, 8}));
  auto* rs = AddNode(gd.mutable_node(), "post_shape", "Reshape", {"loop:2", "shape28"});
  SetType(rs, "T", F);
  SetType(rs, "Tshape", I);
  auto* sg = AddNode(gd.mutable_node(), "post_sig", "Sigmoid", {"post_shape"});
  SetType(sg, "T", F);
  Binary(gd.mutable_node(), "post_add", "AddV2", "post_sig", "x", F);
  Binary(gd.mutable_node(), "out", "Mul", "post_add", "post_sig", F);

  auto g = ImportGraphDef(gd, {});
  ASSERT_TRUE(g.ok()) << g.status();
  ConversionParams params;
  params.minimum_segment_size = 2;
  params.outputs = {"out:0"};
  auto conv = CreateInferenceGraph(*g, params);
  ASSERT_TRUE(conv.ok()) << conv.status();
  int engines = 0, loops = 0;
  for (const Node& node : conv->graph().nodes) {
    if (node.op_type == "Loop") ++loops;
    if (node.op_type != "EngineOp") continue;
    ++engines;
    const Attr* f = node.FindAttr("segment_func");
    ASSERT_NE(f, nullptr);
    auto seg = conv->graph().functions.find(f->s);
    ASSERT_NE(seg, conv->graph().functions.end());
    for (const Node& inner : seg->second->nodes) {
      EXPECT_NE(inner.op_type, "Loop") << node.name;
      EXPECT_NE(inner.op_type, "If") << node.name;
    }
  }
  EXPECT_EQ(loops, 1);
  EXPECT_GE(engines, 2) << conv->summary().ToString();
  auto s0 = Session::FromGraph(std::move(g).value());
  auto s1 = Session::FromGraph(conv->graph());
  ASSERT_TRUE(s0.ok()) << s0.status();
  ASSERT_TRUE(s1.ok()) << s1.status();
  std::mt19937 rng(29);
  for (int n : {0, 3}) {
    Feeds feeds = {{"x:0", RandomFloats({2, 8}, &rng)}, {"w:0", RandomFloats({2, 8}, &rng)},
                   {"n:0", Int32Scalar(n)}};
    auto a = (*s0)->Run(feeds, {"out:0"});
    auto e = (*s1)->Run(feeds, {"out:0"});
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(e.ok()) << e.status();
    for (int k = 0; k < 16; ++k) {
      EXPECT_NEAR((*a)[0].data<float>()[k], (*e)[0].data<float>()[k], 1e-5f) << "n=" << n;
    }
  }
}

// ---------------------------------------------------------------- kiln inspect

TEST(TfControlFlow, InspectListsLoopsAndBranchesWithBodySizes) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("kiln_tfcf_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  struct Case {
    tfpb::GraphDef gd;
    std::string op, origin;
    int depth;
  };
  std::vector<Case> cases = {{WhileGraph("StatelessWhile"), "Loop", "StatelessWhile", 0},
                             {IfGraph("If"), "If", "If", 0},
                             {NestedTf1Loops(), "Loop", "TF1 while frame", 1},
                             {CondGraph(), "If", "If", 0}};
  for (size_t k = 0; k < cases.size(); ++k) {
    const std::string path = (dir / ("m" + std::to_string(k) + ".pb")).string();
    {
      std::ofstream f(path, std::ios::binary);
      f << cases[k].gd.SerializeAsString();
    }
    auto info = InspectModel(path);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_TRUE(info->unsupported.empty());
    ASSERT_FALSE(info->control_flow.empty()) << path;
    const ControlFlowInfo& top = info->control_flow[0];
    EXPECT_EQ(top.op_type, cases[k].op);
    EXPECT_EQ(top.origin, cases[k].origin);
    EXPECT_EQ(top.depth, 0);
    ASSERT_FALSE(top.bodies.empty());
    for (const auto& [attr, n] : top.bodies) EXPECT_GT(n, 0) << attr;
    // the nested TF1 frame: the inner loop is listed inside the outer body
    EXPECT_EQ(info->control_flow.back().depth, cases[k].depth);
  }
  fs::remove_all(dir);
}

// ---------------------------------------------------------------- engines inside bodies

// StatelessWhile whose body has a float chain (acc' = Tanh(Relu(acc * w) + w)): the converter
// builds an engine inside the body (loop-carried shape [2,8] from the initial value) and the
// converted graph matches; the GraphDef writer keeps TF function bodies native (with a
// warning): the file is the one written for the unconverted graph.
TEST(TfControlFlow, EngineInsideWhileBodyAndGraphDefKeepsTheBodyNative) {
  tfpb::GraphDef gd;
  for (const char* name : {"x", "w"}) {
    auto* p = AddPlaceholder(&gd, name, F);
    auto* shape = (*p->mutable_attr())["shape"].mutable_shape();
    shape->add_dim()->set_size(2);
    shape->add_dim()->set_size(8);
  }
  AddPlaceholder(&gd, "n", I);
  AddConst(gd.mutable_node(), "zero", Int32Scalar(0));
  auto* w = AddNode(gd.mutable_node(), "loop", "StatelessWhile", {"zero", "n", "x", "w"});
  SetTypes(w, "T", {I, I, F, F});
  SetFunc(w, "cond", "c");
  SetFunc(w, "body", "b");
  AddNode(gd.mutable_node(), "out", "Identity", {"loop:2"});
  auto* c = AddFunction(&gd, "c", {{"i", I}, {"n", I}, {"acc", F}, {"w", F}},
                        {{"ok", B, "less:z:0"}});
  Binary(c->mutable_node_def(), "less", "Less", "i", "n", I);
  auto* b = AddFunction(&gd, "b", {{"i", I}, {"n", I}, {"acc", F}, {"w", F}},
                        {{"i1", I, "inc:z:0"}, {"n1", I, "n"}, {"a1", F, "tanh:y:0"},
                         {"w1", F, "w"}});
  AddConst(b->mutable_node_def(), "one", Int32Scalar(1));
  Binary(b->mutable_node_def(), "inc", "AddV2", "i", "one:output:0", I);
  Binary(b->mutable_node_def(), "mul", "Mul", "acc", "w", F);
  SetType(AddNode(b->mutable_node_def(), "relu", "Relu", {"mul:z:0"}), "T", F);
  Binary(b->mutable_node_def(), "add", "AddV2", "relu:activations:0", "w", F);
  SetType(AddNode(b->mutable_node_def(), "tanh", "Tanh", {"add:z:0"}), "T", F);

  auto g = ImportGraphDef(gd, {});
  ASSERT_TRUE(g.ok()) << g.status();
  ConversionParams params;
  auto conv = CreateInferenceGraph(*g, params);
  ASSERT_TRUE(conv.ok()) << conv.status();
  const ConversionSummary& summary = conv->summary();
  ASSERT_EQ(summary.subgraphs.size(), 1u) << summary.ToString();
  EXPECT_EQ(summary.subgraphs[0].rfind("Loop 'loop' body: 1 engine, ", 0), 0u)
      << summary.subgraphs[0];
  ASSERT_EQ(summary.engines.size(), 1u) << summary.ToString();
  EXPECT_EQ(summary.engines[0].status, "built");
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("kiln_tfcf_engines_" + std::to_string(::getpid()) + ".pbtxt"))
                               .string();
  // The GraphDef written for the converted graph is the one written for the unconverted graph:
  // the While's function library is the original one (the body engine is dropped, with a
  // warning), and no KilnEngineOp appears.
  auto file_bytes = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  ASSERT_TRUE(conv->Save(path).ok());
  const std::string converted_bytes = file_bytes(path);
  params.minimum_segment_size = -1;
  auto plain = CreateInferenceGraph(*g, params);
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_TRUE(plain->Save(path).ok());
  EXPECT_EQ(converted_bytes, file_bytes(path));
  EXPECT_EQ(converted_bytes.find("KilnEngineOp"), std::string::npos);
  auto s0 = Session::FromGraph(std::move(g).value());
  auto s1 = Session::FromGraph(conv->graph());
  ASSERT_TRUE(s0.ok()) << s0.status();
  ASSERT_TRUE(s1.ok()) << s1.status();
  // The written GraphDef loads and runs too (its While is imported again).
  auto reloaded = Session::Load(path);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  std::mt19937 rng(31);
  for (int n : {0, 2, 5}) {
    Feeds feeds = {{"x:0", RandomFloats({2, 8}, &rng)}, {"w:0", RandomFloats({2, 8}, &rng)},
                   {"n:0", Int32Scalar(n)}};
    auto a = (*s0)->Run(feeds, {"out:0"});
    auto e = (*s1)->Run(feeds, {"out:0"});
    auto r = (*reloaded)->Run(feeds, {"out:0"});
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(e.ok()) << e.status();
    ASSERT_TRUE(r.ok()) << r.status();
    for (int k = 0; k < 16; ++k) {
      EXPECT_NEAR((*a)[0].data<float>()[k], (*e)[0].data<float>()[k], 1e-5f) << "n=" << n;
      EXPECT_NEAR((*a)[0].data<float>()[k], (*r)[0].data<float>()[k], 1e-5f) << "n=" << n;
    }
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace kiln
