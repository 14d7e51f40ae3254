// Lean plans (src/backends/cpu/lean_weights.h) and warm starts: a lean plan references the
// segment's initializers (verbatim ones by name + hash, BN-folded ones re-derived and hash
// checked) and gives the same outputs as a self-contained plan; a changed initializer or a
// plan of the previous format version is rejected and rebuilt through the disk cache.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "backends/cpu/cpu_test_util.h"
#include "engine/engine_cache.h"
#include "engine/engine_loader.h"
#include "engine/plan.h"
#include "kiln/engine_cache.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using testing_cpu::A;
using testing_cpu::Random;
using testing_cpu::SegmentBuilder;

// conv1 (weights used as is: an initializer reference) -> relu -> conv2 + BN (weights folded:
// derived) -> add.
SegmentBuilder Model(uint32_t seed) {
  SegmentBuilder b;
  const int64_t c = 8;
  b.In("x", {2, c, 6, 6});
  b.Init("w1", Random({c, c, 3, 3}, seed + 1, -0.2f, 0.2f)).Init("b1", Random({c}, seed + 2));
  b.Init("w2", Random({c, c, 3, 3}, seed + 3, -0.2f, 0.2f));
  b.Init("bn_s", Random({c}, seed + 4, 0.5f, 1.5f)).Init("bn_b", Random({c}, seed + 5));
  b.Init("bn_m", Random({c}, seed + 6)).Init("bn_v", Random({c}, seed + 7, 0.5f, 2.f));
  const AttrMap pads = A({{"pads", Attr::Ints({1, 1, 1, 1})}});
  b.Op("Conv", {"x", "w1", "b1"}, {"c1"}, pads);
  b.Op("Relu", {"c1"}, {"r1"});
  b.Op("Conv", {"r1", "w2"}, {"c2"}, pads);
  b.Op("BatchNormalization", {"c2", "bn_s", "bn_b", "bn_m", "bn_v"}, {"n2"});
  b.Op("Add", {"n2", "r1"}, {"y"}).Out("y");
  return b;
}

struct EnvVar {
  EnvVar(const char* n, const char* v) : name(n) { setenv(n, v, 1); }
  ~EnvVar() { unsetenv(name); }
  const char* name;
};

std::unique_ptr<Engine> MustBuild(const SegmentBuilder& b) {
  StatusOr<std::unique_ptr<Engine>> e =
      CpuBackend().Build(b.graph(), testing_cpu::Config(b.shapes()));
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? std::move(e).value() : nullptr;
}

std::vector<Tensor> MustRun(const Engine& e, const Tensor& x) {
  auto out = testing_cpu::RunEngine(e, {x});
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : std::vector<Tensor>();
}

void ExpectSame(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i].BitwiseEqual(b[i])) << i;
}

std::string ReadAll(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
void WriteAll(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << s;
}

TEST(LeanPlan, SmallerThanSelfContainedAndSameOutputs) {
  SegmentBuilder b = Model(10);
  auto e = MustBuild(b);
  ASSERT_NE(e, nullptr);
  StatusOr<std::string> lean = e->SerializePayload();
  ASSERT_TRUE(lean.ok()) << lean.status();
  std::string full;
  {
    EnvVar self("KILN_PLAN_SELF_CONTAINED", "1");
    StatusOr<std::string> f = e->SerializePayload();
    ASSERT_TRUE(f.ok()) << f.status();
    full = *f;
  }
  // The weights (2 x 8x8x3x3 floats = 4608 bytes) are in the self-contained plan only.
  EXPECT_GT(full.size(), lean->size() + 4000) << full.size() << " vs " << lean->size();
  const BuildConfig cfg = testing_cpu::Config(b.shapes());
  auto from_lean = CpuBackend().Deserialize(*lean, b.graph(), cfg);
  ASSERT_TRUE(from_lean.ok()) << from_lean.status();
  auto from_full = CpuBackend().Deserialize(full, b.graph(), cfg);
  ASSERT_TRUE(from_full.ok()) << from_full.status();
  for (uint32_t seed : {1u, 2u}) {
    const Tensor x = Random({2, 8, 6, 6}, seed);
    const std::vector<Tensor> want = MustRun(*e, x);
    ExpectSame(MustRun(**from_lean, x), want);
    ExpectSame(MustRun(**from_full, x), want);
    // ... and the reference kernels agree with the engine.
    auto ref = testing_cpu::RunReference(b.graph(), {x});
    ASSERT_TRUE(ref.ok()) << ref.status();
    const float* r = (*ref)[0].data<float>();
    const float* g = want[0].data<float>();
    for (int64_t i = 0; i < (*ref)[0].num_elements(); ++i) ASSERT_NEAR(g[i], r[i], 1e-4) << i;
  }
  // A lean engine writes a lean plan again; a lean payload needs the segment's constants.
  StatusOr<std::string> again = (*from_lean)->SerializePayload();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *lean);
  // Every warm-up mode (none, arena touch = default, one whole run) gives the same outputs.
  for (const char* mode : {"0", "run"}) {
    EnvVar warm("KILN_ENGINE_WARMUP", mode);
    auto d = CpuBackend().Deserialize(*lean, b.graph(), cfg);
    ASSERT_TRUE(d.ok()) << mode << ": " << d.status();
    const Tensor x = Random({2, 8, 6, 6}, 3);
    ExpectSame(MustRun(**d, x), MustRun(*e, x));
  }
}

TEST(LeanPlan, ChangedInitializerIsRejectedWithItsName) {
  SegmentBuilder b = Model(20);
  auto e = MustBuild(b);
  ASSERT_NE(e, nullptr);
  const std::string lean = *e->SerializePayload();
  const BuildConfig cfg = testing_cpu::Config(b.shapes());
  // A verbatim initializer: named in the reason.
  SegmentBuilder changed = Model(20);
  changed.mutable_graph().initializers["w1"] = Random({8, 8, 3, 3}, 99, -0.2f, 0.2f);
  auto d = CpuBackend().Deserialize(lean, changed.graph(), cfg);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kFailedPrecondition) << d.status();
  EXPECT_NE(d.status().message().find("initializer 'w1' changed"), std::string::npos)
      << d.status();
  // An initializer folded into another weight (BN scale): the derived weight does not match.
  SegmentBuilder bn = Model(20);
  bn.mutable_graph().initializers["bn_s"] = Random({8}, 98, 0.5f, 1.5f);
  d = CpuBackend().Deserialize(lean, bn.graph(), cfg);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kFailedPrecondition) << d.status();
  EXPECT_NE(d.status().message().find("derived from the segment's initializers"),
            std::string::npos)
      << d.status();
  // A missing initializer and a different shape are rejected too, never executed.
  SegmentBuilder gone = Model(20);
  gone.mutable_graph().initializers.erase("w1");
  EXPECT_FALSE(CpuBackend().Deserialize(lean, gone.graph(), cfg).ok());
  SegmentBuilder reshaped = Model(20);
  reshaped.mutable_graph().initializers["w1"] = Random({8, 8, 9}, 97, -0.2f, 0.2f);
  EXPECT_FALSE(CpuBackend().Deserialize(lean, reshaped.graph(), cfg).ok());
}

class LeanPlanCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kiln_lean_plan_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  EngineSource Source(const SegmentBuilder& b) const {
    EngineSource src;
    src.backend = &CpuBackend();
    src.segment = &b.graph();
    src.segment_fnv = FnvUpdate(kFnvOffset, "lean plan test segment");
    src.cache_dir = dir_.string();
    src.who = "lean plan test";
    src.base = testing_cpu::Config(b.shapes());
    return src;
  }
  std::vector<fs::path> Plans() const {
    std::vector<fs::path> out;
    if (!fs::exists(dir_)) return out;
    for (const auto& f : fs::directory_iterator(dir_)) {
      if (f.path().extension() == ".kplan") out.push_back(f.path());
    }
    return out;
  }

  fs::path dir_;
};

TEST_F(LeanPlanCacheTest, ChangedInitializerUnderTheSameKeyIsRejectedAndRebuilt) {
  SegmentBuilder b = Model(30);
  const BuildConfig cfg = testing_cpu::Config(b.shapes());
  {
    auto e = LoadOrBuildEngine(Source(b), cfg);
    ASSERT_TRUE(e.ok()) << e.status();
  }
  ASSERT_EQ(Plans().size(), 1u);
  const std::string first = ReadAll(Plans()[0]);
  // The file is small: it references the segment's weights.
  EXPECT_LT(first.size(), 4000u);
  // Same key (the segment hash the caller gives is unchanged), other weights: the lean plan's
  // hashes catch it; the file is rejected, rebuilt from the new weights and overwritten.
  SegmentBuilder changed = Model(30);
  changed.mutable_graph().initializers["w1"] = Random({8, 8, 3, 3}, 77, -0.2f, 0.2f);
  const EngineCacheCounters c0 = GetEngineCacheCounters();
  ::testing::internal::CaptureStderr();
  auto e = LoadOrBuildEngine(Source(changed), cfg);
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(e.ok()) << e.status();
  const EngineCacheCounters c1 = GetEngineCacheCounters();
  EXPECT_EQ(c1.disk_rejected - c0.disk_rejected, 1);
  EXPECT_EQ(c1.builds - c0.builds, 1);
  EXPECT_NE(log.find("initializer 'w1' changed"), std::string::npos) << log;
  const Tensor x = Random({2, 8, 6, 6}, 5);
  auto fresh = MustBuild(changed);
  ASSERT_NE(fresh, nullptr);
  ExpectSame(MustRun(**e, x), MustRun(*fresh, x));
  ASSERT_EQ(Plans().size(), 1u);
  EXPECT_NE(ReadAll(Plans()[0]), first);  // overwritten
  // The rewritten file now loads for the changed segment without a build.
  auto again = LoadOrBuildEngine(Source(changed), cfg);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(GetEngineCacheCounters().builds - c1.builds, 0);
  EXPECT_EQ(GetEngineCacheCounters().disk_hits - c1.disk_hits, 1);
  ExpectSame(MustRun(**again, x), MustRun(*fresh, x));
}

TEST_F(LeanPlanCacheTest, PreviousFormatVersionIsRejectedAndRebuilt) {
  static_assert(kPlanFormatVersion == 3, "update this test's previous version");
  SegmentBuilder b = Model(40);
  const BuildConfig cfg = testing_cpu::Config(b.shapes());
  {
    EnvVar self("KILN_PLAN_SELF_CONTAINED", "1");  // an older, bigger plan
    auto e = LoadOrBuildEngine(Source(b), cfg);
    ASSERT_TRUE(e.ok()) << e.status();
  }
  ASSERT_EQ(Plans().size(), 1u);
  const fs::path file = Plans()[0];
  // The same plan stamped version 2 (the segment hash before SegmentContentHash), with a valid
  // checksum: only the version is wrong.
  std::string v1 = ReadAll(file);
  ASSERT_GT(v1.size(), 16u);
  v1[8] = 2;
  v1[9] = v1[10] = v1[11] = 0;
  v1.resize(v1.size() - 4);
  uint32_t crc = static_cast<uint32_t>(
      crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(v1.data()), v1.size()));
  for (int i = 0; i < 4; ++i) v1.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  WriteAll(file, v1);
  auto read = ReadPlan(v1);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("format version 2 is not supported"), std::string::npos)
      << read.status();

  const EngineCacheCounters c0 = GetEngineCacheCounters();
  ::testing::internal::CaptureStderr();
  auto e = LoadOrBuildEngine(Source(b), cfg);
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(GetEngineCacheCounters().builds - c0.builds, 1);
  EXPECT_EQ(GetEngineCacheCounters().disk_rejected - c0.disk_rejected, 1);
  EXPECT_NE(log.find("format version 2"), std::string::npos) << log;
  // Rewritten in the current version, lean, and the engine computes what a fresh build does.
  const std::string now = ReadAll(file);
  ASSERT_TRUE(ReadPlan(now).ok());
  EXPECT_LT(now.size(), v1.size());
  const Tensor x = Random({2, 8, 6, 6}, 6);
  auto fresh = MustBuild(b);
  ASSERT_NE(fresh, nullptr);
  ExpectSame(MustRun(**e, x), MustRun(*fresh, x));
}

}  // namespace
}  // namespace kiln
