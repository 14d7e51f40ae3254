// Per-layer precision on the CPU backend (issue 5).
//
// A precision mode *allows* precisions (AllowedPrecisions): FP32 -> {FP32}; FP16 -> {FP16, FP32};
// BF16 -> {BF16, FP32}; INT8 -> {INT8, BF16, FP16, FP32} (TF-TRT enables FP16 with INT8). Each
// layer gets a rule by its kind (RuleOf):
//   - kCompute (conv, deconv, matmul): the first allowed floating precision that has a kernel on
//     this machine (CpuHasKernel); INT8 is not chosen here: INT8 layers come from Q/DQ lowering.
//     The instance builder falls back to FP32 for a layer whose reduced-precision primitive
//     oneDNN cannot create.
//   - kFollow (eltwise, binary, pooling, batch norm, concat, resampling, prelu, views): runs in
//     the data type its input already has, so a chain of bf16 layers needs no reorder; a layer
//     fed by an engine input (FP32) stays FP32.
//   - kFP32 (softmax, layer norm, reductions): numerics that need an FP32 accumulator and
//     statistics stay FP32; a bf16 input is reordered to f32 in front of them.
// Engine inputs and outputs are always FP32 (the graph's dtypes): a reorder converts at each
// precision boundary, constant weights are converted once at build (WeightCache).
#pragma once

#include <dnnl.hpp>
#include <vector>

#include "backends/cpu/lowering.h"
#include "engine/build_config.h"

namespace kiln::cpu {

// Allowed precisions of a mode, fastest first; FP32 is always last.
std::vector<Precision> AllowedPrecisions(Precision mode);

enum class PrecisionRule { kCompute, kFollow, kFP32 };
PrecisionRule RuleOf(LayerKind kind);

// The precision a kCompute layer is built in under `mode` on this machine (FP32 for the others;
// kFollow layers take their input's data type at build time instead).
Precision ComputePrecision(Precision mode);

// Whether compute layer `l` stays in FP32 whatever the mode allows: it folds an IR node named in
// cfg.fp32_layers (the per-layer precision constraint, part of the engine's build config), or
// KILN_CPU_FP32_LAYERS=a,b,... names its first node or a part of its fused op (e.g.
// "HardSigmoid"). The variable is a diagnostic, read once, at first use, for finding which
// layers limit a reduced-precision engine's accuracy (docs/precision.md); it is not part of the
// plan (a plan rebuilt without it gets the mode's precision).
bool ForcedFp32(const Layer& l, const BuildConfig& cfg);

// Data type a kCompute layer computing in `compute` writes its output in: f32 instead of a
// reduced type when the output would be converted back right away -- its sum post-op adds an
// f32 tensor (a residual kept in f32), or every reader of every output is an FP32 layer or an
// engine output. The accumulator is f32 either way; this skips a rounding and a reorder.
dnnl::memory::data_type ComputeDstType(const Program& p, const Layer& l,
                                       dnnl::memory::data_type compute,
                                       dnnl::memory::data_type sum_type);

// FP32 -> f32, BF16 -> bf16, FP16 -> f16, INT8 -> s8.
dnnl::memory::data_type DataTypeOf(Precision p);
const char* PrecisionNameOf(dnnl::memory::data_type t);  // "FP32", "BF16", "FP16", "INT8"

}  // namespace kiln::cpu
