// The op table (STYLE "each op declared once").
//
// An OpSchema declares one op: its inputs and outputs, attributes with defaults, allowed dtypes,
// shape inference and reference kernel. Families register their ops explicitly
// (RegisterMathOps(OpRegistry&) ...) from one place, register_all.cc — no static initializers.
// The importers, the verifier, the runtime, `kiln inspect` and docs/ops.md all read this table.
//
// Semantics are ONNX's (opset 17+). Where an older opset differs only in where a value lives
// (e.g. `axes` as an attribute before opset 13/18, as an input after), the kernel accepts both.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln {

class KernelContext;
class InferContext;

// A kernel with per-node state (compiled engines, caches). The executor creates one instance
// per node when it compiles a graph and calls Compute from every run, possibly from several
// threads at once: Compute must be thread-safe.
class OpKernel {
 public:
  virtual ~OpKernel() = default;
  virtual Status Compute(KernelContext& ctx) const = 0;
  // True when Compute takes inputs that live on a CUDA device (Tensor::on_device) and may
  // leave outputs there (KernelContext::may_keep_on_device): a CUDA EngineOp. The executor
  // copies device inputs to the host for every other kernel.
  virtual bool TakesDeviceTensors() const { return false; }
};

struct KernelInitContext {
  const Node& node;
  const Graph& graph;  // the graph the node belongs to (its function library included)
  int64_t opset;
};

using KernelFn = std::function<Status(KernelContext&)>;
using KernelFactory = std::function<StatusOr<std::unique_ptr<OpKernel>>(const KernelInitContext&)>;
using InferFn = std::function<Status(InferContext&)>;
using TypeList = std::vector<DataType>;

// Common dtype lists for OpSchema::InputTypes.
const TypeList& FloatTypes();    // float16, bfloat16, float32, float64
const TypeList& NumericTypes();  // FloatTypes + all integer types
const TypeList& AllTypes();      // NumericTypes + bool + string
const TypeList& IndexTypes();    // int32, int64

struct AttrSpec {
  std::string name;
  AttrType type = AttrType::kUndefined;
  bool required = false;
  bool has_default = false;
  Attr default_value;
};

class OpSchema {
 public:
  static constexpr int kVariadic = 1 << 20;

  explicit OpSchema(std::string name, std::string domain = "");

  // --- declaration (builder style) ---
  OpSchema& Doc(std::string doc);
  OpSchema& Inputs(int min, int max);
  OpSchema& Outputs(int min, int max);
  // An attribute with no default; `required` ones must be present on every node.
  OpSchema& AttrNoDefault(const std::string& name, AttrType type, bool required = false);
  OpSchema& AttrDefault(const std::string& name, int64_t value);
  OpSchema& AttrDefault(const std::string& name, float value);
  OpSchema& AttrDefault(const std::string& name, const char* value);
  OpSchema& AttrDefault(const std::string& name, std::vector<int64_t> value);
  OpSchema& AttrDefault(const std::string& name, std::vector<float> value);
  // Allowed dtypes of input `index` (unconstrained when not declared).
  OpSchema& InputTypes(int index, TypeList types);
  OpSchema& Infer(InferFn fn);
  OpSchema& Kernel(KernelFn fn);
  // For ops whose kernel keeps state per node (EngineOp); used instead of Kernel.
  OpSchema& StatefulKernel(KernelFactory factory);
  // The reference kernel handles float16/bfloat16 by computing in float32: when input
  // `type_input` (the one whose type the outputs follow: X for most ops, the scale for
  // DequantizeLinear) is float16/bfloat16, the runtime converts the half inputs to float32,
  // runs the kernel and converts its float32 outputs back to that type.
  OpSchema& PromoteHalfToFloat(int type_input = 0);
  // The kernel takes and makes sequence / optional values (Tensor::is_sequence, is_none:
  // Sequence* ops, Optional*, Identity). Other kernels never see one: RunKernel rejects it.
  OpSchema& NonTensorValues();

  // --- reading ---
  const std::string& name() const { return name_; }
  const std::string& domain() const { return domain_; }
  const std::string& doc() const { return doc_; }
  int min_inputs() const { return min_inputs_; }
  int max_inputs() const { return max_inputs_; }
  int min_outputs() const { return min_outputs_; }
  int max_outputs() const { return max_outputs_; }
  const std::vector<AttrSpec>& attrs() const { return attrs_; }
  const AttrSpec* FindAttr(const std::string& name) const;
  const TypeList* input_types(int index) const;
  const std::map<int, TypeList>& all_input_types() const { return input_types_; }
  const InferFn& infer() const { return infer_; }
  const KernelFn& kernel() const { return kernel_; }
  const KernelFactory& kernel_factory() const { return kernel_factory_; }
  bool promote_half_to_float() const { return promote_half_; }
  int promote_type_input() const { return promote_type_input_; }
  bool non_tensor_values() const { return non_tensor_values_; }

  // Checks a node against this schema: arity, attribute names and types, required attributes.
  Status CheckNode(const Node& node) const;
  // Checks runtime/inferred input dtypes against InputTypes.
  Status CheckInputTypes(const Node& node, const std::vector<DataType>& dtypes) const;

 private:
  std::string name_, domain_, doc_;
  int min_inputs_ = 0, max_inputs_ = 0, min_outputs_ = 1, max_outputs_ = 1;
  std::vector<AttrSpec> attrs_;
  std::map<int, TypeList> input_types_;
  InferFn infer_;
  KernelFn kernel_;
  KernelFactory kernel_factory_;
  bool promote_half_ = false;
  int promote_type_input_ = 0;
  bool non_tensor_values_ = false;
};

class OpRegistry {
 public:
  // Fails on a duplicate (domain, name).
  Status Register(OpSchema schema);
  // "" and "ai.onnx" are the same domain.
  const OpSchema* Find(const std::string& domain, const std::string& name) const;
  // All schemas, sorted by (domain, name).
  std::vector<const OpSchema*> All() const;
  size_t size() const { return schemas_.size(); }

  // The registry with every op family registered (built once, thread-safe), plus the ops
  // layers above ops/ add through AddGlobalOps (the runtime's EngineOp).
  static const OpRegistry& Global();
  // Registers more ops into Global() exactly once per `key` (thread-safe; call before use).
  static void AddGlobalOps(const std::string& key, const std::function<void(OpRegistry&)>& add);

 private:
  std::map<std::pair<std::string, std::string>, std::unique_ptr<OpSchema>> schemas_;
};

// Registers `schema`; a duplicate is a kiln bug and aborts (families call this at startup).
void MustRegister(OpRegistry& registry, OpSchema schema);

// Defined in register_all.cc: calls each family's Register*Ops.
void RegisterAllOps(OpRegistry& registry);

// One function per op family (src/ops/<family>.cc).
void RegisterElementwiseOps(OpRegistry& r);  // Add Sub Mul Div Pow Max Min Sum Mean, unary math
void RegisterActivationOps(OpRegistry& r);   // Relu, Sigmoid, Softplus, Clip, HardSwish, ...
void RegisterLogicalOps(OpRegistry& r);      // Equal Less Greater ... And Or Not Where
void RegisterConvOps(OpRegistry& r);         // Conv ConvTranspose
void RegisterPoolOps(OpRegistry& r);         // MaxPool AveragePool Global*Pool
void RegisterNormOps(OpRegistry& r);         // BatchNormalization InstanceNorm LayerNorm LRN
void RegisterLinalgOps(OpRegistry& r);       // Gemm MatMul Einsum
void RegisterShapeOps(OpRegistry& r);        // Reshape Flatten Squeeze Unsqueeze Shape Size ...
void RegisterTensorOps(OpRegistry& r);       // Concat Split Slice Gather Pad Tile Expand ...
void RegisterReduceOps(OpRegistry& r);       // Reduce* ArgMax ArgMin Softmax LogSoftmax CumSum
void RegisterMiscOps(OpRegistry& r);         // TopK NonMaxSuppression Resize ...
void RegisterQuantOps(OpRegistry& r);        // QuantizeLinear DequantizeLinear
void RegisterRnnOps(OpRegistry& r);          // LSTM GRU
void RegisterTfCompatOps(OpRegistry& r);     // kiln-domain ops for TF semantics ONNX lacks
void RegisterExtraOps(OpRegistry& r);        // Dropout GridSample windows DFT Det MaxUnpool ...
void RegisterSequenceOps(OpRegistry& r);     // Sequence*, SplitToSequence, Optional* (non-tensors)
void RegisterLossOps(OpRegistry& r);         // SoftmaxCrossEntropyLoss NegativeLogLikelihoodLoss
void RegisterTextOps(OpRegistry& r);         // StringNormalizer TfIdfVectorizer

}  // namespace kiln
