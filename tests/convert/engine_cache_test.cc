// Engine caches (issue 6): the in-memory LRU (eviction order, capacity, build-once, remembered
// failures), the process-wide registry shared by Sessions, shape keys in dynamic mode, static
// mode's batch range, allow_build_at_runtime=false, cached_engine_batches, the disk engine
// cache (hits across Sessions, corrupt and foreign files, size cap) and shape profiles
// (ConvertedModel::BuildEngines). EngineOp tests use the test backend, whose engines run the
// reference kernels: every path must give the unconverted model's outputs bit for bit.
#include "engine/engine_cache.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "convert/convert_test_util.h"
#include "convert/test_backend.h"
#include "engine/disk_cache.h"
#include "io/onnx/onnx_export.h"
#include "io/onnx/onnx_import.h"
#include "kiln/convert.h"
#include "kiln/engine_cache.h"
#include "kiln/session.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using testing::Count;
using testing::Random;
using testing::ScopedTestBackend;

const std::string kModel = std::string(KILN_SOURCE_DIR) + "/models/ppocr_cls/model.onnx";

std::string ReadAll(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void WriteAll(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << bytes;
}

std::vector<fs::path> PlanFiles(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".kplan") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A stand-in engine for the LRU tests.
class FakeEngine : public Engine {
 public:
  explicit FakeEngine(int id) : id(id) {}
  Status Execute(const std::vector<const Tensor*>&, std::vector<Tensor>*,
                 std::vector<LayerInfo>*) const override {
    return Status::OK();
  }
  bool Accepts(const std::vector<std::vector<int64_t>>&) const override { return true; }
  std::vector<LayerInfo> Layers() const override { return {}; }
  StatusOr<std::string> SerializePayload() const override { return std::to_string(id); }
  int id;
};

EngineLru::BuildFn Builder(int id, std::atomic<int>* calls) {
  return [id, calls]() -> StatusOr<SharedEngine> {
    ++*calls;
    return SharedEngine(std::make_shared<FakeEngine>(id));
  };
}

// ------------------------------------------------------------------ LRU, registry, hashing

TEST(EngineLru, EvictsLeastRecentlyUsedAtCapacity) {
  EngineLru lru(2);
  std::atomic<int> calls{0};
  EXPECT_TRUE(lru.GetOrBuild("a", Builder(1, &calls)).built);
  EXPECT_TRUE(lru.GetOrBuild("b", Builder(2, &calls)).built);
  auto a = lru.GetOrBuild("a", Builder(99, &calls));  // hit: a becomes most recent
  EXPECT_FALSE(a.built);
  EXPECT_EQ(dynamic_cast<const FakeEngine&>(*a.engine).id, 1);
  lru.GetOrBuild("c", Builder(3, &calls));  // evicts b, the least recently used
  EXPECT_EQ(lru.Keys(), (std::vector<std::string>{"c", "a"}));
  EXPECT_EQ(lru.size(), 2u);
  EXPECT_EQ(calls.load(), 3);
  auto b = lru.GetOrBuild("b", Builder(4, &calls));  // evicted -> rebuilt, evicts a
  EXPECT_TRUE(b.built);
  EXPECT_EQ(dynamic_cast<const FakeEngine&>(*b.engine).id, 4);
  EXPECT_EQ(lru.Keys(), (std::vector<std::string>{"b", "c"}));
  const auto st = lru.stats();
  EXPECT_EQ(st.hits, 1);
  EXPECT_EQ(st.misses, 4);
  EXPECT_EQ(st.builds, 4);
  EXPECT_EQ(st.evictions, 2);
  // An evicted engine still in use stays alive.
  EXPECT_EQ(dynamic_cast<const FakeEngine&>(*a.engine).id, 1);
}

TEST(EngineLru, FailedBuildIsRememberedAndNotRetried) {
  EngineLru lru(1);
  int calls = 0;
  auto fail = [&calls]() -> StatusOr<SharedEngine> {
    ++calls;
    return ResourceExhausted("layer 'conv3' needs 123 bytes of workspace");
  };
  auto r1 = lru.GetOrBuild("k", fail);
  EXPECT_TRUE(r1.built);
  EXPECT_EQ(r1.engine, nullptr);
  EXPECT_NE(r1.failure.find("conv3"), std::string::npos);
  for (int i = 0; i < 5; ++i) {
    auto r = lru.GetOrBuild("k", fail);
    EXPECT_FALSE(r.built);
    EXPECT_EQ(r.failure, r1.failure);
  }
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(lru.stats().failure_hits, 5);
  EXPECT_EQ(lru.size(), 0u);  // failures take no capacity
}

TEST(EngineLru, ConcurrentCallersOfOneKeyBuildOnce) {
  EngineLru lru(4);
  std::atomic<int> calls{0};
  auto slow = [&calls]() -> StatusOr<SharedEngine> {
    ++calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return SharedEngine(std::make_shared<FakeEngine>(7));
  };
  std::vector<std::thread> threads;
  std::atomic<int> got{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      auto r = lru.GetOrBuild("same", slow);
      if (r.engine != nullptr && dynamic_cast<const FakeEngine&>(*r.engine).id == 7) ++got;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(got.load(), 8);
}

TEST(EngineCacheRegistry, SharedWhileHeldFreedAfter) {
  const size_t before = LiveEngineOpCaches();
  auto a = AcquireEngineOpCache("node|x", 3);
  auto b = AcquireEngineOpCache("node|x", 3);
  auto c = AcquireEngineOpCache("node|y", 3);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_NE(a.get(), c.get());
  EXPECT_EQ(a->runtime.capacity(), 3u);
  EXPECT_EQ(LiveEngineOpCaches(), before + 2);
  a.reset();
  b.reset();
  c.reset();
  EXPECT_EQ(LiveEngineOpCaches(), before);
}

TEST(EngineCacheHash, StreamingFnvEqualsHashBytes) {
  const std::string a = "segment bytes \x01\x02", b = "precision=FP32,max_batch=4";
  EXPECT_EQ(FnvHex(FnvUpdate(FnvUpdate(kFnvOffset, a), b)), HashBytes(a + b));
}

// ------------------------------------------------------------------ EngineOp + caches

class EngineCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto g = ImportOnnxFile(kModel);
    ASSERT_TRUE(g.ok());
    original_ = std::move(g).value();
    auto s = Session::FromGraph(original_);
    ASSERT_TRUE(s.ok());
    reference_ = std::move(s).value();
    dir_ = fs::temp_directory_path() /
           ("kiln_engine_cache_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override {
    unsetenv("KILN_ENGINE_CACHE_MAX_BYTES");
    fs::remove_all(dir_);
  }

  ConversionParams Params(bool dynamic, int max_cached = 1) {
    ConversionParams p;
    p.backend = "test";
    p.max_batch_size = 4;
    p.input_shapes["x"] = {-1, 3, 48, 192};
    p.is_dynamic_op = dynamic;
    p.maximum_cached_engines = max_cached;
    return p;
  }

  Graph Convert(const ConversionParams& p, ConversionSummary* summary = nullptr) {
    auto r = CreateInferenceGraph(original_, p);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return Graph();
    num_engines_ = static_cast<int>(r->summary().engines.size());
    EXPECT_GT(num_engines_, 0);
    if (summary != nullptr) *summary = r->summary();
    return r->graph();
  }

  std::unique_ptr<Session> MakeSession(const Graph& g, const std::string& cache_dir = "") {
    SessionOptions options;
    options.engine_cache_dir = cache_dir;
    auto s = Session::FromGraph(g, options);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  void ExpectReferenceOutputs(const Session& session, int64_t batch, uint32_t seed) {
    const Tensor x = Random({batch, 3, 48, 192}, seed);
    auto got = session.Run({{"x", x}});
    ASSERT_TRUE(got.ok()) << got.status();
    auto want = reference_->Run({{"x", x}});
    ASSERT_TRUE(want.ok());
    ASSERT_EQ(got->size(), want->size());
    for (size_t i = 0; i < want->size(); ++i) EXPECT_TRUE((*got)[i].BitwiseEqual((*want)[i]));
  }

  int builds() const { return tb_.backend.builds.load(); }
  int runs() const { return tb_.backend.runs.load(); }

  ScopedTestBackend tb_;
  Graph original_;
  std::unique_ptr<Session> reference_;
  int num_engines_ = 0;
  fs::path dir_;
};

TEST_F(EngineCacheTest, ShapeKeysSameShapeSameEngineOtherShapeNewEngineEvictionRebuilds) {
  auto session = MakeSession(Convert(Params(/*dynamic=*/true, /*max_cached=*/2)));
  ASSERT_NE(session, nullptr);
  const int b0 = builds();
  const EngineCacheCounters c0 = GetEngineCacheCounters();
  ExpectReferenceOutputs(*session, 2, 1);
  ExpectReferenceOutputs(*session, 2, 2);  // same shape: same engine
  EXPECT_EQ(builds() - b0, num_engines_);
  ExpectReferenceOutputs(*session, 3, 3);  // other shape: a new engine
  EXPECT_EQ(builds() - b0, 2 * num_engines_);
  ExpectReferenceOutputs(*session, 2, 4);  // both cached
  ExpectReferenceOutputs(*session, 3, 5);
  EXPECT_EQ(builds() - b0, 2 * num_engines_);
  ExpectReferenceOutputs(*session, 1, 6);  // third shape: evicts batch 2 (least recent)
  EXPECT_EQ(builds() - b0, 3 * num_engines_);
  ExpectReferenceOutputs(*session, 3, 7);  // still cached
  EXPECT_EQ(builds() - b0, 3 * num_engines_);
  ExpectReferenceOutputs(*session, 2, 8);  // evicted: rebuilt
  EXPECT_EQ(builds() - b0, 4 * num_engines_);
  const EngineCacheCounters c1 = GetEngineCacheCounters();
  EXPECT_EQ(c1.builds - c0.builds, 4 * num_engines_);
  EXPECT_EQ(c1.evictions - c0.evictions, 2 * num_engines_);
  EXPECT_EQ(c1.hits - c0.hits, 4 * num_engines_);
}

TEST_F(EngineCacheTest, StaticModeServesEveryBatchUpToMaxWithoutRebuildingAboveRunsNative) {
  auto session = MakeSession(Convert(Params(/*dynamic=*/false)));
  ASSERT_NE(session, nullptr);
  const int b0 = builds(), r0 = runs();
  std::vector<int64_t> batches = {1, 2, 3, 4, 1, 2, 3, 4};
  std::shuffle(batches.begin(), batches.end(), std::mt19937(42));
  uint32_t seed = 10;
  for (int64_t b : batches) ExpectReferenceOutputs(*session, b, seed++);
  EXPECT_EQ(builds() - b0, 0);                                              // zero rebuilds
  EXPECT_EQ(runs() - r0, static_cast<int>(batches.size()) * num_engines_);  // all on engines
  ::testing::internal::CaptureStderr();
  ExpectReferenceOutputs(*session, 5, seed++);
  ExpectReferenceOutputs(*session, 7, seed++);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(builds() - b0, 0);
  EXPECT_EQ(runs() - r0, static_cast<int>(batches.size()) * num_engines_);  // native
  EXPECT_EQ(Count(log, "running the native segment"), static_cast<size_t>(num_engines_)) << log;
  EXPECT_NE(log.find("batch 5 is above max_batch_size 4"), std::string::npos) << log;
}

TEST_F(EngineCacheTest, NoRuntimeBuildRunsNativeExceptForEnginesBuiltAhead) {
  ConversionParams p = Params(/*dynamic=*/true, /*max_cached=*/2);
  p.allow_build_at_runtime = false;
  p.cached_engine_batches = {2};
  ConversionSummary summary;
  const int b_conv = builds();
  Graph g = Convert(p, &summary);
  EXPECT_EQ(builds() - b_conv, num_engines_);  // the batch-2 engines, at conversion
  for (const auto& n : g.nodes) {
    if (n.op_type != "EngineOp") continue;
    EXPECT_EQ(n.FindAttr("allow_build_at_runtime")->i, 0);
    ASSERT_NE(n.FindAttr("cached_engines"), nullptr);
    EXPECT_EQ(n.FindAttr("cached_engines")->strings.size(), 1u);
  }
  EXPECT_NE(summary.engines[0].status.find("built ahead for batches 2"), std::string::npos)
      << summary.engines[0].status;
  auto session = MakeSession(g);
  ASSERT_NE(session, nullptr);
  const int b0 = builds(), r0 = runs();
  ExpectReferenceOutputs(*session, 2, 20);  // built ahead: engines
  EXPECT_EQ(runs() - r0, num_engines_);
  ::testing::internal::CaptureStderr();
  ExpectReferenceOutputs(*session, 3, 21);  // unseen: native, no build
  ExpectReferenceOutputs(*session, 1, 22);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(builds() - b0, 0);
  EXPECT_EQ(runs() - r0, num_engines_);
  EXPECT_NE(log.find("allow_build_at_runtime is off"), std::string::npos) << log;
}

TEST_F(EngineCacheTest, FailedRuntimeBuildIsCachedAndReportedOnce) {
  auto session = MakeSession(Convert(Params(/*dynamic=*/true, /*max_cached=*/2)));
  ASSERT_NE(session, nullptr);
  tb_.backend.fail_builds = true;
  const int b0 = builds(), r0 = runs();
  ::testing::internal::CaptureStderr();
  for (int k = 0; k < 4; ++k) ExpectReferenceOutputs(*session, 2, 30 + k);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(builds() - b0, num_engines_);  // tried once per EngineOp, never again
  EXPECT_EQ(runs() - r0, 0);               // native every time
  EXPECT_EQ(Count(log, "failed (not retried)"), static_cast<size_t>(num_engines_)) << log;
  EXPECT_NE(log.find("123 bytes of workspace"), std::string::npos) << log;
}

TEST_F(EngineCacheTest, ConcurrentSessionsBuildTheSameKeyOnce) {
  Graph g = Convert(Params(/*dynamic=*/true, /*max_cached=*/2));
  const size_t live0 = LiveEngineOpCaches();
  auto s1 = MakeSession(g);
  auto s2 = MakeSession(g);
  ASSERT_NE(s1, nullptr);
  ASSERT_NE(s2, nullptr);
  EXPECT_EQ(LiveEngineOpCaches(), live0 + num_engines_);  // one per EngineOp, shared
  tb_.backend.build_delay_ms = 150;
  const int b0 = builds();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] { ExpectReferenceOutputs(t % 2 ? *s1 : *s2, 3, 40 + t); });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(builds() - b0, num_engines_);
  s1.reset();
  s2.reset();
  EXPECT_EQ(LiveEngineOpCaches(), live0);  // freed with the last Session
}

TEST_F(EngineCacheTest, DiskCacheServesANewSessionWithoutBuilding) {
  Graph g = Convert(Params(/*dynamic=*/true, /*max_cached=*/2));
  const EngineCacheCounters c0 = GetEngineCacheCounters();
  const int b0 = builds();
  {
    auto s = MakeSession(g, dir_.string());
    ExpectReferenceOutputs(*s, 2, 50);
  }
  EXPECT_EQ(builds() - b0, num_engines_);
  ASSERT_EQ(PlanFiles(dir_).size(), static_cast<size_t>(num_engines_));
  auto listed = ListEngineCache(dir_.string());
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), static_cast<size_t>(num_engines_));
  EXPECT_EQ((*listed)[0].status, "ok");
  EXPECT_EQ((*listed)[0].backend, "test");
  EXPECT_NE((*listed)[0].input_specs.at(0).find("[2,"), std::string::npos);
  for (const auto& f : PlanFiles(dir_)) {
    fs::last_write_time(f, fs::file_time_type::clock::now() - std::chrono::hours(5));
  }
  {
    auto s = MakeSession(g, dir_.string());  // the registry entry is gone: a cold Session
    const int r0 = runs();
    ExpectReferenceOutputs(*s, 2, 51);
    EXPECT_EQ(runs() - r0, num_engines_);
  }
  EXPECT_EQ(builds() - b0, num_engines_);  // no second build
  for (const auto& f : PlanFiles(dir_)) {  // a hit marks the file as recently used
    EXPECT_LT(fs::file_time_type::clock::now() - fs::last_write_time(f), std::chrono::hours(1));
  }
  const EngineCacheCounters c1 = GetEngineCacheCounters();
  EXPECT_EQ(c1.disk_hits - c0.disk_hits, num_engines_);
  EXPECT_EQ(c1.disk_writes - c0.disk_writes, num_engines_);
  auto cleared = ClearEngineCache(dir_.string());
  ASSERT_TRUE(cleared.ok());
  EXPECT_EQ(*cleared, num_engines_);
  EXPECT_TRUE(PlanFiles(dir_).empty());
}

TEST_F(EngineCacheTest, CorruptOrTruncatedCacheFileIsRejectedRebuiltAndOverwritten) {
  Graph g = Convert(Params(/*dynamic=*/true, /*max_cached=*/2));
  { ExpectReferenceOutputs(*MakeSession(g, dir_.string()), 2, 60); }
  auto files = PlanFiles(dir_);
  ASSERT_EQ(files.size(), static_cast<size_t>(num_engines_));
  for (size_t k = 0; k < files.size(); ++k) {
    std::string bytes = ReadAll(files[k]);
    if (k % 2 == 0) {
      bytes[bytes.size() / 2] ^= 0x21;  // corrupt
    } else {
      bytes.resize(bytes.size() - 7);  // truncated
    }
    WriteAll(files[k], bytes);
  }
  const EngineCacheCounters c0 = GetEngineCacheCounters();
  const int b0 = builds();
  ::testing::internal::CaptureStderr();
  { ExpectReferenceOutputs(*MakeSession(g, dir_.string()), 2, 61); }
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(builds() - b0, num_engines_);
  EXPECT_EQ(GetEngineCacheCounters().disk_rejected - c0.disk_rejected, num_engines_);
  EXPECT_EQ(Count(log, "rejected"), static_cast<size_t>(num_engines_)) << log;
  EXPECT_NE(log.find("checksum"), std::string::npos) << log;
  for (const auto& f : PlanFiles(dir_)) EXPECT_TRUE(ReadPlan(ReadAll(f)).ok()) << f;  // rewritten
}

TEST_F(EngineCacheTest, ForeignDeviceCacheFileIsRejectedAndRebuilt) {
  Graph g = Convert(Params(/*dynamic=*/true, /*max_cached=*/2));
  { ExpectReferenceOutputs(*MakeSession(g, dir_.string()), 2, 70); }
  const auto device1 = PlanFiles(dir_);
  tb_.backend.fingerprint = "test-device-2";  // another machine: other keys
  { ExpectReferenceOutputs(*MakeSession(g, dir_.string()), 2, 71); }
  std::vector<fs::path> device2;
  for (const auto& f : PlanFiles(dir_)) {
    if (std::find(device1.begin(), device1.end(), f) == device1.end()) device2.push_back(f);
  }
  ASSERT_EQ(device2.size(), static_cast<size_t>(num_engines_));
  // Device-1 plans copied under device 2's keys (valid checksums, foreign fingerprint).
  for (size_t k = 0; k < device2.size(); ++k)
    fs::copy_file(device1[k], device2[k], fs::copy_options::overwrite_existing);
  const int b0 = builds();
  ::testing::internal::CaptureStderr();
  { ExpectReferenceOutputs(*MakeSession(g, dir_.string()), 2, 72); }
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(builds() - b0, num_engines_);
  EXPECT_NE(log.find("built for another device (test-device-1"), std::string::npos) << log;
}

TEST_F(EngineCacheTest, ConverterReadsAndWritesTheDiskCache) {
  ConversionParams p = Params(/*dynamic=*/false);
  p.engine_cache_dir = dir_.string();
  ConversionSummary first, second;
  const int b0 = builds();
  Graph g1 = Convert(p, &first);
  EXPECT_EQ(builds() - b0, num_engines_);
  EXPECT_FALSE(first.engines[0].from_engine_cache);
  Graph g2 = Convert(p, &second);
  EXPECT_EQ(builds() - b0, num_engines_);  // the second conversion built nothing
  for (const auto& e : second.engines) EXPECT_TRUE(e.from_engine_cache) << e.name;
  auto a = ExportOnnx(g1), b = ExportOnnx(g2);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(*a == *b);  // same plans, same model
  ExpectReferenceOutputs(*MakeSession(g2), 3, 80);
}

TEST_F(EngineCacheTest, DiskCacheSizeCapEvictsLeastRecentlyUsed) {
  Graph g = Convert(Params(/*dynamic=*/true, /*max_cached=*/4));
  { ExpectReferenceOutputs(*MakeSession(g, dir_.string()), 1, 90); }
  auto files = PlanFiles(dir_);
  ASSERT_FALSE(files.empty());
  int64_t one_batch = 0;
  for (const auto& f : files) one_batch += static_cast<int64_t>(fs::file_size(f));
  // Age the batch-1 files, then allow two batches' worth of files (plans of every batch have
  // the same size).
  for (const auto& f : files) {
    fs::last_write_time(f, fs::file_time_type::clock::now() - std::chrono::hours(2));
  }
  setenv("KILN_ENGINE_CACHE_MAX_BYTES", std::to_string(one_batch * 2).c_str(), 1);
  { ExpectReferenceOutputs(*MakeSession(g, dir_.string()), 2, 91); }
  { ExpectReferenceOutputs(*MakeSession(g, dir_.string()), 3, 92); }
  int64_t total = 0;
  for (const auto& f : PlanFiles(dir_)) total += static_cast<int64_t>(fs::file_size(f));
  EXPECT_LE(total, one_batch * 2);
  for (const auto& f : files) EXPECT_FALSE(fs::exists(f)) << f << " (least recently used)";
  auto listed = ListEngineCache(dir_.string());
  ASSERT_TRUE(listed.ok());
  for (const auto& e : *listed) EXPECT_EQ(e.input_specs[0].find("[1,"), std::string::npos);
}

TEST_F(EngineCacheTest, BuildEnginesRecordsShapesAndEmbedsProfiles) {
  ConversionParams p = Params(/*dynamic=*/true, /*max_cached=*/1);
  p.allow_build_at_runtime = false;
  for (ProfileStrategy strategy :
       {ProfileStrategy::kRange, ProfileStrategy::kOptimal, ProfileStrategy::kRangeOptimal}) {
    auto converted = CreateInferenceGraph(original_, p);
    ASSERT_TRUE(converted.ok()) << converted.status();
    num_engines_ = static_cast<int>(converted->summary().engines.size());
    std::vector<Feeds> samples = {{{"x", Random({1, 3, 48, 192}, 100)}},
                                  {{"x", Random({3, 3, 48, 192}, 101)}},
                                  {{"x", Random({1, 3, 48, 192}, 102)}}};
    const int b0 = builds();
    ASSERT_TRUE(converted->BuildEngines(samples, strategy).ok());
    const size_t want = strategy == ProfileStrategy::kRange     ? 1
                        : strategy == ProfileStrategy::kOptimal ? 2
                                                                : 3;
    EXPECT_EQ(builds() - b0, static_cast<int>(want) * num_engines_);
    for (const auto& n : converted->graph().nodes) {
      if (n.op_type != "EngineOp") continue;
      ASSERT_NE(n.FindAttr("cached_engines"), nullptr);
      EXPECT_EQ(n.FindAttr("cached_engines")->strings.size(), want);
    }
    EXPECT_NE(converted->summary().engines[0].status.find("shape profiles"), std::string::npos);
    // Saved and reloaded: the engines serve without building (allow_build_at_runtime is off).
    const fs::path saved =
        fs::temp_directory_path() / ("kiln_profiles_" + std::to_string(getpid()) + ".onnx");
    ASSERT_TRUE(converted->Save(saved.string()).ok());
    auto info = InspectModel(saved.string());
    ASSERT_TRUE(info.ok()) << info.status();
    ASSERT_FALSE(info->engines.empty());
    const std::string& status = info->engines[0].status;
    EXPECT_NE(status.find("engines built ahead for "), std::string::npos) << status;
    EXPECT_NE(status.find(strategy == ProfileStrategy::kOptimal ? "[3,3,48,192]"
                                                                : "[3,3,48,192] (batch up to)"),
              std::string::npos)
        << status;
    auto session = Session::Load(saved.string());
    fs::remove(saved);
    ASSERT_TRUE(session.ok()) << session.status();
    const int r0 = runs(), b1 = builds();
    ExpectReferenceOutputs(**session, 1, 103);
    ExpectReferenceOutputs(**session, 3, 104);
    EXPECT_EQ(runs() - r0, 2 * num_engines_);
    if (strategy == ProfileStrategy::kRange) {  // batch 2 <= 3: the range engine serves it
      ExpectReferenceOutputs(**session, 2, 105);
      EXPECT_EQ(runs() - r0, 3 * num_engines_);
    }
    EXPECT_EQ(builds() - b1, 0);
  }
}

}  // namespace
}  // namespace kiln
