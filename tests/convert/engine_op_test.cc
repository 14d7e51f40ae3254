// kiln.EngineOp at run time (src/runtime/engine_op.cc): engine vs native segment, the reason
// logged once per EngineOp, rejected plans (corrupt, foreign device, swapped segment),
// KILN_ALLOW_NATIVE_FALLBACK=0, dynamic mode's runtime builds. Uses the test backend, whose
// engines run the reference kernels, so every path must give bit-identical outputs.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "convert/convert_test_util.h"
#include "convert/test_backend.h"
#include "io/onnx/onnx_import.h"
#include "kiln/convert.h"
#include "kiln/session.h"

namespace kiln {
namespace {

using testing::Count;
using testing::Random;
using testing::ScopedTestBackend;

const std::string kModel = std::string(KILN_SOURCE_DIR) + "/models/ppocr_cls/model.onnx";

class EngineOpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto g = ImportOnnxFile(kModel);
    ASSERT_TRUE(g.ok());
    original_ = std::move(g).value();
    auto s = Session::FromGraph(original_);
    ASSERT_TRUE(s.ok());
    reference_ = std::move(s).value();
  }
  void TearDown() override { unsetenv("KILN_ALLOW_NATIVE_FALLBACK"); }

  Graph Convert(bool dynamic = false, int max_cached = 1) {
    ConversionParams p;
    p.backend = "test";
    p.max_batch_size = 4;
    p.input_shapes["x"] = {-1, 3, 48, 192};
    p.is_dynamic_op = dynamic;
    p.maximum_cached_engines = max_cached;
    auto r = CreateInferenceGraph(original_, p);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return Graph();
    num_engines_ = static_cast<int>(r->summary().engines.size());
    EXPECT_GT(num_engines_, 0);
    return r->graph();
  }

  // Runs `session` and checks the outputs equal the unconverted model's.
  void ExpectReferenceOutputs(const Session& session, int64_t batch, uint32_t seed) {
    const Tensor x = Random({batch, 3, 48, 192}, seed);
    auto got = session.Run({{"x", x}});
    ASSERT_TRUE(got.ok()) << got.status();
    auto want = reference_->Run({{"x", x}});
    ASSERT_TRUE(want.ok());
    ASSERT_EQ(got->size(), want->size());
    for (size_t i = 0; i < want->size(); ++i) EXPECT_TRUE((*got)[i].BitwiseEqual((*want)[i]));
  }

  static Node* FirstEngineOp(Graph& g) {
    for (auto& n : g.nodes) {
      if (n.op_type == "EngineOp") return &n;
    }
    return nullptr;
  }

  ScopedTestBackend tb_;
  Graph original_;
  std::unique_ptr<Session> reference_;
  int num_engines_ = 0;
};

TEST_F(EngineOpTest, BatchAboveMaxRunsNativeSegmentAndLogsOnce) {
  auto session = Session::FromGraph(Convert());
  ASSERT_TRUE(session.ok()) << session.status();
  const int runs = tb_.backend.runs.load();
  ExpectReferenceOutputs(**session, 4, 1);  // at max_batch_size: engines
  EXPECT_EQ(tb_.backend.runs.load() - runs, num_engines_);

  ::testing::internal::CaptureStderr();
  ExpectReferenceOutputs(**session, 6, 2);  // above: native segments
  ExpectReferenceOutputs(**session, 5, 3);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(tb_.backend.runs.load() - runs, num_engines_);  // no engine ran
  EXPECT_EQ(Count(log, "running the native segment"), static_cast<size_t>(num_engines_)) << log;
  EXPECT_NE(log.find("batch 6 is above max_batch_size 4"), std::string::npos) << log;
  ExpectReferenceOutputs(**session, 2, 4);  // below again: engines
  EXPECT_EQ(tb_.backend.runs.load() - runs, 2 * num_engines_);
}

TEST_F(EngineOpTest, CorruptedPlanIsRejectedAndNativeSegmentRuns) {
  Graph g = Convert();
  Node* op = FirstEngineOp(g);
  ASSERT_NE(op, nullptr);
  std::string& plan = op->attrs["serialized_engine"].s;
  plan[plan.size() / 2] ^= 0x5a;
  ::testing::internal::CaptureStderr();
  auto session = Session::FromGraph(g);
  ASSERT_TRUE(session.ok()) << session.status();
  const int runs = tb_.backend.runs.load();
  ExpectReferenceOutputs(**session, 3, 5);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find(op->name + "' (kiln.EngineOp): plan rejected"), std::string::npos) << log;
  EXPECT_NE(log.find("checksum"), std::string::npos) << log;
  EXPECT_EQ(tb_.backend.runs.load() - runs, num_engines_ - 1);  // the others still run
}

TEST_F(EngineOpTest, ForeignDevicePlanIsRejected) {
  Graph g = Convert();
  tb_.backend.fingerprint = "test-device-2";
  ::testing::internal::CaptureStderr();
  auto session = Session::FromGraph(g);
  ASSERT_TRUE(session.ok()) << session.status();
  ExpectReferenceOutputs(**session, 2, 6);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("plan rejected: built for another device (test-device-1"), std::string::npos)
      << log;
}

TEST_F(EngineOpTest, PlanOfAnotherSegmentIsRejected) {
  tb_.backend.ops.erase("GlobalAveragePool");  // splits the network into several engines
  Graph g = Convert();
  ASSERT_GE(num_engines_, 2);
  std::vector<Node*> ops;
  for (auto& n : g.nodes) {
    if (n.op_type == "EngineOp") ops.push_back(&n);
  }
  std::swap(ops[0]->attrs["serialized_engine"], ops[1]->attrs["serialized_engine"]);
  ::testing::internal::CaptureStderr();
  auto session = Session::FromGraph(g);
  ASSERT_TRUE(session.ok()) << session.status();
  ExpectReferenceOutputs(**session, 1, 7);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("plan rejected"), std::string::npos) << log;
}

TEST_F(EngineOpTest, NoFallbackWhenDisabled) {
  auto session = Session::FromGraph(Convert());
  ASSERT_TRUE(session.ok());
  setenv("KILN_ALLOW_NATIVE_FALLBACK", "0", 1);
  ExpectReferenceOutputs(**session, 4, 8);  // engines: fine
  auto r = (*session)->Run({{"x", Random({5, 3, 48, 192}, 9)}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("KILN_ALLOW_NATIVE_FALLBACK=0"), std::string::npos);
  EXPECT_NE(r.status().message().find("batch 5 is above max_batch_size 4"), std::string::npos)
      << r.status();
}

TEST_F(EngineOpTest, DynamicModeBuildsAtRunTimeWithinTheCache) {
  Graph g = Convert(/*dynamic=*/true, /*max_cached=*/1);
  for (const auto& n : g.nodes) {
    if (n.op_type != "EngineOp") continue;
    EXPECT_TRUE(n.FindAttr("serialized_engine")->s.empty());
    EXPECT_EQ(n.FindAttr("allow_build_at_runtime")->i, 1);
  }
  auto session = Session::FromGraph(g);
  ASSERT_TRUE(session.ok()) << session.status();
  const int builds = tb_.backend.builds.load();
  const int runs = tb_.backend.runs.load();
  ExpectReferenceOutputs(**session, 2, 10);
  ExpectReferenceOutputs(**session, 2, 11);
  EXPECT_EQ(tb_.backend.builds.load() - builds, num_engines_);  // built once, then cached
  EXPECT_EQ(tb_.backend.runs.load() - runs, 2 * num_engines_);
  ExpectReferenceOutputs(**session, 3, 12);  // a new shape, cache full: LRU evicts, builds
  EXPECT_EQ(tb_.backend.builds.load() - builds, 2 * num_engines_);
  EXPECT_EQ(tb_.backend.runs.load() - runs, 3 * num_engines_);
}

TEST_F(EngineOpTest, MissingSegmentFunctionIsAnError) {
  Graph g = Convert();
  g.functions.clear();
  auto session = Session::FromGraph(g);
  ASSERT_FALSE(session.ok());
  EXPECT_NE(session.status().message().find("segment_func"), std::string::npos) << session.status();
}

}  // namespace
}  // namespace kiln
