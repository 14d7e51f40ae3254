#include <gtest/gtest.h>

#include "ops/base/dispatch.h"
#include "ops/base/shape_util.h"
#include "ops/op_test_util.h"

namespace kiln {
namespace {

TEST(Broadcast, Dims) {
  auto d = BroadcastDims({{2, 1, 3}, {4, 1}});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, (std::vector<int64_t>{2, 4, 3}));
  EXPECT_FALSE(BroadcastDims({{2, 3}, {4}}).ok());
  EXPECT_EQ(BroadcastShapes({Shape({-1, 3}), Shape({2, 1})}).ToString(), "[2,3]");
  EXPECT_EQ(BroadcastShapes({Shape({-1, 3}), Shape({1, 1})}).ToString(), "[?,3]");
}

TEST(Broadcast, ForEachVisitsOffsets) {
  std::vector<int64_t> out = {2, 3};
  auto sa = BroadcastStrides({2, 1}, out);
  auto sb = BroadcastStrides({3}, out);
  std::vector<std::pair<int64_t, int64_t>> seen;
  ForEachBroadcast(out, {sa, sb}, [&](int64_t, const int64_t* off) {
    seen.emplace_back(off[0], off[1]);
  });
  std::vector<std::pair<int64_t, int64_t>> want = {{0, 0}, {0, 1}, {0, 2},
                                                   {1, 0}, {1, 1}, {1, 2}};
  EXPECT_EQ(seen, want);
}

TEST(Convert, CastSemantics) {
  Tensor f = Tensor::FromVector<float>({-1.7f, 0.0f, 2.9f, 300.0f});
  auto i = ConvertTensor(f, DataType::kInt32);
  ASSERT_TRUE(i.ok());
  EXPECT_EQ(i->data<int32_t>()[0], -1);
  EXPECT_EQ(i->data<int32_t>()[2], 2);
  auto b = ConvertTensor(f, DataType::kBool);
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->data<bool>()[1]);
  EXPECT_TRUE(b->data<bool>()[0]);
  auto h = ConvertTensor(f, DataType::kFloat16);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(static_cast<float>(h->data<Float16>()[3]), 300.0f);
  auto s = ConvertTensor(Tensor::FromVector<std::string>({"1.5", "-inf"}), DataType::kFloat32);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->data<float>()[0], 1.5f);
  EXPECT_TRUE(std::isinf(s->data<float>()[1]));
}

TEST(Schema, CheckNodeArityAndAttrs) {
  OpSchema schema("Foo");
  schema.Inputs(1, 2).Outputs(1, 1).AttrDefault("alpha", 0.5f).AttrNoDefault(
      "mode", AttrType::kString, /*required=*/true);
  Node n;
  n.name = "f";
  n.op_type = "Foo";
  n.inputs = {"a"};
  n.outputs = {"b"};
  EXPECT_FALSE(schema.CheckNode(n).ok());  // required 'mode' missing
  n.attrs["mode"] = Attr::String("x");
  EXPECT_TRUE(schema.CheckNode(n).ok());
  n.attrs["alpha"] = Attr::Int(1);
  EXPECT_FALSE(schema.CheckNode(n).ok());  // wrong attribute type
  n.attrs.erase("alpha");
  n.attrs["beta"] = Attr::Int(1);
  EXPECT_EQ(schema.CheckNode(n).code(), StatusCode::kUnimplemented);
  n.attrs.erase("beta");
  n.inputs = {"a", "b", "c"};
  EXPECT_FALSE(schema.CheckNode(n).ok());
  AttrReader reader(n, schema);
  EXPECT_FLOAT_EQ(reader.GetFloat("alpha"), 0.5f);
  EXPECT_FALSE(reader.HasAttr("alpha"));
}

TEST(Schema, HalfPromotionRunsKernelInFloat) {
  OpRegistry reg;
  MustRegister(reg, OpSchema("Twice")
                        .Inputs(1, 1)
                        .PromoteHalfToFloat()
                        .InputTypes(0, {DataType::kFloat32, DataType::kFloat16})
                        .Kernel([](KernelContext& ctx) -> Status {
                          if (ctx.input(0).dtype() != DataType::kFloat32) {
                            return ctx.Error("expected float32");
                          }
                          KILN_ASSIGN_OR_RETURN(Tensor * out,
                                                ctx.AllocateOutput(0, DataType::kFloat32,
                                                                   ctx.input(0).dims()));
                          for (int64_t i = 0; i < out->num_elements(); ++i) {
                            out->mutable_data<float>()[i] = 2 * ctx.input(0).data<float>()[i];
                          }
                          return Status::OK();
                        }));
  auto h = ConvertTensor(Tensor::FromVector<float>({1.5f, -2.0f}), DataType::kFloat16);
  ASSERT_TRUE(h.ok());
  auto out = testing::RunOp(reg, "Twice", {*h});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].dtype(), DataType::kFloat16);
  EXPECT_EQ(static_cast<float>((*out)[0].data<Float16>()[1]), -4.0f);
  auto bad = testing::RunOp(reg, "Twice", {Tensor::FromVector<int32_t>({1})});
  EXPECT_EQ(bad.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(bad.status().message().find("int32"), std::string::npos);
}

TEST(Schema, OnlyNonTensorOpsSeeSequencesAndOptionals) {
  OpRegistry reg;
  auto pass_through = [](KernelContext& ctx) -> Status {
    ctx.SetOutput(0, ctx.input(0));
    return Status::OK();
  };
  MustRegister(reg, OpSchema("TensorsOnly").Inputs(1, 1).Kernel(pass_through));
  MustRegister(reg, OpSchema("AnyValue").Inputs(1, 1).NonTensorValues().Kernel(pass_through));
  Tensor item = testing::RandomTensor(DataType::kFloat32, {2, 3}, 3);
  Tensor seq = Tensor::Sequence(DataType::kFloat32, {item, item});
  Tensor none = Tensor::NoneOptional(DataType::kFloat32);
  for (const Tensor& v : {seq, none}) {
    auto bad = testing::RunOp(reg, "TensorsOnly", {v});
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(bad.status().message().find("takes tensors"), std::string::npos) << bad.status();
    auto ok = testing::RunOp(reg, "AnyValue", {v});
    ASSERT_TRUE(ok.ok()) << ok.status();
    EXPECT_TRUE((*ok)[0].BitwiseEqual(v));
  }
  // A sequence looks like an empty tensor to code that does not ask, and clones deeply.
  EXPECT_TRUE(seq.is_sequence());
  EXPECT_EQ(seq.num_elements(), 0);
  EXPECT_EQ(seq.TypeString(), "seq(float32)[2 items]");
  Tensor copy = seq.Clone();
  EXPECT_TRUE(copy.BitwiseEqual(seq));
  EXPECT_NE(copy.sequence()[0].raw_data(), item.raw_data());
  EXPECT_FALSE(seq.BitwiseEqual(item));
}

}  // namespace
}  // namespace kiln
