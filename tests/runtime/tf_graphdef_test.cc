// TensorFlow GraphDef front-end end to end: the fixture models (../shared/fixtures/graphdef)
// against their reference outputs, round trip import -> export -> import with bit-identical
// outputs, an unmapped op refused by the session, and hand-built graphs per handler family.
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ir/graph_test_util.h"
#include "io/fixture_util.h"
#include "io/npy/npy.h"
#include "io/tf/graphdef_export.h"
#include "io/tf/graphdef_import.h"
#include "io/tf/tf_tensor.h"
#include "kiln/session.h"
#include "ops/base/op_schema.h"
#include "tensorflow.pb.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

using testing::FixturesDir;

// ---------------------------------------------------------------- GraphDef building helpers

tfpb::NodeDef* AddNode(tfpb::GraphDef* gd, const std::string& name, const std::string& op,
                       std::vector<std::string> inputs = {}) {
  tfpb::NodeDef* n = gd->add_node();
  n->set_name(name);
  n->set_op(op);
  for (auto& i : inputs) n->add_input(i);
  return n;
}
void SetType(tfpb::NodeDef* n, const std::string& a, tfpb::DataType t) {
  (*n->mutable_attr())[a].set_type(t);
}
void SetInt(tfpb::NodeDef* n, const std::string& a, int64_t v) { (*n->mutable_attr())[a].set_i(v); }
void SetStr(tfpb::NodeDef* n, const std::string& a, const std::string& v) {
  (*n->mutable_attr())[a].set_s(v);
}
void SetInts(tfpb::NodeDef* n, const std::string& a, std::vector<int64_t> v) {
  auto* l = (*n->mutable_attr())[a].mutable_list();
  for (auto x : v) l->add_i(x);
}
tfpb::NodeDef* AddConst(tfpb::GraphDef* gd, const std::string& name, const Tensor& t) {
  tfpb::NodeDef* n = AddNode(gd, name, "Const");
  SetType(n, "dtype", DataTypeToTf(t.dtype()));
  EXPECT_TRUE(TensorToTf(t, (*n->mutable_attr())["value"].mutable_tensor()).ok());
  return n;
}
tfpb::NodeDef* AddPlaceholder(tfpb::GraphDef* gd, const std::string& name, tfpb::DataType t) {
  tfpb::NodeDef* n = AddNode(gd, name, "Placeholder");
  SetType(n, "dtype", t);
  return n;
}

StatusOr<std::vector<Tensor>> RunGraphDef(const tfpb::GraphDef& gd, const Feeds& feeds,
                                          const std::vector<std::string>& fetches) {
  TfImportOptions opts;
  opts.source = "test.pb";
  KILN_ASSIGN_OR_RETURN(Graph g, ImportGraphDef(gd, opts));
  KILN_ASSIGN_OR_RETURN(auto session, Session::FromGraph(std::move(g)));
  return session->Run(feeds, fetches);
}

template <typename T>
std::vector<T> Values(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.num_elements());
}

// ---------------------------------------------------------------- fixtures

struct FixtureResult {
  std::string model;
  int64_t ops = 0;
  double max_abs = 0, max_rel = 0;
  std::string status = "ok";
};

struct Fixture {
  std::string name, dir, model_path;
  nlohmann::json manifest;
};

std::vector<Fixture> GraphDefFixtures() {
  std::vector<Fixture> out;
  std::error_code ec;
  fs::path root = fs::path(FixturesDir()) / "graphdef";
  if (!fs::is_directory(root, ec)) return out;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    fs::path m = e.path() / "manifest.json";
    if (!fs::exists(m, ec)) continue;
    Fixture f;
    f.name = e.path().filename().string();
    f.dir = e.path().string();
    try {
      std::ifstream in(m);
      f.manifest = nlohmann::json::parse(in);
      f.model_path = (e.path() / f.manifest.at("model_path").get<std::string>()).string();
    } catch (const std::exception& ex) {
      ADD_FAILURE() << m << ": " << ex.what();
      continue;
    }
    out.push_back(std::move(f));
  }
  std::sort(out.begin(), out.end(), [](const Fixture& a, const Fixture& b) { return a.name < b.name; });
  return out;
}

StatusOr<Feeds> FixtureFeeds(const Fixture& f) {
  Feeds feeds;
  for (const auto& in : f.manifest.at("inputs")) {
    KILN_ASSIGN_OR_RETURN(Tensor t, ReadNpyFile(f.dir + "/" + in.at("file").get<std::string>()));
    feeds.emplace_back(in.at("name").get<std::string>(), std::move(t));
  }
  return feeds;
}

std::vector<std::string> FixtureFetches(const Fixture& f) {
  std::vector<std::string> fetches;
  for (const auto& o : f.manifest.at("outputs")) fetches.push_back(o.at("name").get<std::string>());
  return fetches;
}

FixtureResult RunFixture(const Fixture& f) {
  FixtureResult r;
  r.model = f.name;
  auto graph = ImportGraphDefFile(f.model_path);
  if (!graph.ok()) {
    r.status = "import: " + graph.status().ToString();
    return r;
  }
  r.ops = static_cast<int64_t>(graph->nodes.size());
  auto session = Session::FromGraph(std::move(graph).value());
  if (!session.ok()) {
    r.status = "load: " + session.status().ToString();
    return r;
  }
  auto feeds = FixtureFeeds(f);
  if (!feeds.ok()) {
    r.status = feeds.status().ToString();
    return r;
  }
  auto got = (*session)->Run(*feeds, FixtureFetches(f));
  if (!got.ok()) {
    r.status = "run: " + got.status().ToString();
    return r;
  }
  const auto& sugg = f.manifest.at("suggested_tolerance");
  int k = 0;
  for (const auto& o : f.manifest.at("outputs")) {
    auto ref = ReadNpyFile(f.dir + "/" + o.at("file").get<std::string>());
    if (!ref.ok()) {
      r.status = ref.status().ToString();
      return r;
    }
    const auto& tol = o.contains("tolerance") ? o.at("tolerance") : sugg;
    const double rtol = tol.at("rtol").get<double>(), atol = tol.at("atol").get<double>();
    const Tensor& g = (*got)[k++];
    if (g.dims() != ref->dims()) {
      r.status = "output " + o.at("name").get<std::string>() + " has shape " +
                 DimsToString(g.dims()) + ", reference " + DimsToString(ref->dims());
      return r;
    }
    for (int64_t i = 0; i < ref->num_elements(); ++i) {
      double a = g.GetAsDouble(i), b = ref->GetAsDouble(i);
      double err = std::fabs(a - b);
      if (!(err <= atol + rtol * std::fabs(b))) {
        r.status = "output " + o.at("name").get<std::string>() + "[" + std::to_string(i) +
                   "] = " + std::to_string(a) + ", reference " + std::to_string(b);
      }
      r.max_abs = std::max(r.max_abs, err);
      if (b != 0) r.max_rel = std::max(r.max_rel, err / std::fabs(b));
    }
  }
  return r;
}

TEST(GraphDefFixtures, MatchReferenceOutputs) {
  auto fixtures = GraphDefFixtures();
  if (fixtures.empty()) GTEST_SKIP() << "no fixtures under " << FixturesDir() << "/graphdef";
  std::vector<FixtureResult> results;
  for (const auto& f : fixtures) results.push_back(RunFixture(f));
  std::printf("\n%-14s %6s %12s %12s  %s\n", "model", "#ops", "max abs err", "max rel err",
              "status");
  for (const auto& r : results) {
    std::printf("%-14s %6lld %12.3g %12.3g  %s\n", r.model.c_str(),
                static_cast<long long>(r.ops), r.max_abs, r.max_rel, r.status.c_str());
  }
  for (const auto& r : results) EXPECT_EQ(r.status, "ok") << r.model;
}

// ---------------------------------------------------------------- round trip

using testing::ExpectSameGraph;

TEST(GraphDefRoundTrip, FixturesExportAndReimportIdentically) {
  auto fixtures = GraphDefFixtures();
  if (fixtures.empty()) GTEST_SKIP() << "no fixtures";
  for (const auto& f : fixtures) {
    SCOPED_TRACE(f.name);
    auto g1 = ImportGraphDefFile(f.model_path);
    ASSERT_TRUE(g1.ok()) << g1.status();
    for (bool text : {false, true}) {
      auto bytes = ExportGraphDef(*g1, text);
      ASSERT_TRUE(bytes.ok()) << bytes.status();
      tfpb::GraphDef gd;
      ASSERT_TRUE(ParseGraphDef(*bytes, text, "export", &gd).ok());
      TfImportOptions opts;
      opts.source = f.model_path;
      auto g2 = ImportGraphDef(gd, opts);
      ASSERT_TRUE(g2.ok()) << g2.status();
      ExpectSameGraph(*g1, *g2);
      if (!text) {
        // Same NodeDefs as the original file, byte for byte (order may differ).
        tfpb::GraphDef orig;
        std::ifstream in(f.model_path, std::ios::binary);
        std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        ASSERT_TRUE(ParseGraphDef(raw, false, f.model_path, &orig).ok());
        std::map<std::string, const tfpb::NodeDef*> a, b;
        for (const auto& n : orig.node()) {
          if (n.op() != "NoOp") a[n.name()] = &n;
        }
        for (const auto& n : gd.node()) b[n.name()] = &n;
        EXPECT_EQ(a.size(), b.size());
        for (const auto& [k, v] : a) {
          ASSERT_TRUE(b.count(k)) << k;
          EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*v, *b[k])) << k;
        }
      }
      // Bit-identical outputs.
      auto s1 = Session::FromGraph(*g1);
      auto s2 = Session::FromGraph(std::move(g2).value());
      ASSERT_EQ(s1.ok(), s2.ok());
      if (!s1.ok()) continue;  // reported by MatchReferenceOutputs
      auto feeds = FixtureFeeds(f);
      ASSERT_TRUE(feeds.ok());
      auto o1 = (*s1)->Run(*feeds, FixtureFetches(f));
      auto o2 = (*s2)->Run(*feeds, FixtureFetches(f));
      ASSERT_TRUE(o1.ok() && o2.ok());
      for (size_t k = 0; k < o1->size(); ++k) EXPECT_TRUE((*o1)[k].BitwiseEqual((*o2)[k]));
    }
  }
}

TEST(GraphDefSession, UnmappedOpIsRefusedWithReason) {
  tfpb::GraphDef gd;
  AddPlaceholder(&gd, "x", tfpb::DT_FLOAT);
  SetType(AddNode(&gd, "w", "WeirdOp", {"x"}), "T", tfpb::DT_FLOAT);
  auto out = RunGraphDef(gd, {{"x:0", Tensor::FromVector<float>({1})}}, {"w:0"});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("TF op WeirdOp has no kiln mapping"), std::string::npos)
      << out.status();
}

// ---------------------------------------------------------------- handler families

TEST(GraphDefHandlers, StridedSliceMasksAndDynamic) {
  // x = arange(24).reshape(2, 3, 4)
  std::vector<float> xs(24);
  for (int i = 0; i < 24; ++i) xs[i] = static_cast<float>(i);
  Tensor x = Tensor::FromVector<float>(xs, {2, 3, 4}, true);
  struct Case {
    std::vector<int32_t> b, e, s;
    int64_t bm, em, ell, na, sh;
    std::vector<int64_t> dims;
    std::vector<float> want;
  };
  std::vector<Case> cases = {
      // x[1, :, ::-2] -> [3, 2]
      {{1, 0, 0}, {2, 0, 0}, {1, 1, -2}, 6, 6, 0, 0, 1, {3, 2}, {15, 13, 19, 17, 23, 21}},
      // x[..., 1] -> [2, 3]
      {{0, 1}, {0, 2}, {1, 1}, 0, 0, 1, 0, 2, {2, 3}, {1, 5, 9, 13, 17, 21}},
      // x[:, tf.newaxis, -1, 1:3] -> [2, 1, 2]
      {{0, 0, -1, 1}, {0, 0, 0, 3}, {1, 1, 1, 1}, 1, 1, 0, 2, 4, {2, 1, 2}, {9, 10, 21, 22}},
  };
  for (bool constant : {true, false}) {
    for (const auto& c : cases) {
      tfpb::GraphDef gd;
      AddPlaceholder(&gd, "x", tfpb::DT_FLOAT);
      Feeds feeds = {{"x:0", x}};
      std::vector<std::string> names = {"b", "e", "s"};
      std::vector<std::vector<int32_t>> vals = {c.b, c.e, c.s};
      for (int k = 0; k < 3; ++k) {
        Tensor t = Tensor::FromVector<int32_t>(vals[k]);
        if (constant) {
          AddConst(&gd, names[k], t);
        } else {
          AddPlaceholder(&gd, names[k], tfpb::DT_INT32);
          feeds.emplace_back(names[k] + ":0", t);
        }
      }
      auto* n = AddNode(&gd, "ss", "StridedSlice", {"x", "b", "e", "s"});
      SetType(n, "T", tfpb::DT_FLOAT);
      SetType(n, "Index", tfpb::DT_INT32);
      SetInt(n, "begin_mask", c.bm);
      SetInt(n, "end_mask", c.em);
      SetInt(n, "ellipsis_mask", c.ell);
      SetInt(n, "new_axis_mask", c.na);
      SetInt(n, "shrink_axis_mask", c.sh);
      auto out = RunGraphDef(gd, feeds, {"ss:0"});
      ASSERT_TRUE(out.ok()) << out.status();
      EXPECT_EQ((*out)[0].dims(), c.dims);
      EXPECT_EQ(Values<float>((*out)[0]), c.want);
    }
  }
}

TEST(GraphDefHandlers, PackUnpackSplitConcat) {
  tfpb::GraphDef gd;
  AddPlaceholder(&gd, "x", tfpb::DT_FLOAT);
  auto* u = AddNode(&gd, "u", "Unpack", {"x"});
  SetInt(u, "num", 3);
  SetInt(u, "axis", 1);
  auto* p = AddNode(&gd, "p", "Pack", {"u:2", "u:0"});
  SetInt(p, "axis", -1);
  AddConst(&gd, "dim", Tensor::Scalar<int32_t>(0));
  auto* s = AddNode(&gd, "sp", "Split", {"dim", "p"});
  SetInt(s, "num_split", 2);
  AddConst(&gd, "ax", Tensor::Scalar<int32_t>(1));
  AddNode(&gd, "cat", "ConcatV2", {"sp:1", "sp", "ax"});
  Tensor x = Tensor::FromVector<float>({1, 2, 3, 4, 5, 6}, {2, 3}, true);
  auto out = RunGraphDef(gd, {{"x:0", x}}, {"p:0", "cat:0"});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].dims(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(Values<float>((*out)[0]), (std::vector<float>{3, 1, 6, 4}));
  EXPECT_EQ((*out)[1].dims(), (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(Values<float>((*out)[1]), (std::vector<float>{6, 4, 3, 1}));
}

TEST(GraphDefHandlers, FloorDivModAndSpaceToBatch) {
  tfpb::GraphDef gd;
  AddPlaceholder(&gd, "a", tfpb::DT_INT32);
  AddConst(&gd, "b", Tensor::FromVector<int32_t>({3, -3}));
  SetType(AddNode(&gd, "fd", "FloorDiv", {"a", "b"}), "T", tfpb::DT_INT32);
  SetType(AddNode(&gd, "fm", "FloorMod", {"a", "b"}), "T", tfpb::DT_INT32);
  AddPlaceholder(&gd, "f", tfpb::DT_FLOAT);
  AddConst(&gd, "g", Tensor::FromVector<float>({2.5f, -2.5f}));
  SetType(AddNode(&gd, "ffm", "FloorMod", {"f", "g"}), "T", tfpb::DT_FLOAT);
  Tensor a = Tensor::FromVector<int32_t>({-7, 7});
  Tensor f = Tensor::FromVector<float>({-7.0f, 7.0f});
  auto out = RunGraphDef(gd, {{"a:0", a}, {"f:0", f}}, {"fd:0", "fm:0", "ffm:0"});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(Values<int32_t>((*out)[0]), (std::vector<int32_t>{-3, -3}));
  EXPECT_EQ(Values<int32_t>((*out)[1]), (std::vector<int32_t>{2, -2}));
  EXPECT_EQ(Values<float>((*out)[2]), (std::vector<float>{0.5f, -0.5f}));

  // SpaceToBatchND then BatchToSpaceND with padding/crops is the identity.
  tfpb::GraphDef gd2;
  AddPlaceholder(&gd2, "x", tfpb::DT_FLOAT);
  AddConst(&gd2, "block", Tensor::FromVector<int32_t>({2, 2}));
  AddConst(&gd2, "pads", Tensor::FromVector<int32_t>({1, 0, 0, 1}, {2, 2}, true));
  AddNode(&gd2, "s2b", "SpaceToBatchND", {"x", "block", "pads"});
  AddNode(&gd2, "b2s", "BatchToSpaceND", {"s2b", "block", "pads"});
  std::vector<float> xs(1 * 3 * 3 * 2);
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<float>(i + 1);
  Tensor x = Tensor::FromVector<float>(xs, {1, 3, 3, 2}, true);
  auto out2 = RunGraphDef(gd2, {{"x:0", x}}, {"s2b:0", "b2s:0"});
  ASSERT_TRUE(out2.ok()) << out2.status();
  EXPECT_EQ((*out2)[0].dims(), (std::vector<int64_t>{4, 2, 2, 2}));
  // Batch 0 = block offset (0,0): padded rows 0,2 -> input rows -1 (pad), 1; cols 0, 2.
  std::vector<float> all = Values<float>((*out2)[0]);
  std::vector<float> b0(all.begin(), all.begin() + 8);
  EXPECT_EQ(b0, (std::vector<float>{0, 0, 0, 0, 7, 8, 11, 12}));
  EXPECT_TRUE((*out2)[1].BitwiseEqual(x));
}

TEST(GraphDefHandlers, FusedMatMulAndConvNchw) {
  tfpb::GraphDef gd;
  AddPlaceholder(&gd, "a", tfpb::DT_FLOAT);
  AddConst(&gd, "w", Tensor::FromVector<float>({1, -1, 2, 0.5f}, {2, 2}, true));
  AddConst(&gd, "bias", Tensor::FromVector<float>({0.5f, -3}));
  auto* m = AddNode(&gd, "mm", "_FusedMatMul", {"a", "w", "bias"});
  SetType(m, "T", tfpb::DT_FLOAT);
  auto* ops = (*m->mutable_attr())["fused_ops"].mutable_list();
  ops->add_s("BiasAdd");
  ops->add_s("Relu");
  (*m->mutable_attr())["transpose_b"].set_b(true);
  Tensor a = Tensor::FromVector<float>({1, 2, 3, 4}, {2, 2}, true);
  auto out = RunGraphDef(gd, {{"a:0", a}}, {"mm:0"});
  ASSERT_TRUE(out.ok()) << out.status();
  // a @ w^T + bias: [[1-2, 2+1], [3-4, 6+2]] + [0.5, -3] -> relu
  EXPECT_EQ(Values<float>((*out)[0]), (std::vector<float>{0, 0, 0, 5}));

  // NCHW Conv2D with a constant HWIO filter, then NCHW BiasAdd.
  tfpb::GraphDef gd2;
  auto* x = AddPlaceholder(&gd2, "x", tfpb::DT_FLOAT);
  auto* shape = (*x->mutable_attr())["shape"].mutable_shape();
  for (int64_t d : {1, 1, 3, 3}) shape->add_dim()->set_size(d);
  AddConst(&gd2, "f", Tensor::FromVector<float>({1, 2, 3, 4}, {2, 2, 1, 1}, true));
  auto* conv = AddNode(&gd2, "conv", "Conv2D", {"x", "f"});
  SetType(conv, "T", tfpb::DT_FLOAT);
  SetStr(conv, "padding", "VALID");
  SetStr(conv, "data_format", "NCHW");
  SetInts(conv, "strides", {1, 1, 1, 1});
  AddConst(&gd2, "b", Tensor::FromVector<float>({10}));
  auto* ba = AddNode(&gd2, "ba", "BiasAdd", {"conv", "b"});
  SetType(ba, "T", tfpb::DT_FLOAT);
  SetStr(ba, "data_format", "NCHW");
  Tensor xi = Tensor::FromVector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3}, true);
  auto out2 = RunGraphDef(gd2, {{"x:0", xi}}, {"ba:0"});
  ASSERT_TRUE(out2.ok()) << out2.status();
  // [[1,2],[3,4]] correlated with the 3x3 ramp, + 10.
  EXPECT_EQ(Values<float>((*out2)[0]), (std::vector<float>{47, 57, 77, 87}));
}

}  // namespace
}  // namespace kiln
