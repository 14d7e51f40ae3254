// Helpers for op tests: a registry or fixture per op family, run one op through its reference
// kernel (or its shape inference), build small inputs, make random inputs, compare.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"

namespace kiln::testing {

// Runs `op` from `registry` on `inputs` (an undefined Tensor = absent optional input).
inline StatusOr<std::vector<Tensor>> RunOp(const OpRegistry& registry, const std::string& op,
                                           const std::vector<Tensor>& inputs,
                                           AttrMap attrs = {}, int num_outputs = 1,
                                           int64_t opset = 18) {
  const OpSchema* schema = registry.Find("", op);
  if (schema == nullptr) return NotFound("op " + op + " is not registered");
  Node node;
  node.name = "test_" + op;
  node.op_type = op;
  node.attrs = std::move(attrs);
  std::vector<const Tensor*> args;
  for (size_t i = 0; i < inputs.size(); ++i) {
    node.inputs.push_back(inputs[i].defined() ? "in" + std::to_string(i) : "");
    args.push_back(inputs[i].defined() ? &inputs[i] : nullptr);
  }
  for (int i = 0; i < num_outputs; ++i) node.outputs.push_back("out" + std::to_string(i));
  KILN_RETURN_IF_ERROR(schema->CheckNode(node));
  std::vector<Tensor> outputs;
  KILN_RETURN_IF_ERROR(RunKernel(*schema, node, opset, args, &outputs));
  return outputs;
}

// Runs `op` (one output) and returns that output; fails the test and returns an undefined
// tensor on error.
inline Tensor RunFirst(const OpRegistry& registry, const std::string& op,
                       const std::vector<Tensor>& inputs, AttrMap attrs = {}, int64_t opset = 18) {
  auto out = RunOp(registry, op, inputs, std::move(attrs), 1, opset);
  EXPECT_TRUE(out.ok()) << op << ": " << out.status();
  return out.ok() ? (*out)[0] : Tensor();
}

// Shape inference for one `op` node on the given input infos; `constants` are the inputs known
// at inference time (missing or nullptr: unknown). Returns the `num_outputs` output infos.
inline std::vector<ValueInfo> InferOp(const OpRegistry& registry, const std::string& op,
                                      const std::vector<ValueInfo>& inputs,
                                      std::vector<const Tensor*> constants = {}, AttrMap attrs = {},
                                      int num_outputs = 1, int64_t opset = 18) {
  std::vector<ValueInfo> outputs(num_outputs);
  const OpSchema* schema = registry.Find("", op);
  EXPECT_NE(schema, nullptr) << "op " << op << " is not registered";
  if (schema == nullptr) return outputs;
  Node node;
  node.name = "n";
  node.op_type = op;
  node.attrs = std::move(attrs);
  for (size_t i = 0; i < inputs.size(); ++i) node.inputs.push_back("i" + std::to_string(i));
  for (int i = 0; i < num_outputs; ++i) {
    node.outputs.push_back(num_outputs == 1 ? "o" : "o" + std::to_string(i));
  }
  constants.resize(inputs.size(), nullptr);
  Status st = RunInfer(*schema, node, opset, inputs, constants, &outputs);
  EXPECT_TRUE(st.ok()) << st;
  return outputs;
}

// The registry holding one op family's ops (`Register` is its Register*Ops), built once.
template <void (*Register)(OpRegistry&)>
const OpRegistry& FamilyRegistry() {
  static const OpRegistry* registry = [] {
    auto* r = new OpRegistry();
    Register(*r);
    return r;
  }();
  return *registry;
}

// A fixture whose tests run the ops of one family: Run returns output 0 (failing the test on
// error), RunStatus the status.
template <void (*Register)(OpRegistry&)>
class OpFamilyTest : public ::testing::Test {
 protected:
  void SetUp() override { Register(reg_); }
  Tensor Run(const std::string& op, const std::vector<Tensor>& in, AttrMap attrs = {},
             int64_t opset = 18) {
    return RunFirst(reg_, op, in, std::move(attrs), opset);
  }
  Status RunStatus(const std::string& op, const std::vector<Tensor>& in, AttrMap attrs = {},
                   int64_t opset = 18) {
    return RunOp(reg_, op, in, std::move(attrs), 1, opset).status();
  }
  OpRegistry reg_;
};

// A tensor of `dims` holding `v` (row-major); without dims, 1-D.
template <typename T>
Tensor V(std::vector<T> v, std::vector<int64_t> dims) {
  return Tensor::FromVector<T>(v, std::move(dims), true);
}
template <typename T>
Tensor V(std::vector<T> v) {
  return Tensor::FromVector<T>(v);
}
inline Tensor F32(std::vector<float> v, std::vector<int64_t> dims) {
  return V<float>(std::move(v), std::move(dims));
}

// The elements of `t` (dtype T) as a vector.
template <typename T>
std::vector<T> Values(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.num_elements());
}

// The multi-index of flat (row-major) element `i` of a tensor of `dims`.
inline std::vector<int64_t> Unravel(int64_t i, const std::vector<int64_t>& dims) {
  std::vector<int64_t> idx(dims.size());
  for (int d = static_cast<int>(dims.size()) - 1; d >= 0; --d) {
    idx[d] = i % dims[d];
    i /= dims[d];
  }
  return idx;
}

// Uniform random values in [lo, hi) (integers: rounded), never all equal.
inline Tensor RandomTensor(DataType dtype, std::vector<int64_t> dims, uint32_t seed,
                           double lo = -1.0, double hi = 1.0) {
  Tensor t = Tensor::Empty(dtype, std::move(dims));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  Status st = DispatchAnyPod(dtype, [&]<typename T>() -> Status {
    T* p = t.mutable_data<T>();
    for (int64_t i = 0; i < t.num_elements(); ++i) {
      double v = dist(rng);
      if constexpr (std::is_same_v<T, bool>) {
        p[i] = v > (lo + hi) / 2;
      } else if constexpr (std::is_integral_v<T>) {
        p[i] = static_cast<T>(std::llround(v));
      } else if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
        p[i] = T(static_cast<float>(v));
      } else {
        p[i] = static_cast<T>(v);
      }
    }
    return Status::OK();
  });
  EXPECT_TRUE(st.ok()) << st;
  return t;
}

// Element-wise |got - want| <= atol + rtol * |want|, same dtype and dims; NaN matches NaN.
inline ::testing::AssertionResult TensorsNear(const Tensor& got, const Tensor& want,
                                              double rtol = 1e-5, double atol = 1e-6) {
  if (got.dtype() != want.dtype() || got.dims() != want.dims()) {
    return ::testing::AssertionFailure()
           << "got " << got.TypeString() << ", want " << want.TypeString();
  }
  if (got.dtype() == DataType::kString) {
    if (got.BitwiseEqual(want)) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "string tensors differ";
  }
  for (int64_t i = 0; i < got.num_elements(); ++i) {
    double g = got.GetAsDouble(i), w = want.GetAsDouble(i);
    if (std::isnan(w) && std::isnan(g)) continue;
    if (std::isinf(w) && g == w) continue;
    if (!(std::fabs(g - w) <= atol + rtol * std::fabs(w))) {
      return ::testing::AssertionFailure()
             << "element " << i << ": got " << g << ", want " << w << " (" << got.TypeString()
             << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace kiln::testing
