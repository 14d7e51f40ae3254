// Which INT8-capable conv / matmul layers actually run in INT8 (issue 5): the issue asks each
// layer to run in the *fastest* allowed precision that has a kernel here, ties going to the higher
// precision. Without AMX (VNNI only: vpdpbusd, twice bf16's multiply-adds per lane) INT8 pays
// only where a layer is bound by its dot products. A thin layer -- a short reduction (the first
// conv with 1-3 input channels: K = 9..27; the 8..32-channel 1x1 convs of MobileNet-style and
// small face models) or few output channels (squeeze-excitation FCs, 2..50 wide; projections to
// 16..32 channels) -- is bound by memory and per-layer overhead, and in INT8 it also pays a
// quantizing reorder in front and an FP32 output behind: measured 1.3-4x slower than BF16 on
// this CPU (docs/int8.md), and less accurate (the first conv's 8-bit pixels become 7-bit).
//
// Rule: an INT8-capable layer runs in INT8 when its dot products have K >= min_k (conv:
// (C_in / group) * kernel volume; matmul: the inner dimension) and it has N >= min_n output
// channels per group (matmul: columns), and its input was not written in BF16 by a floating
// layer (oneDNN's bf16 -> int8 reorder costs more than the INT8 kernel saves: MobileNetV2's 1x1
// projections after BF16 depthwise convs took 0.18 ms in INT8 vs 0.08 ms in BF16, batch 8). Defaults 64 / 64, from per-layer timings
// (`kiln inspect --profile`) of ResNet-50, MobileNetV2, PaddleOCR's classifier and the TF.js face
// models. KILN_CPU_INT8_MIN_DOT="K,N" overrides them ("0,0": the policy off, every capable layer
// in INT8, the old behaviour; e.g. for AMX machines, where INT8 tiles win earlier). Read once.
#pragma once

#include <cstdint>

namespace kiln::cpu {

struct Int8MinDot {
  int64_t k = 64;
  int64_t n = 64;
};

// The thresholds in effect: a ScopedInt8Thresholds override, else KILN_CPU_INT8_MIN_DOT when it
// parses as "K,N" (read once), else the defaults.
Int8MinDot Int8Thresholds();

// Overrides the thresholds process-wide while alive (tests of the INT8 kernels on small shapes,
// which the policy would keep in floating point); not thread-safe against concurrent builds.
class ScopedInt8Thresholds {
 public:
  explicit ScopedInt8Thresholds(Int8MinDot t);
  ~ScopedInt8Thresholds();
  ScopedInt8Thresholds(const ScopedInt8Thresholds&) = delete;
  ScopedInt8Thresholds& operator=(const ScopedInt8Thresholds&) = delete;

 private:
  bool had_ = false;
  Int8MinDot saved_;
};

// Parses "K,N" (non-negative integers); false leaves *out unchanged.
bool ParseInt8MinDot(const char* text, Int8MinDot* out);

// True when a layer whose dot products have length `k` and `n` outputs per group pays in INT8
// under `t`.
inline bool Int8Pays(int64_t k, int64_t n, const Int8MinDot& t) { return k >= t.k && n >= t.n; }

// Thresholds 0,0 turn the policy off: every INT8-capable layer with a range runs in INT8, also
// one whose input a BF16 layer wrote (which the policy keeps in BF16: layers_int8.cc).
inline bool Int8PolicyOff(const Int8MinDot& t) { return t.k == 0 && t.n == 0; }

}  // namespace kiln::cpu
