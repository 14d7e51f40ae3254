#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>

#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/base/shape_util.h"
#include "ops/op_test_util.h"

namespace kiln {
namespace {

using testing::F32;
using testing::RandomTensor;
using testing::RunOp;
using testing::TensorsNear;

const OpRegistry& Reg() { return testing::FamilyRegistry<RegisterReduceOps>(); }

Tensor I64(std::vector<int64_t> v) { return Tensor::FromVector<int64_t>(v); }

Tensor Run1(const std::string& op, const std::vector<Tensor>& in, AttrMap attrs = {},
            int64_t opset = 18) {
  return testing::RunFirst(Reg(), op, in, std::move(attrs), opset);
}

// Naive reduction: groups every input element by its output position, then applies `f`.
Tensor NaiveReduce(const Tensor& x, std::vector<int64_t> axes, bool keepdims,
                   const std::function<double(const std::vector<double>&)>& f) {
  const int rank = x.rank();
  std::vector<bool> mask(rank, axes.empty());
  for (int64_t a : axes) mask[a < 0 ? a + rank : a] = true;
  std::vector<int64_t> out_dims;
  for (int i = 0; i < rank; ++i) {
    if (!mask[i] || keepdims) out_dims.push_back(mask[i] ? 1 : x.dim(i));
  }
  std::map<int64_t, std::vector<double>> groups;
  std::vector<int64_t> idx(rank, 0);
  for (int64_t e = 0; e < x.num_elements(); ++e) {
    int64_t rem = e, out = 0, mul = 1;
    for (int i = rank - 1; i >= 0; --i) {
      idx[i] = rem % x.dim(i);
      rem /= x.dim(i);
    }
    for (int i = rank - 1; i >= 0; --i) {
      if (!mask[i]) {
        out += idx[i] * mul;
        mul *= x.dim(i);
      }
    }
    groups[out].push_back(x.GetAsDouble(e));
  }
  Tensor y = Tensor::Empty(DataType::kFloat64, out_dims);
  for (int64_t o = 0; o < y.num_elements(); ++o) y.mutable_data<double>()[o] = f(groups[o]);
  auto conv = ConvertTensor(y, x.dtype());
  EXPECT_TRUE(conv.ok());
  return *conv;
}

double Sum(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}

const std::map<std::string, std::function<double(const std::vector<double>&)>>& NaiveOps() {
  static const auto* ops =
      new std::map<std::string, std::function<double(const std::vector<double>&)>>{
          {"ReduceSum", Sum},
          {"ReduceMean", [](const auto& v) { return Sum(v) / v.size(); }},
          {"ReduceMax", [](const auto& v) { return *std::max_element(v.begin(), v.end()); }},
          {"ReduceMin", [](const auto& v) { return *std::min_element(v.begin(), v.end()); }},
          {"ReduceProd",
           [](const auto& v) {
             double p = 1;
             for (double x : v) p *= x;
             return p;
           }},
          {"ReduceL1",
           [](const auto& v) {
             double s = 0;
             for (double x : v) s += std::fabs(x);
             return s;
           }},
          {"ReduceL2",
           [](const auto& v) {
             double s = 0;
             for (double x : v) s += x * x;
             return std::sqrt(s);
           }},
          {"ReduceSumSquare",
           [](const auto& v) {
             double s = 0;
             for (double x : v) s += x * x;
             return s;
           }},
          {"ReduceLogSum", [](const auto& v) { return std::log(Sum(v)); }},
          {"ReduceLogSumExp",
           [](const auto& v) {
             double s = 0;
             for (double x : v) s += std::exp(x);
             return std::log(s);
           }},
      };
  return *ops;
}

TEST(Reduce, HandComputed) {
  Tensor x = F32({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_TRUE(TensorsNear(Run1("ReduceSum", {x, I64({1})}), F32({6, 15}, {2, 1})));
  EXPECT_TRUE(TensorsNear(Run1("ReduceSum", {x, I64({0})}, {{"keepdims", Attr::Int(0)}}),
                          F32({5, 7, 9}, {3})));
  EXPECT_TRUE(TensorsNear(Run1("ReduceMean", {x}), F32({3.5f}, {1, 1})));
  EXPECT_TRUE(TensorsNear(Run1("ReduceProd", {x, I64({-1})}, {{"keepdims", Attr::Int(0)}}),
                          F32({6, 120}, {2})));
  EXPECT_TRUE(TensorsNear(Run1("ReduceMax", {x, I64({0})}), F32({4, 5, 6}, {1, 3})));
  EXPECT_TRUE(TensorsNear(Run1("ReduceL2", {F32({3, -4}, {2})}), F32({5}, {1})));
  EXPECT_TRUE(TensorsNear(Run1("ReduceL1", {F32({3, -4}, {2})}), F32({7}, {1})));
  // Opset 11 form: axes as attribute.
  EXPECT_TRUE(
      TensorsNear(Run1("ReduceSum", {x}, {{"axes", Attr::Ints({1})}}, 11), F32({6, 15}, {2, 1})));
  EXPECT_TRUE(TensorsNear(
      Run1("ReduceMin", {x}, {{"axes", Attr::Ints({0, 1})}, {"keepdims", Attr::Int(0)}}, 13),
      Tensor::FromVector<float>({1.0f}, {}, true)));
}

TEST(Reduce, OnnxExamples) {
  // test_reduce_log_sum_exp_do_not_keepdims_example (float64).
  Tensor x = Tensor::FromVector<double>({5, 1, 20, 2, 30, 1, 40, 2, 55, 1, 60, 2}, {3, 2, 2}, true);
  Tensor want =
      Tensor::FromVector<double>({20.000000305902276, 2.313261687518223, 40.00004539889922,
                                  2.313261687518223, 60.00671534848912, 2.313261687518223},
                                 {3, 2}, true);
  EXPECT_TRUE(TensorsNear(
      Run1("ReduceLogSumExp", {x}, {{"axes", Attr::Ints({1})}, {"keepdims", Attr::Int(0)}}, 13),
      want, 1e-12, 1e-12));
  // test_reduce_sum_empty_axes_input_noop_example.
  Tensor d = F32({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {3, 2, 2});
  EXPECT_TRUE(TensorsNear(Run1("ReduceSum", {d, Tensor::FromVector<int64_t>({}, {0}, true)},
                               {{"noop_with_empty_axes", Attr::Int(1)}}, 13),
                          d));
}

TEST(Reduce, RandomVsNaive) {
  const std::vector<std::vector<int64_t>> axes_sets = {{},     {1},    {-1},     {0, 2},
                                                       {1, 2}, {0, 3}, {-3, -1}, {0, 1, 2, 3}};
  uint32_t seed = 1;
  for (const auto& [op, fn] : NaiveOps()) {
    for (const auto& axes : axes_sets) {
      for (int keep = 0; keep <= 1; ++keep) {
        const bool positive = op == "ReduceLogSum" || op == "ReduceProd";
        Tensor x = RandomTensor(DataType::kFloat32, {2, 3, 4, 5}, seed++, positive ? 0.5 : -2.0,
                                positive ? 1.5 : 2.0);
        Tensor want = NaiveReduce(x, axes, keep, fn);
        // Opset 18: axes input; opset 13 (ReduceSum: 11): axes attribute.
        std::vector<Tensor> in = {x};
        if (!axes.empty()) in.push_back(I64(axes));
        AttrMap attrs = {{"keepdims", Attr::Int(keep)}};
        auto out = RunOp(Reg(), op, in, attrs);
        ASSERT_TRUE(out.ok()) << out.status();
        EXPECT_TRUE(TensorsNear((*out)[0], want, 1e-5, 1e-5)) << op << " keep=" << keep;
        if (!axes.empty()) attrs["axes"] = Attr::Ints(axes);
        out = RunOp(Reg(), op, {x}, attrs, 1, op == "ReduceSum" ? 11 : 13);
        ASSERT_TRUE(out.ok()) << out.status();
        EXPECT_TRUE(TensorsNear((*out)[0], want, 1e-5, 1e-5)) << op << " attr form";
      }
    }
  }
}

TEST(Reduce, IntegerTypes) {
  Tensor x = RandomTensor(DataType::kInt32, {3, 4, 5}, 7, -50, 50);
  for (const char* op : {"ReduceSum", "ReduceMax", "ReduceMin", "ReduceSumSquare", "ReduceL1"}) {
    Tensor want = NaiveReduce(x, {0, 2}, true, NaiveOps().at(op));
    EXPECT_TRUE(TensorsNear(Run1(op, {x, I64({0, 2})}), want, 0, 0)) << op;
  }
  Tensor u = RandomTensor(DataType::kUInt8, {4, 6}, 8, 0, 255);
  EXPECT_TRUE(TensorsNear(Run1("ReduceMax", {u, I64({1})}),
                          NaiveReduce(u, {1}, true, NaiveOps().at("ReduceMax")), 0, 0));
  Tensor i64 = Tensor::FromVector<int64_t>({1, 2, 3, 4, 5, 7}, {2, 3}, true);
  EXPECT_TRUE(TensorsNear(Run1("ReduceMean", {i64, I64({1})}, {{"keepdims", Attr::Int(0)}}),
                          Tensor::FromVector<int64_t>({2, 5})));
}

TEST(Reduce, HalfAndDouble) {
  Tensor x = RandomTensor(DataType::kFloat64, {5, 7}, 9);
  EXPECT_TRUE(TensorsNear(Run1("ReduceMean", {x, I64({0})}),
                          NaiveReduce(x, {0}, true, NaiveOps().at("ReduceMean")), 1e-12, 1e-12));
  auto h = ConvertTensor(RandomTensor(DataType::kFloat32, {4, 3}, 10), DataType::kFloat16);
  ASSERT_TRUE(h.ok());
  Tensor y = Run1("ReduceSum", {*h, I64({1})});
  EXPECT_EQ(y.dtype(), DataType::kFloat16);
  EXPECT_TRUE(TensorsNear(y, NaiveReduce(*h, {1}, true, Sum), 2e-3, 2e-3));
}

TEST(Reduce, NoopAndEmpty) {
  Tensor x = F32({1, -2, 3, -4}, {2, 2});
  Tensor empty_axes = Tensor::FromVector<int64_t>({}, {0}, true);
  AttrMap noop = {{"noop_with_empty_axes", Attr::Int(1)}};
  EXPECT_TRUE(TensorsNear(Run1("ReduceSum", {x, empty_axes}, noop), x));
  EXPECT_TRUE(TensorsNear(Run1("ReduceSumSquare", {x}, noop), F32({1, 4, 9, 16}, {2, 2})));
  EXPECT_TRUE(TensorsNear(Run1("ReduceSum", {x, empty_axes}), F32({-2}, {1, 1})));
  // Reducing an empty axis gives the identity of the reduction.
  Tensor z = Tensor::Empty(DataType::kFloat32, {2, 0});
  EXPECT_TRUE(TensorsNear(Run1("ReduceSum", {z, I64({1})}), F32({0, 0}, {2, 1})));
  EXPECT_TRUE(TensorsNear(Run1("ReduceProd", {z, I64({1})}), F32({1, 1}, {2, 1})));
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(TensorsNear(Run1("ReduceMax", {z, I64({1})}), F32({-inf, -inf}, {2, 1})));
  EXPECT_TRUE(TensorsNear(Run1("ReduceLogSumExp", {z, I64({1})}), F32({-inf, -inf}, {2, 1})));
}

TEST(Reduce, NanAndLargeValues) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor x = F32({1, nan, 3, 4}, {2, 2});
  Tensor y = Run1("ReduceMax", {x, I64({1})}, {{"keepdims", Attr::Int(0)}});
  EXPECT_TRUE(std::isnan(y.data<float>()[0]));
  EXPECT_EQ(y.data<float>()[1], 4.0f);
  Tensor big = F32({1000, 1000, -1000}, {3});
  EXPECT_TRUE(TensorsNear(Run1("ReduceLogSumExp", {big}), F32({1000 + std::log(2.0f)}, {1})));
}

TEST(Reduce, Errors) {
  Tensor x = F32({1, 2, 3, 4}, {2, 2});
  auto bad = RunOp(Reg(), "ReduceSum", {x, I64({2})});
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(RunOp(Reg(), "ReduceMean", {x}, {{"axes", Attr::Ints({-3})}}, 1, 13).ok());
  EXPECT_FALSE(RunOp(Reg(), "ReduceMean", {x, F32({1}, {1})}).ok());
  EXPECT_FALSE(RunOp(Reg(), "ArgMax", {x}, {{"axis", Attr::Int(2)}}).ok());
  EXPECT_FALSE(
      RunOp(Reg(), "ArgMax", {Tensor::Empty(DataType::kFloat32, {2, 0})}, {{"axis", Attr::Int(1)}})
          .ok());
  EXPECT_FALSE(RunOp(Reg(), "Softmax", {x}, {{"axis", Attr::Int(5)}}).ok());
  EXPECT_FALSE(RunOp(Reg(), "CumSum", {x, I64({0, 1})}).ok());
  EXPECT_FALSE(RunOp(Reg(), "CumSum", {x, I64({3})}).ok());
  EXPECT_FALSE(RunOp(Reg(), "Softmax", {Tensor::FromVector<int32_t>({1, 2})}).ok());
}

StatusOr<ValueInfo> Infer(const std::string& op, std::vector<ValueInfo> in,
                          std::vector<const Tensor*> consts, AttrMap attrs, int64_t opset = 18) {
  const OpSchema* schema = Reg().Find("", op);
  Node node;
  node.name = "n";
  node.op_type = op;
  node.attrs = std::move(attrs);
  for (size_t i = 0; i < in.size(); ++i) node.inputs.push_back("i" + std::to_string(i));
  node.outputs = {"o"};
  std::vector<ValueInfo> out;
  KILN_RETURN_IF_ERROR(RunInfer(*schema, node, opset, in, consts, &out));
  return out[0];
}

TEST(Reduce, ShapeInference) {
  ValueInfo x{DataType::kFloat32, Shape({2, -1, 4})};
  ValueInfo axes_info{DataType::kInt64, Shape({1})};
  Tensor axes = I64({-1});
  auto r = Infer("ReduceSum", {x, axes_info}, {nullptr, &axes}, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->shape.ToString(), "[2,?,1]");
  r = Infer("ReduceSum", {x, axes_info}, {nullptr, nullptr}, {{"keepdims", Attr::Int(0)}});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->shape.rank_known());
  r = Infer("ReduceSum", {x, axes_info}, {nullptr, nullptr}, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->shape.ToString(), "[?,?,?]");
  // An axes input of not yet known type still means "axes unknown", not "reduce all".
  r = Infer("ReduceSum", {x, ValueInfo{}}, {nullptr, nullptr}, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->shape.ToString(), "[?,?,?]");
  r = Infer("ReduceMax", {x}, {nullptr}, {{"axes", Attr::Ints({0, 1})}, {"keepdims", Attr::Int(0)}},
            13);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->shape.ToString(), "[4]");
  r = Infer("ReduceMean", {x}, {nullptr}, {{"keepdims", Attr::Int(0)}}, 13);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->shape.ToString(), "[]");
  r = Infer("ArgMin", {x}, {nullptr}, {{"axis", Attr::Int(1)}, {"keepdims", Attr::Int(0)}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->dtype, DataType::kInt64);
  EXPECT_EQ(r->shape.ToString(), "[2,4]");
  EXPECT_FALSE(Infer("ArgMin", {x}, {nullptr}, {{"axis", Attr::Int(3)}}).ok());
  r = Infer("Softmax", {x}, {nullptr}, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->shape.ToString(), "[2,?,4]");
}

TEST(ArgMax, TiesAndLastIndex) {
  Tensor x = F32({3, 2, 3, 10, 1, 10}, {2, 3});
  EXPECT_TRUE(TensorsNear(Run1("ArgMax", {x}, {{"axis", Attr::Int(1)}}),
                          Tensor::FromVector<int64_t>({0, 0}, {2, 1}, true)));
  // Rows [3, 2, 3] and [10, 1, 10]: the last maximum is index 2 in both.
  EXPECT_TRUE(TensorsNear(Run1("ArgMax", {x},
                               {{"axis", Attr::Int(-1)},
                                {"keepdims", Attr::Int(0)},
                                {"select_last_index", Attr::Int(1)}}),
                          Tensor::FromVector<int64_t>({2, 2})));
  EXPECT_TRUE(TensorsNear(Run1("ArgMin", {x}, {{"keepdims", Attr::Int(0)}}),
                          Tensor::FromVector<int64_t>({0, 1, 0})));
}

TEST(ArgMax, RandomVsNaive) {
  Tensor x = RandomTensor(DataType::kInt32, {3, 4, 5}, 11, -3, 3);  // many ties
  for (int axis = -3; axis < 3; ++axis) {
    for (int last = 0; last <= 1; ++last) {
      for (int is_max = 0; is_max <= 1; ++is_max) {
        const int a = axis < 0 ? axis + 3 : axis;
        Tensor want = NaiveReduce(x, {a}, false, [&](const std::vector<double>& v) {
          size_t best = 0;
          for (size_t k = 1; k < v.size(); ++k) {
            bool better = is_max ? v[k] > v[best] : v[k] < v[best];
            if (better || (last && v[k] == v[best])) best = k;
          }
          return static_cast<double>(best);
        });
        auto want64 = ConvertTensor(want, DataType::kInt64);
        ASSERT_TRUE(want64.ok());
        Tensor got = Run1(is_max ? "ArgMax" : "ArgMin", {x},
                          {{"axis", Attr::Int(axis)},
                           {"keepdims", Attr::Int(0)},
                           {"select_last_index", Attr::Int(last)}});
        EXPECT_TRUE(TensorsNear(got, *want64, 0, 0)) << axis << last << is_max;
      }
    }
  }
}

// Softmax along axis `a` of a 3-D tensor (or over dims[a:] flattened when `flatten`).
Tensor NaiveSoftmax(const Tensor& x, int a, bool flatten, bool log) {
  int64_t outer = 1, n = 1, inner = 1;
  for (int i = 0; i < x.rank(); ++i) {
    (i < a ? outer : (i == a || flatten) ? n : inner) *= x.dim(i);
  }
  Tensor y = Tensor::Empty(DataType::kFloat32, x.dims());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      double s = 0;
      for (int64_t k = 0; k < n; ++k) s += std::exp(x.data<float>()[(o * n + k) * inner + i]);
      for (int64_t k = 0; k < n; ++k) {
        int64_t at = (o * n + k) * inner + i;
        double v = x.data<float>()[at];
        y.mutable_data<float>()[at] = log ? v - std::log(s) : std::exp(v) / s;
      }
    }
  }
  return y;
}

TEST(Softmax, AxisSemanticsByOpset) {
  Tensor x = RandomTensor(DataType::kFloat32, {2, 3, 4}, 12, -3, 3);
  for (int log = 0; log <= 1; ++log) {
    const char* op = log ? "LogSoftmax" : "Softmax";
    // Opset 13: default axis -1, along one axis.
    EXPECT_TRUE(TensorsNear(Run1(op, {x}, {}, 13), NaiveSoftmax(x, 2, false, log)));
    EXPECT_TRUE(
        TensorsNear(Run1(op, {x}, {{"axis", Attr::Int(1)}}, 13), NaiveSoftmax(x, 1, false, log)));
    EXPECT_TRUE(
        TensorsNear(Run1(op, {x}, {{"axis", Attr::Int(-3)}}, 13), NaiveSoftmax(x, 0, false, log)));
    // Opset 11: default axis 1, flattened to 2-D.
    EXPECT_TRUE(TensorsNear(Run1(op, {x}, {}, 11), NaiveSoftmax(x, 1, true, log)));
    EXPECT_TRUE(
        TensorsNear(Run1(op, {x}, {{"axis", Attr::Int(0)}}, 11), NaiveSoftmax(x, 0, true, log)));
  }
}

TEST(Softmax, OnnxExamples) {
  EXPECT_TRUE(TensorsNear(Run1("Softmax", {F32({-1, 0, 1}, {1, 3})}, {}, 13),
                          F32({0.09003057f, 0.24472846f, 0.66524094f}, {1, 3})));
  // test_logsoftmax_large_number: stable for 1e4.
  Tensor big = F32({0, 1, 2, 3, 10000, 10001, 10002, 10003}, {2, 4});
  Tensor want = F32({-3.4401896f, -2.4401896f, -1.4401896f, -0.44018966f, -3.4401896f, -2.4401896f,
                     -1.4401896f, -0.44018966f},
                    {2, 4});
  EXPECT_TRUE(TensorsNear(Run1("LogSoftmax", {big}, {}, 13), want));
  // test_hardmax_example (first maximum wins on ties, checked separately below).
  Tensor h = F32({3, 0, 1, 2, 2, 5, 1, 0, 0, 1, 3, 2, 0, 1, 2, 3}, {4, 4});
  Tensor hw = F32({1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}, {4, 4});
  EXPECT_TRUE(TensorsNear(Run1("Hardmax", {h}, {}, 13), hw));
  EXPECT_TRUE(TensorsNear(Run1("Hardmax", {F32({2, 7, 7, 1}, {2, 2})}, {{"axis", Attr::Int(0)}}),
                          F32({0, 1, 1, 0}, {2, 2})));
}

TEST(CumSum, Examples) {
  Tensor x = Tensor::FromVector<double>({1, 2, 3, 4, 5, 6}, {2, 3}, true);
  EXPECT_TRUE(TensorsNear(Run1("CumSum", {x, Tensor::Scalar<int32_t>(1)}),
                          Tensor::FromVector<double>({1, 3, 6, 4, 9, 15}, {2, 3}, true)));
  EXPECT_TRUE(TensorsNear(Run1("CumSum", {x, Tensor::Scalar<int64_t>(-2)}),
                          Tensor::FromVector<double>({1, 2, 3, 5, 7, 9}, {2, 3}, true)));
  Tensor v = Tensor::FromVector<double>({1, 2, 3, 4, 5});
  auto run = [&](int ex, int rev) {
    return Run1("CumSum", {v, Tensor::Scalar<int32_t>(0)},
                {{"exclusive", Attr::Int(ex)}, {"reverse", Attr::Int(rev)}});
  };
  EXPECT_TRUE(TensorsNear(run(1, 1), Tensor::FromVector<double>({14, 12, 9, 5, 0})));
  EXPECT_TRUE(TensorsNear(run(1, 0), Tensor::FromVector<double>({0, 1, 3, 6, 10})));
  EXPECT_TRUE(TensorsNear(run(0, 1), Tensor::FromVector<double>({15, 14, 12, 9, 5})));
  Tensor i = Tensor::FromVector<int32_t>({5, -1, 7, 2}, {2, 2}, true);
  EXPECT_TRUE(TensorsNear(Run1("CumSum", {i, Tensor::Scalar<int64_t>(0)}),
                          Tensor::FromVector<int32_t>({5, -1, 12, 1}, {2, 2}, true)));
}

}  // namespace
}  // namespace kiln
