// Helpers for op tests: run one op through its reference kernel, make random inputs, compare.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
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
