#include "engine/disk_cache.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/logging.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

constexpr const char* kExt = ".kplan";
constexpr int64_t kDefaultMaxBytes = int64_t{4} << 30;

int64_t MaxBytesFromEnv() {
  const char* v = std::getenv("KILN_ENGINE_CACHE_MAX_BYTES");
  if (v == nullptr || *v == '\0') return kDefaultMaxBytes;
  char* end = nullptr;
  const long long n = std::strtoll(v, &end, 10);
  if (*end != '\0' || n < 0) {
    KILN_LOG(WARNING) << "KILN_ENGINE_CACHE_MAX_BYTES='" << v
                      << "' is not a byte count; using the default 4 GiB";
    return kDefaultMaxBytes;
  }
  return n;
}

bool IsTemporary(const fs::path& p) {
  const std::string name = p.filename().string();
  return name.size() > 1 && name[0] == '.' && name.find(".tmp.") != std::string::npos;
}

StatusOr<std::string> ReadFile(const fs::path& p) {
  std::ifstream f(p, std::ios::binary | std::ios::ate);
  if (!f) return NotFound("cannot open " + p.string());
  const std::streamoff size = f.tellg();
  if (size < 0) return DataLoss("cannot read " + p.string());
  std::string bytes(static_cast<size_t>(size), '\0');
  f.seekg(0);
  f.read(bytes.data(), size);
  if (f.gcount() != size) return DataLoss("cannot read " + p.string() + " (changed while read?)");
  return bytes;
}

double AgeSeconds(const fs::file_time_type& t) {
  return std::chrono::duration<double>(fs::file_time_type::clock::now() - t).count();
}

}  // namespace

StatusOr<DiskEngineCache> DiskEngineCache::Open(const std::string& dir) {
  if (dir.empty()) return InvalidArgument("engine cache: empty directory name");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir, ec)) {
    return FailedPrecondition("engine cache directory '" + dir +
                              "' cannot be used: " + (ec ? ec.message() : "not a directory"));
  }
  return DiskEngineCache(dir, MaxBytesFromEnv());
}

std::string DiskEngineCache::Key(uint64_t segment_fnv, const BuildConfig& config,
                                 const std::string& calibration, const Backend& backend) {
  uint64_t h = FnvUpdate(segment_fnv, "|config=" + config.Fingerprint());
  h = FnvUpdate(h, std::string("|precision=") + PrecisionName(config.precision));
  h = FnvUpdate(h, "|calibration=" + FnvHex(FnvUpdate(kFnvOffset, calibration)));
  h = FnvUpdate(h, std::string("|backend=") + backend.name());
  h = FnvUpdate(h, "|device=" + backend.DeviceFingerprint());
  h = FnvUpdate(h, std::string("|kiln=") + KILN_VERSION);
  // A new plan format (or segment hash) is a new key: older files are misses, not rejects.
  h = FnvUpdate(h, "|plan_format=" + std::to_string(kPlanFormatVersion));
  return FnvHex(h);
}

std::string DiskEngineCache::PathOf(const std::string& key) const {
  return (fs::path(dir_) / (key + kExt)).string();
}

std::optional<DiskEngineCache::Hit> DiskEngineCache::Load(const std::string& key,
                                                          const PlanExpectation& want,
                                                          const BuildConfig& base,
                                                          const std::string& who) const {
  const fs::path path = PathOf(key);
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    CountCacheEvent(CacheEvent::kDiskMiss);
    return std::nullopt;
  }
  auto bytes = ReadFile(path);
  if (!bytes.ok()) {
    Reject(key, who, bytes.status().message());
    return std::nullopt;
  }
  auto plan = ReadPlan(*bytes);
  if (!plan.ok()) {
    Reject(key, who, plan.status().message());
    return std::nullopt;
  }
  Hit hit;
  Status st = CheckPlanHeader(plan->first, want, base, &hit.config);
  if (!st.ok()) {
    Reject(key, who, st.message());
    return std::nullopt;
  }
  fs::last_write_time(path, fs::file_time_type::clock::now(), ec);  // LRU: touch on use
  CountCacheEvent(CacheEvent::kDiskHit);
  hit.payload = std::move(plan->second);
  hit.plan = std::move(bytes).value();
  return hit;
}

void DiskEngineCache::Reject(const std::string& key, const std::string& who,
                             const std::string& why) const {
  CountCacheEvent(CacheEvent::kDiskRejected);
  KILN_LOG(WARNING) << who << ": engine cache file " << PathOf(key) << " rejected (" << why
                    << "); rebuilding the engine and overwriting the file";
}

Status DiskEngineCache::Store(const std::string& key, std::string_view plan) const {
  static std::atomic<int> counter{0};
  const fs::path target = PathOf(key);
  const fs::path tmp = fs::path(dir_) / ("." + key + ".tmp." + std::to_string(getpid()) + "." +
                                         std::to_string(counter++));
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(plan.data(), static_cast<std::streamsize>(plan.size()));
    f.close();
    if (!f) {
      std::error_code ec;
      fs::remove(tmp, ec);
      return FailedPrecondition("engine cache: cannot write " + tmp.string());
    }
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return FailedPrecondition("engine cache: cannot rename " + tmp.string() + " to " +
                              target.string() + ": " + ec.message());
  }
  CountCacheEvent(CacheEvent::kDiskWrite);
  EnforceCap();
  return Status::OK();
}

void DiskEngineCache::EnforceCap() const {
  struct File {
    fs::path path;
    int64_t bytes;
    fs::file_time_type mtime;
  };
  std::vector<File> files;
  int64_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    if (!e.is_regular_file(ec) || e.path().extension() != kExt) continue;
    File f{e.path(), static_cast<int64_t>(e.file_size(ec)), e.last_write_time(ec)};
    total += f.bytes;
    files.push_back(std::move(f));
  }
  if (total <= max_bytes_) return;
  std::sort(files.begin(), files.end(),
            [](const File& a, const File& b) { return a.mtime < b.mtime; });
  for (const auto& f : files) {
    if (total <= max_bytes_) break;
    if (fs::remove(f.path, ec)) {
      total -= f.bytes;
      CountCacheEvent(CacheEvent::kDiskEviction);
      KILN_LOG(INFO) << "engine cache: removed " << f.path.string()
                     << " (least recently used; cache above KILN_ENGINE_CACHE_MAX_BYTES="
                     << max_bytes_ << ")";
    }
  }
}

std::string ResolveEngineCacheDir(const std::string& dir) {
  if (!dir.empty()) return dir;
  const char* env = std::getenv("KILN_ENGINE_CACHE");
  return env != nullptr ? std::string(env) : std::string();
}

StatusOr<std::vector<EngineCacheFile>> ListEngineCache(const std::string& dir) {
  std::error_code ec;
  if (dir.empty() || !fs::is_directory(dir, ec)) {
    return NotFound("engine cache directory '" + dir + "' does not exist");
  }
  std::vector<std::pair<fs::file_time_type, EngineCacheFile>> found;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file(ec) || e.path().extension() != kExt) continue;
    EngineCacheFile f;
    f.key = e.path().stem().string();
    f.path = e.path().string();
    f.bytes = static_cast<int64_t>(e.file_size(ec));
    const auto mtime = e.last_write_time(ec);
    f.age_s = AgeSeconds(mtime);
    auto bytes = ReadFile(e.path());
    auto plan = bytes.ok() ? ReadPlan(*bytes)
                           : StatusOr<std::pair<PlanHeader, std::string>>(bytes.status());
    if (!plan.ok()) {
      f.status = "corrupt: " + plan.status().message();
    } else {
      const PlanHeader& h = plan->first;
      f.backend = h.backend;
      f.precision = h.precision;
      f.device = h.device_fingerprint;
      f.input_specs = h.input_specs;
      f.status = h.kiln_version != KILN_VERSION ? "built by kiln " + h.kiln_version : "ok";
    }
    found.emplace_back(mtime, std::move(f));
  }
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<EngineCacheFile> out;
  for (auto& [t, f] : found) out.push_back(std::move(f));
  return out;
}

StatusOr<int64_t> ClearEngineCache(const std::string& dir) {
  std::error_code ec;
  if (dir.empty() || !fs::is_directory(dir, ec)) {
    return NotFound("engine cache directory '" + dir + "' does not exist");
  }
  std::vector<fs::path> victims;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file(ec) && (e.path().extension() == kExt || IsTemporary(e.path()))) {
      victims.push_back(e.path());
    }
  }
  int64_t removed = 0;
  for (const auto& p : victims) {
    if (fs::remove(p, ec))
      ++removed;
    else if (ec)
      return FailedPrecondition("cannot remove " + p.string() + ": " + ec.message());
  }
  return removed;
}

}  // namespace kiln
