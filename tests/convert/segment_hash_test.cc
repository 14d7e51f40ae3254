// The segment content hash behind plan headers and disk cache keys (issue 6):
// core/content_hash.h (the wide hash of the weights) and convert/segment_hash.h (structure +
// per-weight hashes). A plan must never be taken for a segment whose weights or structure
// changed, and the same segment must always hash the same.
#include "convert/segment_hash.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "convert/convert_test_util.h"
#include "core/content_hash.h"
#include "io/onnx/onnx_export.h"

namespace kiln {
namespace {

using testing::Random;

std::vector<unsigned char> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<unsigned char> b(n);
  for (auto& c : b) c = static_cast<unsigned char>(rng());
  return b;
}

TEST(ContentHash, EveryOneByteChangeChangesTheHash) {
  // 2 KiB + 37: two scrambled blocks, whole stripes and a tail.
  std::vector<unsigned char> b = RandomBytes(2048 + 64 * 3 + 37, 11);
  const uint64_t base = ContentHash64(b.data(), b.size());
  EXPECT_EQ(ContentHash64(b.data(), b.size()), base);  // deterministic
  std::set<uint64_t> seen = {base};
  std::mt19937 rng(5);
  for (size_t i = 0; i < b.size(); ++i) {
    const unsigned char old = b[i];
    b[i] = static_cast<unsigned char>(old ^ (1u + rng() % 255u));  // never the same byte
    const uint64_t h = ContentHash64(b.data(), b.size());
    EXPECT_NE(h, base) << "byte " << i;
    seen.insert(h);
    b[i] = old;
  }
  EXPECT_EQ(seen.size(), b.size() + 1);  // and all different from one another
  EXPECT_EQ(ContentHash64(b.data(), b.size()), base);
}

TEST(ContentHash, LengthSeedAndZeroTails) {
  std::vector<unsigned char> b = RandomBytes(300, 3);
  b.resize(320, 0);  // trailing zeros: a shorter input padded with zeros is another input
  std::set<uint64_t> seen;
  for (size_t n = 280; n <= 320; ++n) seen.insert(ContentHash64(b.data(), n));
  EXPECT_EQ(seen.size(), 41u);
  EXPECT_NE(ContentHash64(b.data(), b.size(), 1), ContentHash64(b.data(), b.size(), 2));
  EXPECT_NE(ContentHash64(nullptr, 0), ContentHash64(b.data(), 1));
  EXPECT_EQ(ContentHashHex(0x0123456789abcdefull), "0123456789abcdef");
}

// x -> MatMul(w) -> Add(b) -> Relu -> y, random weights.
Graph Segment() {
  Graph g;
  g.name = "seg";
  g.inputs = {"x"};
  g.outputs = {"y"};
  g.value_info["x"] = {DataType::kFloat32, Shape({2, 16})};
  g.value_info["y"] = {DataType::kFloat32, Shape({2, 8})};
  g.initializers["w"] = Random({16, 8}, 1);
  g.initializers["b"] = Random({8}, 2);
  Node mm{"mm", "MatMul", "", {"x", "w"}, {"t"}, {}, nullptr};
  Node add{"add", "Add", "", {"t", "b"}, {"u"}, {}, nullptr};
  Node relu{"relu", "LeakyRelu", "", {"u"}, {"y"}, {}, nullptr};
  relu.attrs["alpha"] = Attr::Float(0.25f);
  g.nodes = {mm, add, relu};
  return g;
}

uint64_t MustHash(const Graph& g) {
  auto h = SegmentContentHash(g);
  EXPECT_TRUE(h.ok()) << h.status();
  return h.ok() ? *h : 0;
}

TEST(SegmentHash, SameSegmentSameHashAcrossCopies) {
  const Graph g = Segment();
  const uint64_t h = MustHash(g);
  Graph copy = g;
  for (auto& [name, t] : copy.initializers) t = t.Clone();  // other storage, same bytes
  EXPECT_EQ(MustHash(copy), h);
}

TEST(SegmentHash, OneByteWeightChangeIsANewHash) {
  const Graph g = Segment();
  const uint64_t base = MustHash(g);
  const Tensor& w = g.initializers.at("w");
  std::set<uint64_t> seen = {base};
  // Every byte of the weight, one at a time (w is 512 bytes).
  for (size_t i = 0; i < w.nbytes(); ++i) {
    Graph changed = g;
    Tensor c = w.Clone();
    static_cast<unsigned char*>(c.raw_mutable_data())[i] ^= 0x01;
    changed.initializers["w"] = c;
    const uint64_t h = MustHash(changed);
    EXPECT_NE(h, base) << "byte " << i;
    seen.insert(h);
  }
  EXPECT_EQ(seen.size(), w.nbytes() + 1);
}

TEST(SegmentHash, NamesShapesTypesAndStructureCount) {
  const Graph g = Segment();
  const uint64_t base = MustHash(g);
  {  // same bytes, other dims
    Graph c = g;
    auto r = g.initializers.at("w").Reshaped({8, 16});
    ASSERT_TRUE(r.ok());
    c.initializers["w"] = *r;
    EXPECT_NE(MustHash(c), base);
  }
  {  // same bytes, other dtype
    Graph c = g;
    const Tensor& b = g.initializers.at("b");
    c.initializers["b"] = Tensor::Wrap(DataType::kInt32, {8}, const_cast<void*>(b.raw_data()),
                                       std::make_shared<Tensor>(b));
    EXPECT_NE(MustHash(c), base);
  }
  {  // the weights swapped between two names of the same shape
    Graph c = g;
    c.initializers["w2"] = c.initializers["w"];
    c.initializers.erase("w");
    c.nodes[0].inputs[1] = "w2";
    EXPECT_NE(MustHash(c), base);
  }
  {  // an attribute
    Graph c = g;
    c.nodes[2].attrs["alpha"] = Attr::Float(0.5f);
    EXPECT_NE(MustHash(c), base);
  }
  {  // a node's input
    Graph c = g;
    std::swap(c.nodes[1].inputs[0], c.nodes[1].inputs[1]);
    EXPECT_NE(MustHash(c), base);
  }
  {  // an input shape
    Graph c = g;
    c.value_info["x"] = {DataType::kFloat32, Shape({4, 16})};
    EXPECT_NE(MustHash(c), base);
  }
}

TEST(SegmentHash, StringInitializersAreHashedByValue) {
  Graph g = Segment();
  g.initializers["labels"] = Tensor::FromVector<std::string>({"cat", "dog"});
  const uint64_t base = MustHash(g);
  Graph same = g;
  same.initializers["labels"] = Tensor::FromVector<std::string>({"cat", "dog"});  // new objects
  EXPECT_EQ(MustHash(same), base);
  Graph other = g;
  other.initializers["labels"] = Tensor::FromVector<std::string>({"cat", "dot"});
  EXPECT_NE(MustHash(other), base);
}

}  // namespace
}  // namespace kiln
