// ONNX LSTM / GRU / RNN in the CPU engine (oneDNN RNN primitives, layers_rnn.cc) against the
// reference kernels (src/ops/rnn.cc): every direction, with and without initial states and
// biases, both GRU variants, the three vanilla RNN activations, a shorter sequence than the
// build's, a payload round trip; unsupported configurations give their reason.
#include <gtest/gtest.h>

#include <dnnl.hpp>
#include <functional>

#include "backends/cpu/cpu_test_util.h"
#include "backends/cpu/layers_rnn.h"
#include "backends/cpu/lowering.h"

namespace kiln {
namespace {

using testing_cpu::A;
using testing_cpu::Random;
using testing_cpu::SegmentBuilder;

constexpr int64_t kSeq = 5, kBatch = 3, kIn = 7, kHidden = 6;

struct Case {
  std::string op = "LSTM";      // LSTM / GRU / RNN
  std::string direction = "forward";
  bool bias = true;
  bool initial = false;         // initial_h (and initial_c for LSTM) as graph inputs
  bool const_initial = false;   // ... as initializers instead
  int64_t lbr = 0;              // GRU linear_before_reset
  std::string act;              // RNN activation ("" = default)
  bool explicit_acts = false;   // LSTM / GRU: the default activations spelled out
  bool all_outputs = true;      // Y, Y_h (, Y_c); else only Y_h
  bool seq_lens = false;        // sequence_lens = seq for every batch entry (constant)
};

int64_t Gates(const std::string& op) { return op == "LSTM" ? 4 : op == "GRU" ? 3 : 1; }

SegmentBuilder Make(const Case& c, uint32_t seed) {
  const int64_t nd = c.direction == "bidirectional" ? 2 : 1, g = Gates(c.op);
  SegmentBuilder b;
  b.In("x", {kSeq, kBatch, kIn});
  b.Init("W", Random({nd, g * kHidden, kIn}, seed + 1, -0.5f, 0.5f));
  b.Init("R", Random({nd, g * kHidden, kHidden}, seed + 2, -0.5f, 0.5f));
  std::vector<std::string> ins = {"x", "W", "R", "", "", "", ""};
  if (c.bias) {
    b.Init("B", Random({nd, 2 * g * kHidden}, seed + 3, -0.5f, 0.5f));
    ins[3] = "B";
  }
  if (c.seq_lens) {
    b.Init("lens", Tensor::FromVector<int32_t>(std::vector<int32_t>(kBatch, kSeq)));
    ins[4] = "lens";
  }
  if (c.initial || c.const_initial) {
    for (const char* s : {"h0", "c0"}) {
      if (std::string(s) == "c0" && c.op != "LSTM") continue;
      if (c.initial) {
        b.In(s, {nd, kBatch, kHidden});
      } else {
        b.Init(s, Random({nd, kBatch, kHidden}, seed + (s[0] == 'h' ? 4 : 5)));
      }
    }
    ins[5] = "h0";
    if (c.op == "LSTM") ins[6] = "c0";
  }
  while (!ins.empty() && ins.back().empty()) ins.pop_back();
  AttrMap attrs = A({{"hidden_size", Attr::Int(kHidden)}, {"direction", Attr::String(c.direction)}});
  if (c.op == "GRU") attrs["linear_before_reset"] = Attr::Int(c.lbr);
  std::vector<std::string> acts;
  if (!c.act.empty()) acts.assign(nd, c.act);
  if (c.explicit_acts) {
    const std::vector<std::string> one =
        c.op == "LSTM" ? std::vector<std::string>{"Sigmoid", "Tanh", "Tanh"}
                       : std::vector<std::string>{"Sigmoid", "Tanh"};
    for (int64_t d = 0; d < nd; ++d) acts.insert(acts.end(), one.begin(), one.end());
  }
  if (!acts.empty()) attrs["activations"] = Attr::Strings(acts);
  std::vector<std::string> outs =
      c.all_outputs ? std::vector<std::string>{"Y", "Y_h"} : std::vector<std::string>{"", "Y_h"};
  if (c.op == "LSTM" && c.all_outputs) outs.push_back("Y_c");
  b.Op(c.op, ins, outs, attrs);
  for (const std::string& o : outs) {
    if (!o.empty()) b.Out(o);
  }
  return b;
}

std::vector<Tensor> Inputs(const Case& c, int64_t seq, uint32_t seed) {
  const int64_t nd = c.direction == "bidirectional" ? 2 : 1;
  std::vector<Tensor> in = {Random({seq, kBatch, kIn}, seed, -2.f, 2.f)};
  if (c.initial) {
    in.push_back(Random({nd, kBatch, kHidden}, seed + 10));
    if (c.op == "LSTM") in.push_back(Random({nd, kBatch, kHidden}, seed + 11));
  }
  return in;
}

std::string Name(const Case& c) {
  return c.op + (c.op == "GRU" ? " lbr=" + std::to_string(c.lbr) : "") + " " + c.direction +
         (c.act.empty() ? "" : " " + c.act) + (c.bias ? " B" : "") + (c.initial ? " h0" : "") +
         (c.const_initial ? " const-h0" : "") + (c.all_outputs ? "" : " Y_h only") +
         (c.seq_lens ? " seq_lens" : "");
}

void ExpectMatches(const Case& c, uint32_t seed) {
  SCOPED_TRACE(Name(c));
  SegmentBuilder b = Make(c, seed);
  const BuildConfig cfg = testing_cpu::Config(b.shapes());
  ASSERT_TRUE(CpuBackend().Supports(b.graph().nodes[0], b.graph(), cfg).ok())
      << CpuBackend().Supports(b.graph().nodes[0], b.graph(), cfg);
  StatusOr<std::unique_ptr<Engine>> e = CpuBackend().Build(b.graph(), cfg);
  ASSERT_TRUE(e.ok()) << e.status();
  const std::vector<LayerInfo> layers = (*e)->Layers();
  ASSERT_EQ(layers.size(), 1u);
  EXPECT_EQ(layers[0].op, c.op);
  // A oneDNN primitive ran it ("brgemm" / "ref" in 2.6), not a view.
  EXPECT_FALSE(layers[0].implementation.empty() || layers[0].implementation == "view (no copy)");
  // The build's sequence length, and (without sequence_lens) a shorter one: a second instance.
  std::vector<int64_t> seqs = {kSeq};
  if (!c.seq_lens) seqs.push_back(2);
  for (int64_t seq : seqs) {
    SCOPED_TRACE("seq " + std::to_string(seq));
    const std::vector<Tensor> in = Inputs(c, seq, seed + 100 + static_cast<uint32_t>(seq));
    testing_cpu::ExpectEngineMatchesReference(**e, b.graph(), in);
  }
}

TEST(CpuRnn, LstmMatchesReference) {
  uint32_t seed = 10;
  for (const char* dir : {"forward", "reverse", "bidirectional"}) {
    for (int variant = 0; variant < 4; ++variant) {
      Case c;
      c.op = "LSTM";
      c.direction = dir;
      c.bias = variant != 1;
      c.initial = variant == 2;
      c.const_initial = variant == 3;
      c.explicit_acts = variant == 3;
      ExpectMatches(c, seed += 20);
    }
  }
  Case c;
  c.all_outputs = false;
  c.seq_lens = true;
  c.initial = true;
  ExpectMatches(c, 500);
}

TEST(CpuRnn, GruMatchesReferenceBothVariants) {
  uint32_t seed = 1000;
  for (int64_t lbr : {0, 1}) {
    for (const char* dir : {"forward", "reverse", "bidirectional"}) {
      for (int variant = 0; variant < 3; ++variant) {
        Case c;
        c.op = "GRU";
        c.lbr = lbr;
        c.direction = dir;
        c.bias = variant != 1;
        c.initial = variant == 2;
        c.explicit_acts = variant == 2;
        ExpectMatches(c, seed += 20);
      }
    }
  }
}

TEST(CpuRnn, VanillaRnnMatchesReference) {
  uint32_t seed = 2000;
  for (const char* act : {"", "Tanh", "Relu", "Sigmoid"}) {
    for (const char* dir : {"forward", "reverse", "bidirectional"}) {
      Case c;
      c.op = "RNN";
      c.act = act;
      c.direction = dir;
      c.initial = std::string(dir) != "reverse";
      ExpectMatches(c, seed += 20);
    }
  }
}

// A payload written by the engine and read back runs the same.
TEST(CpuRnn, PayloadRoundTrip) {
  Case c;
  c.direction = "bidirectional";
  c.initial = true;
  SegmentBuilder b = Make(c, 3000);
  const BuildConfig cfg = testing_cpu::Config(b.shapes());
  StatusOr<std::unique_ptr<Engine>> e = CpuBackend().Build(b.graph(), cfg);
  ASSERT_TRUE(e.ok()) << e.status();
  StatusOr<std::string> payload = (*e)->SerializePayload();
  ASSERT_TRUE(payload.ok()) << payload.status();
  StatusOr<std::unique_ptr<Engine>> back = CpuBackend().Deserialize(*payload, b.graph(), cfg);
  ASSERT_TRUE(back.ok()) << back.status();
  const std::vector<Tensor> in = Inputs(c, kSeq, 3001);
  StatusOr<std::vector<Tensor>> want = testing_cpu::RunReference(b.graph(), in);
  StatusOr<std::vector<Tensor>> got = testing_cpu::RunEngine(**back, in);
  ASSERT_TRUE(want.ok() && got.ok());
  ASSERT_EQ(got->size(), 3u);
  for (size_t i = 0; i < got->size(); ++i) {
    EXPECT_LE(testing_cpu::RelL2((*got)[i], (*want)[i]), 1e-5) << "output " << i;
  }
}

// Configurations oneDNN cannot express stay native with a reason naming what is wrong.
TEST(CpuRnn, UnsupportedConfigurationsGiveReasons) {
  struct Bad {
    std::string what, reason;
    std::function<void(SegmentBuilder&)> change;
  };
  auto attr = [](const std::string& k, Attr v) {
    return [k, v](SegmentBuilder& b) { b.mutable_graph().nodes[0].attrs[k] = v; };
  };
  const std::vector<Bad> bads = {
      {"clip", "clip", attr("clip", Attr::Float(2.f))},
      {"input_forget", "input_forget", attr("input_forget", Attr::Int(1))},
      {"activations", "activations",
       attr("activations", Attr::Strings({"Sigmoid", "Relu", "Tanh"}))},
      {"activation_alpha", "activation_alpha",
       attr("activation_alpha", Attr::Floats({0.5f, 0.5f, 0.5f}))},
      {"layout", "layout", attr("layout", Attr::Int(1))},
      {"peepholes", "peepholes",
       [](SegmentBuilder& b) {
         b.Init("P", Random({1, 3 * kHidden}, 77));
         Node& n = b.mutable_graph().nodes[0];
         n.inputs.resize(8);
         n.inputs[7] = "P";
       }},
      {"sequence_lens differ", "per-batch lengths",
       [](SegmentBuilder& b) {
         b.Init("lens", Tensor::FromVector<int32_t>({kSeq, kSeq - 1, kSeq}));
         Node& n = b.mutable_graph().nodes[0];
         n.inputs.resize(5);
         n.inputs[4] = "lens";
       }},
      {"sequence_lens an input", "per-batch lengths",
       [](SegmentBuilder& b) {
         b.In("lens", {kBatch}, DataType::kInt32);
         Node& n = b.mutable_graph().nodes[0];
         n.inputs.resize(5);
         n.inputs[4] = "lens";
       }},
      {"W an input", "constants",
       [](SegmentBuilder& b) {
         b.mutable_graph().initializers.erase("W");
         b.In("W", {1, 4 * kHidden, kIn});
       }},
  };
  for (const Bad& bad : bads) {
    SCOPED_TRACE(bad.what);
    Case c;
    SegmentBuilder b = Make(c, 4000);
    bad.change(b);
    const BuildConfig cfg = testing_cpu::Config(b.shapes());
    const Status s = CpuBackend().Supports(b.graph().nodes[0], b.graph(), cfg);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find(bad.reason), std::string::npos) << s;
  }
  {
    SCOPED_TRACE("RNN with a non-default activation per direction");
    Case c;
    c.op = "RNN";
    c.direction = "bidirectional";
    SegmentBuilder b = Make(c, 4100);
    b.mutable_graph().nodes[0].attrs["activations"] = Attr::Strings({"Tanh", "Relu"});
    const Status s =
        CpuBackend().Supports(b.graph().nodes[0], b.graph(), testing_cpu::Config(b.shapes()));
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("activations"), std::string::npos) << s;
  }
}

// ShapeOf is what a parsed plan's kRnn layer must pass before oneDNN sees it.
TEST(CpuRnn, ShapeOfRejectsBadParameters) {
  using cpu::Layer;
  using cpu::LayerKind;
  using Dims = std::vector<int64_t>;
  auto make = [] {
    Layer l;
    l.kind = LayerKind::kRnn;
    l.op = "LSTM";
    l.inputs = {0, 1, 2, 3, 4, 5};
    l.outputs = {6, 7, 8};
    l.ints["cell"] = {0};
    l.ints["dir"] = {2};
    l.ints["act"] = {static_cast<int64_t>(dnnl::algorithm::eltwise_tanh)};
    return l;
  };
  const std::vector<Dims> in = {{5, 3, 7}, {1, 2, 7, 4, 6}, {1, 2, 6, 4, 6}, {1, 2, 4, 6},
                                {2, 3, 6}, {2, 3, 6}};
  StatusOr<std::vector<Dims>> ok = cpu::ShapeOf(make(), in);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, (std::vector<Dims>{{5, 2, 3, 6}, {2, 3, 6}, {2, 3, 6}}));
  struct Mutation {
    const char* what;
    std::function<void(Layer&, std::vector<Dims>&)> f;
  };
  const std::vector<Mutation> bad = {
      {"cell", [](Layer& l, std::vector<Dims>&) { l.ints["cell"] = {9}; }},
      {"dir", [](Layer& l, std::vector<Dims>&) { l.ints["dir"] = {-1}; }},
      {"w_layer", [](Layer&, std::vector<Dims>& d) { d[1] = {1, 2, 8, 4, 6}; }},
      {"w_iter", [](Layer&, std::vector<Dims>& d) { d[2] = {1, 2, 6, 3, 6}; }},
      {"bias", [](Layer&, std::vector<Dims>& d) { d[3] = {1, 2, 3, 6}; }},
      {"h0", [](Layer&, std::vector<Dims>& d) { d[4] = {1, 3, 6}; }},
      {"x rank", [](Layer&, std::vector<Dims>& d) { d[0] = {5, 21}; }},
      {"seq_len", [](Layer& l, std::vector<Dims>&) { l.ints["seq_len"] = {4}; }},
      {"outputs", [](Layer& l, std::vector<Dims>&) { l.outputs.pop_back(); }},
      {"c0 on a GRU",
       [](Layer& l, std::vector<Dims>& d) {
         l.ints["cell"] = {1};
         l.outputs.pop_back();
         d[1] = {1, 2, 7, 3, 6};
         d[2] = {1, 2, 6, 3, 6};
         d[3] = {1, 2, 3, 6};
       }},
      {"RNN activation",
       [](Layer& l, std::vector<Dims>& d) {
         l.ints["cell"] = {3};
         l.ints["act"] = {static_cast<int64_t>(dnnl::algorithm::eltwise_gelu_erf)};
         l.outputs.pop_back();
         l.inputs[5] = -1;
         d[1] = {1, 2, 7, 1, 6};
         d[2] = {1, 2, 6, 1, 6};
         d[3] = {1, 2, 1, 6};
         d[5] = {};
       }},
  };
  for (const Mutation& m : bad) {
    SCOPED_TRACE(m.what);
    Layer l = make();
    std::vector<Dims> d = in;
    m.f(l, d);
    EXPECT_FALSE(cpu::ShapeOf(l, d).ok());
  }
}

}  // namespace
}  // namespace kiln
