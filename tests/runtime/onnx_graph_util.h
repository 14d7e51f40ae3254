// Helpers that build ONNX subgraphs (If / Loop / Scan bodies) by hand in the control-flow tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "onnx.pb.h"

namespace kiln::testing {

// `v` as a tensor value of ONNX element type `elem`, with static `dims` unless !with_shape.
inline void TypedValue(onnxpb::ValueInfoProto* v, const std::string& name, int elem,
                       std::vector<int64_t> dims, bool with_shape = true) {
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem);
  if (!with_shape) return;
  auto* shape = tt->mutable_shape();
  for (auto d : dims) shape->add_dim()->set_dim_value(d);
}

// Appends node `op` (named after its first output) to `g`.
inline onnxpb::NodeProto* AddNode(onnxpb::GraphProto* g, const std::string& op,
                                  std::vector<std::string> in, std::vector<std::string> out) {
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name(op + "_" + out[0]);
  for (auto& i : in) n->add_input(i);
  for (auto& o : out) n->add_output(o);
  return n;
}

// Adds graph attribute `name` (a body) to `n`.
inline void GraphAttr(onnxpb::NodeProto* n, const std::string& name, const onnxpb::GraphProto& g) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnxpb::AttributeProto::GRAPH);
  *a->mutable_g() = g;
}

}  // namespace kiln::testing
