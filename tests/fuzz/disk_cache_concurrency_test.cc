// The disk engine cache under concurrent writers and readers (issue 11): 8 threads store
// different plans under one key while 4 threads read it back. Every read sees a whole plan
// that passes its checksum (or no file yet), never a torn or mixed one; afterwards the
// directory holds exactly one plan and no temporary files. scripts/tsan.sh runs it under
// ThreadSanitizer.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/disk_cache.h"
#include "engine/plan.h"
#include "io/onnx/onnx_import.h"  // ReadFileToString

namespace kiln {
namespace {

namespace fs = std::filesystem;

TEST(DiskCacheConcurrency, ConcurrentStoresOfOneKeyLeaveOneWholePlan) {
  std::random_device rd;
  const fs::path dir = fs::temp_directory_path() /
                       ("kiln-disk-race-" + std::to_string(getpid()) + "-" + std::to_string(rd()));
  auto cache = DiskEngineCache::Open(dir.string());
  ASSERT_TRUE(cache.ok()) << cache.status();
  const std::string key = "k0123456789abcdef";
  constexpr int kWriters = 8, kReaders = 4, kStores = 20;

  // Each writer's plans: random payloads of different sizes, so a torn file cannot pass.
  std::vector<std::vector<std::string>> plans(kWriters);
  std::set<std::string> all;
  std::mt19937 rng(1234);
  for (int w = 0; w < kWriters; ++w) {
    for (int i = 0; i < kStores; ++i) {
      std::string payload(1000 + 97 * w + 13 * i, '\0');
      for (char& c : payload) c = static_cast<char>(rng());
      PlanHeader h;
      h.backend = "test";
      h.precision = "FP32";
      h.content_hash = HashBytes(payload);
      plans[w].push_back(WritePlan(h, payload));
      all.insert(plans[w].back());
    }
  }

  std::atomic<bool> done{false};
  std::atomic<int> store_errors{0}, torn{0}, unknown{0}, reads{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (const std::string& p : plans[w]) {
        if (!cache->Store(key, p).ok()) ++store_errors;
      }
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&] {
      while (!done.load()) {
        auto bytes = ReadFileToString(cache->PathOf(key));
        if (!bytes.ok()) continue;  // not written yet
        ++reads;
        if (!ReadPlan(*bytes).ok()) ++torn;
        else if (!all.count(*bytes)) ++unknown;
      }
    });
  }
  for (int w = 0; w < kWriters; ++w) threads[w].join();
  done = true;
  for (size_t t = kWriters; t < threads.size(); ++t) threads[t].join();

  EXPECT_EQ(store_errors.load(), 0);
  EXPECT_EQ(torn.load(), 0) << "of " << reads.load() << " reads";
  EXPECT_EQ(unknown.load(), 0);
  auto last = ReadFileToString(cache->PathOf(key));
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_TRUE(all.count(*last));
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    ++files;
    EXPECT_EQ(e.path().extension(), ".kplan") << e.path() << " left behind";
  }
  EXPECT_EQ(files, 1);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
}  // namespace kiln
