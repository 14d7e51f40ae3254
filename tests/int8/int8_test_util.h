// Shared by the INT8 layer tests: build a segment as an INT8 engine with exact ranges from a
// reference run and compare it with the reference kernels.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "backends/cpu/cpu_test_util.h"
#include "engine/calibrator.h"

namespace kiln::testing_int8 {

// Exact min/max ranges of every tensor the INT8 layers read (and, with `residual`, of the
// residual branches calibration also measures), from a reference run.
inline std::map<std::string, TensorRange> ExactRanges(const Graph& g,
                                                      const std::map<std::string, Tensor>& values,
                                                      bool residual = true) {
  std::map<std::string, TensorRange> out;
  std::set<std::string> tensors = Int8TensorsOf(g);
  if (residual) {
    const std::set<std::string> r = Int8ResidualTensorsOf(g);
    tensors.insert(r.begin(), r.end());
  }
  for (const std::string& t : tensors) {
    Histogram h;
    const Tensor& v = values.at(t);
    h.Add(v.data<float>(), v.num_elements());
    out[t] = {h.amax(), h.min(), h.max()};
  }
  return out;
}

struct Result {
  double err = INFINITY;
  std::vector<LayerInfo> layers;
};

inline Result BuildAndCompare(testing_cpu::SegmentBuilder& b, const std::vector<Tensor>& in,
                              bool round_trip = false, bool residual_ranges = true) {
  Result r;
  std::map<std::string, Tensor> all;
  auto ref = testing_cpu::RunReference(b.graph(), in, &all);
  EXPECT_TRUE(ref.ok()) << ref.status();
  if (!ref.ok()) return r;
  b.InferValueInfo(all);
  BuildConfig cfg = testing_cpu::Config(b.shapes());
  cfg.precision = Precision::kINT8;
  cfg.int8_ranges = ExactRanges(b.graph(), all, residual_ranges);
  EXPECT_FALSE(cfg.int8_ranges.empty());
  auto e = CpuBackend().Build(b.graph(), cfg);
  EXPECT_TRUE(e.ok()) << e.status();
  if (!e.ok()) return r;
  std::unique_ptr<Engine> engine = std::move(e).value();
  if (round_trip) {
    auto payload = engine->SerializePayload();
    EXPECT_TRUE(payload.ok());
    auto back = CpuBackend().Deserialize(*payload, b.graph(), cfg);
    EXPECT_TRUE(back.ok()) << back.status();
    if (!back.ok()) return r;
    engine = std::move(back).value();
  }
  auto got = testing_cpu::RunEngine(*engine, in);
  EXPECT_TRUE(got.ok()) << got.status();
  if (!got.ok()) return r;
  r.err = 0;
  for (size_t i = 0; i < got->size(); ++i) {
    r.err = std::max(r.err, testing_cpu::RelL2((*got)[i], (*ref)[i]));
  }
  r.layers = engine->Layers();
  return r;
}

}  // namespace kiln::testing_int8
