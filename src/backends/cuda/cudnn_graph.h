// Fused convolutions through cuDNN's graph API (the cudnnBackend* descriptors): one operation
// graph  conv(x, w) [* scale] + bias [+ z [* z_scale]] [relu] -> y  per layer, the engine chosen by timing
// the candidates of cuDNN's heuristics (mode A) on trial buffers. This reaches cuDNN 9's
// Hopper engines and its runtime-fused kernels, which the legacy
// cudnnConvolutionBiasActivationForward call does not (see docs/cuda.md).
#pragma once

#include <cudnn.h>

#include <cstdint>
#include <memory>
#include <string>

#include "kiln/status.h"

namespace kiln::cuda {

struct FusedConvSpec {
  // Logical NCHW dims; x, y and z are stored NHWC, w as [K, R, S, C] (KRSC = "NHWC" filter).
  int64_t x[4] = {}, w[4] = {}, y[4] = {};
  int64_t pad[2] = {}, stride[2] = {1, 1}, dil[2] = {1, 1};
  cudnnDataType_t x_type = CUDNN_DATA_HALF;  // also w's
  cudnnDataType_t y_type = CUDNN_DATA_HALF;
  cudnnDataType_t bias_type = CUDNN_DATA_HALF;  // bias [1, K, 1, 1]
  cudnnDataType_t z_type = CUDNN_DATA_HALF;     // residual, y's dims
  cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  bool scale = false;     // per-output-channel float multiplier before the bias (INT8)
  bool residual = false;  // + z (same dims as y, of type z_type)
  bool z_scale = false;   // z multiplied per channel by a float [1, K, 1, 1] before the add (INT8)
  bool relu = false;
};

// Pointers of one execution (z / scale: null when the spec has none).
struct FusedConvArgs {
  const void* x = nullptr;
  const void* w = nullptr;
  const void* scale = nullptr;
  const void* bias = nullptr;
  const void* z = nullptr;
  const void* z_scale = nullptr;
  void* y = nullptr;
  void* workspace = nullptr;
};

class FusedConvPlan {
 public:
  ~FusedConvPlan();
  FusedConvPlan(const FusedConvPlan&) = delete;
  FusedConvPlan& operator=(const FusedConvPlan&) = delete;

  // Builds the operation graph on `handle`, finalizes up to `max_candidates` engine
  // configurations the heuristics propose (workspace <= ws_limit) and keeps the fastest on
  // `trial` (its pointers must be valid device buffers of the spec's sizes; y is
  // overwritten). NotFound when no engine supports the graph. `what` names the layer in
  // errors.
  // With `preset` (a choice() of an earlier build of the same spec on the same device: a
  // plan's tactic or the timing cache), only that candidate is finalized and nothing is timed.
  struct Choice {
    int mode = 0;        // 0: heuristics mode A, 1: the fallback list
    int position = 0;    // in that list
    float us = 0;        // its trial time then
  };
  static StatusOr<std::unique_ptr<FusedConvPlan>> Create(
      cudnnHandle_t handle, const FusedConvSpec& spec, int64_t ws_limit, const FusedConvArgs& trial,
      int max_candidates, const std::string& what, const Choice* preset = nullptr);
  const Choice& choice() const { return choice_; }

  int64_t workspace_bytes() const { return ws_; }
  // "eng<global index>" of the chosen engine, with its measured trial time.
  const std::string& engine_name() const { return name_; }
  // The chosen engine's mean time on the trial buffers (microseconds).
  float trial_us() const { return us_; }
  // Enqueues the fused convolution on the handle's stream.
  Status Run(cudnnHandle_t handle, const FusedConvArgs& a) const;

 private:
  FusedConvPlan() = default;
  cudnnBackendDescriptor_t plan_ = nullptr;
  std::shared_ptr<void> hold_;  // the descriptors the plan was made from
  int64_t ws_ = 0;
  bool scale_ = false, residual_ = false, z_scale_ = false;
  float us_ = 0;
  std::string name_;
  Choice choice_;
};

// The descriptors of one legacy-API fused convolution (cudnnConvolutionBiasActivationForward),
// destroyed with it.
struct LegacyConvDescs {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, b = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnActivationDescriptor_t act = nullptr;
  LegacyConvDescs() = default;
  LegacyConvDescs(const LegacyConvDescs&) = delete;
  LegacyConvDescs& operator=(const LegacyConvDescs&) = delete;
  ~LegacyConvDescs() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (b) cudnnDestroyTensorDescriptor(b);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
    if (act) cudnnDestroyActivationDescriptor(act);
  }
};

// Which convolution path (KILN_CUDA_CONV): auto (default: per convolution, the faster of the
// graph-API plan and the legacy fused call, both timed at build), graph, legacy.
enum class ConvApi { kAuto, kGraph, kLegacy };
ConvApi ConvApiMode();
// Candidates timed per convolution configuration (KILN_CUDA_CONV_TRIALS, default 6).
int GraphConvTrials();

}  // namespace kiln::cuda
