#include "ir/graph.h"

#include <algorithm>
#include <queue>
#include <set>
#include <sstream>

namespace kiln {

const char* AttrTypeName(AttrType t) {
  switch (t) {
    case AttrType::kUndefined: return "undefined";
    case AttrType::kFloat: return "float";
    case AttrType::kInt: return "int";
    case AttrType::kString: return "string";
    case AttrType::kTensor: return "tensor";
    case AttrType::kGraph: return "graph";
    case AttrType::kFloats: return "floats";
    case AttrType::kInts: return "ints";
    case AttrType::kStrings: return "strings";
  }
  return "invalid";
}

Attr Attr::Int(int64_t v) {
  Attr a;
  a.type = AttrType::kInt;
  a.i = v;
  return a;
}
Attr Attr::Float(float v) {
  Attr a;
  a.type = AttrType::kFloat;
  a.f = v;
  return a;
}
Attr Attr::String(std::string v) {
  Attr a;
  a.type = AttrType::kString;
  a.s = std::move(v);
  return a;
}
Attr Attr::Ints(std::vector<int64_t> v) {
  Attr a;
  a.type = AttrType::kInts;
  a.ints = std::move(v);
  return a;
}
Attr Attr::Floats(std::vector<float> v) {
  Attr a;
  a.type = AttrType::kFloats;
  a.floats = std::move(v);
  return a;
}
Attr Attr::Strings(std::vector<std::string> v) {
  Attr a;
  a.type = AttrType::kStrings;
  a.strings = std::move(v);
  return a;
}
Attr Attr::TensorValue(Tensor v) {
  Attr a;
  a.type = AttrType::kTensor;
  a.t = std::move(v);
  return a;
}
Attr Attr::GraphValue(std::shared_ptr<Graph> v) {
  Attr a;
  a.type = AttrType::kGraph;
  a.g = std::move(v);
  return a;
}

std::string Attr::ToString() const {
  std::ostringstream os;
  auto list = [&os](const auto& v, auto fmt) {
    os << "[";
    for (size_t k = 0; k < v.size(); ++k) {
      if (k) os << ",";
      fmt(v[k]);
    }
    os << "]";
  };
  switch (type) {
    case AttrType::kInt: os << i; break;
    case AttrType::kFloat: os << f; break;
    case AttrType::kString: os << '"' << s << '"'; break;
    case AttrType::kInts: list(ints, [&](int64_t x) { os << x; }); break;
    case AttrType::kFloats: list(floats, [&](float x) { os << x; }); break;
    case AttrType::kStrings: list(strings, [&](const std::string& x) { os << '"' << x << '"'; }); break;
    case AttrType::kTensor: os << t.TypeString(); break;
    case AttrType::kGraph: os << "graph(" << (g ? g->name : "null") << ")"; break;
    case AttrType::kUndefined: os << "?"; break;
  }
  return os.str();
}

bool Attr::operator==(const Attr& o) const {
  if (type != o.type) return false;
  switch (type) {
    case AttrType::kInt: return i == o.i;
    case AttrType::kFloat: return f == o.f || (f != f && o.f != o.f);
    case AttrType::kString: return s == o.s;
    case AttrType::kInts: return ints == o.ints;
    case AttrType::kFloats: return floats == o.floats;
    case AttrType::kStrings: return strings == o.strings;
    case AttrType::kTensor: return t.BitwiseEqual(o.t);
    case AttrType::kGraph: return g == o.g;
    case AttrType::kUndefined: return true;
  }
  return false;
}

const Attr* Node::FindAttr(const std::string& attr_name) const {
  auto it = attrs.find(attr_name);
  return it == attrs.end() ? nullptr : &it->second;
}

std::string Node::Describe() const {
  std::string op = domain.empty() ? op_type : domain + "." + op_type;
  std::string s = "node '" + name + "' (" + op;
  if (provenance && !provenance->original_op.empty() && provenance->original_op != op_type) {
    s += ", from " + provenance->format + " " + provenance->original_op;
  }
  return s + ")";
}

int64_t Graph::onnx_opset() const {
  auto it = opset_imports.find("");
  if (it == opset_imports.end()) it = opset_imports.find("ai.onnx");
  return it == opset_imports.end() ? 17 : it->second;
}

const ValueInfo* Graph::FindValueInfo(const std::string& value) const {
  auto it = value_info.find(value);
  return it == value_info.end() ? nullptr : &it->second;
}

bool Graph::IsGraphInput(const std::string& value) const {
  return std::find(inputs.begin(), inputs.end(), value) != inputs.end();
}

std::unordered_map<std::string, int> Graph::ProducerIndex() const {
  std::unordered_map<std::string, int> producer;
  for (size_t n = 0; n < nodes.size(); ++n) {
    for (const auto& out : nodes[n].outputs) {
      if (!out.empty()) producer.emplace(out, static_cast<int>(n));
    }
  }
  return producer;
}

namespace {

// Adds to `reads` what `g` reads from outside itself (see OuterScopeReads).
void CollectOuterReads(const Graph& g, std::set<std::string>* reads) {
  std::set<std::string> defined(g.inputs.begin(), g.inputs.end());
  for (const auto& [name, t] : g.initializers) defined.insert(name);
  for (const Node& n : g.nodes) {
    for (const auto& out : n.outputs) {
      if (!out.empty()) defined.insert(out);
    }
  }
  auto read = [&](const std::string& v) {
    if (!v.empty() && !defined.count(v)) reads->insert(v);
  };
  for (const Node& n : g.nodes) {
    for (const auto& in : n.inputs) read(in);
    std::set<std::string> nested;
    for (const auto& [key, attr] : n.attrs) {
      if (attr.type == AttrType::kGraph && attr.g) CollectOuterReads(*attr.g, &nested);
    }
    for (const auto& v : nested) read(v);
  }
  for (const auto& out : g.outputs) read(out);
}

}  // namespace

std::vector<std::string> OuterScopeReads(const Node& node) {
  std::set<std::string> reads;
  for (const auto& [key, attr] : node.attrs) {
    if (attr.type == AttrType::kGraph && attr.g) CollectOuterReads(*attr.g, &reads);
  }
  return std::vector<std::string>(reads.begin(), reads.end());
}

StatusOr<std::vector<int>> Graph::TopologicalOrder() const {
  const int n = static_cast<int>(nodes.size());
  auto producer = ProducerIndex();
  std::vector<int> pending(n, 0);
  std::vector<std::vector<int>> users(n);
  for (int k = 0; k < n; ++k) {
    std::set<int> deps;
    for (const auto& in : nodes[k].inputs) {
      if (in.empty()) continue;
      auto it = producer.find(in);
      if (it != producer.end()) deps.insert(it->second);
    }
    for (const auto& in : OuterScopeReads(nodes[k])) {  // a subgraph's reads order it too
      auto it = producer.find(in);
      if (it != producer.end() && it->second != k) deps.insert(it->second);
    }
    pending[k] = static_cast<int>(deps.size());
    for (int d : deps) users[d].push_back(k);
  }
  // Min-heap on the original position keeps the order stable and deterministic.
  std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
  for (int k = 0; k < n; ++k) {
    if (pending[k] == 0) ready.push(k);
  }
  std::vector<int> order;
  order.reserve(n);
  while (!ready.empty()) {
    int k = ready.top();
    ready.pop();
    order.push_back(k);
    for (int u : users[k]) {
      if (--pending[u] == 0) ready.push(u);
    }
  }
  if (static_cast<int>(order.size()) != n) {
    std::string names;
    int shown = 0;
    for (int k = 0; k < n && shown < 8; ++k) {
      if (pending[k] > 0) {
        names += (shown++ ? ", " : "") + nodes[k].Describe();
      }
    }
    return InvalidArgument("graph '" + name + "' has a cycle through " + names);
  }
  return order;
}

Status Graph::SortTopologically() {
  KILN_ASSIGN_OR_RETURN(std::vector<int> order, TopologicalOrder());
  std::vector<Node> sorted;
  sorted.reserve(nodes.size());
  for (int k : order) sorted.push_back(std::move(nodes[k]));
  nodes = std::move(sorted);
  return Status::OK();
}

std::string Graph::ResolveName(const std::string& asked) const {
  auto names_value = [this](const std::string& v) {
    if (IsGraphInput(v) || IsInitializer(v) || value_info.count(v)) return true;
    for (const auto& node : nodes) {
      for (const auto& out : node.outputs) {
        if (out == v) return true;
      }
    }
    return false;
  };
  if (names_value(asked)) return asked;
  if (names_value(asked + ":0")) return asked + ":0";
  for (const char* kind : {"signature.input.", "signature.output."}) {
    auto it = metadata.find(kind + asked);
    if (it != metadata.end()) return it->second;
  }
  return asked;
}

std::string Graph::UniqueName(const std::string& prefix) const {
  std::set<std::string> used;
  for (const auto& node : nodes) {
    used.insert(node.name);
    for (const auto& o : node.outputs) used.insert(o);
  }
  for (const auto& i : inputs) used.insert(i);
  for (const auto& [k, v] : initializers) used.insert(k);
  if (!used.count(prefix)) return prefix;
  for (int k = 1;; ++k) {
    std::string candidate = prefix + "_" + std::to_string(k);
    if (!used.count(candidate)) return candidate;
  }
}

std::string Graph::Dump() const {
  std::ostringstream os;
  auto type_of = [this](const std::string& v) {
    auto it = initializers.find(v);
    if (it != initializers.end()) return it->second.TypeString();
    const ValueInfo* vi = FindValueInfo(v);
    if (vi == nullptr) return std::string("?");
    return std::string(DataTypeName(vi->dtype)) + vi->shape.ToString();
  };
  os << "graph " << (name.empty() ? "<unnamed>" : name) << " (opset " << onnx_opset() << ")\n";
  for (const auto& in : inputs) os << "  input  %" << in << " : " << type_of(in) << "\n";
  for (const auto& [k, v] : initializers) os << "  const  %" << k << " : " << v.TypeString() << "\n";
  for (const auto& node : nodes) {
    os << "  ";
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      os << (k ? ", " : "") << "%" << node.outputs[k];
    }
    os << " = " << (node.domain.empty() ? "" : node.domain + ".") << node.op_type << "(";
    for (size_t k = 0; k < node.inputs.size(); ++k) {
      os << (k ? ", " : "") << (node.inputs[k].empty() ? "<none>" : "%" + node.inputs[k]);
    }
    os << ")";
    if (!node.attrs.empty()) {
      os << " {";
      bool first = true;
      for (const auto& [k, v] : node.attrs) {
        os << (first ? "" : ", ") << k << "=" << v.ToString();
        first = false;
      }
      os << "}";
    }
    os << "  # " << node.name << "\n";
  }
  for (const auto& out : outputs) os << "  output %" << out << " : " << type_of(out) << "\n";
  return os.str();
}

}  // namespace kiln
