// Support probes (ProbeProgram) build a node's oneDNN layer to prove it builds, then throw it
// away: their WeightCache describes the weight reorders without running them (issue 6: the
// probes reordered every weight of the model, most of a warm conversion's time).
#include <gtest/gtest.h>

#include <cstring>

#include "backends/cpu/cpu_test_util.h"
#include "backends/cpu/layers.h"

namespace kiln::cpu {
namespace {

TEST(ProbeWeights, DescribeOnlyMakesTheReorderButCopiesNothing) {
  const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  const Tensor w = testing_cpu::Random({32, 16, 3, 3}, 4);
  const memory::desc src({32, 16, 3, 3}, memory::data_type::f32, memory::format_tag::oihw);
  const memory::desc want({32, 16, 3, 3}, memory::data_type::f32, memory::format_tag::OIhw16i16o);

  WeightCache real;
  auto r = real.Get(0, 1, src, w.raw_data(), want, eng);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_NE(r->get(), nullptr);
  // The real cache holds the reordered weights: a permutation of the same values, not a copy.
  EXPECT_NE(std::memcmp(r->get(), w.raw_data(), w.nbytes()), 0);
  const float* got = static_cast<const float*>(r->get());
  const float* in = w.data<float>();
  // OIhw16i16o: element (o=1, i=0, h=0, w=0) sits at offset 1 in the first 16x16 block.
  EXPECT_EQ(got[1], in[1 * 16 * 9]);

  WeightCache probe{WeightCache::DescribeOnly{}};
  auto p = probe.Get(0, 1, src, w.raw_data(), want, eng);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->get(), nullptr);  // nothing allocated, nothing copied
}

TEST(ProbeWeights, ConvSupportStillBuildsTheLayer) {
  // Shapes known: the probe builds the conv's oneDNN layer (blocked weights) through the
  // describe-only cache, and the node is supported.
  testing_cpu::SegmentBuilder b;
  b.In("x", {2, 16, 12, 12});
  b.Init("w", testing_cpu::Random({32, 16, 3, 3}, 1));
  b.Op("Conv", {"x", "w"}, {"y"}, {{"pads", Attr::Ints({1, 1, 1, 1})}});
  b.Out("y");
  std::map<std::string, Tensor> values;
  ASSERT_TRUE(
      testing_cpu::RunReference(b.graph(), {testing_cpu::Random({2, 16, 12, 12}, 2)}, &values)
          .ok());
  b.InferValueInfo(values);
  for (const Node& n : b.graph().nodes) {
    const Status s = CpuBackend().Supports(n, b.graph(), testing_cpu::Config(b.shapes()));
    EXPECT_TRUE(s.ok()) << n.op_type << ": " << s;
  }
}

}  // namespace
}  // namespace kiln::cpu
