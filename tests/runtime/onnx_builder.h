// Builds small ONNX models in tests (through kiln's own copy of the ONNX schema).
#pragma once

#include <string>
#include <vector>

#include "onnx.pb.h"

namespace kiln::testing {

class OnnxBuilder {
 public:
  explicit OnnxBuilder(int opset = 17) {
    model_.set_ir_version(8);
    auto* op = model_.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    model_.mutable_graph()->set_name("test");
  }
  OnnxBuilder& Input(const std::string& name, int elem_type, std::vector<int64_t> dims) {
    Fill(model_.mutable_graph()->add_input(), name, elem_type, dims);
    return *this;
  }
  OnnxBuilder& Output(const std::string& name, int elem_type, std::vector<int64_t> dims) {
    Fill(model_.mutable_graph()->add_output(), name, elem_type, dims);
    return *this;
  }
  onnxpb::NodeProto* Node(const std::string& op, std::vector<std::string> in,
                          std::vector<std::string> out, const std::string& name = "") {
    auto* n = model_.mutable_graph()->add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? op + "_" + std::to_string(model_.graph().node_size()) : name);
    for (auto& i : in) n->add_input(i);
    for (auto& o : out) n->add_output(o);
    return n;
  }
  OnnxBuilder& FloatInitializer(const std::string& name, std::vector<int64_t> dims,
                                std::vector<float> values) {
    auto* t = model_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(1);
    for (auto d : dims) t->add_dims(d);
    for (auto v : values) t->add_float_data(v);
    return *this;
  }
  std::string Serialize() const { return model_.SerializeAsString(); }
  onnxpb::ModelProto& model() { return model_; }

 private:
  static void Fill(onnxpb::ValueInfoProto* v, const std::string& name, int elem_type,
                   const std::vector<int64_t>& dims) {
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(elem_type);
    auto* shape = tt->mutable_shape();
    for (auto d : dims) {
      if (d < 0) {
        shape->add_dim()->set_dim_param("N");
      } else {
        shape->add_dim()->set_dim_value(d);
      }
    }
  }
  onnxpb::ModelProto model_;
};

// x[N,4] ──▶ MatMul(W[4,3]) ──▶ Add(b) ──▶ Relu ──▶ y[N,3]
//                                     └──────────▶ pre (fetchable intermediate)
// W[k][c] = 0.1 * (3k + c) - 0.5, b = {0.1, -0.2, 0.3}.
inline std::string DenseModel() {
  OnnxBuilder b;
  b.Input("x", 1, {-1, 4}).Output("y", 1, {-1, 3});
  std::vector<float> w(12);
  for (int i = 0; i < 12; ++i) w[i] = 0.1f * static_cast<float>(i) - 0.5f;
  b.FloatInitializer("W", {4, 3}, w).FloatInitializer("b", {3}, {0.1f, -0.2f, 0.3f});
  b.Node("MatMul", {"x", "W"}, {"mm"}, "matmul");
  b.Node("Add", {"mm", "b"}, {"pre"}, "bias");
  b.Node("Relu", {"pre"}, {"y"}, "relu");
  return b.Serialize();
}

}  // namespace kiln::testing
