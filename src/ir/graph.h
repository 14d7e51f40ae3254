// The canonical IR: a Graph of Nodes that read and write named Values.
//
// Ops follow ONNX operator semantics (ARCHITECTURE §3). Values are identified by name, as in
// ONNX and TensorFlow ("node:0"), which keeps importers close to identity: a node lists the
// names of the values it reads ("" = an absent optional input) and writes. A value is produced
// by exactly one node, or is a graph input, or an initializer (a constant). `value_info`
// records what is known of a value's type and shape.
//
// Every node may carry its Provenance: the original NodeProto / NodeDef bytes it came from, so
// an untouched node is exported verbatim and errors name the user's node.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln {

class Graph;

enum class AttrType { kUndefined, kFloat, kInt, kString, kTensor, kGraph, kFloats, kInts, kStrings };
const char* AttrTypeName(AttrType t);

struct Attr {
  AttrType type = AttrType::kUndefined;
  int64_t i = 0;
  float f = 0;
  std::string s;
  Tensor t;
  std::shared_ptr<Graph> g;
  std::vector<int64_t> ints;
  std::vector<float> floats;
  std::vector<std::string> strings;

  static Attr Int(int64_t v);
  static Attr Float(float v);
  static Attr String(std::string v);
  static Attr Ints(std::vector<int64_t> v);
  static Attr Floats(std::vector<float> v);
  static Attr Strings(std::vector<std::string> v);
  static Attr TensorValue(Tensor v);
  static Attr GraphValue(std::shared_ptr<Graph> v);
  // Compact text form for dumps: "3", "[1,1]", "\"SAME_UPPER\"", "float32[3,3]".
  std::string ToString() const;
  bool operator==(const Attr& o) const;
};

// Sorted by name: iteration order is deterministic.
using AttrMap = std::map<std::string, Attr>;

struct Provenance {
  std::string format;       // "onnx", "tf", "tfjs"
  std::string original_op;  // e.g. "Conv2D"
  std::string original_name;
  std::string serialized;   // the original NodeProto / NodeDef, serialized
};

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;  // "" is the default ONNX domain (ai.onnx)
  std::vector<std::string> inputs;   // "" marks an absent optional input
  std::vector<std::string> outputs;  // "" marks an unused optional output
  AttrMap attrs;
  std::shared_ptr<const Provenance> provenance;

  const Attr* FindAttr(const std::string& attr_name) const;
  // "node 'conv1' (Conv)" — the form every error message uses to name a node.
  std::string Describe() const;
};

// The values `node`'s subgraphs (If branches, Loop/Scan bodies, nested ones too) read from
// the enclosing scopes: names read inside (node inputs, subgraph outputs) that none of the
// subgraph's inputs, initializers or nodes define. Sorted; empty for a node without graph
// attributes. The executor feeds these to control-flow kernels after the node's own inputs.
std::vector<std::string> OuterScopeReads(const Node& node);

struct ValueInfo {
  DataType dtype = DataType::kUndefined;
  Shape shape;  // unknown rank by default
};

class Graph {
 public:
  std::string name;
  std::vector<Node> nodes;
  std::vector<std::string> inputs;   // fed at run time (initializers are not listed here)
  std::vector<std::string> outputs;  // fetched by default
  std::map<std::string, Tensor> initializers;
  std::map<std::string, ValueInfo> value_info;
  std::map<std::string, int64_t> opset_imports;  // domain ("" = ai.onnx) -> version
  std::string source_path;  // the file it was loaded from, for error messages
  // Where an initializer came from (e.g. the TF Const NodeDef), for verbatim export.
  std::map<std::string, std::shared_ptr<const Provenance>> initializer_provenance;
  // Format-level facts an exporter needs back (e.g. "tf.versions", "tf.library": serialized
  // VersionDef / FunctionDefLibrary). Keys are prefixed by the format.
  std::map<std::string, std::string> metadata;
  // Function library: named subgraphs (e.g. an EngineOp's native segment, `segment_func`).
  std::map<std::string, std::shared_ptr<const Graph>> functions;

  // Opset version of the default ONNX domain (17 when none is recorded).
  int64_t onnx_opset() const;
  const ValueInfo* FindValueInfo(const std::string& value) const;
  bool IsInitializer(const std::string& value) const { return initializers.count(value) > 0; }
  bool IsGraphInput(const std::string& value) const;
  // value name -> index of the node producing it.
  std::unordered_map<std::string, int> ProducerIndex() const;
  // A stable topological order (Kahn's algorithm, ties broken by the node's position), or
  // InvalidArgument naming the nodes on a cycle. Inputs that nothing produces are ignored here
  // (the verifier reports them).
  StatusOr<std::vector<int>> TopologicalOrder() const;
  // Reorders `nodes` into TopologicalOrder().
  Status SortTopologically();
  // The value a user means by `asked`: itself when it names a value, else "asked:0" when that
  // does (TensorFlow users write "node" for "node:0"), else the tensor a SavedModel signature
  // key maps to (metadata "signature.input.<key>" / "signature.output.<key>"); otherwise
  // `asked` unchanged (callers report it as unknown).
  std::string ResolveName(const std::string& asked) const;
  // A name not yet used by any node or value, built from `prefix`.
  std::string UniqueName(const std::string& prefix) const;
  // A readable text dump: inputs, initializers (type only), nodes in order, outputs.
  std::string Dump() const;
};

}  // namespace kiln
