// Helpers for the CPU backend tests: a small segment builder, random tensors, the reference
// run of a segment (RunKernel node by node, as the runtime's executor does) and the engine run.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "engine/engine.h"
#include "ir/graph.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"

namespace kiln::testing_cpu {

// Uniform values in [lo, hi), never all equal.
inline Tensor Random(std::vector<int64_t> dims, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  Tensor t = Tensor::Empty(DataType::kFloat32, std::move(dims));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  float* p = t.mutable_data<float>();
  for (int64_t i = 0; i < t.num_elements(); ++i) p[i] = dist(rng);
  return t;
}

inline Tensor Ints(const std::vector<int64_t>& v) { return Tensor::FromVector<int64_t>(v); }
inline Tensor Floats(const std::vector<float>& v) { return Tensor::FromVector<float>(v); }

// Builds a segment graph: inputs (float32, with shapes), initializers, nodes, outputs.
class SegmentBuilder {
 public:
  explicit SegmentBuilder(int64_t opset = 17) { g_.opset_imports[""] = opset; }
  SegmentBuilder& In(const std::string& name, std::vector<int64_t> dims,
                     DataType dt = DataType::kFloat32) {
    g_.inputs.push_back(name);
    g_.value_info[name] = ValueInfo{dt, Shape(dims)};
    shapes_.push_back(dims);
    return *this;
  }
  SegmentBuilder& Init(const std::string& name, Tensor t) {
    g_.initializers[name] = std::move(t);
    return *this;
  }
  SegmentBuilder& Op(const std::string& op, std::vector<std::string> inputs,
                     std::vector<std::string> outputs, AttrMap attrs = {}) {
    Node n;
    n.name = outputs[0] + "_node";
    n.op_type = op;
    n.inputs = std::move(inputs);
    n.outputs = std::move(outputs);
    n.attrs = std::move(attrs);
    g_.nodes.push_back(std::move(n));
    return *this;
  }
  SegmentBuilder& Out(const std::string& name) {
    g_.outputs.push_back(name);
    return *this;
  }
  const Graph& graph() const { return g_; }
  // Records every intermediate value's dtype and shape (batch unknown), as the converter's
  // shape inference would, from a reference run's values.
  void InferValueInfo(const std::map<std::string, Tensor>& values) {
    for (const auto& [name, t] : values) {
      if (g_.value_info.count(name) || g_.initializers.count(name)) continue;
      std::vector<int64_t> d = t.dims();
      if (!d.empty()) d[0] = -1;
      g_.value_info[name] = ValueInfo{t.dtype(), Shape(d)};
    }
  }
  Graph& mutable_graph() { return g_; }
  const std::vector<std::vector<int64_t>>& shapes() const { return shapes_; }

 private:
  Graph g_;
  std::vector<std::vector<int64_t>> shapes_;
};

// Runs the segment with the reference kernels.
inline StatusOr<std::vector<Tensor>> RunReference(const Graph& g, const std::vector<Tensor>& in,
                                                  std::map<std::string, Tensor>* all = nullptr) {
  std::map<std::string, Tensor> vals(g.initializers.begin(), g.initializers.end());
  for (size_t i = 0; i < g.inputs.size(); ++i) vals[g.inputs[i]] = in[i];
  KILN_ASSIGN_OR_RETURN(std::vector<int> order, g.TopologicalOrder());
  for (int i : order) {
    const Node& n = g.nodes[i];
    const OpSchema* s = OpRegistry::Global().Find(n.domain, n.op_type);
    if (s == nullptr) return NotFound("no schema for " + n.op_type);
    std::vector<const Tensor*> ins;
    for (const std::string& v : n.inputs) ins.push_back(v.empty() ? nullptr : &vals.at(v));
    std::vector<Tensor> outs;
    KILN_RETURN_IF_ERROR(RunKernel(*s, n, g.onnx_opset(), ins, &outs));
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      if (!n.outputs[k].empty()) vals[n.outputs[k]] = outs[k];
    }
  }
  std::vector<Tensor> out;
  for (const std::string& o : g.outputs) out.push_back(vals.at(o));
  if (all != nullptr) *all = vals;
  return out;
}

inline StatusOr<std::vector<Tensor>> RunEngine(const Engine& e, const std::vector<Tensor>& in) {
  std::vector<const Tensor*> ptrs;
  for (const Tensor& t : in) ptrs.push_back(&t);
  std::vector<Tensor> out;
  KILN_RETURN_IF_ERROR(e.Execute(ptrs, &out));
  return out;
}

// ||got - want|| / ||want||; +inf on a shape mismatch or NaN.
inline double RelL2(const Tensor& got, const Tensor& want) {
  if (got.dims() != want.dims() || got.dtype() != DataType::kFloat32) return INFINITY;
  double num = 0, den = 0;
  for (int64_t i = 0; i < got.num_elements(); ++i) {
    const double a = got.data<float>()[i], b = want.data<float>()[i];
    if (std::isnan(a) || std::isnan(b)) return INFINITY;
    num += (a - b) * (a - b);
    den += b * b;
  }
  return den == 0 ? (num == 0 ? 0 : INFINITY) : std::sqrt(num / den);
}

// Runs engine `e` and the reference kernels of `g` on `in`: the same number of outputs, each
// within `tol` rel. L2.
inline void ExpectEngineMatchesReference(const Engine& e, const Graph& g,
                                         const std::vector<Tensor>& in, double tol = 1e-5) {
  StatusOr<std::vector<Tensor>> want = RunReference(g, in);
  ASSERT_TRUE(want.ok()) << want.status();
  StatusOr<std::vector<Tensor>> got = RunEngine(e, in);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), want->size());
  for (size_t i = 0; i < got->size(); ++i) {
    EXPECT_LE(RelL2((*got)[i], (*want)[i]), tol) << "output " << i;
  }
}

inline BuildConfig Config(const std::vector<std::vector<int64_t>>& shapes, int64_t batch = 0) {
  BuildConfig c;
  c.input_shapes = shapes;
  c.max_batch_size = batch > 0 ? batch : (shapes.empty() || shapes[0].empty() ? 1 : shapes[0][0]);
  return c;
}

inline AttrMap A(std::initializer_list<std::pair<const std::string, Attr>> l) { return AttrMap(l); }

// A transformer attention block on input "x" [batch, 16, 32]: LayerNorm, Q/K/V projections
// (MatMul + Add), 4 heads of 8 (Reshape + Transpose), scaled QK^T, Softmax, attention @ V, head
// merge, output projection + residual, written to `out`. Initializers: ln_s, ln_b, w/b{q,k,v,o},
// heads, merge, scale (the caller adds its own after it).
inline void AddAttentionBlock(SegmentBuilder& b, int64_t batch, const std::string& out) {
  const int64_t s = 16, d = 32, h = 4, dh = 8;
  b.In("x", {batch, s, d});
  b.Init("ln_s", Random({d}, 31, 0.5f, 1.5f)).Init("ln_b", Random({d}, 32));
  uint32_t seed = 40;
  for (const char* m : {"q", "k", "v", "o"}) {
    b.Init(std::string("w") + m, Random({d, d}, seed++, -0.3f, 0.3f));
    b.Init(std::string("b") + m, Random({d}, seed++));
  }
  b.Init("heads", Ints({batch, s, h, dh})).Init("merge", Ints({batch, s, d}));
  b.Init("scale", Floats({0.35355339f}));
  b.Op("LayerNormalization", {"x", "ln_s", "ln_b"}, {"xn"}, A({{"axis", Attr::Int(-1)}}));
  for (const char* m : {"q", "k", "v"}) {
    const std::string n = m;
    b.Op("MatMul", {"xn", "w" + n}, {n + "0"})
        .Op("Add", {n + "0", "b" + n}, {n + "1"})
        .Op("Reshape", {n + "1", "heads"}, {n + "2"});
  }
  b.Op("Transpose", {"q2"}, {"qt"}, A({{"perm", Attr::Ints({0, 2, 1, 3})}}))
      .Op("Transpose", {"k2"}, {"kt"}, A({{"perm", Attr::Ints({0, 2, 3, 1})}}))
      .Op("Transpose", {"v2"}, {"vt"}, A({{"perm", Attr::Ints({0, 2, 1, 3})}}))
      .Op("MatMul", {"qt", "kt"}, {"qk"})
      .Op("Mul", {"qk", "scale"}, {"qks"})
      .Op("Softmax", {"qks"}, {"att"}, A({{"axis", Attr::Int(-1)}}))
      .Op("MatMul", {"att", "vt"}, {"ctx"})
      .Op("Transpose", {"ctx"}, {"ctxt"}, A({{"perm", Attr::Ints({0, 2, 1, 3})}}))
      .Op("Reshape", {"ctxt", "merge"}, {"ctxm"})
      .Op("MatMul", {"ctxm", "wo"}, {"o0"})
      .Op("Add", {"o0", "bo"}, {"o1"})
      .Op("Add", {"o1", "x"}, {out});
}

}  // namespace kiln::testing_cpu
