// Tests for the rnn family: LSTM, GRU, RNN. The kernels are checked against hand-computed
// steps, values from the ONNX backend test data, and a naive per-sequence loop written here
// (dot products, one batch entry and one direction at a time, in double).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "ops/op_test_util.h"

namespace kiln {
namespace {

using testing::F32;
using testing::RandomTensor;
using testing::RunOp;
using testing::TensorsNear;

using RnnTest = testing::OpFamilyTest<RegisterRnnOps>;

double Sig(double x) { return 1 / (1 + std::exp(-x)); }

enum class Kind { kLstm, kGru, kRnn };

struct NaiveConfig {
  Kind kind;
  int64_t seq, batch, input, hidden;
  int dirs = 1;
  bool reverse = false;  // with dirs == 1
  bool lbr = false;      // GRU linear_before_reset
  bool input_forget = false;
  double clip = 0;  // 0: none
  std::function<double(double)> f = Sig;
  std::function<double(double)> g = [](double x) { return std::tanh(x); };
  std::function<double(double)> h = [](double x) { return std::tanh(x); };
};

struct NaiveResult {
  std::vector<double> y, y_h, y_c;  // layout 0
};

// x [seq, batch, input]; w, r, b, p, h0, c0 in ONNX layout-0 shapes; b/p/h0/c0 may be empty.
NaiveResult Naive(const NaiveConfig& c, const std::vector<double>& x, const std::vector<double>& w,
                  const std::vector<double>& r, const std::vector<double>& b,
                  const std::vector<double>& p, const std::vector<int64_t>& lens,
                  const std::vector<double>& h0, const std::vector<double>& c0) {
  const int gates = c.kind == Kind::kLstm ? 4 : c.kind == Kind::kGru ? 3 : 1;
  const int64_t H = c.hidden, I = c.input, G = gates * H;
  NaiveResult res;
  res.y.assign(c.seq * c.dirs * c.batch * H, 0.0);
  res.y_h.assign(c.dirs * c.batch * H, 0.0);
  res.y_c.assign(c.dirs * c.batch * H, 0.0);
  auto clip = [&](double v) { return c.clip > 0 ? std::max(-c.clip, std::min(c.clip, v)) : v; };
  for (int d = 0; d < c.dirs; ++d) {
    const bool rev = c.dirs == 2 ? d == 1 : c.reverse;
    for (int64_t bt = 0; bt < c.batch; ++bt) {
      std::vector<double> hs(H, 0.0), cs(H, 0.0);
      for (int64_t j = 0; j < H; ++j) {
        if (!h0.empty()) hs[j] = h0[(d * c.batch + bt) * H + j];
        if (!c0.empty()) cs[j] = c0[(d * c.batch + bt) * H + j];
      }
      const int64_t len = lens.empty() ? c.seq : lens[bt];
      for (int64_t step = 0; step < len; ++step) {
        const int64_t t = rev ? len - 1 - step : step;
        // wx[k] = W_k x_t + Wb_k, rx[k] = R_k h + Rb_k, per gate row k.
        std::vector<double> wx(G), rx(G);
        for (int64_t k = 0; k < G; ++k) {
          double a = b.empty() ? 0 : b[d * 2 * G + k];
          for (int64_t i = 0; i < I; ++i)
            a += w[(d * G + k) * I + i] * x[(t * c.batch + bt) * I + i];
          double e = b.empty() ? 0 : b[d * 2 * G + G + k];
          for (int64_t i = 0; i < H; ++i) e += r[(d * G + k) * H + i] * hs[i];
          wx[k] = a;
          rx[k] = e;
        }
        std::vector<double> nh(H), nc(H);
        if (c.kind == Kind::kRnn) {
          for (int64_t j = 0; j < H; ++j) nh[j] = c.f(clip(wx[j] + rx[j]));
        } else if (c.kind == Kind::kGru) {
          std::vector<double> z(H), rr(H);
          for (int64_t j = 0; j < H; ++j) {
            z[j] = c.f(clip(wx[j] + rx[j]));
            rr[j] = c.f(clip(wx[H + j] + rx[H + j]));
          }
          for (int64_t j = 0; j < H; ++j) {
            double cand;
            if (c.lbr) {
              cand = c.g(clip(wx[2 * H + j] + rr[j] * rx[2 * H + j]));
            } else {
              double e = b.empty() ? 0 : b[d * 2 * G + G + 2 * H + j];
              for (int64_t i = 0; i < H; ++i) e += r[(d * G + 2 * H + j) * H + i] * rr[i] * hs[i];
              cand = c.g(clip(wx[2 * H + j] + e));
            }
            nh[j] = (1 - z[j]) * cand + z[j] * hs[j];
          }
        } else {
          for (int64_t j = 0; j < H; ++j) {
            auto peep = [&](int k, double cv) {
              return p.empty() ? 0 : p[d * 3 * H + k * H + j] * cv;
            };
            double ig = c.f(clip(wx[j] + rx[j] + peep(0, cs[j])));
            double fg =
                c.input_forget ? 1 - ig : c.f(clip(wx[2 * H + j] + rx[2 * H + j] + peep(2, cs[j])));
            double gg = c.g(clip(wx[3 * H + j] + rx[3 * H + j]));
            nc[j] = fg * cs[j] + ig * gg;
            double og = c.f(clip(wx[H + j] + rx[H + j] + peep(1, nc[j])));
            nh[j] = og * c.h(nc[j]);
          }
          cs = nc;
        }
        hs = nh;
        for (int64_t j = 0; j < H; ++j) res.y[((t * c.dirs + d) * c.batch + bt) * H + j] = hs[j];
      }
      for (int64_t j = 0; j < H; ++j) {
        res.y_h[(d * c.batch + bt) * H + j] = hs[j];
        res.y_c[(d * c.batch + bt) * H + j] = cs[j];
      }
    }
  }
  return res;
}

std::vector<double> Values(const Tensor& t) { return ReadDoubles(t); }
Tensor D(const std::vector<double>& v, std::vector<int64_t> dims) {
  return Tensor::FromVector<double>(v, std::move(dims), true);
}

// ONNX test_lstm_defaults: Y_h only.
TEST_F(RnnTest, LstmOnnxDefaults) {
  auto out =
      RunOp(reg_, "LSTM",
            {F32({1, 2, 3, 4, 5, 6}, {1, 3, 2}), F32(std::vector<float>(24, 0.1f), {1, 12, 2}),
             F32(std::vector<float>(36, 0.1f), {1, 12, 3})},
            {{"hidden_size", Attr::Int(3)}}, 2);
  ASSERT_TRUE(out.ok()) << out.status();
  const float a = 0.09524120390415192f, b = 0.2560644745826721f, c = 0.4032377600669861f;
  EXPECT_TRUE(TensorsNear((*out)[1], F32({a, a, a, b, b, b, c, c, c}, {1, 3, 3})));
  EXPECT_TRUE(TensorsNear((*out)[0], F32({a, a, a, b, b, b, c, c, c}, {1, 1, 3, 3})));
}

// ONNX test_lstm_with_peepholes.
TEST_F(RnnTest, LstmOnnxPeepholes) {
  Tensor zeros = F32(std::vector<float>(6, 0), {1, 2, 3});
  auto out = RunOp(
      reg_, "LSTM",
      {F32({1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 4}), F32(std::vector<float>(48, 0.1f), {1, 12, 4}),
       F32(std::vector<float>(36, 0.1f), {1, 12, 3}), F32(std::vector<float>(24, 0), {1, 24}),
       Tensor::FromVector<int32_t>({1, 1}), zeros, zeros, F32(std::vector<float>(9, 0.1f), {1, 9})},
      {{"hidden_size", Attr::Int(3)}}, 2);
  ASSERT_TRUE(out.ok()) << out.status();
  const float a = 0.37506911158561707f, b = 0.6801308989524841f;
  EXPECT_TRUE(TensorsNear((*out)[1], F32({a, a, a, b, b, b}, {1, 2, 3})));
}

// One LSTM step by hand: input 1, hidden 1, R = 0, biases 0.05 (W side only).
TEST_F(RnnTest, LstmSingleStepByHand) {
  // W rows in gate order i, o, f, c.
  auto out =
      RunOp(reg_, "LSTM",
            {F32({2}, {1, 1, 1}), F32({0.1f, 0.2f, 0.3f, 0.4f}, {1, 4, 1}),
             F32({0, 0, 0, 0}, {1, 4, 1}), F32({0.05f, 0.05f, 0.05f, 0.05f, 0, 0, 0, 0}, {1, 8}),
             Tensor(), Tensor(), F32({0.5f}, {1, 1, 1})},
            {{"hidden_size", Attr::Int(1)}}, 3);
  ASSERT_TRUE(out.ok()) << out.status();
  const double i = Sig(0.25), o = Sig(0.45), f = Sig(0.65), g = std::tanh(0.85);
  const double c = f * 0.5 + i * g;
  EXPECT_NEAR((*out)[2].data<float>()[0], c, 1e-6);
  EXPECT_NEAR((*out)[1].data<float>()[0], o * std::tanh(c), 1e-6);
}

// ONNX test_simple_rnn_batchwise (layout 1): Y and Y_h.
TEST_F(RnnTest, RnnOnnxBatchwise) {
  auto out = RunOp(reg_, "RNN",
                   {F32({1, 2, 3, 4, 5, 6}, {3, 1, 2}), F32(std::vector<float>(8, 0.5f), {1, 4, 2}),
                    F32(std::vector<float>(16, 0.5f), {1, 4, 4})},
                   {{"hidden_size", Attr::Int(4)}, {"layout", Attr::Int(1)}}, 2);
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<float> want;
  for (float v : {0.9051482081413269f, 0.9981778860092163f, 0.9999666213989258f}) {
    want.insert(want.end(), 4, v);
  }
  EXPECT_TRUE(TensorsNear((*out)[0], F32(want, {3, 1, 1, 4})));
  EXPECT_TRUE(TensorsNear((*out)[1], F32(want, {3, 1, 4})));
}

// Random inputs in double, all optional inputs, bidirectional, short sequences, vs Naive.
struct RandomCase {
  Kind kind;
  const char* direction;
  bool layout1;
  bool lbr;
};

class RnnRandomTest : public RnnTest, public ::testing::WithParamInterface<RandomCase> {};

TEST_P(RnnRandomTest, MatchesNaive) {
  const RandomCase rc = GetParam();
  NaiveConfig c{rc.kind, 5, 3, 4, 6};
  c.dirs = std::string(rc.direction) == "bidirectional" ? 2 : 1;
  c.reverse = std::string(rc.direction) == "reverse";
  c.lbr = rc.lbr;
  const int gates = c.kind == Kind::kLstm ? 4 : c.kind == Kind::kGru ? 3 : 1;
  const int64_t nd = c.dirs, H = c.hidden, G = gates * H;
  Tensor x = RandomTensor(DataType::kFloat64, {c.seq, c.batch, c.input}, 1);
  Tensor w = RandomTensor(DataType::kFloat64, {nd, G, c.input}, 2, -0.8, 0.8);
  Tensor r = RandomTensor(DataType::kFloat64, {nd, G, H}, 3, -0.8, 0.8);
  Tensor b = RandomTensor(DataType::kFloat64, {nd, 2 * G}, 4, -0.5, 0.5);
  Tensor h0 = RandomTensor(DataType::kFloat64, {nd, c.batch, H}, 5);
  Tensor c0 = RandomTensor(DataType::kFloat64, {nd, c.batch, H}, 6);
  Tensor p = RandomTensor(DataType::kFloat64, {nd, 3 * H}, 7);
  std::vector<int64_t> lens = {5, 2, 4};
  Tensor lens_t = Tensor::FromVector<int32_t>({5, 2, 4});

  auto to_layout1 = [&](const Tensor& t) {  // swaps the first two axes of a rank-3 tensor
    std::vector<double> v = Values(t), o(v.size());
    const int64_t d0 = t.dim(0), d1 = t.dim(1), in = t.dim(2);
    for (int64_t i = 0; i < d0; ++i)
      for (int64_t j = 0; j < d1; ++j)
        for (int64_t k = 0; k < in; ++k) o[(j * d0 + i) * in + k] = v[(i * d1 + j) * in + k];
    return D(o, {d1, d0, in});
  };
  std::vector<Tensor> in = {rc.layout1 ? to_layout1(x) : x,  w, r, b, lens_t,
                            rc.layout1 ? to_layout1(h0) : h0};
  if (c.kind == Kind::kLstm) {
    in.push_back(rc.layout1 ? to_layout1(c0) : c0);
    in.push_back(p);
  }
  AttrMap attrs = {{"hidden_size", Attr::Int(H)},
                   {"direction", Attr::String(rc.direction)},
                   {"layout", Attr::Int(rc.layout1 ? 1 : 0)}};
  if (c.kind == Kind::kGru) attrs["linear_before_reset"] = Attr::Int(rc.lbr ? 1 : 0);
  const char* op = c.kind == Kind::kLstm ? "LSTM" : c.kind == Kind::kGru ? "GRU" : "RNN";
  if (c.kind == Kind::kRnn) c.f = [](double v) { return std::tanh(v); };
  auto out = RunOp(reg_, op, in, attrs, c.kind == Kind::kLstm ? 3 : 2);
  ASSERT_TRUE(out.ok()) << out.status();
  NaiveResult want = Naive(c, Values(x), Values(w), Values(r), Values(b),
                           c.kind == Kind::kLstm ? Values(p) : std::vector<double>(), lens,
                           Values(h0), c.kind == Kind::kLstm ? Values(c0) : std::vector<double>());
  Tensor y = D(want.y, {c.seq, nd, c.batch, H});
  Tensor y_h = D(want.y_h, {nd, c.batch, H});
  Tensor y_c = D(want.y_c, {nd, c.batch, H});
  if (rc.layout1) {
    std::vector<double> v(want.y.size());
    for (int64_t t = 0; t < c.seq; ++t)
      for (int64_t d = 0; d < nd; ++d)
        for (int64_t bt = 0; bt < c.batch; ++bt)
          for (int64_t j = 0; j < H; ++j)
            v[((bt * c.seq + t) * nd + d) * H + j] = want.y[((t * nd + d) * c.batch + bt) * H + j];
    y = D(v, {c.batch, c.seq, nd, H});
    y_h = to_layout1(y_h);
    y_c = to_layout1(y_c);
  }
  EXPECT_TRUE(TensorsNear((*out)[0], y, 1e-10, 1e-12));
  EXPECT_TRUE(TensorsNear((*out)[1], y_h, 1e-10, 1e-12));
  if (c.kind == Kind::kLstm) {
    EXPECT_TRUE(TensorsNear((*out)[2], y_c, 1e-10, 1e-12));
  }
  // Y past each sequence's end is zero (batch 1 has length 2).
  if (!rc.layout1) {
    EXPECT_EQ((*out)[0].data<double>()[((4 * nd) * c.batch + 1) * H], 0.0);
  }
}

INSTANTIATE_TEST_SUITE_P(Cells, RnnRandomTest,
                         ::testing::Values(RandomCase{Kind::kLstm, "forward", false, false},
                                           RandomCase{Kind::kLstm, "reverse", false, false},
                                           RandomCase{Kind::kLstm, "bidirectional", false, false},
                                           RandomCase{Kind::kLstm, "bidirectional", true, false},
                                           RandomCase{Kind::kGru, "forward", false, false},
                                           RandomCase{Kind::kGru, "bidirectional", false, true},
                                           RandomCase{Kind::kGru, "reverse", true, false},
                                           RandomCase{Kind::kGru, "bidirectional", true, true},
                                           RandomCase{Kind::kRnn, "forward", false, false},
                                           RandomCase{Kind::kRnn, "bidirectional", true, false}));

// Activations with alpha/beta, clip and input_forget in float32, vs Naive.
TEST_F(RnnTest, LstmActivationsClipInputForget) {
  NaiveConfig c{Kind::kLstm, 4, 2, 3, 5};
  c.clip = 0.7;
  c.input_forget = true;
  c.f = [](double v) { return std::max(0.0, std::min(1.0, 0.3 * v + 0.4)); };  // HardSigmoid
  c.g = [](double v) { return 1.5 * std::tanh(0.8 * v); };                     // ScaledTanh
  c.h = [](double v) { return v >= 0 ? v : 0.1 * v; };                         // LeakyRelu
  Tensor x = RandomTensor(DataType::kFloat32, {4, 2, 3}, 21, -2, 2);
  Tensor w = RandomTensor(DataType::kFloat32, {1, 20, 3}, 22);
  Tensor r = RandomTensor(DataType::kFloat32, {1, 20, 5}, 23);
  auto out = RunOp(reg_, "LSTM", {x, w, r},
                   {{"hidden_size", Attr::Int(5)},
                    {"clip", Attr::Float(0.7f)},
                    {"input_forget", Attr::Int(1)},
                    {"activations", Attr::Strings({"HardSigmoid", "ScaledTanh", "LeakyRelu"})},
                    {"activation_alpha", Attr::Floats({0.3f, 1.5f, 0.1f})},
                    {"activation_beta", Attr::Floats({0.4f, 0.8f})}},
                   3);
  ASSERT_TRUE(out.ok()) << out.status();
  NaiveResult want = Naive(c, Values(x), Values(w), Values(r), {}, {}, {}, {}, {});
  std::vector<float> yh(want.y_h.begin(), want.y_h.end());
  std::vector<float> yc(want.y_c.begin(), want.y_c.end());
  EXPECT_TRUE(TensorsNear((*out)[1], F32(yh, {1, 2, 5}), 1e-5, 1e-6));
  EXPECT_TRUE(TensorsNear((*out)[2], F32(yc, {1, 2, 5}), 1e-5, 1e-6));
}

TEST_F(RnnTest, GruOtherActivations) {
  NaiveConfig c{Kind::kGru, 3, 2, 3, 4};
  c.f = [](double v) { return v / (1 + std::fabs(v)); };                // Softsign
  c.g = [](double v) { return v >= 0 ? v : 0.5 * (std::exp(v) - 1); };  // Elu(0.5)
  Tensor x = RandomTensor(DataType::kFloat64, {3, 2, 3}, 31);
  Tensor w = RandomTensor(DataType::kFloat64, {1, 12, 3}, 32);
  Tensor r = RandomTensor(DataType::kFloat64, {1, 12, 4}, 33);
  auto out = RunOp(reg_, "GRU", {x, w, r},
                   {{"hidden_size", Attr::Int(4)},
                    {"activations", Attr::Strings({"softsign", "Elu"})},
                    {"activation_alpha", Attr::Floats({0.5f})}},
                   2);
  ASSERT_TRUE(out.ok()) << out.status();
  NaiveResult want = Naive(c, Values(x), Values(w), Values(r), {}, {}, {}, {}, {});
  EXPECT_TRUE(TensorsNear((*out)[0], D(want.y, {3, 1, 2, 4}), 1e-10, 1e-12));
}

TEST_F(RnnTest, FloatAndDoubleAgree) {
  Tensor x = RandomTensor(DataType::kFloat64, {3, 2, 3}, 41);
  Tensor w = RandomTensor(DataType::kFloat64, {2, 16, 3}, 42);
  Tensor r = RandomTensor(DataType::kFloat64, {2, 16, 4}, 43);
  AttrMap attrs = {{"hidden_size", Attr::Int(4)}, {"direction", Attr::String("bidirectional")}};
  auto d = RunOp(reg_, "LSTM", {x, w, r}, attrs, 1);
  auto f = RunOp(reg_, "LSTM",
                 {*ConvertTensor(x, DataType::kFloat32), *ConvertTensor(w, DataType::kFloat32),
                  *ConvertTensor(r, DataType::kFloat32)},
                 attrs, 1);
  ASSERT_TRUE(d.ok() && f.ok());
  EXPECT_TRUE(TensorsNear(*ConvertTensor((*f)[0], DataType::kFloat64), (*d)[0], 1e-5, 1e-6));
}

TEST_F(RnnTest, RejectsBadShapesAndAttributes) {
  Tensor x = RandomTensor(DataType::kFloat32, {2, 1, 3}, 51);
  Tensor w = RandomTensor(DataType::kFloat32, {1, 16, 3}, 52);
  Tensor r = RandomTensor(DataType::kFloat32, {1, 16, 4}, 53);
  auto code = [&](std::vector<Tensor> in, AttrMap attrs) {
    return RunOp(reg_, "LSTM", in, attrs, 2).status().code();
  };
  const AttrMap h4 = {{"hidden_size", Attr::Int(4)}};
  EXPECT_EQ(code({x, w, r}, h4), StatusCode::kOk);
  EXPECT_EQ(code({x, w, r}, {{"hidden_size", Attr::Int(5)}}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code({x, RandomTensor(DataType::kFloat32, {1, 16, 2}, 1), r}, h4),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code({x, w, r, RandomTensor(DataType::kFloat32, {1, 16}, 1)}, h4),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code({x, w, r},
                 {{"hidden_size", Attr::Int(4)}, {"direction", Attr::String("bidirectional")}}),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code({x, w, r}, {{"hidden_size", Attr::Int(4)}, {"direction", Attr::String("up")}}),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code({x, w, r, Tensor(), Tensor::FromVector<int32_t>({3})}, h4),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code({x, w, r}, {{"hidden_size", Attr::Int(4)},
                             {"activations", Attr::Strings({"Sigmoid", "Nope", "Tanh"})}}),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(
      code({x, w, r}, {{"hidden_size", Attr::Int(4)}, {"activations", Attr::Strings({"Sigmoid"})}}),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(code({RandomTensor(DataType::kFloat32, {2, 3}, 1), w, r}, h4),
            StatusCode::kInvalidArgument);
}

TEST_F(RnnTest, InfersShapes) {
  const OpSchema* s = reg_.Find("", "GRU");
  Node n;
  n.op_type = "GRU";
  n.inputs = {"x", "w", "r"};
  n.outputs = {"y", "y_h"};
  n.attrs["hidden_size"] = Attr::Int(7);
  n.attrs["direction"] = Attr::String("bidirectional");
  n.attrs["layout"] = Attr::Int(1);
  std::vector<ValueInfo> outs;
  ASSERT_TRUE(RunInfer(*s, n, 14,
                       {{DataType::kFloat32, Shape({2, 9, 3})},
                        {DataType::kFloat32, Shape()},
                        {DataType::kFloat32, Shape()}},
                       {}, &outs)
                  .ok());
  EXPECT_EQ(outs[0].shape.ToString(), "[2,9,2,7]");
  EXPECT_EQ(outs[1].shape.ToString(), "[2,2,7]");
}

}  // namespace
}  // namespace kiln
