#include "backends/cpu/tactics.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <sstream>

#include "backends/cpu/cpu_backend.h"
#include "core/file_util.h"
#include "backends/cpu/layers.h"
#include "core/logging.h"

namespace kiln::cpu {
namespace {

const std::string kHeader = "# kiln timing cache v1\tdevice=";

std::string CachePath() {
  const char* v = std::getenv("KILN_TIMING_CACHE");
  return v != nullptr ? std::string(v) : std::string();
}

// The timing cache of this process: key -> implementation, loaded from CachePath() once per
// path, written back (temporary file + rename) after each new entry.
struct TimingCache {
  std::mutex mu;
  std::string loaded_path;
  std::map<std::string, std::string> entries;

  void LoadLocked(const std::string& path) {
    if (path == loaded_path) return;
    loaded_path = path;
    entries.clear();
    if (path.empty()) return;
    auto read = ReadKeyValueFile(path, kHeader + CpuBackend().DeviceFingerprint());
    if (read.ok()) {
      entries = *std::move(read);
    } else if (read.status().code() != StatusCode::kNotFound) {  // NotFound: a new cache
      KILN_LOG(WARNING) << "timing cache " << path
                        << " is not a kiln timing cache for this device; timing again and "
                           "overwriting it";
    }
  }

  void SaveLocked() const {
    if (loaded_path.empty()) return;
    Status st = WriteKeyValueFile(loaded_path, kHeader + CpuBackend().DeviceFingerprint(), entries);
    if (!st.ok()) {
      KILN_LOG(WARNING) << "cannot write the timing cache: " << st.message();
    }
  }
};

TimingCache& Cache() {
  static auto* cache = new TimingCache();
  return *cache;
}

// The best of three runs of one implementation on zero-filled buffers, in ms, after a warm-up
// run; an implementation whose warm-up is over 4x `best_so_far` is not timed further.
double TimeOne(const dnnl::primitive_desc& pd, const dnnl::engine& eng, double best_so_far) {
  dnnl::primitive prim(pd);
  std::unordered_map<int, dnnl::memory> args;
  std::vector<int> ids = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST,
                          DNNL_ARG_SCRATCHPAD};
  // Binary post-ops' second operands, asked for only where the entry *is* a binary post-op:
  // oneDNN 2.6 answers exec_arg_md for any post-op index with the entry's binary descriptor,
  // which for an eltwise or sum entry is another union member read as a memory descriptor
  // (garbage size: the memset below then crashed, now and then).
  const dnnl::primitive_attr attr = pd.get_primitive_attr();  // owns what `po` refers to
  const dnnl::post_ops po = attr.get_post_ops();
  for (int i = 0; i < po.len(); ++i) {
    if (po.kind(i) == dnnl::primitive::kind::binary) {
      ids.push_back(DNNL_ARG_ATTR_MULTIPLE_POST_OP(i) | DNNL_ARG_SRC_1);
    }
  }
  std::vector<std::pair<int, dnnl::memory::desc>> mds;
  for (int id : ids) mds.emplace_back(id, pd.query_md(dnnl::query::exec_arg_md, id));
  // PReLU post-ops' slopes: [dst dims where the mask has the axis, else 1], plain f32.
  const dnnl::memory::dims dst_dims = pd.dst_desc().dims();
  for (int i = 0; i < po.len(); ++i) {
    if (po.kind(i) != dnnl::primitive::kind::prelu) continue;
    int mask = 0;
    po.get_params_prelu(i, mask);
    dnnl::memory::dims d(dst_dims.size(), 1);
    for (size_t a = 0; a < d.size(); ++a) {
      if (mask & (1 << a)) d[a] = dst_dims[a];
    }
    dnnl::memory::dims strides(d.size(), 1);
    for (int a = static_cast<int>(d.size()) - 2; a >= 0; --a) strides[a] = strides[a + 1] * d[a + 1];
    mds.emplace_back(DNNL_ARG_ATTR_MULTIPLE_POST_OP(i) | DNNL_ARG_WEIGHTS,
                     dnnl::memory::desc(d, dnnl::memory::data_type::f32, strides));
  }
  for (const auto& [id, md] : mds) {
    if (md.get_size() == 0) continue;
    dnnl::memory m(md, eng);
    std::memset(m.get_data_handle(), 0, md.get_size());
    args[id] = m;
  }
  dnnl::stream stream(eng);
  const auto w0 = std::chrono::steady_clock::now();
  prim.execute(stream, args);  // warm-up (first-touch, caches)
  stream.wait();
  const double warm =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - w0).count();
  if (warm > 4 * best_so_far) return warm;
  double best = 1e30;
  for (int k = 0; k < 3; ++k) {
    const auto t0 = std::chrono::steady_clock::now();
    prim.execute(stream, args);
    stream.wait();
    best = std::min(
        best,
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

thread_local int no_timing_depth = 0;

ScopedNoTacticTiming::ScopedNoTacticTiming() { ++no_timing_depth; }
ScopedNoTacticTiming::~ScopedNoTacticTiming() { --no_timing_depth; }

bool TacticTimingEnabled() {
  if (no_timing_depth > 0) return false;
  const char* v = std::getenv("KILN_TACTIC_TIMING");
  if (v != nullptr && std::string(v) == "1") return true;
  return !CachePath().empty();
}

size_t PickTactic(const std::vector<dnnl::primitive_desc>& candidates, const std::string& key,
                  const dnnl::engine& eng, std::string* note) {
  std::vector<std::string> names;
  for (const auto& c : candidates) names.push_back(c.impl_info_str());
  // Timed: each implementation once (an iterator may list one twice), never the reference
  // implementation when an optimized one fits (it is 100-1000x slower; timing it costs seconds).
  std::vector<size_t> timed;
  for (size_t i = 0; i < names.size(); ++i) {
    if (std::find(names.begin(), names.begin() + static_cast<long>(i), names[i]) !=
        names.begin() + static_cast<long>(i)) {
      continue;
    }
    if (names[i].rfind("ref", 0) == 0) continue;
    timed.push_back(i);
  }
  if (timed.empty()) return 0;
  if (timed.size() == 1) {
    *note = "one optimized implementation";
    return timed[0];
  }
  TimingCache& cache = Cache();
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    cache.LoadLocked(CachePath());
    auto it = cache.entries.find(key);
    if (it != cache.entries.end()) {
      auto pos = std::find(names.begin(), names.end(), it->second);
      if (pos != names.end()) {
        *note = "timing cache";
        return static_cast<size_t>(pos - names.begin());
      }
    }
  }
  size_t best = timed[0];
  double best_ms = 1e30;
  std::string timings;
  for (size_t i : timed) {
    double ms = 1e30;
    try {
      ms = TimeOne(candidates[i], eng, best_ms);
    } catch (const dnnl::error& e) {  // an implementation that cannot run here: skip it
      KILN_LOG(DEBUG) << "tactic " << names[i] << " could not be timed: " << e.what();
    }
    timings += (timings.empty() ? "" : ", ") + names[i] + " " + std::to_string(ms) + " ms";
    if (ms < best_ms) {
      best_ms = ms;
      best = i;
    }
  }
  KILN_LOG(INFO) << "tactic timing: " << timings << " -> " << names[best];
  *note = "timed " + std::to_string(timed.size()) + " implementations";
  std::lock_guard<std::mutex> lock(cache.mu);
  cache.LoadLocked(CachePath());
  cache.entries[key] = names[best];
  cache.SaveLocked();
  return best;
}

size_t TimingCacheSize() {
  std::lock_guard<std::mutex> lock(Cache().mu);
  return Cache().entries.size();
}

bool Builder::TimesTactics(const dnnl::primitive_desc_base& pd) const {
  if (layer < 0 || !TacticTimingEnabled()) return false;
  const dnnl::primitive::kind k = pd.get_kind();
  return k == dnnl::primitive::kind::convolution || k == dnnl::primitive::kind::deconvolution ||
         k == dnnl::primitive::kind::matmul || k == dnnl::primitive::kind::inner_product;
}

size_t Builder::PickTacticOf(const std::vector<dnnl::primitive_desc>& candidates) {
  // The layer descriptor: op, primitive kind, shapes and types of its arguments, post-ops,
  // workspace limit and the candidate list (which the attributes and ISA decide).
  std::ostringstream key;
  const dnnl::primitive_desc& first = candidates.front();
  key << L().op << "|kind=" << static_cast<int>(first.get_kind()) << "|threads=" << threads;
  for (int id : {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST}) {
    const dnnl::memory::desc md = first.query_md(dnnl::query::exec_arg_md, id);
    key << "|" << id << ":" << static_cast<int>(md.data_type()) << "[";
    for (auto d : md.dims()) key << d << ",";
    key << "]";
  }
  key << "|post_ops=" << L().post_ops.size() << "|ws=" << cfg.max_workspace_size_bytes << "|impls=";
  std::vector<std::string> listed;
  for (const auto& c : candidates) {
    const std::string name = c.impl_info_str();
    if (std::find(listed.begin(), listed.end(), name) != listed.end()) continue;
    listed.push_back(name);
    key << name << ",";
  }
  std::string note;
  const size_t pick = PickTactic(candidates, key.str(), eng, &note);
  if (out_->tactic.size() < prog.layers.size()) out_->tactic.resize(prog.layers.size());
  out_->tactic[layer] = note;
  return pick;
}

}  // namespace kiln::cpu
