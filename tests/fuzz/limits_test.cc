// Resource limits and path confinement for files from strangers (issue 11, docs/robustness.md):
// tensor size cap and shape overflow (KILN_MAX_TENSOR_BYTES; ctest runs this binary with a
// 256 MiB cap), protobuf recursion limits (binary and text), JSON nesting, and model-named
// paths (TF.js shards, SavedModel engine assets) that must stay in the model's directory.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "io/npy/npy.h"
#include "io/onnx/onnx_import.h"
#include "io/tf/engine_op_graphdef.h"
#include "io/tf/graphdef_import.h"
#include "io/tf/saved_model_writer.h"
#include "io/tf/tfjs_import.h"
#include "onnx.pb.h"
#include "tensorflow.pb.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kTestCap = int64_t{256} << 20;  // tests/CMakeLists.txt: KILN_MAX_TENSOR_BYTES

bool CapFromCtest() {
  const char* env = std::getenv("KILN_MAX_TENSOR_BYTES");
  return env != nullptr && std::string(env) == std::to_string(kTestCap);
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() /
           ("kiln-limits-" + std::to_string(getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string Write(const std::string& rel, const std::string& data) {
    fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << data;
    return p.string();
  }
  fs::path dir_;
};

void ExpectErrorMentioning(const Status& s, const std::string& text) {
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(text), std::string::npos) << s.message();
}

// ------------------------------------------------------------------------- tensor size cap

TEST(TensorLimits, CapComesFromTheEnvironment) {
  if (!CapFromCtest()) GTEST_SKIP() << "run through ctest (sets KILN_MAX_TENSOR_BYTES)";
  EXPECT_EQ(MaxTensorBytes(), kTestCap);
  auto ok = Tensor::Create(DataType::kFloat32, {kTestCap / 4});
  EXPECT_TRUE(ok.ok()) << ok.status();
  ExpectErrorMentioning(Tensor::Create(DataType::kFloat32, {kTestCap / 4 + 1}).status(),
                        "KILN_MAX_TENSOR_BYTES");
  ExpectErrorMentioning(Tensor::Create(DataType::kFloat64, {1024, 1024, 33}).status(),
                        "KILN_MAX_TENSOR_BYTES");
}

TEST(TensorLimits, OverflowingShapesAreRejectedBeforeAllocating) {
  EXPECT_FALSE(Tensor::Create(DataType::kFloat32, {int64_t{1} << 40, int64_t{1} << 40}).ok());
  EXPECT_FALSE(Tensor::Create(DataType::kInt8, {INT64_MAX, 2}).ok());
  EXPECT_FALSE(Tensor::Create(DataType::kFloat32, {-1, 4}).ok());
  // element count fits int64, bytes do not
  EXPECT_FALSE(Tensor::Create(DataType::kFloat64, {int64_t{1} << 61}).ok());
  EXPECT_FALSE(CheckedNumElements({int64_t{1} << 32, int64_t{1} << 32}).ok());
}

std::string NpyWithShape(const std::string& shape, const std::string& descr = "<f4") {
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape +
                       ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + std::string(64, '\x3f');
}

TEST(TensorLimits, NpyHeadersPromisingHugeOrOverflowingTensors) {
  EXPECT_TRUE(ParseNpy(NpyWithShape("(4, 4)"), "ok.npy").ok());
  EXPECT_FALSE(ParseNpy(NpyWithShape("(1000000, 1000000)"), "huge.npy").ok());
  EXPECT_FALSE(ParseNpy(NpyWithShape("(9223372036854775807, 2)"), "ovf.npy").ok());
  EXPECT_FALSE(ParseNpy(NpyWithShape("(4294967296, 4294967296)"), "ovf2.npy").ok());
  EXPECT_FALSE(ParseNpy(NpyWithShape("(99999999999999999999999,)"), "big.npy").ok());
}

TEST(TensorLimits, OnnxInitializerWithHugeShape) {
  onnxpb::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("g");
  auto* init = g->add_initializer();
  init->set_name("w");
  init->set_data_type(onnxpb::TensorProto::FLOAT);
  init->add_dims(int64_t{1} << 40);
  init->add_dims(int64_t{1} << 40);
  init->add_float_data(1.5f);
  std::string bytes;
  ASSERT_TRUE(m.SerializeToString(&bytes));
  EXPECT_FALSE(ImportOnnxBytes(bytes, "huge.onnx", "").ok());
  init->clear_dims();
  init->add_dims(1);
  ASSERT_TRUE(m.SerializeToString(&bytes));
  EXPECT_TRUE(ImportOnnxBytes(bytes, "small.onnx", "").ok());
}

TEST(TensorLimits, GraphDefConstWithHugeShape) {
  tfpb::GraphDef gd;
  auto* n = gd.add_node();
  n->set_name("c");
  n->set_op("Const");
  (*n->mutable_attr())["dtype"].set_type(tfpb::DT_FLOAT);
  auto* t = (*n->mutable_attr())["value"].mutable_tensor();
  t->set_dtype(tfpb::DT_FLOAT);
  t->mutable_tensor_shape()->add_dim()->set_size(int64_t{1} << 40);
  t->mutable_tensor_shape()->add_dim()->set_size(int64_t{1} << 30);
  t->add_float_val(2.5f);  // TF broadcasts a single value to the whole shape
  TfImportOptions options;
  options.source = "huge.pb";
  EXPECT_FALSE(ImportGraphDef(gd, options).ok());
}

// ---------------------------------------------------------------------------- recursion

TEST(ProtoLimits, DeeplyNestedOnnxSubgraphsAreAnError) {
  onnxpb::GraphProto inner;
  inner.set_name("g0");
  for (int i = 1; i <= 100; ++i) {
    onnxpb::GraphProto outer;
    outer.set_name("g" + std::to_string(i));
    auto* node = outer.add_node();
    node->set_op_type("If");
    auto* a = node->add_attribute();
    a->set_name("then_branch");
    a->set_type(onnxpb::AttributeProto::GRAPH);
    *a->mutable_g() = inner;
    inner = std::move(outer);
  }
  onnxpb::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  *m.mutable_graph() = inner;
  std::string bytes;
  ASSERT_TRUE(m.SerializeToString(&bytes));
  Status s = ImportOnnxBytes(bytes, "deep.onnx", "").status();
  EXPECT_FALSE(s.ok());
}

// An AttrValue nested `depth` times through NameAttrList (func { attr { value { func ...).
std::string NestedAttrText(int depth) {
  std::string open, close;
  for (int i = 0; i < depth; ++i) {
    open += "func { name: \"f\" attr { key: \"a\" value { ";
    close += "} } } ";
  }
  return "node { name: \"n\" op: \"NoOp\" attr { key: \"a\" value { " + open + "b: true " +
         close + "} } }\n";
}

TEST(ProtoLimits, DeeplyNestedTextGraphDefIsAnErrorNotAStackOverflow) {
  tfpb::GraphDef gd;
  EXPECT_TRUE(ParseGraphDef(NestedAttrText(3), true, "shallow.pbtxt", &gd).ok());
  gd.Clear();
  // Without the parser's recursion limit this overflows the stack.
  Status s = ParseGraphDef(NestedAttrText(200000), true, "deep.pbtxt", &gd);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("deep.pbtxt"), std::string::npos) << s.message();
}

TEST(ProtoLimits, DeeplyNestedBinaryGraphDefIsAnError) {
  tfpb::AttrValue v;
  v.set_b(true);
  for (int i = 0; i < 100; ++i) {
    tfpb::AttrValue outer;
    outer.mutable_func()->set_name("f");
    (*outer.mutable_func()->mutable_attr())["a"] = v;
    v = std::move(outer);
  }
  tfpb::GraphDef gd;
  auto* n = gd.add_node();
  n->set_name("n");
  n->set_op("NoOp");
  (*n->mutable_attr())["a"] = v;
  std::string bytes;
  ASSERT_TRUE(gd.SerializeToString(&bytes));
  tfpb::GraphDef back;
  EXPECT_FALSE(ParseGraphDef(bytes, false, "deep.pb", &back).ok());
}

// ---------------------------------------------------------------------------- TF.js

constexpr const char* kTfjsNodes =
    R"({"name":"x","op":"Placeholder","attr":{"dtype":{"type":"DT_FLOAT"}}},)"
    R"({"name":"w","op":"Const","attr":{"dtype":{"type":"DT_FLOAT"},"value":{"tensor":)"
    R"({"dtype":"DT_FLOAT","tensorShape":{"dim":[{"size":"2"}]}}}}},)"
    R"({"name":"y","op":"AddV2","input":["x","w"],"attr":{"T":{"type":"DT_FLOAT"}}})";

std::string TfjsModel(const std::string& shard, const std::string& extra_node = "") {
  return std::string(R"({"format":"graph-model","modelTopology":{"node":[)") + kTfjsNodes +
         extra_node + R"(]},"weightsManifest":[{"paths":[")" + shard +
         R"("],"weights":[{"name":"w","shape":[2],"dtype":"float32"}]}]})";
}

using TfjsLimits = TempDir;

TEST_F(TfjsLimits, DeeplyNestedJsonIsAnError) {
  const std::string w("\x00\x00\xc0\x3f\x00\x00\x00\xc0", 8);
  Write("m/w.bin", w);
  EXPECT_TRUE(ImportTfjsModel(Write("m/model.json", TfjsModel("w.bin"))).ok());
  const int depth = 200000;
  const std::string deep = R"(,{"name":"z","op":"NoOp","attr":{"q":)" + std::string(depth, '[') +
                           std::string(depth, ']') + "}}";
  Status s = ImportTfjsModel(Write("m/model.json", TfjsModel("w.bin", deep))).status();
  ExpectErrorMentioning(s, "nested deeper");
}

TEST_F(TfjsLimits, ShardSymlinkOutOfTheModelDirectoryIsRefused) {
  const std::string w("\x00\x00\xc0\x3f\x00\x00\x00\xc0", 8);
  Write("outside.bin", w);
  Write("m/w.bin", w);
  EXPECT_TRUE(ImportTfjsModel(Write("m/model.json", TfjsModel("w.bin"))).ok());
  std::error_code ec;
  fs::create_symlink(dir_ / "outside.bin", dir_ / "m" / "link.bin", ec);
  if (ec) GTEST_SKIP() << "cannot create symlinks here: " << ec.message();
  ExpectErrorMentioning(ImportTfjsModel(Write("m/model.json", TfjsModel("link.bin"))).status(),
                        "escapes");
  ExpectErrorMentioning(ImportTfjsModel(Write("m/model.json", TfjsModel("../outside.bin"))).status(),
                        "escapes");
  EXPECT_FALSE(ImportTfjsModel(Write("m/model.json", TfjsModel((dir_ / "outside.bin").string())))
                   .ok());
}

// ----------------------------------------------------------------- SavedModel engine assets

using AssetLimits = TempDir;

TEST_F(AssetLimits, EngineAssetsStayInTheSavedModel) {
  tfpb::MetaGraphDef meta;
  meta.add_asset_file_def()->set_filename("e.plan");
  tfpb::GraphDef gd;
  auto* n = gd.add_node();
  n->set_name("engine");
  n->set_op(kTfEngineOpType);
  (*n->mutable_attr())[kEngineAssetAttr].set_s("e.plan");
  const std::string sm = (dir_ / "sm").string();

  std::mt19937 rng(7);
  std::string plan(64, '\0');
  for (char& c : plan) c = static_cast<char>(rng());
  Write("sm/assets/e.plan", plan);
  tfpb::GraphDef ok = gd;
  ASSERT_TRUE(AttachEngineAssets(sm, meta, &ok).ok());
  EXPECT_EQ(ok.node(0).attr().at("serialized_engine").s(), plan);

  fs::remove(dir_ / "sm" / "assets" / "e.plan");
  Write("secret", "not a plan");
  std::error_code ec;
  fs::create_symlink(dir_ / "secret", dir_ / "sm" / "assets" / "e.plan", ec);
  if (ec) GTEST_SKIP() << "cannot create symlinks here: " << ec.message();
  tfpb::GraphDef bad = gd;
  ExpectErrorMentioning(AttachEngineAssets(sm, meta, &bad), "outside the SavedModel");

  for (const std::string name : {"../secret", "..", "/etc/hostname", "unlisted.plan"}) {
    tfpb::GraphDef g = gd;
    (*g.mutable_node(0)->mutable_attr())[kEngineAssetAttr].set_s(name);
    EXPECT_FALSE(AttachEngineAssets(sm, meta, &g).ok()) << name;
  }
}

}  // namespace
}  // namespace kiln
