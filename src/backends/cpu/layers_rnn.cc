// ONNX LSTM / GRU / RNN -> oneDNN lstm_forward / gru_forward / lbr_gru_forward /
// vanilla_rnn_forward (layers_rnn.h).
//
// Gate orders: ONNX LSTM is i, o, f, c; oneDNN's is i, f, c~, o. ONNX GRU z, r, h is oneDNN's
// u, r, o. ONNX adds two biases (Wb, Rb); oneDNN has one per gate (their sum), plus for the
// linear-before-reset GRU a 4th gate bias that is ONNX's Rbh (Wbh stays in the 3rd).
// The equations match ONNX's for the default activations only (LSTM sigmoid / tanh / tanh, GRU
// sigmoid / tanh, RNN tanh / relu / sigmoid), without clip, input_forget, peepholes, per-batch
// sequence lengths or layout = 1; anything else keeps the node native with the reason.
#include "backends/cpu/layers_rnn.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <dnnl.hpp>

#include "backends/cpu/layers.h"

namespace kiln::cpu {
namespace {

using A = dnnl::algorithm;

std::string Lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

int64_t GatesOf(RnnCell c) {
  switch (c) {
    case RnnCell::kLstm:
      return 4;
    case RnnCell::kGru:
    case RnnCell::kLbrGru:
      return 3;
    case RnnCell::kRnn:
      return 1;
  }
  return 0;
}

Status Reason(const std::string& why) { return Unimplemented(why); }

}  // namespace

StatusOr<RnnParams> LowerRnnParams(const Node& n, const AttrReader& a,
                                   const std::vector<int64_t>& x_dims, const Tensor& w,
                                   const Tensor& r, const Tensor* b, bool seq_lens_given,
                                   const Tensor* seq_lens, bool peepholes) {
  RnnCell cell;
  if (n.op_type == "LSTM") {
    cell = RnnCell::kLstm;
  } else if (n.op_type == "GRU") {
    cell = a.GetInt("linear_before_reset") != 0 ? RnnCell::kLbrGru : RnnCell::kGru;
  } else if (n.op_type == "RNN") {
    cell = RnnCell::kRnn;
  } else {
    return Reason("op " + n.op_type + " is not an RNN");
  }
  if (a.GetInt("layout") != 0) {
    return Reason("layout = 1 (batch first) is not supported by oneDNN's RNN primitives");
  }
  if (a.HasAttr("clip")) return Reason("clip is not supported by oneDNN's RNN primitives");
  if (cell == RnnCell::kLstm && a.GetInt("input_forget") != 0) {
    return Reason("input_forget = 1 is not supported by oneDNN's RNN primitives");
  }
  if (peepholes) return Reason("peepholes (input P) are not supported");
  if (a.HasAttr("activation_alpha") || a.HasAttr("activation_beta")) {
    return Reason("activation_alpha / activation_beta are not supported");
  }
  const std::string direction = a.GetString("direction");
  int64_t dir;
  if (direction == "forward" || direction.empty()) {
    dir = 0;
  } else if (direction == "reverse") {
    dir = 1;
  } else if (direction == "bidirectional") {
    dir = 2;
  } else {
    return Reason("direction '" + direction + "' is not supported");
  }
  const int64_t nd = dir == 2 ? 2 : 1;
  const int64_t gates = GatesOf(cell);

  // Activations: the defaults only (RNN: one of tanh / relu / sigmoid, the same both ways).
  int64_t act = static_cast<int64_t>(A::eltwise_tanh);
  if (a.HasAttr("activations")) {
    const std::vector<std::string> acts = a.GetStrings("activations");
    std::vector<std::string> want;
    if (cell == RnnCell::kLstm) want = {"sigmoid", "tanh", "tanh"};
    if (cell == RnnCell::kGru || cell == RnnCell::kLbrGru) want = {"sigmoid", "tanh"};
    if (cell == RnnCell::kRnn) want = {Lower(acts.empty() ? "" : acts[0])};
    if (acts.size() != want.size() * static_cast<size_t>(nd)) {
      return Reason("activations has " + std::to_string(acts.size()) + " entries, expected " +
                    std::to_string(want.size() * nd));
    }
    for (size_t i = 0; i < acts.size(); ++i) {
      if (Lower(acts[i]) != want[i % want.size()]) {
        return Reason("activations other than the defaults are not supported by oneDNN's RNN "
                      "primitives (got '" + acts[i] + "')");
      }
    }
    if (cell == RnnCell::kRnn) {
      if (want[0] == "tanh") {
        act = static_cast<int64_t>(A::eltwise_tanh);
      } else if (want[0] == "relu") {
        act = static_cast<int64_t>(A::eltwise_relu);
      } else if (want[0] == "sigmoid") {
        act = static_cast<int64_t>(A::eltwise_logistic);
      } else {
        return Reason("RNN activation '" + acts[0] + "' is not supported (tanh, relu, sigmoid)");
      }
    }
  }

  // Weights: W [nd, G*H, I], R [nd, G*H, H], B [nd, 2*G*H].
  if (x_dims.size() != 3) return Reason("X must be 3-D [seq, batch, input]");
  if (w.dtype() != DataType::kFloat32 || r.dtype() != DataType::kFloat32 ||
      (b != nullptr && b->dtype() != DataType::kFloat32)) {
    return Reason("W / R / B must be float32");
  }
  if (r.dims().size() != 3 || r.dim(0) != nd || r.dim(2) <= 0 || r.dim(1) != gates * r.dim(2)) {
    return Reason("R has dims " + DimsToString(r.dims()) + ", expected [num_directions, " +
                  std::to_string(gates) + "*hidden, hidden]");
  }
  const int64_t h = r.dim(2);
  if (a.HasAttr("hidden_size") && a.GetInt("hidden_size") != h) {
    return Reason("hidden_size does not match R");
  }
  const int64_t in = x_dims[2];
  if (w.dims() != std::vector<int64_t>{nd, gates * h, in}) {
    return Reason("W has dims " + DimsToString(w.dims()) + ", expected " +
                  DimsToString({nd, gates * h, in}));
  }
  if (b != nullptr && b->dims() != std::vector<int64_t>{nd, 2 * gates * h}) {
    return Reason("B has dims " + DimsToString(b->dims()) + ", expected " +
                  DimsToString({nd, 2 * gates * h}));
  }

  RnnParams p;
  p.ints["cell"] = {static_cast<int64_t>(cell)};
  p.ints["dir"] = {dir};
  p.ints["act"] = {act};
  if (seq_lens_given) {
    const std::string why =
        "sequence_lens must be a constant equal to the sequence length for every batch entry "
        "(oneDNN's RNN primitives have no per-batch lengths)";
    if (seq_lens == nullptr || seq_lens->num_elements() == 0) return Reason(why);
    std::vector<int64_t> lens;
    for (int64_t i = 0; i < seq_lens->num_elements(); ++i) {
      if (seq_lens->dtype() == DataType::kInt32) {
        lens.push_back(seq_lens->data<int32_t>()[i]);
      } else if (seq_lens->dtype() == DataType::kInt64) {
        lens.push_back(seq_lens->data<int64_t>()[i]);
      } else {
        return Reason("sequence_lens must be int32");
      }
    }
    if (std::any_of(lens.begin(), lens.end(), [&](int64_t v) { return v != lens[0]; }) ||
        (x_dims[0] > 0 && lens[0] != x_dims[0]) || lens[0] <= 0) {
      return Reason(why);
    }
    p.ints["seq_len"] = {lens[0]};
  }

  // oneDNN gate g reads ONNX gate map[g].
  static const int64_t kLstmMap[4] = {0, 2, 3, 1};
  static const int64_t kIdentity[4] = {0, 1, 2, 3};
  const int64_t* map = cell == RnnCell::kLstm ? kLstmMap : kIdentity;
  p.w_layer = Tensor::Empty(DataType::kFloat32, {1, nd, in, gates, h});
  p.w_iter = Tensor::Empty(DataType::kFloat32, {1, nd, h, gates, h});
  const int64_t gb = cell == RnnCell::kLbrGru ? 4 : gates;
  p.bias = Tensor::Empty(DataType::kFloat32, {1, nd, gb, h});
  const float* ws = w.data<float>();
  const float* rs = r.data<float>();
  const float* bs = b != nullptr ? b->data<float>() : nullptr;
  float* wl = p.w_layer.mutable_data<float>();
  float* wi = p.w_iter.mutable_data<float>();
  float* bo = p.bias.mutable_data<float>();
  for (int64_t d = 0; d < nd; ++d) {
    for (int64_t g = 0; g < gates; ++g) {
      const int64_t og = map[g];
      for (int64_t o = 0; o < h; ++o) {
        const int64_t row = og * h + o;
        for (int64_t i = 0; i < in; ++i) {
          wl[((d * in + i) * gates + g) * h + o] = ws[(d * gates * h + row) * in + i];
        }
        for (int64_t i = 0; i < h; ++i) {
          wi[((d * h + i) * gates + g) * h + o] = rs[(d * gates * h + row) * h + i];
        }
        const float wb = bs ? bs[d * 2 * gates * h + row] : 0.f;
        const float rb = bs ? bs[d * 2 * gates * h + gates * h + row] : 0.f;
        if (cell == RnnCell::kLbrGru && g == 2) {
          bo[(d * gb + 2) * h + o] = wb;
          bo[(d * gb + 3) * h + o] = rb;
        } else {
          bo[(d * gb + g) * h + o] = wb + rb;
        }
      }
    }
  }
  return p;
}

StatusOr<std::vector<std::vector<int64_t>>> RnnShape(const Layer& l,
                                                     const std::vector<std::vector<int64_t>>& in) {
  using Dims = std::vector<int64_t>;
  const int64_t cell = l.Int("cell", -1), dir = l.Int("dir", -1);
  if (cell < 0 || cell > 3 || dir < 0 || dir > 2) return InvalidArgument("bad rnn cell / dir");
  const RnnCell c = static_cast<RnnCell>(cell);
  const auto act = static_cast<A>(l.Int("act", -1));
  if (c == RnnCell::kRnn && act != A::eltwise_tanh && act != A::eltwise_relu &&
      act != A::eltwise_logistic) {
    return InvalidArgument("bad rnn activation");
  }
  if (l.inputs.size() != 6 || in.size() != 6 || l.inputs[1] < 0 || l.inputs[2] < 0 ||
      l.inputs[3] < 0) {
    return InvalidArgument("rnn expects 6 inputs (x, w_layer, w_iter, bias, h0, c0)");
  }
  if (c != RnnCell::kLstm && l.inputs[5] >= 0) return InvalidArgument("c0 of a non-LSTM rnn");
  const Dims& x = in[0];
  if (x.size() != 3) return InvalidArgument("rnn X must be 3-D");
  const int64_t t = x[0], n = x[1], ic = x[2];
  if (l.ints.count("seq_len") && l.Int("seq_len") != t) {
    return InvalidArgument("sequence length " + std::to_string(t) +
                           " differs from the node's sequence_lens " +
                           std::to_string(l.Int("seq_len")));
  }
  const Dims& wl = in[1];
  if (wl.size() != 5) return InvalidArgument("rnn w_layer must be 5-D");
  const int64_t nd = dir == 2 ? 2 : 1, g = GatesOf(c), h = wl[4];
  if (wl != Dims{1, nd, ic, g, h}) return InvalidArgument("rnn w_layer dims do not match");
  if (in[2] != Dims{1, nd, h, g, h}) return InvalidArgument("rnn w_iter dims do not match");
  if (in[3] != Dims{1, nd, c == RnnCell::kLbrGru ? 4 : g, h}) {
    return InvalidArgument("rnn bias dims do not match");
  }
  const Dims state{nd, n, h};
  if (l.inputs[4] >= 0 && in[4] != state) return InvalidArgument("initial_h dims do not match");
  if (l.inputs[5] >= 0 && in[5] != state) return InvalidArgument("initial_c dims do not match");
  std::vector<Dims> out = {{t, nd, n, h}, state};
  if (c == RnnCell::kLstm) out.push_back(state);
  return out;
}

Status BuildRnn(Builder& b) {
  using dt = memory::data_type;
  using tag = memory::format_tag;
  const Layer& l = b.L();
  const RnnCell cell = static_cast<RnnCell>(l.Int("cell"));
  const int64_t dir = l.Int("dir");
  const int x = l.inputs[0], h0 = l.inputs[4], c0 = l.inputs[5];
  const Dims& xd = b.dims[x];
  const Dims& wld = b.dims[l.inputs[1]];
  const int64_t t = xd[0], n = xd[1], ic = xd[2], nd = wld[1], g = wld[3], h = wld[4];
  const int64_t gb = b.dims[l.inputs[3]][2];
  const bool lstm = cell == RnnCell::kLstm;
  const auto direction = dir == 0   ? dnnl::rnn_direction::unidirectional_left2right
                         : dir == 1 ? dnnl::rnn_direction::unidirectional_right2left
                                    : dnnl::rnn_direction::bidirectional_concat;

  const memory::desc src_md({t, n, ic}, dt::f32, tag::tnc);
  const memory::desc state_md({1, nd, n, h}, dt::f32, tag::ldnc);
  const memory::desc wl_any({1, nd, ic, g, h}, dt::f32, tag::any);
  const memory::desc wi_any({1, nd, h, g, h}, dt::f32, tag::any);
  const memory::desc bias_md({1, nd, gb, h}, dt::f32, tag::ldgo);
  const memory::desc dst_md({t, n, nd * h}, dt::f32, tag::tnc);
  const memory::desc src_iter = h0 >= 0 ? state_md : memory::desc();
  const memory::desc src_iter_c = c0 >= 0 ? state_md : memory::desc();
  const auto prop = dnnl::prop_kind::forward_inference;
  const dnnl::primitive_attr attr = ScratchAttr();

  // Creates the primitive descriptor, picks an implementation, returns the weights layouts.
  dnnl::primitive prim;
  memory::desc wl_md, wi_md;
  auto finish = [&](auto& pd) -> Status {
    KILN_RETURN_IF_ERROR(b.Choose(pd));
    wl_md = pd.weights_layer_desc();
    wi_md = pd.weights_iter_desc();
    prim = dnnl::primitive(pd);
    return Status::OK();
  };
  std::vector<StepArg> args;
  const dnnl::primitive_desc_base* base = nullptr;
  dnnl::lstm_forward::primitive_desc lstm_pd;
  dnnl::gru_forward::primitive_desc gru_pd;
  dnnl::lbr_gru_forward::primitive_desc lbr_pd;
  dnnl::vanilla_rnn_forward::primitive_desc rnn_pd;
  switch (cell) {
    case RnnCell::kLstm: {
      dnnl::lstm_forward::desc d(prop, direction, src_md, src_iter, src_iter_c, wl_any, wi_any,
                                 bias_md, dst_md, state_md, state_md);
      lstm_pd = dnnl::lstm_forward::primitive_desc(d, attr, b.eng);
      KILN_RETURN_IF_ERROR(finish(lstm_pd));
      base = &lstm_pd;
      break;
    }
    case RnnCell::kGru: {
      dnnl::gru_forward::desc d(prop, direction, src_md, src_iter, wl_any, wi_any, bias_md,
                                dst_md, state_md);
      gru_pd = dnnl::gru_forward::primitive_desc(d, attr, b.eng);
      KILN_RETURN_IF_ERROR(finish(gru_pd));
      base = &gru_pd;
      break;
    }
    case RnnCell::kLbrGru: {
      dnnl::lbr_gru_forward::desc d(prop, direction, src_md, src_iter, wl_any, wi_any, bias_md,
                                    dst_md, state_md);
      lbr_pd = dnnl::lbr_gru_forward::primitive_desc(d, attr, b.eng);
      KILN_RETURN_IF_ERROR(finish(lbr_pd));
      base = &lbr_pd;
      break;
    }
    case RnnCell::kRnn: {
      dnnl::vanilla_rnn_forward::desc d(prop, static_cast<A>(l.Int("act")), direction, src_md,
                                        src_iter, wl_any, wi_any, bias_md, dst_md, state_md);
      rnn_pd = dnnl::vanilla_rnn_forward::primitive_desc(d, attr, b.eng);
      KILN_RETURN_IF_ERROR(finish(rnn_pd));
      base = &rnn_pd;
      break;
    }
  }
  if (base == nullptr) return Internal("bad rnn cell");

  // Inputs in f32 plain layout: X is tnc, the states [D, N, H] are ldnc with L = 1.
  KILN_ASSIGN_OR_RETURN(int x_buf, b.As(x, Builder::Plain(xd)));
  args.push_back({DNNL_ARG_SRC_LAYER, src_md, x_buf});
  if (h0 >= 0) {
    KILN_ASSIGN_OR_RETURN(int hb, b.As(h0, Builder::Plain(b.dims[h0])));
    args.push_back({DNNL_ARG_SRC_ITER, state_md, hb});
  }
  if (c0 >= 0) {
    KILN_ASSIGN_OR_RETURN(int cb, b.As(c0, Builder::Plain(b.dims[c0])));
    args.push_back({DNNL_ARG_SRC_ITER_C, state_md, cb});
  }
  // Weights: plain ldigo / ldgo constants reordered once into the primitive's layouts.
  KILN_ASSIGN_OR_RETURN(
      int wl_buf, b.Weights(1, l.inputs[1], Builder::Plain({1, nd, ic, g, h}), wl_md));
  args.push_back({DNNL_ARG_WEIGHTS_LAYER, wl_md, wl_buf});
  KILN_ASSIGN_OR_RETURN(int wi_buf,
                        b.Weights(2, l.inputs[2], Builder::Plain({1, nd, h, g, h}), wi_md));
  args.push_back({DNNL_ARG_WEIGHTS_ITER, wi_md, wi_buf});
  KILN_ASSIGN_OR_RETURN(int bias_buf,
                        b.Weights(3, l.inputs[3], Builder::Plain({1, nd, gb, h}), bias_md));
  args.push_back({DNNL_ARG_BIAS, bias_md, bias_buf});

  // Outputs: Y_h / Y_c are [D, N, H] = ldnc bytes; Y is [T, N, D*H] from oneDNN.
  const int yh = b.Define(l.outputs[1], Builder::Plain(b.dims[l.outputs[1]]));
  args.push_back({DNNL_ARG_DST_ITER, state_md, yh});
  if (lstm) {
    const int yc = b.Define(l.outputs[2], Builder::Plain(b.dims[l.outputs[2]]));
    args.push_back({DNNL_ARG_DST_ITER_C, state_md, yc});
  }
  const Dims y_dims{t, nd, n, h};
  int y_buf;
  if (nd == 1) {  // [T, N, H] and [T, 1, N, H] are the same bytes
    y_buf = b.Define(l.outputs[0], Builder::Plain(y_dims));
  } else {
    y_buf = b.NewBuffer(dst_md.get_size());
  }
  args.push_back({DNNL_ARG_DST_LAYER, dst_md, y_buf});
  b.AddStep(prim, *base, std::move(args));
  if (nd == 2) {
    // [T, N, 2, H] (oneDNN's concat) -> ONNX [T, 2, N, H]: one reorder into a strided view.
    const memory::desc from({t, n, nd, h}, dt::f32, tag::abcd);
    const memory::desc to({t, n, nd, h}, dt::f32, memory::dims{nd * n * h, h, n * h, 1});
    KILN_ASSIGN_OR_RETURN(int yb, b.Copy(from, y_buf, to));
    b.Define(l.outputs[0], Builder::Plain(y_dims), yb);
  }
  return Status::OK();
}

}  // namespace kiln::cpu
