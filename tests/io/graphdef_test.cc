// TensorFlow GraphDef import/export without running: file round trip, bad input.
// (Fixture models and handler semantics: tests/runtime/tf_graphdef_test.cc.)
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "ir/graph_test_util.h"
#include "io/tf/graphdef_export.h"
#include "io/tf/graphdef_import.h"
#include "io/tf/tf_tensor.h"
#include "ops/base/op_schema.h"
#include "ops/base/verify.h"
#include "tensorflow.pb.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

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

using testing::ExpectSameGraph;

TEST(GraphDefRoundTrip, WriteFileIsAtomicAndReadable) {
  tfpb::GraphDef gd;
  gd.mutable_versions()->set_producer(27);
  gd.mutable_library()->add_function()->mutable_signature()->set_name("my_fn");
  AddPlaceholder(&gd, "x", tfpb::DT_FLOAT);
  AddConst(&gd, "c", Tensor::FromVector<float>({2.0f}));
  auto* add = AddNode(&gd, "y", "AddV2", {"x", "c", "^c"});
  SetType(add, "T", tfpb::DT_FLOAT);
  auto g = ImportGraphDef(gd, {});
  ASSERT_TRUE(g.ok()) << g.status();
  fs::path dir = fs::temp_directory_path() / ("kiln_gd_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  for (const char* name : {"m.pb", "m.pbtxt"}) {
    std::string path = (dir / name).string();
    ASSERT_TRUE(WriteGraphDefFile(*g, path).ok());
    auto back = ImportGraphDefFile(path);
    ASSERT_TRUE(back.ok()) << back.status();
    ExpectSameGraph(*g, *back);
    auto bytes = ExportGraphDef(*back, false);
    ASSERT_TRUE(bytes.ok());
    tfpb::GraphDef again;
    ASSERT_TRUE(again.ParseFromString(*bytes));
    EXPECT_EQ(again.versions().producer(), 27);
    ASSERT_EQ(again.library().function_size(), 1);
    EXPECT_EQ(again.library().function(0).signature().name(), "my_fn");
  }
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  }
  fs::remove_all(dir);
}

// ---------------------------------------------------------------- bad input

TEST(GraphDefErrors, MalformedProtobuf) {
  fs::path p = fs::temp_directory_path() / ("kiln_bad_" + std::to_string(::getpid()) + ".pb");
  {
    std::ofstream f(p, std::ios::binary);
    f << "\x0a\xff\xff\xff\x0f garbage";
  }
  auto g = ImportGraphDefFile(p.string());
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find(p.string()), std::string::npos) << g.status();
  EXPECT_NE(g.status().message().find("not a valid GraphDef"), std::string::npos);
  fs::remove(p);
  tfpb::GraphDef gd;
  EXPECT_FALSE(ParseGraphDef("node { name: ", true, "t.pbtxt", &gd).ok());
}

TEST(GraphDefErrors, MissingInput) {
  tfpb::GraphDef gd;
  AddPlaceholder(&gd, "x", tfpb::DT_FLOAT);
  SetType(AddNode(&gd, "r", "Relu", {"nope:0"}), "T", tfpb::DT_FLOAT);
  TfImportOptions o;
  o.source = "m.pb";
  auto g = ImportGraphDef(gd, o);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("node 'r' (Relu)"), std::string::npos) << g.status();
  EXPECT_NE(g.status().message().find("'nope'"), std::string::npos) << g.status();
  EXPECT_NE(g.status().message().find("m.pb"), std::string::npos) << g.status();
  // An output index the producer does not have.
  tfpb::GraphDef gd2;
  AddPlaceholder(&gd2, "x", tfpb::DT_FLOAT);
  SetType(AddNode(&gd2, "r", "Relu", {"x"}), "T", tfpb::DT_FLOAT);
  SetType(AddNode(&gd2, "s", "Relu", {"r:3"}), "T", tfpb::DT_FLOAT);
  auto g2 = ImportGraphDef(gd2, o);
  ASSERT_FALSE(g2.ok());
  EXPECT_NE(g2.status().message().find("has no output 3"), std::string::npos) << g2.status();
}

TEST(GraphDefErrors, Cycle) {
  tfpb::GraphDef gd;
  AddPlaceholder(&gd, "x", tfpb::DT_FLOAT);
  SetType(AddNode(&gd, "a", "AddV2", {"x", "b"}), "T", tfpb::DT_FLOAT);
  SetType(AddNode(&gd, "b", "Relu", {"a"}), "T", tfpb::DT_FLOAT);
  auto g = ImportGraphDef(gd, {});
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("cycle"), std::string::npos) << g.status();
  EXPECT_NE(g.status().message().find("'a'"), std::string::npos) << g.status();
}

TEST(GraphDefErrors, DuplicateNodeName) {
  tfpb::GraphDef gd;
  AddPlaceholder(&gd, "x", tfpb::DT_FLOAT);
  AddPlaceholder(&gd, "x", tfpb::DT_FLOAT);
  auto g = ImportGraphDef(gd, {});
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("'x' is used twice"), std::string::npos) << g.status();
}

TEST(GraphDefErrors, UnknownOpIsListedNotDropped) {
  tfpb::GraphDef gd;
  AddPlaceholder(&gd, "x", tfpb::DT_FLOAT);
  SetType(AddNode(&gd, "w", "WeirdOp", {"x"}), "T", tfpb::DT_FLOAT);
  SetType(AddNode(&gd, "r", "Relu", {"w:1"}), "T", tfpb::DT_FLOAT);
  auto g = ImportGraphDef(gd, {});
  ASSERT_TRUE(g.ok()) << g.status();
  auto unsupported = FindUnsupportedNodes(*g, OpRegistry::Global());
  ASSERT_EQ(unsupported.size(), 1u);
  EXPECT_EQ(unsupported[0].node, "w");
  EXPECT_EQ(unsupported[0].reason, "TF op WeirdOp has no kiln mapping");
  // A known op whose attributes cannot be mapped is kept too, with the reason.
  tfpb::GraphDef gd2;
  AddPlaceholder(&gd2, "x", tfpb::DT_FLOAT);
  auto* bn = AddNode(&gd2, "bn", "FusedBatchNormV3", {"x", "x", "x", "x", "x"});
  SetType(bn, "T", tfpb::DT_FLOAT);
  auto g2 = ImportGraphDef(gd2, {});
  ASSERT_TRUE(g2.ok()) << g2.status();
  auto u2 = FindUnsupportedNodes(*g2, OpRegistry::Global());
  ASSERT_EQ(u2.size(), 1u);
  EXPECT_NE(u2[0].reason.find("is_training"), std::string::npos) << u2[0].reason;
  // Export writes the unmapped node back verbatim.
  auto bytes = ExportGraphDef(*g, false);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  tfpb::GraphDef back;
  ASSERT_TRUE(back.ParseFromString(*bytes));
  EXPECT_EQ(back.node_size(), 3);
}

TEST(GraphDefErrors, DtypeMismatch) {
  tfpb::GraphDef gd;
  AddPlaceholder(&gd, "x", tfpb::DT_FLOAT);
  AddConst(&gd, "c", Tensor::FromVector<int32_t>({1, 2}));
  SetType(AddNode(&gd, "add", "AddV2", {"x", "c"}), "T", tfpb::DT_FLOAT);
  auto g = ImportGraphDef(gd, {});
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("node 'add' (AddV2)"), std::string::npos) << g.status();
  EXPECT_NE(g.status().message().find("int32"), std::string::npos) << g.status();
  // A Const whose data does not fit its shape.
  tfpb::GraphDef gd2;
  auto* c = AddConst(&gd2, "c", Tensor::FromVector<float>({1, 2, 3}));
  auto* t = (*c->mutable_attr())["value"].mutable_tensor();
  t->set_tensor_content(t->tensor_content().substr(0, 5));
  auto g2 = ImportGraphDef(gd2, {});
  ASSERT_FALSE(g2.ok());
  EXPECT_NE(g2.status().message().find("node 'c' (Const)"), std::string::npos) << g2.status();
}

}  // namespace
}  // namespace kiln
