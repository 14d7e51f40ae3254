// ONNX external data: WriteOnnxFile puts large initializers into a side file and the importer
// reads them back; bad locations (absolute, escaping the model's directory), missing and
// short side files are clear errors (this binary runs under ASan: label robustness).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "io/onnx/onnx_export.h"
#include "io/onnx/onnx_import.h"
#include "onnx.pb.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

// A fresh directory under the temp dir, removed at the end of the test.
class ExternalDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kiln_extdata_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // x[n] + big[n] -> y, with a small initializer too; big is random.
  Graph MakeGraph(int64_t n) {
    Graph g;
    g.name = "ext";
    g.opset_imports[""] = 17;
    g.inputs = {"x"};
    g.outputs = {"y"};
    g.value_info["x"] = ValueInfo{DataType::kFloat32, Shape({n})};
    g.value_info["y"] = ValueInfo{DataType::kFloat32, Shape({n})};
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> dist(-1, 1);
    std::vector<float> big(n);
    for (auto& v : big) v = dist(rng);
    g.initializers["big"] = Tensor::FromVector<float>(big);
    g.initializers["small"] = Tensor::FromVector<float>({dist(rng), dist(rng)});
    Node add;
    add.name = "add";
    add.op_type = "Add";
    add.inputs = {"x", "big"};
    add.outputs = {"y"};
    g.nodes.push_back(add);
    return g;
  }

  // Writes a model whose initializer 'w' (float[4]) points at `location` / offset / length.
  std::string ModelWithLocation(const std::string& location, int64_t offset = 0,
                                int64_t length = 16) {
    onnxpb::ModelProto m;
    m.set_ir_version(8);
    m.add_opset_import()->set_version(17);
    auto* g = m.mutable_graph();
    g->set_name("loc");
    auto* t = g->add_initializer();
    t->set_name("w");
    t->set_data_type(1);
    t->add_dims(4);
    t->set_data_location(onnxpb::TensorProto::EXTERNAL);
    auto kv = [t](const std::string& k, const std::string& v) {
      auto* e = t->add_external_data();
      e->set_key(k);
      e->set_value(v);
    };
    kv("location", location);
    kv("offset", std::to_string(offset));
    kv("length", std::to_string(length));
    auto* out = g->add_output();
    out->set_name("w");
    const std::string path = (dir_ / "loc.onnx").string();
    std::ofstream(path, std::ios::binary) << m.SerializeAsString();
    return path;
  }

  fs::path dir_;
};

TEST_F(ExternalDataTest, WritesLargeInitializersToASideFileAndReadsThemBack) {
  Graph g = MakeGraph(1000);
  const std::string path = (dir_ / "model.onnx").string();
  OnnxWriteOptions options;
  options.external_data_threshold = 1024;  // "big" (4000 bytes) goes out, "small" stays
  ASSERT_TRUE(WriteOnnxFile(g, path, options).ok());
  ASSERT_TRUE(fs::exists(dir_ / "model.onnx.data"));
  EXPECT_GE(fs::file_size(dir_ / "model.onnx.data"), 4000u);
  EXPECT_LT(fs::file_size(path), 1000u);  // the model itself no longer holds the 4000 bytes
  for (const auto& e : fs::directory_iterator(dir_)) {  // no temporary files left behind
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
  }
  auto back = ImportOnnxFile(path);
  ASSERT_TRUE(back.ok()) << back.status();
  for (const auto& [name, t] : g.initializers) {
    ASSERT_TRUE(back->initializers.count(name)) << name;
    EXPECT_TRUE(t.BitwiseEqual(back->initializers.at(name))) << name;
  }
  // The same graph without the option keeps everything inline.
  const std::string inline_path = (dir_ / "inline.onnx").string();
  ASSERT_TRUE(WriteOnnxFile(g, inline_path).ok());
  EXPECT_FALSE(fs::exists(dir_ / "inline.onnx.data"));
  EXPECT_GT(fs::file_size(inline_path), 4000u);
}

TEST_F(ExternalDataTest, CustomSideFileNameMustBeAPlainName) {
  Graph g = MakeGraph(300);
  OnnxWriteOptions options;
  options.external_data_threshold = 16;
  options.external_data_file = "weights.bin";
  const std::string path = (dir_ / "m.onnx").string();
  ASSERT_TRUE(WriteOnnxFile(g, path, options).ok());
  EXPECT_TRUE(fs::exists(dir_ / "weights.bin"));
  auto back = ImportOnnxFile(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(g.initializers.at("big").BitwiseEqual(back->initializers.at("big")));
  for (const char* bad : {"../escape.bin", "/tmp/abs.bin", "sub/dir.bin"}) {
    options.external_data_file = bad;
    Status st = WriteOnnxFile(g, path, options);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST_F(ExternalDataTest, BadLocationsAndFilesAreClearErrors) {
  {
    auto g = ImportOnnxFile(ModelWithLocation("../../etc/passwd"));
    ASSERT_FALSE(g.ok());
    EXPECT_NE(g.status().message().find("escapes the model's directory"), std::string::npos)
        << g.status();
  }
  {
    auto g = ImportOnnxFile(ModelWithLocation("/etc/passwd"));
    ASSERT_FALSE(g.ok());
    EXPECT_NE(g.status().message().find("relative path"), std::string::npos) << g.status();
  }
  {
    auto g = ImportOnnxFile(ModelWithLocation("missing.bin"));
    ASSERT_FALSE(g.ok());
    EXPECT_EQ(g.status().code(), StatusCode::kNotFound) << g.status();
    EXPECT_NE(g.status().message().find("missing.bin"), std::string::npos) << g.status();
  }
  std::ofstream(dir_ / "short.bin", std::ios::binary) << std::string(10, 'x');
  {
    auto g = ImportOnnxFile(ModelWithLocation("short.bin"));
    ASSERT_FALSE(g.ok());
    EXPECT_EQ(g.status().code(), StatusCode::kDataLoss) << g.status();
  }
  {
    auto g = ImportOnnxFile(ModelWithLocation("short.bin", 8, 16));
    ASSERT_FALSE(g.ok());
    EXPECT_EQ(g.status().code(), StatusCode::kDataLoss) << g.status();
  }
  {  // a symlink inside the directory that points outside it escapes too
    std::error_code ec;
    fs::create_symlink("/etc/hostname", dir_ / "link.bin", ec);
    if (!ec) {
      auto g = ImportOnnxFile(ModelWithLocation("link.bin"));
      ASSERT_FALSE(g.ok());
      EXPECT_NE(g.status().message().find("escapes"), std::string::npos) << g.status();
    }
  }
  {  // a well-formed side file with an offset reads the right bytes
    std::vector<float> v = {0.25f, -1.5f, 3.0f, 7.75f};
    std::string bytes(8, '\0');
    bytes.append(reinterpret_cast<const char*>(v.data()), 16);
    std::ofstream(dir_ / "ok.bin", std::ios::binary) << bytes;
    auto g = ImportOnnxFile(ModelWithLocation("ok.bin", 8, 16));
    ASSERT_TRUE(g.ok()) << g.status();
    const Tensor& w = g->initializers.at("w");
    for (int i = 0; i < 4; ++i) EXPECT_EQ(w.data<float>()[i], v[i]);
  }
}

}  // namespace
}  // namespace kiln
