// The CPU backend's layer program: what a segment Graph lowers to before oneDNN sees it.
//
// Lowering (lowering.cc) turns each IR node into one Layer with its parameters resolved from the
// node's attributes and constant inputs (ONNX semantics decided here, once). Engine-internal
// fusion passes (fusion.cc) then rewrite the program: BN folded into weights, activations and
// residual adds into post-ops, sibling convs / matmuls merged. The program is batch-independent:
// an Instance (layers.h) is built from it for one batch size by re-running ShapeOf, so the same
// program serves every batch up to max_batch_size and is what a plan payload stores.
//
// Supports(node) is LowerNode in validation mode: the same code, on one node, with the shapes the
// graph knows; it returns the reason a node cannot be taken.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/build_config.h"
#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cpu {

enum class LayerKind : int32_t {
  kConv = 0,   // in: x, w[O,I/g,k..], (b[O]); ints: strides dilations pads_begin pads_end group
               //     nhwc, (split: output channel counts when horizontally merged)
  kDeconv,     // in: x, w[I,O/g,k..], (b); ints: as kConv + out (spatial output dims)
  kMatMul,     // in: a, b, (bias[N]); ints: trans_a trans_b, (split)
  kEltwise,    // in: x; post_ops: the eltwise chain (all kEltwise)
  kBinary,     // in: a, b (b broadcasts to a); ints: alg
  kPool,       // in: x; ints: alg kernel strides dilations pads_begin pads_end nhwc
  kSoftmax,    // in: x; ints: axis log
  kLayerNorm,  // in: x, scale, (bias); ints: axis; floats: eps
  kBatchNorm,  // in: x, scale, bias, mean, var; ints: nhwc; floats: eps
  kConcat,     // in: x...; ints: axis
  kTranspose,  // in: x; ints: perm (a view: the layout is permuted, no copy)
  kView,       // in: x; ints: mode (ViewMode), spec, allowzero (a reshape of plain data)
  kResample,   // in: x; ints: alg nhwc out (spatial output dims)
  kReduce,     // in: x; ints: alg axes keepdims
  kPRelu,      // in: x, slope (broadcasts onto x)
  kRnn,        // ONNX LSTM / GRU / RNN (layers_rnn.h: inputs, ints, outputs)
  kNumKinds
};
const char* LayerKindName(LayerKind k);

enum class ViewMode : int64_t { kReshape = 0, kFlatten, kSqueeze, kUnsqueeze, kIdentity };

struct PostOp {
  enum Kind : int32_t { kEltwise = 0, kSum, kBinary, kPRelu };  // kPRelu: per-channel slope
  Kind kind = kEltwise;
  int32_t alg = 0;  // dnnl::algorithm value (eltwise or binary)
  float alpha = 0, beta = 0;
  int32_t tensor = -1;  // kSum / kBinary / kPRelu: the other operand (the slope)
  bool operator==(const PostOp& o) const {
    return kind == o.kind && alg == o.alg && alpha == o.alpha && beta == o.beta &&
           tensor == o.tensor;
  }
};

struct TensorDef {
  std::string name;
  std::vector<int64_t> dims;  // at the build batch (informational; instances recompute)
  bool is_const = false;
  Tensor value;  // float32, when is_const
};

struct Layer {
  LayerKind kind = LayerKind::kEltwise;
  std::string op;                  // "Conv+BatchNormalization+Relu"
  std::vector<std::string> nodes;  // IR nodes folded into it
  std::vector<int> inputs;         // tensor ids (-1: absent optional input)
  std::vector<int> outputs;
  std::map<std::string, std::vector<int64_t>> ints;
  std::map<std::string, std::vector<float>> floats;
  std::vector<PostOp> post_ops;
  std::string impl;   // preferred implementation (impl_info_str), from a plan
  bool dead = false;  // removed by a fusion pass (dropped by Compact)

  int64_t Int(const std::string& key, int64_t dflt = 0) const;
  const std::vector<int64_t>& Ints(const std::string& key) const;  // empty when absent
  float Float(const std::string& key, float dflt = 0) const;
};

struct Program {
  std::vector<TensorDef> tensors;
  std::vector<Layer> layers;
  std::vector<int> inputs, outputs;  // segment inputs / outputs (tensor ids), in order

  // Removes dead layers and tensors nothing refers to (ids renumbered).
  void Compact();
  // Number of layers reading tensor `t` (inputs and post-op operands), plus 1 per output use.
  std::vector<int> UseCounts() const;
};

// Scaled dot-product attention starting at layer i0, the chain both engine backends fuse into
// one step (layers_matmul.cc, cuda_build_attention.cc):
//   MatMul(Q, K^T | K with trans_b) [* scale] [+ mask] -> Softmax(last axis) -> MatMul(P, V)
// Q K^T with no bias, transposed A or merged siblings, its post-ops at most eltwise_linear(scale,
// 0) then a binary add (the mask); the scores read only by the softmax, P only by P V (no
// transposes, bias, siblings or post-ops); Q, K, V of rank 4 and matching [b, h, s, d] dims.
struct AttentionMatch {
  float scale = 1.f;
  int mask = -1;        // the added mask tensor, or -1
  bool k_is_kt = true;  // the first MatMul's B is K^T [b, h, d, sk]; else K [b, h, sk, d]
  int64_t batch = 0, heads = 0, sq = 0, sk = 0, d = 0;
};
bool MatchAttention(const Program& p, const std::vector<std::vector<int64_t>>& dims, size_t i0,
                    AttentionMatch* m);

// Output dims of `layer` for the given input dims (const inputs included); validates everything
// the instance builder later relies on (so a parsed plan cannot make it misbehave). Its reasons
// do not name the layer (they double as Supports reasons); LayerError adds the name.
StatusOr<std::vector<std::vector<int64_t>>> ShapeOf(const Layer& layer,
                                                    const std::vector<std::vector<int64_t>>& in);

// `s` with "layer 'first node' (op): " in front (build-time errors).
Status LayerError(const Layer& l, const Status& s);

// Dims of every tensor for the given segment input dims (runs ShapeOf in program order).
StatusOr<std::vector<std::vector<int64_t>>> PropagateShapes(
    const Program& p, const std::vector<std::vector<int64_t>>& input_dims);

// Lowers a whole segment (build mode): every node must lower.
StatusOr<Program> LowerSegment(const Graph& segment, const BuildConfig& config);
// Validation mode for one node: OK or the reason (op, dtype, shape, attribute value).
Status LowerNodeForSupport(const Node& node, const Graph& graph, const BuildConfig& config);

// Erf has no oneDNN 2.6 eltwise algorithm: it lowers to an eltwise post-op with this marker
// alg, which only the GELU fusion (fusion.cc) consumes (x * 0.5 * (1 + Erf(x / sqrt(2))) ->
// eltwise_gelu_erf). ShapeOf accepts it so the pre-fusion program shapes; CheckFused rejects a
// program still holding one (Build fails, the converter keeps that segment native).
constexpr int32_t kAlgErfMarker = -2;
Status CheckFused(const Program& p);

// Engine-internal fusion passes (fusion.cc), in order. `verify` checks a candidate layer can be
// built by oneDNN (primitive creation) before a fusion is committed.
void FuseProgram(Program* p);

// Byte form of a program (the plan payload body) and its strict parser. With `sources`
// (lean_weights.h) constants are written as references to the segment instead of bytes; a
// lean payload parses only with `sources` given, its constants left for ResolveLeanConsts.
struct ConstSource;
std::string SerializeProgram(const Program& p, const std::vector<ConstSource>* sources = nullptr);
StatusOr<Program> ParseProgram(std::string_view bytes,
                               std::vector<ConstSource>* sources = nullptr);
// Structural checks a parsed program must pass (ids in range, each tensor defined once before
// use, params of the right sizes, constants' data matching their dims).
Status ValidateProgram(const Program& p);

}  // namespace kiln::cpu
