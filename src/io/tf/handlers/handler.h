// What a TF op handler sees and emits (internal to the GraphDef importer).
//
// A handler maps one NodeDef to IR nodes with ONNX semantics (or kiln-domain ops where ONNX
// lacks the TF semantics). It reads the NodeDef's attributes (passing TF's OpDef default for
// attributes old GraphDefs omit), its data inputs (IR value names "node:K", with their constant
// value when they are initializers) and emits nodes whose final outputs are named Output(k).
// Every emitted node carries the NodeDef as provenance. A handler returns Unimplemented for
// attribute values it cannot map: the importer then keeps the node as an unmapped "tf" node.
// Handlers are registered explicitly, one Register*Handlers function per op family.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"
#include "tensorflow.pb.h"

namespace kiln::tfimport {

class Importer;  // graphdef_import.cc

class TfNodeContext {
 public:
  TfNodeContext(Importer* importer, const tfpb::NodeDef& def, std::vector<std::string> inputs,
                std::shared_ptr<const Provenance> provenance);

  const tfpb::NodeDef& def() const { return *def_; }
  const std::string& name() const { return def_->name(); }
  const std::string& op() const { return def_->op(); }

  // ---- inputs (control inputs excluded) ----
  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  const std::string& input(int i) const { return inputs_[i]; }
  // The value of input i when it is an initializer, else nullptr.
  const Tensor* const_input(int i) const;
  // Input i's dtype as far as the importer knows it (kUndefined otherwise).
  DataType input_dtype(int i) const;
  // Input i's rank when known (-1 otherwise).
  int input_rank(int i) const;
  // Fails unless the node has at least `n` data inputs.
  Status ExpectInputs(int min, int max = -1) const;

  // ---- outputs ----
  // "name:k": the IR value for TF output k.
  std::string Output(int k) const { return name() + ":" + std::to_string(k); }
  // True when some NodeDef reads output k of this node.
  bool OutputUsed(int k) const;
  // Records what is known of output k (dtype, and rank when >= 0) for later handlers.
  void SetOutputType(int k, DataType dtype, int rank = -1);

  // ---- attributes (default = TF's OpDef default) ----
  bool HasAttr(const std::string& a) const { return def_->attr().count(a) > 0; }
  int64_t Int(const std::string& a, int64_t dflt) const;
  float Float(const std::string& a, float dflt) const;
  bool Bool(const std::string& a, bool dflt) const;
  std::string Str(const std::string& a, const std::string& dflt) const;
  std::vector<int64_t> Ints(const std::string& a, std::vector<int64_t> dflt = {}) const;
  std::vector<std::string> Strs(const std::string& a) const;
  // A type attribute as a kiln dtype; `dflt` when missing; Unimplemented when kiln lacks it.
  StatusOr<DataType> Type(const std::string& a, DataType dflt = DataType::kUndefined) const;

  // ---- emitting ----
  // Adds a node. The first node a handler emits is named like the NodeDef, later ones get
  // unique derived names. Returns the node (valid until the next Emit).
  Node& Emit(const std::string& op_type, std::vector<std::string> inputs,
             std::vector<std::string> outputs, AttrMap attrs = {},
             const std::string& domain = "");
  // Emits a single-output node writing a fresh intermediate value; returns that value.
  std::string EmitTemp(const std::string& op_type, std::vector<std::string> inputs,
                       AttrMap attrs = {}, const std::string& domain = "");
  // A fresh value name derived from the node's name.
  std::string Temp(const std::string& hint);
  // Adds `t` as a new initializer (no provenance); returns its name.
  std::string Const(const std::string& hint, Tensor t);
  // Input i as a 1-D int64 tensor (constant folded when possible, else Cast/Reshape nodes).
  std::string Int64Vector(int i);
  // Input i's value as int64s when it is constant.
  std::optional<std::vector<int64_t>> ConstInts(int i) const;

  // ---- control flow (handlers/control_flow.cc) ----
  // The library function named by func attribute `a` (list attributes: `list_index`), or an
  // error naming the node and the function.
  StatusOr<const tfpb::FunctionDef*> FunctionAttr(const std::string& a, int list_index = -1) const;
  // The GraphDef's function library by name.
  const std::map<std::string, const tfpb::FunctionDef*>& Functions() const;
  // A fresh node-name prefix "<node>/<hint>" reserved in the graph's name set.
  std::string UniquePrefix(const std::string& hint);
  // Imports `nodes` (a GraphDef fragment over the same function library, names already unique)
  // as an IR subgraph. Each `args` entry is a Placeholder (name, dtype): with `outer` empty it
  // is a subgraph input (in order); else it is an Identity reading the enclosing-scope value
  // `outer`. The subgraph's outputs are the tensor refs `rets`, each through an Identity named
  // "<prefix>ret_k". Errors name this node.
  struct SubgraphArg {
    std::string name;
    tfpb::DataType dtype = tfpb::DT_INVALID;
    std::string outer;
  };
  StatusOr<std::shared_ptr<Graph>> ImportSubgraph(const std::string& prefix,
                                                  const std::vector<SubgraphArg>& args,
                                                  std::vector<tfpb::NodeDef> nodes,
                                                  const std::vector<std::string>& rets);
  // Adds a subgraph's nodes, initializers and value infos to the enclosing graph (its names are
  // prefixed, hence unique); its outputs become ordinary values there.
  void Splice(const Graph& g);

  // InvalidArgument / Unimplemented "node 'x' (Op): message".
  Status Error(const std::string& message) const;
  Status Unsupported(const std::string& message) const;

 private:
  Importer* importer_;
  const tfpb::NodeDef* def_;
  std::vector<std::string> inputs_;
  std::shared_ptr<const Provenance> provenance_;
  int emitted_ = 0;
};

using TfHandler = std::function<Status(TfNodeContext&)>;

class TfHandlerRegistry {
 public:
  void Register(const std::string& tf_op, TfHandler handler);
  const TfHandler* Find(const std::string& tf_op) const;
  std::vector<std::string> Ops() const;

  // Every family registered (built once).
  static const TfHandlerRegistry& Global();

 private:
  std::map<std::string, TfHandler> handlers_;
};

void RegisterTfArrayHandlers(TfHandlerRegistry& r);    // array.cc: Identity, Reshape, Concat ...
void RegisterTfMathHandlers(TfHandlerRegistry& r);     // math.cc: elementwise, reductions ...
void RegisterTfNnHandlers(TfHandlerRegistry& r);       // nn.cc: Conv2D, pools, norms, fused ...
void RegisterTfMiscHandlers(TfHandlerRegistry& r);     // misc.cc: images, NMS, quantization ...
void RegisterTfControlFlowHandlers(TfHandlerRegistry& r);  // control_flow.cc: If, While, Case
void RegisterTfTensorArrayHandlers(TfHandlerRegistry& r);  // tensor_array.cc: TensorArray*, TensorList*

// Helpers shared by handlers.
// A scalar / 1-D constant of `dtype` holding `v` (converted).
Tensor ScalarOf(DataType dtype, double v);
// Emits `act` (a TF activation name as in _Fused* fused_ops: Relu, Relu6, Elu, Selu,
// LeakyRelu, Sigmoid, Tanh, Swish, GeluExact, GeluApproximate, Prelu) reading `x`, writing
// `out`. `alpha_value` is the Prelu alpha input (ignored otherwise).
Status EmitActivation(TfNodeContext& ctx, const std::string& act, const std::string& x,
                      const std::string& out, DataType dtype, const std::string& alpha_value = "");

}  // namespace kiln::tfimport
