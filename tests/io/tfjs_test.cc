// TF.js graph model import: weights (raw, uint8/uint16 affine, float16, int64 constants stored
// as int32, bool), shards split across files, signatures, and malformed models.
// The fixture models themselves run in tests/runtime/tfjs_fixture_test.cc (needs the runtime).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/tf/tfjs_import.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class TfjsImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("kiln_tfjs_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& bytes) {
    fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << bytes;
    return p.string();
  }

  fs::path dir_;
};

template <typename T>
std::string Bytes(const std::vector<T>& v) {
  std::string s(v.size() * sizeof(T), '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

// A Const NodeDef in TF.js's JSON: dtype and shape only, the value comes from the weights.
std::string ConstNode(const std::string& name, const std::string& dtype,
                      const std::vector<int64_t>& shape) {
  std::string dims;
  for (int64_t d : shape)
    dims += std::string(dims.empty() ? "" : ",") + "{\"size\":\"" + std::to_string(d) + "\"}";
  return R"({"name":")" + name + R"(","op":"Const","attr":{"dtype":{"type":")" + dtype +
         R"("},"value":{"tensor":{"dtype":")" + dtype + R"(","tensorShape":{"dim":[)" + dims +
         "]}}}}}";
}

constexpr const char* kPlaceholder =
    R"({"name":"x","op":"Placeholder","attr":{"dtype":{"type":"DT_FLOAT"},)"
    R"("shape":{"shape":{"dim":[{"size":"2"}]}}}})";
constexpr const char* kAdd =
    R"({"name":"y","op":"AddV2","input":["x","w"],"attr":{"T":{"type":"DT_FLOAT"}}})";
constexpr const char* kOut = R"({"name":"out","op":"Identity","input":["y"],)"
                             R"("attr":{"T":{"type":"DT_FLOAT"}}})";

std::string Model(const std::string& nodes, const std::string& manifest,
                  const std::string& extra = "") {
  return R"({"format":"graph-model","generatedBy":"test","convertedBy":"kiln-test",)" + extra +
         R"("modelTopology":{"node":[)" + nodes + R"(],"versions":{"producer":1}},)" +
         R"("weightsManifest":)" + manifest + "}";
}

// x + w with w = {1.5, -2} from one shard.
std::string SimpleModel(const std::string& path = "w.bin", const std::string& extra = "") {
  return Model(
      std::string(kPlaceholder) + "," + ConstNode("w", "DT_FLOAT", {2}) + "," + kAdd + "," + kOut,
      R"([{"paths":[")" + path + R"("],"weights":[{"name":"w","shape":[2],"dtype":"float32"}]}])",
      extra);
}

const Tensor& Init(const Graph& g, const std::string& value) {
  static const Tensor kNone;
  auto it = g.initializers.find(value);
  EXPECT_NE(it, g.initializers.end()) << value << " is not an initializer";
  return it == g.initializers.end() ? kNone : it->second;
}

TEST_F(TfjsImportTest, ImportsASimpleModel) {
  Write("w.bin", Bytes<float>({1.5f, -2.0f}));
  auto g = ImportTfjsModel(Write("model.json", SimpleModel()));
  ASSERT_TRUE(g.ok()) << g.status();
  const Tensor& w = Init(*g, "w:0");
  ASSERT_EQ(w.dtype(), DataType::kFloat32);
  ASSERT_EQ(w.dims(), std::vector<int64_t>({2}));
  EXPECT_EQ(w.data<float>()[0], 1.5f);
  EXPECT_EQ(w.data<float>()[1], -2.0f);
  EXPECT_EQ(g->inputs, std::vector<std::string>({"x:0"}));
  EXPECT_EQ(g->outputs, std::vector<std::string>({"out:0"}));
  ASSERT_TRUE(g->initializer_provenance.count("w:0"));
  EXPECT_EQ(g->initializer_provenance.at("w:0")->format, "tfjs");
  for (const Node& n : g->nodes) {
    ASSERT_TRUE(n.provenance) << n.Describe();
    EXPECT_EQ(n.provenance->format, "tfjs") << n.Describe();
  }
  EXPECT_EQ(g->metadata["tfjs.convertedBy"], "kiln-test");
}

TEST_F(TfjsImportTest, DecodesEveryWeightEncoding) {
  // Group 0 is split over two shards, with the cut inside weight "q8".
  std::string g0 = Bytes<float>({1.5f, -2.0f});             // f32 [2]
  g0 += std::string("\x00\x02\xff", 3);                     // q8: uint8 [3]
  g0 += Bytes<uint16_t>({4, 65535});                        // q16: uint16 [2]
  g0 += Bytes<uint16_t>({0x3C00, 0xC000, 0x0001, 0x7C00});  // f16 [4]
  std::string g1 = Bytes<int32_t>({7, -3});                 // i32 [2]
  g1 += std::string("\x03\x01", 2);                         // qi32: uint8 [2]
  g1 += Bytes<int32_t>({5, -6});                            // i64 (int32 stored)
  g1 += std::string("\x01\x00\x01", 3);                     // b [3]
  Write("shard1of2.bin", g0.substr(0, 9));
  Write("sub/shard2of2.bin", g0.substr(9));
  Write("g1.bin", g1);
  const std::string nodes =
      std::string(kPlaceholder) + "," + ConstNode("w", "DT_FLOAT", {2}) + "," + kAdd + "," + kOut +
      "," + ConstNode("q8", "DT_FLOAT", {3}) + "," + ConstNode("q16", "DT_FLOAT", {2}) + "," +
      ConstNode("f16", "DT_FLOAT", {4}) + "," + ConstNode("i32", "DT_INT32", {2}) + "," +
      ConstNode("qi32", "DT_INT32", {2}) + "," + ConstNode("i64", "DT_INT64", {2}) + "," +
      ConstNode("b", "DT_BOOL", {3});
  const std::string manifest = R"([
    {"paths":["shard1of2.bin","sub/shard2of2.bin"],"weights":[
      {"name":"w","shape":[2],"dtype":"float32"},
      {"name":"q8","shape":[3],"dtype":"float32",
       "quantization":{"dtype":"uint8","min":-1.0,"scale":0.5,"original_dtype":"float32"}},
      {"name":"q16","shape":[2],"dtype":"float32",
       "quantization":{"dtype":"uint16","min":0,"scale":0.25}},
      {"name":"f16","shape":[4],"dtype":"float32",
       "quantization":{"dtype":"float16","original_dtype":"float32"}}]},
    {"paths":["g1.bin"],"weights":[
      {"name":"i32","shape":[2],"dtype":"int32"},
      {"name":"qi32","shape":[2],"dtype":"int32",
       "quantization":{"dtype":"uint8","min":-1.0,"scale":0.5}},
      {"name":"i64","shape":[2],"dtype":"int32"},
      {"name":"unused","shape":[0],"dtype":"float32"},
      {"name":"b","shape":[3],"dtype":"bool"}]}])";
  auto g = ImportTfjsModel(Write("model.json", Model(nodes, manifest)));
  ASSERT_TRUE(g.ok()) << g.status();

  const Tensor& q8 = Init(*g, "q8:0");
  ASSERT_EQ(q8.dtype(), DataType::kFloat32);
  EXPECT_EQ(q8.data<float>()[0], -1.0f);
  EXPECT_EQ(q8.data<float>()[1], 0.0f);
  EXPECT_EQ(q8.data<float>()[2], 126.5f);
  const Tensor& q16 = Init(*g, "q16:0");
  EXPECT_EQ(q16.data<float>()[0], 1.0f);
  EXPECT_EQ(q16.data<float>()[1], 16383.75f);
  const Tensor& f16 = Init(*g, "f16:0");
  ASSERT_EQ(f16.dtype(), DataType::kFloat32);
  EXPECT_EQ(f16.data<float>()[0], 1.0f);
  EXPECT_EQ(f16.data<float>()[1], -2.0f);
  EXPECT_EQ(f16.data<float>()[2], 5.9604644775390625e-08f);  // smallest half subnormal
  EXPECT_TRUE(std::isinf(f16.data<float>()[3]));
  const Tensor& i32 = Init(*g, "i32:0");
  ASSERT_EQ(i32.dtype(), DataType::kInt32);
  EXPECT_EQ(i32.data<int32_t>()[1], -3);
  const Tensor& qi32 = Init(*g, "qi32:0");  // Math.round(0.5) = 1, Math.round(-0.5) = 0
  ASSERT_EQ(qi32.dtype(), DataType::kInt32);
  EXPECT_EQ(qi32.data<int32_t>()[0], 1);
  EXPECT_EQ(qi32.data<int32_t>()[1], 0);
  const Tensor& i64 = Init(*g, "i64:0");
  ASSERT_EQ(i64.dtype(), DataType::kInt64);
  EXPECT_EQ(i64.data<int64_t>()[0], 5);
  EXPECT_EQ(i64.data<int64_t>()[1], -6);
  const Tensor& b = Init(*g, "b:0");
  ASSERT_EQ(b.dtype(), DataType::kBool);
  EXPECT_TRUE(b.data<bool>()[0]);
  EXPECT_FALSE(b.data<bool>()[1]);
  EXPECT_TRUE(b.data<bool>()[2]);
  EXPECT_EQ(Init(*g, "w:0").data<float>()[1], -2.0f);
}

TEST_F(TfjsImportTest, SignatureSetsOutputsInItsOrder) {
  Write("w.bin", Bytes<float>({1.5f, -2.0f}));
  // userDefinedMetadata.signature wins over the top-level one, as in TF.js.
  const std::string extra = R"("signature":{"outputs":{"nope":{"name":"nope:0"}}},)"
                            R"("userDefinedMetadata":{"signature":{"inputs":{"x":{"name":"x"}},)"
                            R"("outputs":{"z":{"name":"out"},"a":{"name":"y:0"}}}},)";
  auto g = ImportTfjsModel(Write("model.json", SimpleModel("w.bin", extra)));
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->outputs, std::vector<std::string>({"out:0", "y:0"}));
  EXPECT_EQ(g->inputs, std::vector<std::string>({"x:0"}));
  EXPECT_NE(g->metadata["tfjs.signature"].find("\"z\""), std::string::npos);
}

// Expects an error of `code` whose message contains every one of `parts`.
void ExpectError(const StatusOr<Graph>& g, StatusCode code, std::vector<std::string> parts) {
  ASSERT_FALSE(g.ok()) << "import succeeded";
  EXPECT_EQ(g.status().code(), code) << g.status();
  for (const auto& p : parts) {
    EXPECT_NE(g.status().message().find(p), std::string::npos)
        << "'" << p << "' not in: " << g.status();
  }
}

TEST_F(TfjsImportTest, ShortShardIsDataLossNamingWeightAndShard) {
  Write("w.bin", Bytes<float>({1.5f}));  // the manifest says 2 floats
  ExpectError(ImportTfjsModel(Write("model.json", SimpleModel())), StatusCode::kDataLoss,
              {"weight 'w'", "'w.bin'", "shorter than the manifest"});
}

TEST_F(TfjsImportTest, TrailingShardBytesAreDataLoss) {
  Write("w.bin", Bytes<float>({1.5f, -2.0f, 3.0f}));
  ExpectError(ImportTfjsModel(Write("model.json", SimpleModel())), StatusCode::kDataLoss,
              {"'w.bin'", "12 bytes", "describes 8"});
}

TEST_F(TfjsImportTest, MissingShardIsNotFound) {
  ExpectError(ImportTfjsModel(Write("model.json", SimpleModel())), StatusCode::kNotFound,
              {"'w.bin'"});
}

TEST_F(TfjsImportTest, WeightPathsMustStayInTheModelDirectory) {
  Write("w.bin", Bytes<float>({1.5f, -2.0f}));
  const std::string model = Write("m/model.json", SimpleModel("../w.bin"));
  ExpectError(ImportTfjsModel(model), StatusCode::kInvalidArgument, {"'../w.bin'", "escapes"});
  ExpectError(ImportTfjsModel(Write("m/model.json", SimpleModel((dir_ / "w.bin").string()))),
              StatusCode::kInvalidArgument, {"must be a relative path"});
  ExpectError(ImportTfjsModel(Write("m/model.json", SimpleModel("."))),
              StatusCode::kInvalidArgument, {"escapes"});
}

TEST_F(TfjsImportTest, GarbageJson) {
  ExpectError(ImportTfjsModel(Write("model.json", "{\"format\": \"graph-model\", ")),
              StatusCode::kInvalidArgument, {"model.json", "not valid JSON"});
  ExpectError(ImportTfjsModel(Write("model.json", std::string("\x93NUMPY\0\0", 8))),
              StatusCode::kInvalidArgument, {"not valid JSON"});
  ExpectError(ImportTfjsModel(Write("model.json", "[1, 2]")), StatusCode::kInvalidArgument,
              {"JSON object"});
  // Refused by the nesting limit before the parser (whose dump() would recurse per level).
  ExpectError(ImportTfjsModel(Write("model.json", std::string(100000, '[') + "1")),
              StatusCode::kInvalidArgument, {"model.json", "JSON nested deeper than 64 levels"});
}

TEST_F(TfjsImportTest, MissingModelTopology) {
  ExpectError(ImportTfjsModel(Write("model.json", R"({"format":"graph-model"})")),
              StatusCode::kInvalidArgument, {"modelTopology"});
}

TEST_F(TfjsImportTest, WrongFormatString) {
  ExpectError(ImportTfjsModel(
                  Write("model.json", R"({"format":"layers-model","modelTopology":{"node":[]}})")),
              StatusCode::kInvalidArgument, {"'layers-model'", "graph-model"});
}

TEST_F(TfjsImportTest, TopologyThatIsNotAGraphDef) {
  ExpectError(ImportTfjsModel(
                  Write("model.json", R"({"format":"graph-model","modelTopology":{"node":5}})")),
              StatusCode::kInvalidArgument, {"not a GraphDef"});
}

TEST_F(TfjsImportTest, MissingFileIsNotFound) {
  ExpectError(ImportTfjsModel((dir_ / "absent.json").string()), StatusCode::kNotFound,
              {"absent.json"});
}

TEST_F(TfjsImportTest, ConstWithoutWeight) {
  const std::string nodes =
      std::string(kPlaceholder) + "," + ConstNode("w", "DT_FLOAT", {2}) + "," + kAdd + "," + kOut;
  ExpectError(ImportTfjsModel(Write("model.json", Model(nodes, "[]"))),
              StatusCode::kInvalidArgument, {"Const node 'w'", "no weight"});
}

TEST_F(TfjsImportTest, BadWeightSpecs) {
  Write("w.bin", Bytes<float>({1.5f, -2.0f}));
  const std::string nodes =
      std::string(kPlaceholder) + "," + ConstNode("w", "DT_FLOAT", {2}) + "," + kAdd + "," + kOut;
  auto import = [&](const std::string& weights) {
    return ImportTfjsModel(
        Write("model.json", Model(nodes, R"([{"paths":["w.bin"],"weights":[)" + weights + "]}]")));
  };
  ExpectError(
      import(R"({"name":"w","shape":[2],"dtype":"float32","quantization":{"dtype":"int4"}})"),
      StatusCode::kUnimplemented, {"weight 'w'", "int4"});
  ExpectError(import(R"({"name":"w","shape":[2],"dtype":"complex64"})"), StatusCode::kUnimplemented,
              {"complex64"});
  ExpectError(import(R"({"name":"w","shape":[4294967296,4294967296],"dtype":"float32"})"),
              StatusCode::kInvalidArgument, {"weight 'w'"});
  ExpectError(import(R"({"name":"w","shape":[4611686018427387904],"dtype":"float32"})"),
              StatusCode::kInvalidArgument, {"weight 'w'", "overflow"});
  ExpectError(import(R"({"name":"w","shape":[-2],"dtype":"float32"})"),
              StatusCode::kInvalidArgument, {"non-negative"});
  ExpectError(import(R"({"name":"w","shape":[2],"dtype":"int32"})"), StatusCode::kInvalidArgument,
              {"DT_INT32", "DT_FLOAT"});
  ExpectError(import(R"({"name":"w","shape":[1,2],"dtype":"float32"})"),
              StatusCode::kInvalidArgument, {"[1,2]", "[2]"});
  ExpectError(import(R"({"name":"u","shape":[1],"dtype":"float32"},)"
                     R"({"name":"u","shape":[1],"dtype":"float32"})"),
              StatusCode::kInvalidArgument, {"twice"});
  ExpectError(import(R"({"name":"w","shape":[2],"dtype":"float32",)"
                     R"("quantization":{"dtype":"uint8","scale":1}})"),
              StatusCode::kInvalidArgument, {"'min'"});
  ExpectError(import(R"({"name":"x","shape":[2],"dtype":"float32"})"), StatusCode::kInvalidArgument,
              {"Placeholder", "not a Const"});
  ExpectError(import(R"({"shape":[2],"dtype":"float32"})"), StatusCode::kInvalidArgument,
              {"no 'name'"});
}

TEST_F(TfjsImportTest, StringWeightLengthsAreChecked) {
  const std::string nodes = ConstNode("s", "DT_STRING", {2});
  auto import = [&](const std::string& bytes) {
    Write("s.bin", bytes);
    return ImportTfjsModel(Write(
        "model.json",
        Model(nodes,
              R"([{"paths":["s.bin"],"weights":[{"name":"s","shape":[2],"dtype":"string"}]}])")));
  };
  std::string ok = Bytes<uint32_t>({2}) + "ab" + Bytes<uint32_t>({0});
  auto g = import(ok);
  ASSERT_TRUE(g.ok()) << g.status();
  const Tensor& s = Init(*g, "s:0");
  ASSERT_EQ(s.dtype(), DataType::kString);
  EXPECT_EQ(s.data<std::string>()[0], "ab");
  EXPECT_EQ(s.data<std::string>()[1], "");
  ExpectError(import(Bytes<uint32_t>({2}) + "ab" + Bytes<uint32_t>({0xFFFFFFFFu})),
              StatusCode::kDataLoss, {"weight 's'", "'s.bin'"});
}

TEST_F(TfjsImportTest, SignatureNamingAMissingTensor) {
  Write("w.bin", Bytes<float>({1.5f, -2.0f}));
  ExpectError(ImportTfjsModel(Write(
                  "model.json",
                  SimpleModel("w.bin", R"("signature":{"outputs":{"o":{"name":"nope:0"}}},)"))),
              StatusCode::kNotFound, {"'nope:0'"});
  ExpectError(
      ImportTfjsModel(Write(
          "model.json", SimpleModel("w.bin", R"("signature":{"inputs":{"i":{"name":"y:0"}}},)"))),
      StatusCode::kNotFound, {"'y:0'", "Placeholder"});
}

}  // namespace
}  // namespace kiln
