// What a reference kernel and a shape function see of the node they run for.
//
// KernelContext: the node's input tensors, its attributes (with the schema's defaults filled
// in), and its outputs to allocate or set. InferContext: the same for static shape inference,
// with partial shapes and, where known, constant input values.
//
// Errors a kernel returns should use ctx.Error(...), which prefixes the node's description so
// the message names the user's node and op.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"
#include "ops/base/op_schema.h"

namespace kiln {

// Attribute access shared by both contexts: a node's value, else the schema default.
class AttrReader {
 public:
  AttrReader(const Node& node, const OpSchema& schema) : node_(&node), schema_(&schema) {}

  const Node& node() const { return *node_; }
  const OpSchema& schema() const { return *schema_; }
  // True when the node itself sets the attribute (defaults don't count).
  bool HasAttr(const std::string& name) const { return node_->FindAttr(name) != nullptr; }
  // The node's value or the schema's default; zero/empty when neither exists.
  int64_t GetInt(const std::string& name) const;
  float GetFloat(const std::string& name) const;
  std::string GetString(const std::string& name) const;
  std::vector<int64_t> GetInts(const std::string& name) const;
  std::vector<float> GetFloats(const std::string& name) const;
  std::vector<std::string> GetStrings(const std::string& name) const;
  const Tensor* GetTensor(const std::string& name) const;  // nullptr when absent

  // InvalidArgument("node 'x' (Op): message").
  Status Error(const std::string& message) const;
  // Unimplemented("node 'x' (Op): message").
  Status UnimplementedError(const std::string& message) const;

 private:
  const Attr* Lookup(const std::string& name) const;
  const Node* node_;
  const OpSchema* schema_;
};

class KernelContext : public AttrReader {
 public:
  KernelContext(const Node& node, const OpSchema& schema, int64_t opset,
                std::vector<const Tensor*> inputs, std::vector<Tensor>* outputs)
      : AttrReader(node, schema), opset_(opset), inputs_(std::move(inputs)), outputs_(outputs) {}

  // ONNX opset of the model (the default domain).
  int64_t opset() const { return opset_; }
  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  // False for absent optional inputs (an empty name, or beyond the node's input list).
  bool has_input(int i) const {
    return i >= 0 && i < num_inputs() && inputs_[i] != nullptr && inputs_[i]->defined();
  }
  // Only valid when has_input(i).
  const Tensor& input(int i) const { return *inputs_[i]; }
  int num_outputs() const { return static_cast<int>(outputs_->size()); }
  // Allocates output i (zero-filled). Fails if the size is invalid or over the cap.
  StatusOr<Tensor*> AllocateOutput(int i, DataType dtype, std::vector<int64_t> dims);
  // Sets output i to an existing tensor (e.g. a reshaped view of an input: no copy).
  void SetOutput(int i, Tensor t) { (*outputs_)[i] = std::move(t); }
  Tensor& output(int i) { return (*outputs_)[i]; }
  // True when output i may stay in a CUDA device's memory: every reader of it takes device
  // tensors (OpKernel::TakesDeviceTensors) and, if it is fetched, the run asked for device
  // outputs (RunOptions::outputs_on_device). Only such kernels are asked.
  bool may_keep_on_device(int i) const {
    return keep_on_device_ != nullptr && i >= 0 && i < static_cast<int>(keep_on_device_->size()) &&
           (*keep_on_device_)[i];
  }
  void set_keep_on_device(const std::vector<bool>* keep) { keep_on_device_ = keep; }

 private:
  int64_t opset_;
  std::vector<const Tensor*> inputs_;
  std::vector<Tensor>* outputs_;
  const std::vector<bool>* keep_on_device_ = nullptr;
};

class InferContext : public AttrReader {
 public:
  InferContext(const Node& node, const OpSchema& schema, int64_t opset,
               std::vector<ValueInfo> inputs, std::vector<const Tensor*> constant_inputs,
               std::vector<ValueInfo>* outputs)
      : AttrReader(node, schema),
        opset_(opset),
        inputs_(std::move(inputs)),
        constants_(std::move(constant_inputs)),
        outputs_(outputs) {}

  int64_t opset() const { return opset_; }
  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  bool has_input(int i) const {
    return i >= 0 && i < num_inputs() && inputs_[i].dtype != DataType::kUndefined;
  }
  DataType input_dtype(int i) const {
    return i < num_inputs() ? inputs_[i].dtype : DataType::kUndefined;
  }
  const Shape& input_shape(int i) const;
  // The value of input i when it is statically known (initializer or folded constant).
  const Tensor* constant_input(int i) const {
    return i >= 0 && i < static_cast<int>(constants_.size()) ? constants_[i] : nullptr;
  }
  int num_outputs() const { return static_cast<int>(outputs_->size()); }
  void SetOutput(int i, DataType dtype, Shape shape) {
    if (i < num_outputs()) (*outputs_)[i] = ValueInfo{dtype, std::move(shape)};
  }

 private:
  int64_t opset_;
  std::vector<ValueInfo> inputs_;
  std::vector<const Tensor*> constants_;
  std::vector<ValueInfo>* outputs_;
};

// Runs `schema`'s reference kernel for `node`: checks input dtypes, applies half->float
// promotion when the schema asks for it, and checks that every declared output was produced.
// `outputs` is resized to node.outputs.size(). Used by the executor and by op tests alike.
Status RunKernel(const OpSchema& schema, const Node& node, int64_t opset,
                 const std::vector<const Tensor*>& inputs, std::vector<Tensor>* outputs);

// Runs `schema`'s shape function (if any) for `node`. Outputs it does not set stay unknown.
Status RunInfer(const OpSchema& schema, const Node& node, int64_t opset,
                const std::vector<ValueInfo>& inputs, const std::vector<const Tensor*>& constants,
                std::vector<ValueInfo>* outputs);

}  // namespace kiln
