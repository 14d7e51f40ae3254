// Lean CPU plans (docs/design.md "Lean plans"): a plan's constants are not copied into the
// payload when the EngineOp's native segment can give them back. Per constant the payload
// records where it comes from:
//   inline       the bytes (self-contained; KILN_PLAN_SELF_CONTAINED=1 writes every constant so)
//   initializer  a segment initializer used as is (name + content hash): Deserialize shares the
//                segment's tensor, no copy
//   derived      made by lowering + fusion from initializers (BN folded into conv weights, merged
//                QKV matmuls, transposed Gemm B, ...) (tensor name + content hash): Deserialize
//                lowers and fuses the segment again (no oneDNN build, no tactic timing) and takes
//                the tensor at the same id
// The layout reorder and the precision (BF16 / INT8 quantization from the calibration ranges)
// are applied by the instance build from these FP32 constants and the layer's recorded
// implementation, as for a fresh build, so they need no bytes in the plan either. A hash that
// does not match (the initializer changed) rejects the plan with the tensor's name.
#pragma once

#include <string>
#include <vector>

#include "backends/cpu/lowering.h"
#include "ir/graph.h"

namespace kiln::cpu {

struct ConstSource {
  enum Kind : uint32_t { kInline = 1, kInitializer = 2, kDerived = 3 };
  Kind kind = kInline;
  std::string initializer;  // kInitializer: the segment initializer's name
  std::string hash;         // kInitializer / kDerived: WeightHash of the constant
};

// 64-bit content hash of a tensor's bytes, 16 hex digits (~8 GB/s: 4 independent lanes of
// 8-byte multiply-mix, then the length and dims).
std::string WeightHash(const Tensor& t);

// Per program tensor (same size as p.tensors): kInitializer when the constant shares the storage
// of the segment initializer of its name, kDerived for other constants, kInline for non-constants
// (ignored). Hashes are left empty (FillHashes adds them when the plan is written).
std::vector<ConstSource> ClassifyConsts(const Program& p, const Graph& segment);
void FillHashes(const Program& p, std::vector<ConstSource>* sources);

// True when KILN_PLAN_SELF_CONTAINED is set to something other than "0" / "".
bool SelfContainedPlans();

// Gives the lean constants of a parsed program their values from `segment` (checking each
// hash); FailedPrecondition naming the tensor when one does not match or cannot be found.
Status ResolveLeanConsts(Program* p, const std::vector<ConstSource>& sources,
                         const Graph& segment, const BuildConfig& config);

}  // namespace kiln::cpu
