// ONNX export: import -> export -> import gives the same graph; untouched nodes keep their
// original bytes; Graph::functions travel as kiln.functions FunctionProtos; output is
// deterministic. (Bit-identical run outputs of round-tripped models: tests/convert/.)
#include "io/onnx/onnx_export.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "io/onnx/onnx_import.h"
#include "onnx.pb.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

const char* kNodeData = "/usr/share/libonnx-testdata/data/node/";

// Everything of a Graph that a round trip must keep (Dump covers names, ops, inputs/outputs,
// attrs and types; this adds value_info, initializer bytes, subgraphs and functions).
void ExpectSameGraph(const Graph& a, const Graph& b, const std::string& where) {
  EXPECT_EQ(a.Dump(), b.Dump()) << where;
  EXPECT_EQ(a.onnx_opset(), b.onnx_opset()) << where;
  ASSERT_EQ(a.value_info.size(), b.value_info.size()) << where;
  for (const auto& [name, vi] : a.value_info) {
    const ValueInfo* other = b.FindValueInfo(name);
    ASSERT_NE(other, nullptr) << where << ": " << name;
    EXPECT_EQ(vi.dtype, other->dtype) << where << ": " << name;
    EXPECT_EQ(vi.shape, other->shape) << where << ": " << name;
  }
  ASSERT_EQ(a.initializers.size(), b.initializers.size()) << where;
  for (const auto& [name, t] : a.initializers) {
    auto it = b.initializers.find(name);
    ASSERT_NE(it, b.initializers.end()) << where << ": " << name;
    EXPECT_TRUE(t.BitwiseEqual(it->second)) << where << ": " << name;
  }
  ASSERT_EQ(a.nodes.size(), b.nodes.size()) << where;
  for (size_t k = 0; k < a.nodes.size(); ++k) {
    for (const auto& [attr, value] : a.nodes[k].attrs) {
      if (value.type != AttrType::kGraph) continue;
      const Attr* other = b.nodes[k].FindAttr(attr);
      ASSERT_TRUE(other != nullptr && other->g != nullptr) << where;
      ExpectSameGraph(*value.g, *other->g, where + "/" + a.nodes[k].name + "." + attr);
    }
  }
  ASSERT_EQ(a.functions.size(), b.functions.size()) << where;
  for (const auto& [name, fn] : a.functions) {
    auto it = b.functions.find(name);
    ASSERT_NE(it, b.functions.end()) << where << ": function " << name;
    ExpectSameGraph(*fn, *it->second, where + "/function " + name);
  }
}

Graph RoundTrip(const Graph& g) {
  auto bytes = ExportOnnx(g);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  if (!bytes.ok()) return Graph();
  auto back = ImportOnnxBytes(*bytes, "exported", "");
  EXPECT_TRUE(back.ok()) << back.status();
  return back.ok() ? std::move(back).value() : Graph();
}

TEST(OnnxExport, BundledModelRoundTripsAndKeepsOriginalNodeBytes) {
  const std::string path = std::string(KILN_SOURCE_DIR) + "/models/ppocr_cls/model.onnx";
  auto g = ImportOnnxFile(path);
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_GT(g->nodes.size(), 10u);
  Graph back = RoundTrip(*g);
  ExpectSameGraph(*g, back, "ppocr_cls");
  // Every node was untouched: its NodeProto is written verbatim.
  auto bytes = ExportOnnx(*g);
  ASSERT_TRUE(bytes.ok());
  onnxpb::ModelProto model;
  ASSERT_TRUE(model.ParseFromString(*bytes));
  ASSERT_EQ(model.graph().node_size(), static_cast<int>(g->nodes.size()));
  for (int k = 0; k < model.graph().node_size(); ++k) {
    onnxpb::NodeProto original;
    ASSERT_TRUE(original.ParseFromString(g->nodes[k].provenance->serialized));
    if (original.name().empty()) original.set_name(g->nodes[k].name);
    EXPECT_EQ(model.graph().node(k).SerializeAsString(), original.SerializeAsString()) << k;
  }
  // Deterministic: the same graph gives the same bytes; a re-export of the re-import too.
  EXPECT_EQ(*ExportOnnx(*g), *bytes);
  EXPECT_EQ(*ExportOnnx(back), *bytes);
}

TEST(OnnxExport, ConformanceModelsRoundTrip) {
  if (!fs::exists(kNodeData)) GTEST_SKIP() << "no ONNX test data";
  int checked = 0;
  for (const char* name :
       {"test_conv_with_strides_padding", "test_gemm_default_vector_bias", "test_if", "test_loop11",
        "test_lstm_defaults", "test_resize_upsample_scales_cubic", "test_cast_FLOAT_to_STRING",
        "test_constant", "test_batchnorm_example", "test_maxpool_2d_pads",
        "test_reshape_negative_dim", "test_split_variable_parts_2d"}) {
    const std::string path = std::string(kNodeData) + name + "/model.onnx";
    if (!fs::exists(path)) continue;
    auto g = ImportOnnxFile(path);
    ASSERT_TRUE(g.ok()) << name << ": " << g.status();
    ExpectSameGraph(*g, RoundTrip(*g), name);
    ++checked;
  }
  EXPECT_GE(checked, 8);
}

Graph SmallGraph() {
  Graph g;
  g.name = "small";
  g.opset_imports[""] = 13;
  g.inputs = {"x"};
  g.outputs = {"y"};
  g.value_info["x"] = {DataType::kFloat32, Shape({-1, 4})};
  g.value_info["y"] = {DataType::kFloat32, Shape({-1, 4})};
  g.value_info["h"] = {DataType::kFloat32, Shape::UnknownRank()};
  g.initializers["w"] = Tensor::FromVector<float>({0.5f, -1.25f, 3.0f, 7.5f}, {4});
  Node add{"add0", "Add", "", {"x", "w"}, {"h"}, {}, nullptr};
  Node relu{"relu0", "LeakyRelu", "", {"h"}, {"y"}, {{"alpha", Attr::Float(0.25f)}}, nullptr};
  g.nodes = {add, relu};
  return g;
}

TEST(OnnxExport, RebuiltNodesAndChangedNodesRoundTrip) {
  Graph g = SmallGraph();
  ExpectSameGraph(g, RoundTrip(g), "small");
  // An imported node whose attributes changed is rebuilt from the IR, not copied.
  Graph back = RoundTrip(g);
  ASSERT_NE(back.nodes[1].provenance, nullptr);
  back.nodes[1].attrs["alpha"] = Attr::Float(0.5f);
  Graph again = RoundTrip(back);
  EXPECT_EQ(again.nodes[1].attrs["alpha"].f, 0.5f);
  ExpectSameGraph(back, again, "changed");
}

TEST(OnnxExport, FunctionsTravelAsKilnFunctions) {
  Graph main = SmallGraph();
  auto seg = std::make_shared<Graph>(SmallGraph());
  seg->name = "add0_segment";
  main.functions["add0_segment"] = seg;
  main.opset_imports["kiln"] = 1;
  main.nodes.push_back(Node{"kiln_engine_0",
                            "EngineOp",
                            "kiln",
                            {"x"},
                            {"z"},
                            {{"segment_func", Attr::String("add0_segment")},
                             {"serialized_engine", Attr::String(std::string("\0\x01\xff", 3))}},
                            nullptr});
  main.outputs.push_back("z");
  main.value_info["z"] = {DataType::kFloat32, Shape({-1, 4})};
  auto bytes = ExportOnnx(main);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  onnxpb::ModelProto model;
  ASSERT_TRUE(model.ParseFromString(*bytes));
  ASSERT_EQ(model.functions_size(), 1);
  EXPECT_EQ(model.functions(0).domain(), "kiln.functions");
  EXPECT_GE(model.ir_version(), 10);
  std::set<std::string> domains;
  for (const auto& op : model.opset_import()) domains.insert(op.domain());
  EXPECT_TRUE(domains.count("kiln") && domains.count("kiln.functions") && domains.count(""));
  Graph back = RoundTrip(main);
  ExpectSameGraph(main, back, "with function");
  EXPECT_EQ(back.nodes[2].FindAttr("serialized_engine")->s, std::string("\0\x01\xff", 3));
  EXPECT_EQ(back.functions.at("add0_segment")->initializers.size(), 1u);
}

TEST(OnnxExport, WriteOnnxFileReplacesAtomically) {
  const fs::path dir = fs::temp_directory_path() / ("kiln_export_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "m.onnx").string();
  ASSERT_TRUE(WriteOnnxFile(SmallGraph(), path).ok());
  ASSERT_TRUE(WriteOnnxFile(SmallGraph(), path).ok());  // over an existing file
  auto g = ImportOnnxFile(path);
  ASSERT_TRUE(g.ok()) << g.status();
  ExpectSameGraph(SmallGraph(), *g, "file");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  EXPECT_FALSE(WriteOnnxFile(SmallGraph(), (dir / "missing" / "m.onnx").string()).ok());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kiln
