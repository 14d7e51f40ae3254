#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <mutex>

#include "core/logging.h"
#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"

namespace kiln {

// ----------------------------------------------------------------------------- type lists

const TypeList& FloatTypes() {
  static const TypeList t = {DataType::kFloat16, DataType::kBFloat16, DataType::kFloat32,
                             DataType::kFloat64};
  return t;
}
const TypeList& NumericTypes() {
  static const TypeList t = {DataType::kFloat16, DataType::kBFloat16, DataType::kFloat32,
                             DataType::kFloat64, DataType::kInt8,     DataType::kInt16,
                             DataType::kInt32,   DataType::kInt64,    DataType::kUInt8,
                             DataType::kUInt16,  DataType::kUInt32,   DataType::kUInt64};
  return t;
}
const TypeList& AllTypes() {
  static const TypeList t = [] {
    TypeList all = NumericTypes();
    all.push_back(DataType::kBool);
    all.push_back(DataType::kString);
    return all;
  }();
  return t;
}
const TypeList& IndexTypes() {
  static const TypeList t = {DataType::kInt32, DataType::kInt64};
  return t;
}

// ----------------------------------------------------------------------------- OpSchema

OpSchema::OpSchema(std::string name, std::string domain)
    : name_(std::move(name)), domain_(domain == "ai.onnx" ? "" : std::move(domain)) {}

OpSchema& OpSchema::Doc(std::string doc) {
  doc_ = std::move(doc);
  return *this;
}
OpSchema& OpSchema::Inputs(int min, int max) {
  min_inputs_ = min;
  max_inputs_ = max;
  return *this;
}
OpSchema& OpSchema::Outputs(int min, int max) {
  min_outputs_ = min;
  max_outputs_ = max;
  return *this;
}
OpSchema& OpSchema::AttrNoDefault(const std::string& name, AttrType type, bool required) {
  attrs_.push_back(AttrSpec{name, type, required, false, Attr()});
  return *this;
}
OpSchema& OpSchema::AttrDefault(const std::string& name, int64_t value) {
  attrs_.push_back(AttrSpec{name, AttrType::kInt, false, true, Attr::Int(value)});
  return *this;
}
OpSchema& OpSchema::AttrDefault(const std::string& name, float value) {
  attrs_.push_back(AttrSpec{name, AttrType::kFloat, false, true, Attr::Float(value)});
  return *this;
}
OpSchema& OpSchema::AttrDefault(const std::string& name, const char* value) {
  attrs_.push_back(AttrSpec{name, AttrType::kString, false, true, Attr::String(value)});
  return *this;
}
OpSchema& OpSchema::AttrDefault(const std::string& name, std::vector<int64_t> value) {
  attrs_.push_back(AttrSpec{name, AttrType::kInts, false, true, Attr::Ints(std::move(value))});
  return *this;
}
OpSchema& OpSchema::AttrDefault(const std::string& name, std::vector<float> value) {
  attrs_.push_back(
      AttrSpec{name, AttrType::kFloats, false, true, Attr::Floats(std::move(value))});
  return *this;
}
OpSchema& OpSchema::InputTypes(int index, TypeList types) {
  input_types_[index] = std::move(types);
  return *this;
}
OpSchema& OpSchema::Infer(InferFn fn) {
  infer_ = std::move(fn);
  return *this;
}
OpSchema& OpSchema::Kernel(KernelFn fn) {
  kernel_ = std::move(fn);
  return *this;
}
OpSchema& OpSchema::StatefulKernel(KernelFactory factory) {
  kernel_factory_ = std::move(factory);
  return *this;
}
OpSchema& OpSchema::PromoteHalfToFloat(int type_input) {
  promote_half_ = true;
  promote_type_input_ = type_input;
  return *this;
}

OpSchema& OpSchema::NonTensorValues() {
  non_tensor_values_ = true;
  return *this;
}

const AttrSpec* OpSchema::FindAttr(const std::string& name) const {
  for (const auto& a : attrs_) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

const TypeList* OpSchema::input_types(int index) const {
  auto it = input_types_.find(index);
  return it == input_types_.end() ? nullptr : &it->second;
}

Status OpSchema::CheckNode(const Node& node) const {
  const std::string who = node.Describe();
  int n_in = static_cast<int>(node.inputs.size());
  // Trailing absent optional inputs do not count.
  while (n_in > 0 && node.inputs[n_in - 1].empty()) --n_in;
  if (n_in < min_inputs_ || n_in > max_inputs_) {
    return InvalidArgument(who + " has " + std::to_string(n_in) + " inputs; " + name_ +
                           " takes " + std::to_string(min_inputs_) +
                           (max_inputs_ == kVariadic ? " or more"
                                                     : " to " + std::to_string(max_inputs_)));
  }
  for (int i = 0; i < std::min(n_in, min_inputs_); ++i) {
    if (node.inputs[i].empty()) {
      return InvalidArgument(who + ": required input " + std::to_string(i) + " is missing");
    }
  }
  int n_out = static_cast<int>(node.outputs.size());
  if (n_out < min_outputs_ || n_out > max_outputs_) {
    return InvalidArgument(who + " has " + std::to_string(n_out) + " outputs; " + name_ +
                           " produces " + std::to_string(min_outputs_) +
                           (max_outputs_ == kVariadic ? " or more"
                                                      : " to " + std::to_string(max_outputs_)));
  }
  for (const auto& [attr_name, attr] : node.attrs) {
    const AttrSpec* spec = FindAttr(attr_name);
    if (spec == nullptr) {
      return Unimplemented(who + ": unknown attribute '" + attr_name + "'");
    }
    if (spec->type != attr.type) {
      return InvalidArgument(who + ": attribute '" + attr_name + "' should be " +
                             AttrTypeName(spec->type) + ", got " + AttrTypeName(attr.type));
    }
  }
  for (const auto& spec : attrs_) {
    if (spec.required && node.FindAttr(spec.name) == nullptr) {
      return InvalidArgument(who + ": required attribute '" + spec.name + "' is missing");
    }
  }
  return Status::OK();
}

Status OpSchema::CheckInputTypes(const Node& node, const std::vector<DataType>& dtypes) const {
  for (const auto& [index, types] : input_types_) {
    if (index >= static_cast<int>(dtypes.size()) || dtypes[index] == DataType::kUndefined) {
      continue;
    }
    if (std::find(types.begin(), types.end(), dtypes[index]) == types.end()) {
      return Unimplemented(node.Describe() + ": input " + std::to_string(index) + " has type " +
                           DataTypeName(dtypes[index]) + ", which " + name_ +
                           " does not support");
    }
  }
  return Status::OK();
}

// ----------------------------------------------------------------------------- OpRegistry

Status OpRegistry::Register(OpSchema schema) {
  auto key = std::make_pair(schema.domain(), schema.name());
  if (schemas_.count(key)) {
    return Internal("op " + schema.name() + " is registered twice");
  }
  schemas_[key] = std::make_unique<OpSchema>(std::move(schema));
  return Status::OK();
}

void MustRegister(OpRegistry& registry, OpSchema schema) {
  Status st = registry.Register(std::move(schema));
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    KILN_DCHECK(st.ok());
  }
}

const OpSchema* OpRegistry::Find(const std::string& domain, const std::string& name) const {
  auto it = schemas_.find({domain == "ai.onnx" ? "" : domain, name});
  return it == schemas_.end() ? nullptr : it->second.get();
}

std::vector<const OpSchema*> OpRegistry::All() const {
  std::vector<const OpSchema*> out;
  for (const auto& [k, v] : schemas_) out.push_back(v.get());
  return out;
}

// ----------------------------------------------------------------------------- contexts

const Attr* AttrReader::Lookup(const std::string& name) const {
  if (const Attr* a = node_->FindAttr(name)) return a;
  const AttrSpec* spec = schema_->FindAttr(name);
  if (spec != nullptr && spec->has_default) return &spec->default_value;
  return nullptr;
}

int64_t AttrReader::GetInt(const std::string& name) const {
  const Attr* a = Lookup(name);
  return a ? a->i : 0;
}
float AttrReader::GetFloat(const std::string& name) const {
  const Attr* a = Lookup(name);
  return a ? a->f : 0.0f;
}
std::string AttrReader::GetString(const std::string& name) const {
  const Attr* a = Lookup(name);
  return a ? a->s : std::string();
}
std::vector<int64_t> AttrReader::GetInts(const std::string& name) const {
  const Attr* a = Lookup(name);
  return a ? a->ints : std::vector<int64_t>();
}
std::vector<float> AttrReader::GetFloats(const std::string& name) const {
  const Attr* a = Lookup(name);
  return a ? a->floats : std::vector<float>();
}
std::vector<std::string> AttrReader::GetStrings(const std::string& name) const {
  const Attr* a = Lookup(name);
  return a ? a->strings : std::vector<std::string>();
}
const Tensor* AttrReader::GetTensor(const std::string& name) const {
  const Attr* a = Lookup(name);
  return a && a->type == AttrType::kTensor ? &a->t : nullptr;
}
Status AttrReader::Error(const std::string& message) const {
  return InvalidArgument(node_->Describe() + ": " + message);
}
Status AttrReader::UnimplementedError(const std::string& message) const {
  return Unimplemented(node_->Describe() + ": " + message);
}

StatusOr<Tensor*> KernelContext::AllocateOutput(int i, DataType dtype,
                                                std::vector<int64_t> dims) {
  if (i < 0 || i >= num_outputs()) {
    return Internal(node().Describe() + ": output index " + std::to_string(i) + " out of range");
  }
  auto t = Tensor::Create(dtype, std::move(dims));
  if (!t.ok()) return t.status().WithContext(node().Describe());
  (*outputs_)[i] = std::move(t).value();
  return &(*outputs_)[i];
}

const Shape& InferContext::input_shape(int i) const {
  static const Shape kUnknown;
  return i < num_inputs() ? inputs_[i].shape : kUnknown;
}

// ----------------------------------------------------------------------------- running

namespace {

bool IsHalf(DataType t) { return t == DataType::kFloat16 || t == DataType::kBFloat16; }

}  // namespace

Status RunKernel(const OpSchema& schema, const Node& node, int64_t opset,
                 const std::vector<const Tensor*>& inputs, std::vector<Tensor>* outputs) {
  if (!schema.kernel()) {
    return Unimplemented(node.Describe() + ": op has no reference kernel");
  }
  std::vector<DataType> dtypes;
  dtypes.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor* t = inputs[i];
    if (t != nullptr && !t->is_tensor() && !schema.non_tensor_values()) {
      return InvalidArgument(node.Describe() + ": input " + std::to_string(i) + " is a " +
                             (t->is_sequence() ? "sequence" : "empty optional") + " (" +
                             t->TypeString() + "); the op takes tensors");
    }
    dtypes.push_back(t ? t->dtype() : DataType::kUndefined);
  }
  KILN_RETURN_IF_ERROR(schema.CheckInputTypes(node, dtypes));
  outputs->assign(node.outputs.size(), Tensor());

  // Promotion follows the input the outputs take their type from: its half type is restored
  // on float32 outputs. A half-typed side input (e.g. Resize's roi) next to float32 data is
  // left alone.
  DataType half_type = DataType::kUndefined;
  const size_t governing = static_cast<size_t>(schema.promote_type_input());
  if (schema.promote_half_to_float() && governing < dtypes.size() && IsHalf(dtypes[governing])) {
    half_type = dtypes[governing];
  }
  if (half_type == DataType::kUndefined) {
    KernelContext ctx(node, schema, opset, inputs, outputs);
    KILN_RETURN_IF_ERROR(schema.kernel()(ctx));
  } else {
    std::vector<Tensor> promoted(inputs.size());
    std::vector<const Tensor*> args(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i] != nullptr && IsHalf(inputs[i]->dtype())) {
        KILN_ASSIGN_OR_RETURN(promoted[i], ConvertTensor(*inputs[i], DataType::kFloat32));
        args[i] = &promoted[i];
      } else {
        args[i] = inputs[i];
      }
    }
    KernelContext ctx(node, schema, opset, args, outputs);
    KILN_RETURN_IF_ERROR(schema.kernel()(ctx));
    for (auto& out : *outputs) {
      if (out.defined() && out.dtype() == DataType::kFloat32) {
        KILN_ASSIGN_OR_RETURN(out, ConvertTensor(out, half_type));
      }
    }
  }
  for (size_t i = 0; i < outputs->size(); ++i) {
    if (!node.outputs[i].empty() && !(*outputs)[i].defined() &&
        static_cast<int>(i) < schema.min_outputs()) {
      return Internal(node.Describe() + ": kernel did not produce output " + std::to_string(i));
    }
  }
  return Status::OK();
}

Status RunInfer(const OpSchema& schema, const Node& node, int64_t opset,
                const std::vector<ValueInfo>& inputs, const std::vector<const Tensor*>& constants,
                std::vector<ValueInfo>* outputs) {
  outputs->assign(node.outputs.size(), ValueInfo());
  if (!schema.infer()) return Status::OK();
  InferContext ctx(node, schema, opset, inputs, constants, outputs);
  return schema.infer()(ctx);
}

}  // namespace kiln
