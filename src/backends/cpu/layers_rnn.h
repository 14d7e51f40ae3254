// ONNX LSTM / GRU / RNN in the CPU engine through oneDNN's RNN primitives (layers_rnn.cc).
//
// One ONNX node becomes one LayerKind::kRnn layer:
//   inputs  x [T, N, I], w_layer [1, D, I, G, H] (ldigo), w_iter [1, D, H, G, H] (ldigo),
//           bias [1, D, Gb, H] (ldgo), (h0 [D, N, H]), (c0 [D, N, H], LSTM only)
//   ints    cell (RnnCell), dir (0 forward, 1 reverse, 2 bidirectional), act (dnnl algorithm of
//           a vanilla RNN), (seq_len: the constant sequence_lens value the node had)
//   outputs Y [T, D, N, H], Y_h [D, N, H], (Y_c [D, N, H], LSTM)
// The weights are converted at lowering (gate order, ldigo, one bias of Wb + Rb), so they are
// ordinary derived constants (plans store or re-derive them like any other, lean_weights.h).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "backends/cpu/lowering.h"
#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"
#include "ops/base/kernel_context.h"

namespace kiln::cpu {

class Builder;

enum class RnnCell : int64_t { kLstm = 0, kGru = 1, kLbrGru = 2, kRnn = 3 };

// The oneDNN form of an ONNX LSTM / GRU / RNN node: the layer's ints and its converted weights.
struct RnnParams {
  std::map<std::string, std::vector<int64_t>> ints;
  Tensor w_layer, w_iter, bias;
};

// Resolves `n` (X of dims `x_dims`, constant W / R / optional B, sequence_lens given as
// `seq_lens` (nullptr: absent; `seq_lens_given` true with a null value: not a constant), P
// given) or returns the reason oneDNN cannot run it (no node name in it).
StatusOr<RnnParams> LowerRnnParams(const Node& n, const AttrReader& a,
                                   const std::vector<int64_t>& x_dims, const Tensor& w,
                                   const Tensor& r, const Tensor* b, bool seq_lens_given,
                                   const Tensor* seq_lens, bool peepholes);

// ShapeOf for kRnn (validates everything BuildRnn relies on).
StatusOr<std::vector<std::vector<int64_t>>> RnnShape(const Layer& l,
                                                     const std::vector<std::vector<int64_t>>& in);

// Builds the current (kRnn) layer: the RNN primitive in f32, plus a reorder of Y when
// bidirectional (oneDNN writes [T, N, 2H], ONNX wants [T, 2, N, H]).
Status BuildRnn(Builder& b);

}  // namespace kiln::cpu
