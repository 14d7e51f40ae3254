// Op family: rnn — LSTM, GRU and RNN reference kernels (ONNX opsets 7 and 14).
//
// One driver serves all three cells. Per direction, the input projection X * W^T for every
// time step is one GEMM up front; each step then does H_{t-1} * R^T (a GEMM over the batch) and
// the cell's element-wise gate math. Sequences shorter than seq_length (sequence_lens) stop
// early: their Y rows past the end stay zero and Y_h / Y_c hold the state of their last step;
// the reverse direction runs each sequence from its own last step back to 0.
// layout = 1 (opset 14) puts batch first in X, Y, initial_h/c, Y_h/c; internally everything is
// computed in layout 0.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>
#include <vector>

#include "ops/base/dispatch.h"
#include "ops/base/gemm.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"

namespace kiln {
namespace {

enum class Cell { kRnn, kGru, kLstm };

int NumGates(Cell cell) { return cell == Cell::kRnn ? 1 : cell == Cell::kGru ? 3 : 4; }
int ActivationsPerDirection(Cell cell) {
  return cell == Cell::kRnn ? 1 : cell == Cell::kGru ? 2 : 3;
}

// ----------------------------------------------------------------------------- activations

enum class ActKind {
  kSigmoid,
  kTanh,
  kRelu,
  kAffine,
  kLeakyRelu,
  kThresholdedRelu,
  kScaledTanh,
  kHardSigmoid,
  kElu,
  kSoftsign,
  kSoftplus
};

struct Activation {
  ActKind kind = ActKind::kSigmoid;
  double alpha = 0, beta = 0;

  template <typename T>
  T operator()(T x) const {
    switch (kind) {
      case ActKind::kSigmoid:
        return T(1) / (T(1) + std::exp(-x));
      case ActKind::kTanh:
        return std::tanh(x);
      case ActKind::kRelu:
        return std::max(x, T(0));
      case ActKind::kAffine:
        return T(alpha) * x + T(beta);
      case ActKind::kLeakyRelu:
        return x >= 0 ? x : T(alpha) * x;
      case ActKind::kThresholdedRelu:
        return x > T(alpha) ? x : T(0);
      case ActKind::kScaledTanh:
        return T(alpha) * std::tanh(T(beta) * x);
      case ActKind::kHardSigmoid:
        return std::clamp(T(alpha) * x + T(beta), T(0), T(1));
      case ActKind::kElu:
        return x >= 0 ? x : T(alpha) * (std::exp(x) - T(1));
      case ActKind::kSoftsign:
        return x / (T(1) + std::fabs(x));
      case ActKind::kSoftplus:
        return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
    }
    return x;
  }
};

// Name (case-insensitive) -> kind, and how many of activation_alpha / activation_beta it takes
// with their ONNX defaults.
struct ActInfo {
  const char* name;
  ActKind kind;
  int num_alpha, num_beta;
  double default_alpha, default_beta;
};
constexpr ActInfo kActivations[] = {
    {"sigmoid", ActKind::kSigmoid, 0, 0, 0, 0},
    {"tanh", ActKind::kTanh, 0, 0, 0, 0},
    {"relu", ActKind::kRelu, 0, 0, 0, 0},
    {"affine", ActKind::kAffine, 1, 1, 1.0, 0.0},
    {"leakyrelu", ActKind::kLeakyRelu, 1, 0, 0.01, 0},
    {"thresholdedrelu", ActKind::kThresholdedRelu, 1, 0, 1.0, 0},
    {"scaledtanh", ActKind::kScaledTanh, 1, 1, 1.0, 1.0},
    {"hardsigmoid", ActKind::kHardSigmoid, 1, 1, 0.2, 0.5},
    {"elu", ActKind::kElu, 1, 0, 1.0, 0},
    {"softsign", ActKind::kSoftsign, 0, 0, 0, 0},
    {"softplus", ActKind::kSoftplus, 0, 0, 0, 0},
};

// The activations of every direction, num_directions * per-direction count. activation_alpha
// and activation_beta are consumed in order by the activations that take them; missing values
// take the activation's ONNX default.
StatusOr<std::vector<Activation>> ParseActivations(const KernelContext& ctx, Cell cell,
                                                   int num_dirs) {
  const int per_dir = ActivationsPerDirection(cell);
  std::vector<std::string> names = ctx.GetStrings("activations");
  if (names.empty()) {
    for (int d = 0; d < num_dirs; ++d) {
      if (cell == Cell::kRnn) names.push_back("Tanh");
      if (cell == Cell::kGru) names.insert(names.end(), {"Sigmoid", "Tanh"});
      if (cell == Cell::kLstm) names.insert(names.end(), {"Sigmoid", "Tanh", "Tanh"});
    }
  } else if (static_cast<int>(names.size()) == per_dir && num_dirs == 2) {
    names.insert(names.end(), names.begin(), names.end());  // one set for both directions
  }
  if (static_cast<int>(names.size()) != per_dir * num_dirs) {
    return ctx.Error("activations has " + std::to_string(names.size()) + " entries, expected " +
                     std::to_string(per_dir * num_dirs));
  }
  const std::vector<float> alphas = ctx.GetFloats("activation_alpha");
  const std::vector<float> betas = ctx.GetFloats("activation_beta");
  size_t ai = 0, bi = 0;
  std::vector<Activation> out;
  for (std::string name : names) {
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    const ActInfo* info = nullptr;
    for (const ActInfo& a : kActivations) {
      if (name == a.name) info = &a;
    }
    if (info == nullptr) return ctx.Error("unsupported activation '" + name + "'");
    Activation act{info->kind, info->default_alpha, info->default_beta};
    if (info->num_alpha > 0 && ai < alphas.size()) act.alpha = alphas[ai++];
    if (info->num_beta > 0 && bi < betas.size()) act.beta = betas[bi++];
    out.push_back(act);
  }
  return out;
}

// ----------------------------------------------------------------------------- driver

template <typename T>
void Gemm(bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b,
          int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    GemmF32(false, trans_b, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
  } else {
    GemmF64(false, trans_b, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc);
  }
}

// Swaps the first two axes of a [d0, d1, inner] row-major array.
template <typename T>
std::vector<T> SwapLeadingAxes(const T* src, int64_t d0, int64_t d1, int64_t inner) {
  std::vector<T> out(d0 * d1 * inner);
  for (int64_t i = 0; i < d0; ++i) {
    for (int64_t j = 0; j < d1; ++j) {
      std::copy_n(src + (i * d1 + j) * inner, inner, out.begin() + (j * d0 + i) * inner);
    }
  }
  return out;
}

struct RnnDims {
  int64_t seq = 0, batch = 0, input = 0, hidden = 0;
  int num_dirs = 1;
  bool layout1 = false;
};

// Validates shapes and attributes; fills dims.
Status CheckRnnInputs(const KernelContext& ctx, Cell cell, RnnDims* d) {
  const int gates = NumGates(cell);
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  const Tensor& r = ctx.input(2);
  const int64_t layout = ctx.GetInt("layout");
  if (layout != 0 && layout != 1) return ctx.Error("layout must be 0 or 1");
  d->layout1 = layout == 1;
  const std::string direction = ctx.GetString("direction");
  if (direction == "forward" || direction == "reverse") {
    d->num_dirs = 1;
  } else if (direction == "bidirectional") {
    d->num_dirs = 2;
  } else {
    return ctx.Error("unsupported direction '" + direction + "'");
  }
  if (x.rank() != 3) return ctx.Error("X must have rank 3, got " + DimsToString(x.dims()));
  d->seq = x.dim(d->layout1 ? 1 : 0);
  d->batch = x.dim(d->layout1 ? 0 : 1);
  d->input = x.dim(2);
  if (r.rank() != 3) return ctx.Error("R must have rank 3, got " + DimsToString(r.dims()));
  d->hidden = ctx.HasAttr("hidden_size") ? ctx.GetInt("hidden_size") : r.dim(2);
  const int64_t h = d->hidden, nd = d->num_dirs;
  if (h <= 0) return ctx.Error("hidden_size must be positive");
  auto expect = [&](const Tensor& t, const char* name, std::vector<int64_t> want) -> Status {
    if (t.dims() != want) {
      return ctx.Error(std::string(name) + " must be " + DimsToString(want) + " (hidden_size " +
                       std::to_string(h) + ", " + std::to_string(nd) + " direction(s)), got " +
                       DimsToString(t.dims()));
    }
    return Status::OK();
  };
  KILN_RETURN_IF_ERROR(expect(w, "W", {nd, gates * h, d->input}));
  KILN_RETURN_IF_ERROR(expect(r, "R", {nd, gates * h, h}));
  if (ctx.has_input(3)) KILN_RETURN_IF_ERROR(expect(ctx.input(3), "B", {nd, 2 * gates * h}));
  if (ctx.has_input(4)) {
    KILN_RETURN_IF_ERROR(expect(ctx.input(4), "sequence_lens", {d->batch}));
  }
  const std::vector<int64_t> state =
      d->layout1 ? std::vector<int64_t>{d->batch, nd, h} : std::vector<int64_t>{nd, d->batch, h};
  if (ctx.has_input(5)) KILN_RETURN_IF_ERROR(expect(ctx.input(5), "initial_h", state));
  if (cell == Cell::kLstm) {
    if (ctx.has_input(6)) KILN_RETURN_IF_ERROR(expect(ctx.input(6), "initial_c", state));
    if (ctx.has_input(7)) KILN_RETURN_IF_ERROR(expect(ctx.input(7), "P", {nd, 3 * h}));
  }
  for (int i = 1; i < ctx.num_inputs(); ++i) {
    if (i != 4 && ctx.has_input(i) && ctx.input(i).dtype() != x.dtype()) {
      return ctx.Error("input " + std::to_string(i) + " must have X's dtype " +
                       DataTypeName(x.dtype()));
    }
  }
  return Status::OK();
}

template <typename T>
Status RunRnn(KernelContext& ctx, Cell cell) {
  RnnDims dm;
  KILN_RETURN_IF_ERROR(CheckRnnInputs(ctx, cell, &dm));
  KILN_ASSIGN_OR_RETURN(std::vector<Activation> acts, ParseActivations(ctx, cell, dm.num_dirs));
  const int gates = NumGates(cell);
  const int64_t seq = dm.seq, batch = dm.batch, in = dm.input, h = dm.hidden;
  const int64_t nd = dm.num_dirs, gh = gates * h;
  const bool has_clip = ctx.HasAttr("clip");
  const T clip = static_cast<T>(ctx.GetFloat("clip"));
  if (has_clip && !(clip > 0)) return ctx.Error("clip must be positive");
  const bool input_forget = cell == Cell::kLstm && ctx.GetInt("input_forget") != 0;
  const bool linear_before_reset = cell == Cell::kGru && ctx.GetInt("linear_before_reset") != 0;
  const std::string direction = ctx.GetString("direction");

  std::vector<int64_t> lens(batch, seq);
  if (ctx.has_input(4)) {
    KILN_ASSIGN_OR_RETURN(lens, ReadInt64s(ctx.input(4)));
    for (int64_t l : lens) {
      if (l < 0 || l > seq) {
        return ctx.Error("sequence_lens values must be in [0, " + std::to_string(seq) + "], got " +
                         std::to_string(l));
      }
    }
  }
  // Everything in layout 0 from here: X [seq, batch, in], states [nd, batch, h].
  std::vector<T> x_seq;
  const T* x = ctx.input(0).data<T>();
  if (dm.layout1) {
    x_seq = SwapLeadingAxes(x, batch, seq, in);
    x = x_seq.data();
  }
  auto initial_state = [&](int index) {
    std::vector<T> s(nd * batch * h, T(0));
    if (ctx.has_input(index)) {
      const T* p = ctx.input(index).template data<T>();
      s = dm.layout1 ? SwapLeadingAxes(p, batch, nd, h) : std::vector<T>(p, p + s.size());
    }
    return s;
  };
  std::vector<T> y(seq * nd * batch * h, T(0));
  std::vector<T> y_h = initial_state(5);
  std::vector<T> y_c = cell == Cell::kLstm ? initial_state(6) : std::vector<T>();

  const T* w_all = ctx.input(1).data<T>();
  const T* r_all = ctx.input(2).data<T>();
  const T* b_all = ctx.has_input(3) ? ctx.input(3).data<T>() : nullptr;
  const T* p_all = cell == Cell::kLstm && ctx.has_input(7) ? ctx.input(7).data<T>() : nullptr;
  auto cl = [&](T v) { return has_clip ? std::clamp(v, -clip, clip) : v; };

  std::vector<T> xw(seq * batch * gh);
  std::vector<T> hr(batch * gh);
  std::vector<T> rh(batch * h);      // GRU: r (.) H_{t-1}
  std::vector<T> gate_r(batch * h);  // GRU: reset gate
  std::vector<T> rec_bias(gh, T(0));
  for (int64_t dir = 0; dir < nd; ++dir) {
    const bool reverse = direction == "reverse" || dir == 1;
    const T* w = w_all + dir * gh * in;
    const T* r = r_all + dir * gh * h;
    const Activation* act = &acts[dir * ActivationsPerDirection(cell)];
    // Input projection for all steps, plus the biases that add outside the recurrence.
    Gemm<T>(true, seq * batch, gh, in, x, in, w, in, T(0), xw.data(), gh);
    std::fill(rec_bias.begin(), rec_bias.end(), T(0));
    if (b_all != nullptr) {
      const T* wb = b_all + dir * 2 * gh;
      const T* rb = wb + gh;
      for (int64_t g = 0; g < gh; ++g) {
        // GRU with linear_before_reset keeps Rbh inside r (.) (H R_h^T + Rbh).
        const bool rb_inside = linear_before_reset && g >= 2 * h;
        const T bias = wb[g] + (rb_inside ? T(0) : rb[g]);
        if (rb_inside) rec_bias[g] = rb[g];
        for (int64_t row = 0; row < seq * batch; ++row) xw[row * gh + g] += bias;
      }
    }
    const T* peep = p_all ? p_all + dir * 3 * h : nullptr;
    T* hs = y_h.data() + dir * batch * h;
    T* cs = cell == Cell::kLstm ? y_c.data() + dir * batch * h : nullptr;
    for (int64_t s = 0; s < seq; ++s) {
      // Recurrent projection H_{t-1} R^T (for GRU without linear_before_reset: z and r only).
      const int64_t rec_cols = cell == Cell::kGru && !linear_before_reset ? 2 * h : gh;
      Gemm<T>(true, batch, rec_cols, h, hs, h, r, h, T(0), hr.data(), gh);
      if (cell == Cell::kGru && !linear_before_reset) {
        for (int64_t b = 0; b < batch; ++b) {
          if (s >= lens[b]) continue;
          const int64_t t = reverse ? lens[b] - 1 - s : s;
          const T* xg = &xw[(t * batch + b) * gh];
          for (int64_t j = 0; j < h; ++j) {
            const T rv = act[0](cl(xg[h + j] + hr[b * gh + h + j]));
            gate_r[b * h + j] = rv;
            rh[b * h + j] = rv * hs[b * h + j];
          }
        }
        Gemm<T>(true, batch, h, h, rh.data(), h, r + 2 * h * h, h, T(0), hr.data() + 2 * h, gh);
      }
      for (int64_t b = 0; b < batch; ++b) {
        if (s >= lens[b]) continue;
        const int64_t t = reverse ? lens[b] - 1 - s : s;
        const T* xg = &xw[(t * batch + b) * gh];
        const T* rg = &hr[b * gh];
        T* hb = hs + b * h;
        for (int64_t j = 0; j < h; ++j) {
          if (cell == Cell::kRnn) {
            hb[j] = act[0](cl(xg[j] + rg[j]));
          } else if (cell == Cell::kGru) {
            const T z = act[0](cl(xg[j] + rg[j]));
            T cand;
            if (linear_before_reset) {
              const T rv = act[0](cl(xg[h + j] + rg[h + j]));
              cand = act[1](cl(xg[2 * h + j] + rv * (rg[2 * h + j] + rec_bias[2 * h + j])));
            } else {
              cand = act[1](cl(xg[2 * h + j] + rg[2 * h + j]));
            }
            hb[j] = (T(1) - z) * cand + z * hb[j];
          } else {  // LSTM, gates i o f c
            T* cb = cs + b * h;
            const T c_prev = cb[j];
            const T i = act[0](cl(xg[j] + rg[j] + (peep ? peep[j] * c_prev : T(0))));
            const T f = input_forget ? T(1) - i
                                     : act[0](cl(xg[2 * h + j] + rg[2 * h + j] +
                                                 (peep ? peep[2 * h + j] * c_prev : T(0))));
            const T g = act[1](cl(xg[3 * h + j] + rg[3 * h + j]));
            const T c = f * c_prev + i * g;
            const T o = act[0](cl(xg[h + j] + rg[h + j] + (peep ? peep[h + j] * c : T(0))));
            cb[j] = c;
            hb[j] = o * act[2](c);
          }
        }
        std::copy_n(hb, h, &y[((t * nd + dir) * batch + b) * h]);
      }
    }
  }

  const DataType dt = ctx.input(0).dtype();
  auto wanted = [&](int index) {
    return index < ctx.num_outputs() && !ctx.node().outputs[index].empty();
  };
  if (wanted(0)) {  // Y: [seq, nd, batch, h]; layout 1: [batch, seq, nd, h]
    std::vector<int64_t> dims = {seq, nd, batch, h};
    if (dm.layout1) dims = {batch, seq, nd, h};
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.AllocateOutput(0, dt, dims));
    T* o = out->mutable_data<T>();
    for (int64_t t = 0; t < seq; ++t) {
      for (int64_t dir = 0; dir < nd; ++dir) {
        for (int64_t b = 0; b < batch; ++b) {
          const int64_t dst = dm.layout1 ? (b * seq + t) * nd + dir : (t * nd + dir) * batch + b;
          std::copy_n(&y[((t * nd + dir) * batch + b) * h], h, o + dst * h);
        }
      }
    }
  }
  for (int index : {1, 2}) {  // Y_h, Y_c: [nd, batch, h]; layout 1: [batch, nd, h]
    if (!wanted(index) || (index == 2 && cell != Cell::kLstm)) continue;
    const std::vector<T>& v = index == 1 ? y_h : y_c;
    std::vector<int64_t> dims = {nd, batch, h};
    if (dm.layout1) dims = {batch, nd, h};
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.AllocateOutput(index, dt, dims));
    std::vector<T> swapped = dm.layout1 ? SwapLeadingAxes(v.data(), nd, batch, h) : v;
    std::copy(swapped.begin(), swapped.end(), out->mutable_data<T>());
  }
  return Status::OK();
}

Status RnnKernel(KernelContext& ctx, Cell cell) {
  return DispatchFloat(ctx.input(0).dtype(),
                       [&]<typename T>() -> Status { return RunRnn<T>(ctx, cell); });
}

// Y [seq, nd, batch, h] (layout 1: [batch, seq, nd, h]); Y_h, Y_c [nd, batch, h] (layout 1:
// [batch, nd, h]). Unknown pieces stay -1.
Status RnnInfer(InferContext& ctx, Cell cell) {
  const DataType dt = ctx.input_dtype(0);
  const Shape& xs = ctx.input_shape(0);
  const bool layout1 = ctx.GetInt("layout") == 1;
  int64_t seq = -1, batch = -1, h = -1;
  if (xs.rank_known() && xs.rank() == 3) {
    seq = xs.dim(layout1 ? 1 : 0);
    batch = xs.dim(layout1 ? 0 : 1);
  }
  if (ctx.HasAttr("hidden_size")) {
    h = ctx.GetInt("hidden_size");
  } else if (ctx.input_shape(2).rank_known() && ctx.input_shape(2).rank() == 3) {
    h = ctx.input_shape(2).dim(2);
  }
  const int64_t nd = ctx.GetString("direction") == "bidirectional" ? 2 : 1;
  ctx.SetOutput(0, dt, layout1 ? Shape({batch, seq, nd, h}) : Shape({seq, nd, batch, h}));
  const Shape state = layout1 ? Shape({batch, nd, h}) : Shape({nd, batch, h});
  ctx.SetOutput(1, dt, state);
  if (cell == Cell::kLstm) ctx.SetOutput(2, dt, state);
  return Status::OK();
}

OpSchema RnnSchema(const char* name, Cell cell, const char* doc) {
  OpSchema s(name);
  const int n_in = cell == Cell::kLstm ? 8 : 6;
  s.Doc(doc)
      .Inputs(3, n_in)
      .Outputs(0, cell == Cell::kLstm ? 3 : 2)
      .AttrNoDefault("activation_alpha", AttrType::kFloats)
      .AttrNoDefault("activation_beta", AttrType::kFloats)
      .AttrNoDefault("activations", AttrType::kStrings)
      .AttrNoDefault("clip", AttrType::kFloat)
      .AttrDefault("direction", "forward")
      .AttrNoDefault("hidden_size", AttrType::kInt)
      .AttrDefault("layout", int64_t{0})
      .PromoteHalfToFloat()
      .Infer([cell](InferContext& ctx) { return RnnInfer(ctx, cell); })
      .Kernel([cell](KernelContext& ctx) { return RnnKernel(ctx, cell); });
  for (int i = 0; i < n_in; ++i) {
    if (i != 4) s.InputTypes(i, FloatTypes());
  }
  s.InputTypes(4, IndexTypes());
  if (cell == Cell::kLstm) s.AttrDefault("input_forget", int64_t{0});
  if (cell == Cell::kGru) s.AttrDefault("linear_before_reset", int64_t{0});
  return s;
}

}  // namespace

void RegisterRnnOps(OpRegistry& r) {
  MustRegister(r, RnnSchema("LSTM", Cell::kLstm,
                            "LSTM (gates i, o, f, c; peepholes P = [i, o, f]); outputs Y, Y_h, "
                            "Y_c, all optional."));
  MustRegister(r, RnnSchema("GRU", Cell::kGru,
                            "GRU (gates z, r, h; linear_before_reset); outputs Y, Y_h, both "
                            "optional."));
  MustRegister(r, RnnSchema("RNN", Cell::kRnn,
                            "Simple RNN, H_t = f(X_t W^T + H_{t-1} R^T + Wb + Rb); outputs Y, "
                            "Y_h, both optional."));
}

}  // namespace kiln
