// Tactic choice for the CPU engine (issue 6, TensorRT's tactic timing): where a conv, deconv,
// matmul or inner-product layer has several oneDNN implementations (next_impl) whose
// scratchpad fits max_workspace_size_bytes, each is timed briefly at build on zero-filled
// buffers and the fastest is kept. A timing cache file remembers the choice per layer
// descriptor and device fingerprint, so the next build skips the timing.
//
//   KILN_TACTIC_TIMING=1         time the implementations (off by default: a build then takes
//                                the first implementation that fits, as before)
//   KILN_TIMING_CACHE=FILE       the timing cache (also turns timing on); `kiln convert|bench
//                                --time-tactics --timing-cache FILE` set these
//
// A plan records the chosen implementation per layer, so deserializing a plan never times.
#pragma once

#include <dnnl.hpp>
#include <string>
#include <vector>

namespace kiln::cpu {

// Whether builds time tactics (the environment above, read at each call; never inside a
// ScopedNoTacticTiming on this thread).
bool TacticTimingEnabled();
// Turns tactic timing off on this thread while alive (ProbeProgram: Supports' and fusion's
// throw-away builds).
struct ScopedNoTacticTiming {
  ScopedNoTacticTiming();
  ~ScopedNoTacticTiming();
  ScopedNoTacticTiming(const ScopedNoTacticTiming&) = delete;
  ScopedNoTacticTiming& operator=(const ScopedNoTacticTiming&) = delete;
};

// The index of the fastest of `candidates` (at least two, same layer, all fitting the
// workspace), from the timing cache when it has `key` and names one of them, else timed and
// recorded. `note` gets "timed N implementations" or "timing cache".
size_t PickTactic(const std::vector<dnnl::primitive_desc>& candidates, const std::string& key,
                  const dnnl::engine& eng, std::string* note);

// Entries in the process's timing cache (tests).
size_t TimingCacheSize();

}  // namespace kiln::cpu
