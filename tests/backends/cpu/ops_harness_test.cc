// The CPU backend's cross-op harness (ggml test-backend-ops style): one table of single-op and
// small-pattern cases; each builds a segment, checks Supports on every node, builds the engine,
// runs it on random inputs and compares with the reference kernels (FP32 rel. L2 <= tolerance,
// no NaN). Every case also runs at a smaller batch than it was built for.
#include <gtest/gtest.h>

#include <functional>

#include "backends/cpu/cpu_test_util.h"

namespace kiln {
namespace {

using testing_cpu::A;
using testing_cpu::Floats;
using testing_cpu::Ints;
using testing_cpu::Random;
using testing_cpu::SegmentBuilder;

struct Case {
  std::string name;
  std::function<SegmentBuilder()> make;
  double tol = 1e-5;
  float lo = -1.f, hi = 1.f;  // input range
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

Attr I(int64_t v) { return Attr::Int(v); }
Attr Is(std::vector<int64_t> v) { return Attr::Ints(std::move(v)); }
Attr F(float v) { return Attr::Float(v); }
Attr S(std::string v) { return Attr::String(std::move(v)); }

SegmentBuilder Unary(const std::string& op, AttrMap attrs = {},
                     std::vector<int64_t> dims = {2, 3, 5, 7}) {
  SegmentBuilder b;
  b.In("x", dims).Op(op, {"x"}, {"y"}, std::move(attrs)).Out("y");
  return b;
}

SegmentBuilder ConvCase(std::vector<int64_t> x, std::vector<int64_t> w, AttrMap attrs,
                        bool bias = true, const std::string& op = "Conv") {
  SegmentBuilder b;
  b.In("x", x).Init("w", Random(w, 7, -0.5f, 0.5f));
  std::vector<std::string> in = {"x", "w"};
  if (bias) {
    const int64_t oc = op == "Conv" ? w[0] : w[1] * (attrs.count("group") ? attrs["group"].i : 1);
    b.Init("b", Random({oc}, 8));
    in.push_back("b");
  }
  b.Op(op, in, {"y"}, std::move(attrs)).Out("y");
  return b;
}

SegmentBuilder BinaryCase(const std::string& op, std::vector<int64_t> a, std::vector<int64_t> c,
                          bool c_const = false) {
  SegmentBuilder b;
  b.In("a", a);
  if (c_const) {
    b.Init("c", Random(c, 11, 0.5f, 1.5f));
  } else {
    b.In("c", c);
  }
  b.Op(op, {"a", "c"}, {"y"}).Out("y");
  return b;
}

std::vector<Case> Cases() {
  std::vector<Case> cs;
  // --- convolution
  cs.push_back({"conv3x3_pad1", [] {
                  return ConvCase({2, 8, 9, 9}, {16, 8, 3, 3}, A({{"pads", Is({1, 1, 1, 1})}}));
                }});
  cs.push_back(
      {"conv_stride2_nobias", [] {
         return ConvCase({2, 5, 11, 10}, {7, 5, 3, 3}, A({{"strides", Is({2, 2})}}), false);
       }});
  cs.push_back({"conv_groups2", [] {
                  return ConvCase({2, 8, 7, 7}, {6, 4, 3, 3},
                                  A({{"group", I(2)}, {"pads", Is({1, 1, 1, 1})}}));
                }});
  cs.push_back({"conv_depthwise", [] {
                  return ConvCase(
                      {2, 16, 9, 9}, {16, 1, 3, 3},
                      A({{"group", I(16)}, {"pads", Is({1, 1, 1, 1})}, {"strides", Is({2, 2})}}));
                }});
  cs.push_back({"conv_dilation2_asym_pads", [] {
                  return ConvCase({2, 4, 12, 12}, {8, 4, 3, 3},
                                  A({{"dilations", Is({2, 2})}, {"pads", Is({1, 2, 3, 0})}}));
                }});
  cs.push_back({"conv_same_upper", [] {
                  return ConvCase({2, 3, 10, 9}, {4, 3, 4, 4},
                                  A({{"auto_pad", S("SAME_UPPER")}, {"strides", Is({2, 2})}}));
                }});
  cs.push_back({"conv_1d", [] {
                  return ConvCase({2, 6, 20}, {5, 6, 3}, A({{"pads", Is({1, 1})}}));
                }});
  cs.push_back({"conv_3d", [] { return ConvCase({2, 3, 6, 6, 6}, {4, 3, 3, 3, 3}, A({})); }});
  cs.push_back({"conv_1x1", [] { return ConvCase({2, 32, 7, 7}, {64, 32, 1, 1}, A({})); }});
  cs.push_back({"conv_nhwc", [] {
                  return ConvCase({2, 9, 9, 8}, {16, 8, 3, 3},
                                  A({{"data_format", S("NHWC")}, {"pads", Is({1, 1, 1, 1})}}));
                }});
  cs.push_back({"conv_nhwc_groups", [] {
                  return ConvCase({2, 7, 7, 8}, {8, 2, 3, 3},
                                  A({{"data_format", S("NHWC")}, {"group", I(4)}}));
                }});
  cs.push_back({"convtranspose_s2_outpad", [] {
                  return ConvCase({2, 6, 5, 5}, {6, 4, 3, 3},
                                  A({{"strides", Is({2, 2})},
                                     {"pads", Is({1, 1, 1, 1})},
                                     {"output_padding", Is({1, 1})}}),
                                  true, "ConvTranspose");
                }});
  cs.push_back({"convtranspose_group", [] {
                  return ConvCase({2, 4, 5, 6}, {4, 3, 2, 2},
                                  A({{"strides", Is({2, 2})}, {"group", I(2)}}), true,
                                  "ConvTranspose");
                }});
  cs.push_back({"convtranspose_output_shape", [] {
                  return ConvCase({2, 3, 4, 4}, {3, 5, 3, 3},
                                  A({{"strides", Is({2, 2})}, {"output_shape", Is({8, 8})}}), false,
                                  "ConvTranspose");
                }});
  // --- matmul family
  cs.push_back({"gemm_transB_alpha_beta", [] {
                  SegmentBuilder b;
                  b.In("a", {4, 6}).Init("w", Random({5, 6}, 3)).Init("c", Random({5}, 4));
                  b.Op("Gemm", {"a", "w", "c"}, {"y"},
                       A({{"transB", I(1)}, {"alpha", F(0.5f)}, {"beta", F(2.f)}}))
                      .Out("y");
                  return b;
                }});
  cs.push_back({"gemm_transA_fullC", [] {
                  SegmentBuilder b;
                  b.In("a", {6, 4}).Init("w", Random({6, 5}, 3)).Init("c", Random({4, 5}, 4));
                  b.Op("Gemm", {"a", "w", "c"}, {"y"}, A({{"transA", I(1)}})).Out("y");
                  return b;
                }});
  cs.push_back(
      {"gemm_variable_B", [] {
         SegmentBuilder b;
         b.In("a", {4, 6}).In("w", {5, 6});
         b.Op("Gemm", {"a", "w"}, {"y"}, A({{"transB", I(1)}, {"alpha", F(1.5f)}})).Out("y");
         return b;
       }});
  cs.push_back(
      {"matmul_2d_const", [] {
         SegmentBuilder b;
         b.In("a", {3, 16}).Init("w", Random({16, 10}, 5)).Op("MatMul", {"a", "w"}, {"y"}).Out("y");
         return b;
       }});
  cs.push_back({"matmul_batched_const", [] {
                  SegmentBuilder b;
                  b.In("a", {2, 3, 4, 8})
                      .Init("w", Random({8, 6}, 5))
                      .Op("MatMul", {"a", "w"}, {"y"})
                      .Out("y");
                  return b;
                }});
  cs.push_back(
      {"matmul_batched_variable", [] {
         SegmentBuilder b;
         b.In("a", {2, 3, 4, 5}).In("w", {2, 3, 5, 6}).Op("MatMul", {"a", "w"}, {"y"}).Out("y");
         return b;
       }});
  cs.push_back({"matmul_broadcast_variable", [] {
                  SegmentBuilder b;
                  b.In("a", {3, 4, 5}).In("w", {5, 6}).Op("MatMul", {"a", "w"}, {"y"}).Out("y");
                  return b;
                }});
  cs.push_back(
      {"matmul_vector_B", [] {
         SegmentBuilder b;
         b.In("a", {3, 4, 5}).Init("w", Random({5}, 6)).Op("MatMul", {"a", "w"}, {"y"}).Out("y");
         return b;
       }});
  cs.push_back({"transpose_matmul", [] {  // attention-like Q K^T
                  SegmentBuilder b;
                  b.In("q", {2, 4, 6, 8}).In("k", {2, 4, 6, 8});
                  b.Op("Transpose", {"k"}, {"kt"}, A({{"perm", Is({0, 1, 3, 2})}}));
                  b.Op("MatMul", {"q", "kt"}, {"y"}).Out("y");
                  return b;
                }});
  // --- normalization
  cs.push_back({"batchnorm", [] {
                  SegmentBuilder b;
                  b.In("x", {2, 6, 5, 5}).Init("s", Random({6}, 1)).Init("bb", Random({6}, 2));
                  b.Init("m", Random({6}, 3)).Init("v", Random({6}, 4, 0.5f, 2.f));
                  b.Op("BatchNormalization", {"x", "s", "bb", "m", "v"}, {"y"},
                       A({{"epsilon", F(1e-3f)}}))
                      .Out("y");
                  return b;
                }});
  cs.push_back({"batchnorm_nhwc", [] {
                  SegmentBuilder b;
                  b.In("x", {2, 5, 5, 6}).Init("s", Random({6}, 1)).Init("bb", Random({6}, 2));
                  b.Init("m", Random({6}, 3)).Init("v", Random({6}, 4, 0.5f, 2.f));
                  b.Op("BatchNormalization", {"x", "s", "bb", "m", "v"}, {"y"},
                       A({{"data_format", S("NHWC")}}))
                      .Out("y");
                  return b;
                }});
  cs.push_back({"layernorm_last", [] {
                  SegmentBuilder b;
                  b.In("x", {2, 7, 32}).Init("s", Random({32}, 1)).Init("bb", Random({32}, 2));
                  b.Op("LayerNormalization", {"x", "s", "bb"}, {"y"}).Out("y");
                  return b;
                }});
  cs.push_back({"layernorm_axis1", [] {
                  SegmentBuilder b;
                  b.In("x", {2, 4, 6}).Init("s", Random({4, 6}, 1));
                  b.Op("LayerNormalization", {"x", "s"}, {"y"}, A({{"axis", I(1)}})).Out("y");
                  return b;
                }});
  cs.push_back({"softmax_axis1", [] { return Unary("Softmax", A({{"axis", I(1)}})); }});
  cs.push_back({"softmax_last", [] { return Unary("Softmax", {}); }});
  cs.push_back({"logsoftmax_last", [] { return Unary("LogSoftmax", {}, {3, 10}); }});
  cs.push_back({"softmax_opset11_last", [] {
                  SegmentBuilder b(11);
                  b.In("x", {3, 4, 10}).Op("Softmax", {"x"}, {"y"}, A({{"axis", I(2)}})).Out("y");
                  return b;
                }});
  // --- eltwise
  for (const char* op :
       {"Relu", "Sigmoid", "Tanh", "HardSwish", "Softplus", "Exp", "Abs", "Neg", "Mish"}) {
    cs.push_back({std::string("eltwise_") + op, [op] { return Unary(op); }, 1e-5, -3.f, 3.f});
  }
  cs.push_back({"eltwise_Gelu", [] { return Unary("Gelu"); }, 1e-5, -3.f, 3.f});
  cs.push_back({"eltwise_Gelu_tanh",
                [] {
                  return Unary("Gelu", A({{"approximate", S("tanh")}}));
                },
                1e-5, -3.f, 3.f});
  cs.push_back({"eltwise_LeakyRelu", [] { return Unary("LeakyRelu", A({{"alpha", F(0.2f)}})); }});
  cs.push_back({"eltwise_Elu", [] { return Unary("Elu", A({{"alpha", F(0.7f)}})); }});
  cs.push_back({"eltwise_Selu", [] { return Unary("Selu"); }});
  cs.push_back({"eltwise_HardSigmoid",
                [] {
                  return Unary("HardSigmoid", A({{"alpha", F(0.3f)}, {"beta", F(0.4f)}}));
                },
                1e-5, -4.f, 4.f});
  cs.push_back({"eltwise_Log", [] { return Unary("Log"); }, 1e-5, 0.1f, 3.f});
  cs.push_back({"eltwise_Sqrt", [] { return Unary("Sqrt"); }, 1e-5, 0.1f, 3.f});
  cs.push_back({"eltwise_Reciprocal", [] { return Unary("Reciprocal"); }, 1e-5, 0.5f, 3.f});
  cs.push_back({"eltwise_Clip_inputs", [] {
                  SegmentBuilder b;
                  b.In("x", {2, 3, 4})
                      .Init("lo", Tensor::Scalar<float>(-0.3f))
                      .Init("hi", Tensor::Scalar<float>(0.6f));
                  b.Op("Clip", {"x", "lo", "hi"}, {"y"}).Out("y");
                  return b;
                }});
  cs.push_back({"eltwise_Clip_attrs_opset6", [] {
                  SegmentBuilder b(6);
                  b.In("x", {2, 3, 4})
                      .Op("Clip", {"x"}, {"y"}, A({{"min", F(-0.5f)}, {"max", F(0.25f)}}))
                      .Out("y");
                  return b;
                }});
  // --- binary
  cs.push_back({"add_same", [] { return BinaryCase("Add", {2, 3, 4, 5}, {2, 3, 4, 5}); }});
  cs.push_back({"add_channel_bcast_const", [] {
                  return BinaryCase("Add", {2, 3, 4, 5}, {1, 3, 1, 1}, true);
                }});
  cs.push_back({"add_first_broadcasts", [] { return BinaryCase("Add", {5}, {2, 3, 4, 5}); }});
  cs.push_back({"sub_first_broadcasts", [] { return BinaryCase("Sub", {4, 1}, {3, 4, 5}); }});
  cs.push_back({"sub_same", [] { return BinaryCase("Sub", {3, 4, 5}, {3, 4, 5}); }});
  cs.push_back({"mul_bcast", [] { return BinaryCase("Mul", {2, 3, 4, 5}, {4, 5}); }});
  cs.push_back({"div_bcast_const", [] {
                  return BinaryCase("Div", {2, 3, 4, 5}, {3, 1, 1}, true);
                }});
  cs.push_back({"max_same", [] { return BinaryCase("Max", {2, 6, 7}, {2, 6, 7}); }});
  cs.push_back({"min_bcast", [] { return BinaryCase("Min", {2, 6, 7}, {1, 7}); }});
  // --- binary with a one-element constant: lowered to eltwise (linear / pow / clip)
  struct ScalarCase {
    const char* name;
    const char* op;
    bool first;
    std::vector<int64_t> k_dims;  // {} = rank 0
    float lo, hi;
  };
  for (const ScalarCase& sc :
       std::vector<ScalarCase>{{"add_scalar_rank0", "Add", false, {}, -1.f, 1.f},
                               {"add_scalar_first", "Add", true, {1}, -1.f, 1.f},
                               {"sub_scalar_rank0", "Sub", false, {}, -1.f, 1.f},
                               {"sub_scalar_first", "Sub", true, {}, -1.f, 1.f},
                               {"mul_scalar_1111", "Mul", false, {1, 1, 1, 1}, -1.f, 1.f},
                               {"mul_scalar_first", "Mul", true, {1, 1}, -1.f, 1.f},
                               {"div_scalar", "Div", false, {}, -1.f, 1.f},
                               {"div_scalar_first", "Div", true, {1}, 0.5f, 2.f},
                               {"max_scalar", "Max", false, {}, -1.f, 1.f},
                               {"min_scalar_first", "Min", true, {1}, -1.f, 1.f}}) {
    cs.push_back({sc.name,
                  [sc] {
                    SegmentBuilder b;
                    b.In("x", {2, 3, 4, 5});
                    Tensor k = Tensor::Empty(DataType::kFloat32, sc.k_dims);
                    k.mutable_data<float>()[0] = 0.37f;
                    b.Init("k", k);
                    b.Op(sc.op,
                         sc.first ? std::vector<std::string>{"k", "x"}
                                  : std::vector<std::string>{"x", "k"},
                         {"y"})
                        .Out("y");
                    return b;
                  },
                  1e-5, sc.lo, sc.hi});
  }
  // --- prelu
  cs.push_back({"prelu_channel_const", [] {
                  SegmentBuilder b;
                  b.In("x", {2, 6, 5, 5}).Init("s", Random({6, 1, 1}, 3, 0.f, 0.5f));
                  b.Op("PRelu", {"x", "s"}, {"y"}).Out("y");
                  return b;
                }});
  cs.push_back({"prelu_scalar_const", [] {
                  SegmentBuilder b;
                  b.In("x", {2, 6, 5}).Init("s", Floats({0.25f}));
                  b.Op("PRelu", {"x", "s"}, {"y"}).Out("y");
                  return b;
                }});
  cs.push_back({"prelu_last_axis_const", [] {
                  SegmentBuilder b;
                  b.In("x", {2, 4, 7}).Init("s", Random({7}, 3, 0.f, 0.5f));
                  b.Op("PRelu", {"x", "s"}, {"y"}).Out("y");
                  return b;
                }});
  cs.push_back({"prelu_variable_slope", [] {
                  SegmentBuilder b;
                  b.In("x", {2, 3, 4, 5}).In("s", {2, 3, 4, 5});
                  b.Op("PRelu", {"x", "s"}, {"y"}).Out("y");
                  return b;
                }});
  cs.push_back({"conv_prelu", [] {
                  SegmentBuilder b;
                  b.In("x", {2, 4, 8, 8})
                      .Init("w", Random({8, 4, 3, 3}, 1))
                      .Init("s", Random({8, 1, 1}, 2, 0.f, 0.5f));
                  b.Op("Conv", {"x", "w"}, {"c"}).Op("PRelu", {"c", "s"}, {"y"}).Out("y");
                  return b;
                }});
  // --- channels-last (data_format NHWC) on every layout-sensitive op
  cs.push_back(
      {"convtranspose_nhwc", [] {
         return ConvCase(
             {2, 5, 5, 6}, {6, 4, 3, 3},
             A({{"strides", Is({2, 2})}, {"pads", Is({1, 1, 1, 1})}, {"data_format", S("NHWC")}}),
             true, "ConvTranspose");
       }});
  cs.push_back({"conv_nhwc_bn_relu_scale", [] {  // BN folding, eltwise and binary post-ops
                  SegmentBuilder b;
                  b.In("x", {2, 7, 6, 4})
                      .Init("w", Random({8, 4, 3, 3}, 1))
                      .Init("s", Random({8}, 2, 0.5f, 1.5f))
                      .Init("bb", Random({8}, 3))
                      .Init("m", Random({8}, 4))
                      .Init("v", Random({8}, 5, 0.5f, 2.f))
                      .Init("cs", Random({1, 1, 1, 8}, 6));
                  const AttrMap nhwc = A({{"data_format", S("NHWC")}});
                  b.Op("Conv", {"x", "w"}, {"c"},
                       A({{"data_format", S("NHWC")}, {"pads", Is({1, 1, 1, 1})}}));
                  b.Op("BatchNormalization", {"c", "s", "bb", "m", "v"}, {"n"}, nhwc);
                  b.Op("Relu", {"n"}, {"r"}).Op("Mul", {"r", "cs"}, {"y"}).Out("y");
                  return b;
                }});
  cs.push_back({"avgpool_nhwc_pads", [] {
                  return Unary("AveragePool",
                               A({{"kernel_shape", Is({3, 3})},
                                  {"strides", Is({2, 2})},
                                  {"pads", Is({1, 1, 1, 1})},
                                  {"data_format", S("NHWC")}}),
                               {2, 9, 7, 5});
                }});
  cs.push_back({"global_avgpool_nhwc", [] {
                  return Unary("GlobalAveragePool", A({{"data_format", S("NHWC")}}), {2, 5, 6, 16});
                }});
  cs.push_back({"global_maxpool_nhwc", [] {
                  return Unary("GlobalMaxPool", A({{"data_format", S("NHWC")}}), {2, 5, 6, 3});
                }});
  cs.push_back({"resize_nearest_nhwc", [] {
                  SegmentBuilder b;
                  b.In("x", {2, 5, 4, 3}).Init("roi", Floats({})).Init("sc", Floats({1, 2, 2, 1}));
                  b.Op("Resize", {"x", "roi", "sc"}, {"y"},
                       A({{"coordinate_transformation_mode", S("asymmetric")},
                          {"nearest_mode", S("floor")},
                          {"data_format", S("NHWC")}}))
                      .Out("y");
                  return b;
                }});
  cs.push_back({"resize_linear_nhwc", [] {
                  SegmentBuilder b;
                  b.In("x", {2, 5, 4, 3}).Init("roi", Floats({})).Init("sc", Floats({1, 2, 3, 1}));
                  b.Op("Resize", {"x", "roi", "sc"}, {"y"},
                       A({{"mode", S("linear")}, {"data_format", S("NHWC")}}))
                      .Out("y");
                  return b;
                }});
  // --- pooling
  cs.push_back(
      {"maxpool_3x3_s2_p1", [] {
         return Unary(
             "MaxPool",
             A({{"kernel_shape", Is({3, 3})}, {"strides", Is({2, 2})}, {"pads", Is({1, 1, 1, 1})}}),
             {2, 4, 11, 11});
       }});
  cs.push_back(
      {"maxpool_ceil", [] {
         return Unary(
             "MaxPool",
             A({{"kernel_shape", Is({3, 3})}, {"strides", Is({2, 2})}, {"ceil_mode", I(1)}}),
             {2, 4, 10, 10});
       }});
  cs.push_back({"maxpool_dilated", [] {
                  return Unary("MaxPool",
                               A({{"kernel_shape", Is({2, 2})}, {"dilations", Is({2, 2})}}),
                               {2, 3, 9, 9});
                }});
  cs.push_back(
      {"avgpool_exclude_pad", [] {
         return Unary(
             "AveragePool",
             A({{"kernel_shape", Is({3, 3})}, {"strides", Is({2, 2})}, {"pads", Is({1, 1, 1, 1})}}),
             {2, 4, 9, 9});
       }});
  cs.push_back({"avgpool_include_pad", [] {
                  return Unary("AveragePool",
                               A({{"kernel_shape", Is({3, 3})},
                                  {"pads", Is({1, 1, 1, 1})},
                                  {"count_include_pad", I(1)}}),
                               {2, 4, 7, 7});
                }});
  cs.push_back(
      {"avgpool_ceil_exclude", [] {
         return Unary(
             "AveragePool",
             A({{"kernel_shape", Is({2, 2})}, {"strides", Is({2, 2})}, {"ceil_mode", I(1)}}),
             {2, 3, 7, 7});
       }});
  cs.push_back(
      {"maxpool_nhwc", [] {
         return Unary(
             "MaxPool",
             A({{"kernel_shape", Is({2, 2})}, {"strides", Is({2, 2})}, {"data_format", S("NHWC")}}),
             {2, 8, 8, 5});
       }});
  cs.push_back({"global_avgpool", [] { return Unary("GlobalAveragePool", {}, {2, 16, 7, 7}); }});
  cs.push_back({"global_maxpool", [] { return Unary("GlobalMaxPool", {}, {2, 16, 5, 6}); }});
  // --- data movement
  cs.push_back({"concat_axis1", [] {
                  SegmentBuilder b;
                  b.In("a", {2, 3, 4, 5})
                      .In("c", {2, 6, 4, 5})
                      .Op("Concat", {"a", "c"}, {"y"}, A({{"axis", I(1)}}))
                      .Out("y");
                  return b;
                }});
  cs.push_back({"concat_const_last", [] {
                  SegmentBuilder b;
                  b.In("a", {2, 3, 4})
                      .Init("c", Random({2, 3, 2}, 3))
                      .Op("Concat", {"a", "c"}, {"y"}, A({{"axis", I(-1)}}))
                      .Out("y");
                  return b;
                }});
  cs.push_back({"transpose", [] { return Unary("Transpose", A({{"perm", Is({0, 2, 3, 1})}})); }});
  cs.push_back({"transpose_default", [] { return Unary("Transpose", {}, {3, 4, 5}); }});
  cs.push_back({"reshape_flatten_squeeze_unsqueeze", [] {
                  SegmentBuilder b;
                  b.In("x", {2, 3, 4, 5}).Init("shape", Ints({0, -1, 5})).Init("ax", Ints({1}));
                  b.Op("Reshape", {"x", "shape"}, {"r"});
                  b.Op("Relu", {"r"}, {"r2"});
                  b.Op("Unsqueeze", {"r2", "ax"}, {"u"});
                  b.Op("Squeeze", {"u", "ax"}, {"s"});
                  b.Op("Flatten", {"s"}, {"y"}, A({{"axis", I(1)}})).Out("y");
                  return b;
                }});
  cs.push_back(
      {"conv_then_flatten_gemm", [] {  // a blocked conv output reordered for a view
         SegmentBuilder b;
         b.In("x", {2, 8, 4, 4})
             .Init("w", Random({16, 8, 3, 3}, 1))
             .Init("fw", Random({10, 64}, 2))
             .Init("fb", Random({10}, 3));
         b.Op("Conv", {"x", "w"}, {"c"}, A({{"strides", Is({2, 2})}, {"pads", Is({1, 1, 1, 1})}}));
         b.Op("Flatten", {"c"}, {"f"});
         b.Op("Gemm", {"f", "fw", "fb"}, {"y"}, A({{"transB", I(1)}})).Out("y");
         return b;
       }});
  // --- resampling
  cs.push_back({"resize_nearest_asym_floor_x2", [] {
                  SegmentBuilder b;
                  b.In("x", {2, 3, 5, 4}).Init("roi", Floats({})).Init("sc", Floats({1, 1, 2, 2}));
                  b.Op("Resize", {"x", "roi", "sc"}, {"y"},
                       A({{"coordinate_transformation_mode", S("asymmetric")},
                          {"nearest_mode", S("floor")}}))
                      .Out("y");
                  return b;
                }});
  cs.push_back({"resize_nearest_half_pixel_x3", [] {
                  SegmentBuilder b;
                  b.In("x", {2, 3, 4, 4}).Init("roi", Floats({})).Init("sc", Floats({1, 1, 3, 3}));
                  b.Op("Resize", {"x", "roi", "sc"}, {"y"}).Out("y");
                  return b;
                }});
  cs.push_back(
      {"resize_linear_sizes", [] {
         SegmentBuilder b;
         b.In("x", {2, 3, 5, 4})
             .Init("roi", Floats({}))
             .Init("sc", Floats({}))
             .Init("sz", Ints({2, 3, 10, 7}));
         b.Op("Resize", {"x", "roi", "sc", "sz"}, {"y"}, A({{"mode", S("linear")}})).Out("y");
         return b;
       }});
  cs.push_back({"upsample_opset9", [] {
                  SegmentBuilder b(9);
                  b.In("x", {2, 3, 4, 4}).Init("sc", Floats({1, 1, 2, 2}));
                  b.Op("Upsample", {"x", "sc"}, {"y"}).Out("y");
                  return b;
                }});
  // --- reductions
  cs.push_back({"reducemean_hw_keep", [] {
                  return Unary("ReduceMean", A({{"axes", Is({2, 3})}}), {2, 8, 5, 5});
                }});
  cs.push_back({"reducesum_input_axes_nokeep", [] {
                  SegmentBuilder b;
                  b.In("x", {2, 6, 7})
                      .Init("ax", Ints({-1}))
                      .Op("ReduceSum", {"x", "ax"}, {"y"}, A({{"keepdims", I(0)}}))
                      .Out("y");
                  return b;
                }});
  cs.push_back({"reducemax_axis1", [] {
                  return Unary("ReduceMax", A({{"axes", Is({1})}}), {2, 6, 7});
                }});
  // --- small patterns (fusion through the whole pipeline)
  cs.push_back(
      {"conv_relu_maxpool_chain", [] {
         SegmentBuilder b;
         b.In("x", {2, 3, 16, 16})
             .Init("w", Random({8, 3, 3, 3}, 1))
             .Init("w2", Random({8, 8, 3, 3}, 2, -0.3f, 0.3f));
         b.Op("Conv", {"x", "w"}, {"c"}, A({{"pads", Is({1, 1, 1, 1})}}));
         b.Op("Relu", {"c"}, {"r"});
         b.Op("MaxPool", {"r"}, {"p"}, A({{"kernel_shape", Is({2, 2})}, {"strides", Is({2, 2})}}));
         b.Op("Conv", {"p", "w2"}, {"c2"}, A({{"pads", Is({1, 1, 1, 1})}}));
         b.Op("Sigmoid", {"c2"}, {"y"}).Out("y").Out("p");
         return b;
       }});
  cs.push_back({"conv_mul_channel_scale", [] {  // binary post-op with a constant
                  SegmentBuilder b;
                  b.In("x", {2, 4, 6, 6})
                      .Init("w", Random({8, 4, 3, 3}, 1))
                      .Init("s", Random({1, 8, 1, 1}, 2));
                  b.Op("Conv", {"x", "w"}, {"c"}).Op("Mul", {"c", "s"}, {"y"}).Out("y");
                  return b;
                }});
  cs.push_back({"residual_sum_in_place", [] {  // the residual dies at the fused add
    SegmentBuilder b;
    b.In("x", {2, 8, 6, 6});
    for (int i = 0; i < 3; ++i) b.Init("w" + std::to_string(i), Random({8, 8, 3, 3}, 20 + i, -0.3f, 0.3f));
    const AttrMap pads = A({{"pads", Is({1, 1, 1, 1})}});
    b.Op("Conv", {"x", "w0"}, {"a"}, pads).Op("Relu", {"a"}, {"ra"});
    b.Op("Conv", {"ra", "w1"}, {"rb"}, pads);
    b.Op("Conv", {"rb", "w2"}, {"c"}, pads).Op("Add", {"c", "ra"}, {"s"}).Op("Tanh", {"s"}, {"y"});
    b.Out("y");
    return b;
  }});
  return cs;
}

class OpsHarness : public ::testing::TestWithParam<Case> {};

// `tol`: the case's (FP32); reduced precisions use max(tol, 1e-2) (ARCHITECTURE §6).
void RunCase(const Case& c, Precision precision) {
  const double tol = precision == Precision::kFP32 ? c.tol : std::max(c.tol, 1e-2);
  SegmentBuilder sb = c.make();
  {
    std::vector<Tensor> probe;
    for (size_t i = 0; i < sb.shapes().size(); ++i)
      probe.push_back(Random(sb.shapes()[i], 1, c.lo, c.hi));
    std::map<std::string, Tensor> values;
    ASSERT_TRUE(testing_cpu::RunReference(sb.graph(), probe, &values).ok());
    sb.InferValueInfo(values);
  }
  const Graph& g = sb.graph();
  BuildConfig cfg = testing_cpu::Config(sb.shapes());
  cfg.precision = precision;
  for (const Node& n : g.nodes) {
    Status s = CpuBackend().Supports(n, g, cfg);
    ASSERT_TRUE(s.ok()) << s;
  }
  StatusOr<std::unique_ptr<Engine>> e = CpuBackend().Build(g, cfg);
  ASSERT_TRUE(e.ok()) << e.status();
  // Built for the given batch; also run batch 1 (a lazily created instance).
  for (int64_t batch : {sb.shapes()[0][0], int64_t{1}}) {
    std::vector<Tensor> in;
    std::vector<std::vector<int64_t>> dims;
    for (size_t i = 0; i < sb.shapes().size(); ++i) {
      std::vector<int64_t> d = sb.shapes()[i];
      if (d[0] == sb.shapes()[0][0]) d[0] = batch;  // inputs sharing the batch dim follow it
      dims.push_back(d);
      in.push_back(Random(d, 100 + static_cast<uint32_t>(i), c.lo, c.hi));
    }
    if (!(*e)->Accepts(dims)) {
      EXPECT_NE(batch, sb.shapes()[0][0]) << "engine refuses its own build shapes";
      continue;
    }
    StatusOr<std::vector<Tensor>> want = testing_cpu::RunReference(g, in);
    ASSERT_TRUE(want.ok()) << want.status();
    StatusOr<std::vector<Tensor>> got = testing_cpu::RunEngine(**e, in);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), want->size());
    for (size_t o = 0; o < got->size(); ++o) {
      const double err = testing_cpu::RelL2((*got)[o], (*want)[o]);
      EXPECT_LE(err, tol) << c.name << " output " << o << " batch " << batch << ": got "
                          << (*got)[o].DebugString() << " want " << (*want)[o].DebugString();
    }
  }
}

TEST_P(OpsHarness, MatchesReference) { RunCase(GetParam(), Precision::kFP32); }

// Every case again in BF16 mode (conv / matmul in bf16, the layers after them following;
// precision.h): within 1e-2 of the reference kernels.
TEST_P(OpsHarness, Bf16MatchesReference) {
  if (!CpuHasKernel(Precision::kBF16)) GTEST_SKIP() << "this CPU has no bf16 kernel";
  RunCase(GetParam(), Precision::kBF16);
}

INSTANTIATE_TEST_SUITE_P(Cpu, OpsHarness, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

}  // namespace
}  // namespace kiln
