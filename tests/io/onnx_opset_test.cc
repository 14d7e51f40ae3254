// ONNX opsets below 7: read as opset 7 only when every op is unchanged since (legacy
// consumed_inputs dropped); anything else stays a clear Unimplemented error.
#include <gtest/gtest.h>

#include "io/onnx/onnx_import.h"
#include "runtime/onnx_builder.h"

namespace kiln {
namespace {

using testing::OnnxBuilder;

TEST(OnnxLegacyOpset, UnchangedOpsAreReadAsOpset7) {
  OnnxBuilder b(6);
  b.Input("x", 1, {2, 3}).Output("y", 1, {2, 3});
  auto* n = b.Node("Elu", {"x"}, {"e"});
  auto* a = n->add_attribute();  // opset 1-5 style
  a->set_name("consumed_inputs");
  a->set_type(onnxpb::AttributeProto::INTS);
  a->add_ints(0);
  b.Node("Softsign", {"e"}, {"y"});
  auto g = ImportOnnxBytes(b.Serialize(), "old.onnx", "");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->onnx_opset(), 7);
  EXPECT_EQ(g->nodes[0].FindAttr("consumed_inputs"), nullptr);
}

TEST(OnnxLegacyOpset, ChangedOpsKeepTheModelUnsupported) {
  // Add changed its broadcasting at opset 7: an opset-6 Add is not read.
  OnnxBuilder b(6);
  b.Input("x", 1, {2, 3}).Input("z", 1, {3}).Output("y", 1, {2, 3});
  b.Node("Add", {"x", "z"}, {"y"});
  auto g = ImportOnnxBytes(b.Serialize(), "old_add.onnx", "");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(g.status().message().find("opset 6"), std::string::npos) << g.status();
}

}  // namespace
}  // namespace kiln
