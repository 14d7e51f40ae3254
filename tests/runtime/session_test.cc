#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "io/onnx/onnx_import.h"
#include "kiln/session.h"
#include "ops/op_test_util.h"
#include "runtime/onnx_builder.h"

namespace kiln {
namespace {

using testing::OnnxBuilder;

using testing::DenseModel;  // runtime/onnx_builder.h

std::unique_ptr<Session> Load(const std::string& bytes) {
  auto g = ImportOnnxBytes(bytes, "dense.onnx", "");
  EXPECT_TRUE(g.ok()) << g.status();
  auto s = Session::FromGraph(std::move(g).value());
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(s).value() : nullptr;
}

// Reference for DenseModel computed independently of the kernels.
std::vector<float> Reference(const Tensor& x, bool relu) {
  std::vector<float> out;
  const float* p = x.data<float>();
  float bias[3] = {0.1f, -0.2f, 0.3f};
  for (int64_t r = 0; r < x.dim(0); ++r) {
    for (int c = 0; c < 3; ++c) {
      float acc = bias[c];
      for (int k = 0; k < 4; ++k) acc += p[r * 4 + k] * (0.1f * static_cast<float>(k * 3 + c) - 0.5f);
      out.push_back(relu ? std::max(acc, 0.0f) : acc);
    }
  }
  return out;
}

TEST(Session, RunsAndReportsSignature) {
  auto s = Load(DenseModel());
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->inputs().size(), 1u);
  EXPECT_EQ(s->inputs()[0].shape.ToString(), "[?,4]");
  EXPECT_EQ(s->outputs()[0].dtype, DataType::kFloat32);
  Tensor x = testing::RandomTensor(DataType::kFloat32, {5, 4}, 1);
  auto out = s->Run({{"x", x}});
  ASSERT_TRUE(out.ok()) << out.status();
  auto want = Reference(x, true);
  ASSERT_EQ((*out)[0].num_elements(), 15);
  int positive = 0;
  for (int i = 0; i < 15; ++i) {
    EXPECT_NEAR((*out)[0].data<float>()[i], want[i], 1e-5f);
    positive += want[i] > 0;
  }
  EXPECT_GT(positive, 0);  // the check is not vacuous
  EXPECT_LT(positive, 15);
}

TEST(Session, FetchesIntermediatesAndSkipsUnneededNodes) {
  auto s = Load(DenseModel());
  ASSERT_NE(s, nullptr);
  Tensor x = testing::RandomTensor(DataType::kFloat32, {2, 4}, 2);
  RunStats stats;
  RunOptions opts;
  opts.profile = true;
  auto out = s->Run({{"x", x}}, {"pre"}, opts, &stats);
  ASSERT_TRUE(out.ok()) << out.status();
  auto want = Reference(x, false);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR((*out)[0].data<float>()[i], want[i], 1e-5f);
  ASSERT_EQ(stats.nodes.size(), 2u);  // Relu is not needed for "pre"
  EXPECT_EQ(stats.nodes[1].node, "bias");
}

TEST(Session, FeedErrorsAreClear) {
  auto s = Load(DenseModel());
  ASSERT_NE(s, nullptr);
  Tensor good = testing::RandomTensor(DataType::kFloat32, {1, 4}, 3);
  auto missing = s->Run({});
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("'x'"), std::string::npos);
  auto unknown = s->Run({{"x", good}, {"z", good}});
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
  auto dtype = s->Run({{"x", testing::RandomTensor(DataType::kInt32, {1, 4}, 4)}});
  EXPECT_EQ(dtype.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(dtype.status().message().find("expects float32[?,4], got int32[1,4]"),
            std::string::npos)
      << dtype.status();
  auto shape = s->Run({{"x", testing::RandomTensor(DataType::kFloat32, {1, 5}, 5)}});
  EXPECT_EQ(shape.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(shape.status().message().find("dense.onnx"), std::string::npos) << shape.status();
  auto fetch = s->Run({{"x", good}}, {"nope"});
  EXPECT_EQ(fetch.status().code(), StatusCode::kNotFound);
}

TEST(Session, ConcurrentRunsMatchSerialRuns) {
  auto s = Load(DenseModel());
  ASSERT_NE(s, nullptr);
  constexpr int kThreads = 8, kRuns = 50;
  std::vector<Tensor> inputs, expected;
  for (int t = 0; t < kThreads; ++t) {
    inputs.push_back(testing::RandomTensor(DataType::kFloat32, {3 + t, 4}, 100 + t));
    auto out = s->Run({{"x", inputs.back()}});
    ASSERT_TRUE(out.ok());
    expected.push_back((*out)[0]);
  }
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRuns; ++r) {
        auto out = s->Run({{"x", inputs[t]}});
        if (!out.ok() || !(*out)[0].BitwiseEqual(expected[t])) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

TEST(Session, UnknownOpIsRejectedNamingTheNode) {
  OnnxBuilder b;
  b.Input("x", 1, {2}).Output("y", 1, {2});
  b.Node("FrobnicateV7", {"x"}, {"y"}, "frob");
  auto g = ImportOnnxBytes(b.Serialize(), "frob.onnx", "");
  ASSERT_TRUE(g.ok());
  auto s = Session::FromGraph(std::move(g).value());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(s.status().message().find("node 'frob' (FrobnicateV7)"), std::string::npos)
      << s.status();
}

TEST(Session, ShapeContradictionIsAnError) {
  OnnxBuilder b;
  b.Input("x", 1, {2, 3}).Output("y", 1, {5});  // Relu keeps [2,3]: the model lies
  b.Node("Relu", {"x"}, {"y"}, "r");
  auto g = ImportOnnxBytes(b.Serialize(), "lie.onnx", "");
  ASSERT_TRUE(g.ok());
  auto s = Session::FromGraph(std::move(g).value());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("node 'r' (Relu)"), std::string::npos) << s.status();
}

TEST(Session, CycleIsRejected) {
  OnnxBuilder b;
  b.Input("x", 1, {2}).Output("y", 1, {2});
  b.Node("Add", {"x", "z"}, {"y"}, "a");
  b.Node("Relu", {"y"}, {"z"}, "b");
  auto g = ImportOnnxBytes(b.Serialize(), "cycle.onnx", "");
  ASSERT_TRUE(g.ok());
  auto s = Session::FromGraph(std::move(g).value());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("cycle"), std::string::npos) << s.status();
}

TEST(OnnxImport, BadFilesGiveClearErrors) {
  auto dir = std::filesystem::temp_directory_path() / "kiln_bad_onnx";
  std::filesystem::create_directories(dir);
  std::string model = DenseModel();
  static const char kGarbage[] = "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff garbage";
  struct Case {
    std::string file, bytes, expect;
  } cases[] = {
      {"truncated.onnx", model.substr(0, model.size() / 2), "not a valid ONNX model"},
      {"garbage.onnx", std::string(kGarbage, sizeof kGarbage - 1), "not a valid ONNX model"},
      {"empty.onnx", "", "empty"},
  };
  for (const auto& c : cases) {
    auto path = (dir / c.file).string();
    std::ofstream(path, std::ios::binary) << c.bytes;
    auto s = Session::Load(path);
    ASSERT_FALSE(s.ok()) << c.file;
    EXPECT_NE(s.status().message().find(c.file), std::string::npos) << s.status();
    EXPECT_NE(s.status().message().find(c.expect), std::string::npos) << s.status();
  }
  auto missing = Session::Load((dir / "nope.onnx").string());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST(OnnxImport, RejectsBadTensorsAndOpsets) {
  {
    OnnxBuilder b;
    b.Input("x", 1, {3}).Output("y", 1, {3});
    b.FloatInitializer("w", {4}, {1, 2, 3});  // 3 values for 4 elements
    b.Node("Add", {"x", "w"}, {"y"});
    auto g = ImportOnnxBytes(b.Serialize(), "short.onnx", "");
    ASSERT_FALSE(g.ok());
    EXPECT_NE(g.status().message().find("'w'"), std::string::npos) << g.status();
  }
  {
    OnnxBuilder b(99);
    b.Input("x", 1, {3}).Output("y", 1, {3});
    b.Node("Relu", {"x"}, {"y"});
    auto g = ImportOnnxBytes(b.Serialize(), "future.onnx", "");
    EXPECT_EQ(g.status().code(), StatusCode::kUnimplemented);
    EXPECT_NE(g.status().message().find("opset 99"), std::string::npos) << g.status();
  }
  {
    OnnxBuilder b;
    b.model().mutable_graph()->add_input()->set_name("untyped");
    b.Output("y", 1, {3});
    b.Node("Relu", {"untyped"}, {"y"});
    auto g = ImportOnnxBytes(b.Serialize(), "untyped.onnx", "");
    ASSERT_FALSE(g.ok());
    EXPECT_NE(g.status().message().find("has no type"), std::string::npos) << g.status();
  }
  {  // external data must stay inside the model's directory
    OnnxBuilder b;
    b.Input("x", 1, {3}).Output("y", 1, {3});
    auto* t = b.model().mutable_graph()->add_initializer();
    t->set_name("w");
    t->set_data_type(1);
    t->add_dims(3);
    t->set_data_location(onnxpb::TensorProto::EXTERNAL);
    auto* kv = t->add_external_data();
    kv->set_key("location");
    kv->set_value("../../etc/passwd");
    b.Node("Add", {"x", "w"}, {"y"});
    auto g = ImportOnnxBytes(b.Serialize(), "escape.onnx", "/tmp/kiln_model_dir");
    ASSERT_FALSE(g.ok());
    EXPECT_NE(g.status().message().find("escapes the model's directory"), std::string::npos)
        << g.status();
  }
}

TEST(InspectModel, ListsUnsupportedOpsWithReasons) {
  OnnxBuilder b;
  b.Input("x", 1, {2}).Output("y", 1, {2});
  b.Node("Relu", {"x"}, {"r"}, "ok");
  b.Node("Frobnicate", {"r"}, {"y"}, "bad");
  auto path = (std::filesystem::temp_directory_path() / "kiln_inspect.onnx").string();
  std::ofstream(path, std::ios::binary) << b.Serialize();
  auto info = InspectModel(path);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->op_histogram.at("Relu"), 1);
  ASSERT_EQ(info->unsupported.size(), 1u);
  EXPECT_EQ(info->unsupported[0].node, "bad");
  EXPECT_NE(info->unsupported[0].reason.find("not in kiln's op table"), std::string::npos);
}

}  // namespace
}  // namespace kiln
