#include "convert/convert_bodies.h"

#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "core/logging.h"
#include "ops/base/op_schema.h"
#include "ops/base/verify.h"
#include "passes/pass.h"

namespace kiln {
namespace {

bool IsBodyOp(const Node& n) {
  return n.domain.empty() && (n.op_type == "If" || n.op_type == "Loop" || n.op_type == "Scan");
}

// What `g` reads from enclosing scopes (OuterScopeReads of a node holding it).
std::vector<std::string> OuterReadsOf(const std::shared_ptr<Graph>& g) {
  Node holder;
  holder.attrs["g"] = Attr::GraphValue(g);
  return OuterScopeReads(holder);
}

// Every value `g` reads: node inputs, nested subgraphs' outer reads, outputs.
std::set<std::string> ReadsOf(const Graph& g) {
  std::set<std::string> reads(g.outputs.begin(), g.outputs.end());
  for (const auto& n : g.nodes) {
    for (const auto& in : n.inputs) {
      if (!in.empty()) reads.insert(in);
    }
    for (const auto& v : OuterScopeReads(n)) reads.insert(v);
  }
  return reads;
}

// The seed for a loop-carried body input: the Loop's initial value's info, with dimensions
// the body declares filled in; nothing when they disagree or the rank is unknown.
std::optional<ValueInfo> Seed(const ValueInfo* declared, const ValueInfo* init) {
  if (init == nullptr || init->dtype == DataType::kUndefined || !init->shape.rank_known()) {
    return std::nullopt;
  }
  if (declared == nullptr || (declared->dtype == DataType::kUndefined &&
                              !declared->shape.rank_known())) {
    return *init;
  }
  if (declared->dtype != DataType::kUndefined && declared->dtype != init->dtype) {
    return std::nullopt;
  }
  if (!declared->shape.rank_known()) return *init;
  if (declared->shape.rank() != init->shape.rank()) return std::nullopt;
  std::vector<int64_t> dims = init->shape.dims();
  for (int d = 0; d < declared->shape.rank(); ++d) {
    const int64_t want = declared->shape.dim(d);
    if (want < 0) continue;
    if (dims[d] >= 0 && dims[d] != want) return std::nullopt;
    dims[d] = want;
  }
  return ValueInfo{init->dtype, Shape(dims)};
}

// Whether `out` (what shape inference gives a loop-carried body output) is at least as
// specific as `seed`: then every iteration's value fits the seed, by induction.
bool FitsSeed(const ValueInfo* out, const ValueInfo& seed) {
  if (out == nullptr || out->dtype != seed.dtype || !out->shape.rank_known() ||
      out->shape.rank() != seed.shape.rank()) {
    return false;
  }
  for (int d = 0; d < seed.shape.rank(); ++d) {
    if (seed.shape.dim(d) >= 0 && out->shape.dim(d) != seed.shape.dim(d)) return false;
  }
  return true;
}

// One body input to seed: its index, what the node feeds it on the first iteration, and the
// body output that feeds it on the next (-1: a fresh value every iteration, no fixed point).
struct SeedSource {
  size_t input;
  std::optional<ValueInfo> first;
  int next_output;
};

// Loop: carried value k (body input k + 2) starts as node input k + 2, continues as body output
// k + 1. Scan (opset 9+): state k starts as node input k, continues as body output k; scan
// input j is node input N + j without its scan axis.
std::vector<SeedSource> SeedSources(const Graph& enclosing, const Node& node, size_t formal) {
  std::vector<SeedSource> out;
  auto info = [&](const std::string& v) -> std::optional<ValueInfo> {
    const ValueInfo* vi = enclosing.FindValueInfo(v);
    if (vi == nullptr) return std::nullopt;
    return *vi;
  };
  if (node.op_type == "Loop") {
    for (size_t k = 2; k < node.inputs.size() && k < formal; ++k) {
      out.push_back({k, info(node.inputs[k]), static_cast<int>(k) - 1});
    }
  } else if (node.op_type == "Scan" && enclosing.onnx_opset() >= 9) {
    const Attr* m_attr = node.FindAttr("num_scan_inputs");
    const int64_t m = m_attr != nullptr ? m_attr->i : 0;
    if (m < 0 || static_cast<size_t>(m) > node.inputs.size() || node.inputs.size() != formal) {
      return out;
    }
    const size_t n = node.inputs.size() - static_cast<size_t>(m);
    for (size_t k = 0; k < n; ++k) out.push_back({k, info(node.inputs[k]), static_cast<int>(k)});
    const Attr* axes = node.FindAttr("scan_input_axes");
    for (size_t j = 0; j < static_cast<size_t>(m); ++j) {
      std::optional<ValueInfo> vi = info(node.inputs[n + j]);
      if (vi && vi->shape.rank_known() && vi->shape.rank() > 0) {
        int64_t axis = axes != nullptr && j < axes->ints.size() ? axes->ints[j] : 0;
        if (axis < 0) axis += vi->shape.rank();
        if (axis < 0 || axis >= vi->shape.rank()) {
          vi.reset();
        } else {
          std::vector<int64_t> dims = vi->shape.dims();
          dims.erase(dims.begin() + axis);
          vi->shape = Shape(dims);
        }
      } else {
        vi.reset();
      }
      out.push_back({n + j, vi, -1});
    }
  }
  return out;
}

// Shape inference of the prepared body `b`, with Loop / Scan inputs seeded from the node's
// inputs where the result is a fixed point (file comment of the header).
Status InferBody(const Graph& enclosing, const Node& node, size_t formal, Graph* b) {
  std::map<std::string, std::pair<ValueInfo, int>> seeded;  // body input -> (seed, next output)
  for (const SeedSource& src : SeedSources(enclosing, node, formal)) {
    const std::string& in = b->inputs[src.input];
    const ValueInfo* declared = b->FindValueInfo(in);
    if (declared != nullptr && declared->shape.fully_known()) continue;
    auto seed = Seed(declared, src.first ? &*src.first : nullptr);
    if (seed) seeded[in] = {*seed, src.next_output};
  }
  if (!seeded.empty()) {
    Graph trial = *b;
    for (const auto& [in, seed] : seeded) trial.value_info[in] = seed.first;
    if (VerifyAndInferShapes(trial, OpRegistry::Global()).ok()) {
      bool fixed_point = true;
      for (const auto& [in, seed] : seeded) {
        const int k = seed.second;
        if (k < 0) continue;
        fixed_point &= k < static_cast<int>(trial.outputs.size()) &&
                       FitsSeed(trial.FindValueInfo(trial.outputs[k]), seed.first);
      }
      if (fixed_point) {
        *b = std::move(trial);
        return Status::OK();
      }
    }
  }
  return VerifyAndInferShapes(*b, OpRegistry::Global());
}

struct BodyContext {
  const std::string& where;
  const SegmentScopeFn& segment;
  ConversionSummary* summary;
};

StatusOr<std::shared_ptr<Graph>> ConvertBody(const Graph& enclosing, const Node& node,
                                             const std::string& attr_name, const Graph& original,
                                             const std::string& scope, const BodyContext& c,
                                             std::set<std::string>* moved_outer);

// Converts the bodies of every control-flow node of `graph` in place (see the header); sets
// *changed when a body got an engine (nested ones included).
Status ConvertBodiesOf(Graph& graph, const std::string& path, const BodyContext& c,
                       std::set<std::string>* moved_outer, bool* changed) {
  for (auto& node : graph.nodes) {
    if (!IsBodyOp(node)) continue;
    for (auto& [attr_name, attr] : node.attrs) {
      if (attr.type != AttrType::kGraph || attr.g == nullptr) continue;
      const std::string scope = path + node.op_type + " '" + node.name + "' " +
                                (attr_name == "body" ? std::string("body") : attr_name);
      KILN_ASSIGN_OR_RETURN(std::shared_ptr<Graph> converted,
                            ConvertBody(graph, node, attr_name, *attr.g, scope, c, moved_outer));
      if (converted != nullptr) {
        attr.g = std::move(converted);
        *changed = true;
      }
    }
  }
  return Status::OK();
}

StatusOr<std::shared_ptr<Graph>> ConvertBody(const Graph& enclosing, const Node& node,
                                             const std::string& attr_name, const Graph& original,
                                             const std::string& scope, const BodyContext& c,
                                             std::set<std::string>* moved_outer) {
  auto leave = [&](const Status& why) -> StatusOr<std::shared_ptr<Graph>> {
    KILN_LOG(INFO) << c.where << ": " << scope << " not segmented: " << why.message();
    c.summary->warnings.push_back(scope + " left as it was (its nodes run natively): " +
                                  why.message());
    return std::shared_ptr<Graph>();
  };
  // Prepare: outer reads become inputs or borrowed initializers.
  auto b = std::make_shared<Graph>(original);
  if (b->opset_imports.empty()) b->opset_imports = enclosing.opset_imports;
  if (b->name.empty()) b->name = node.name + "." + attr_name;
  const size_t num_formal = b->inputs.size();
  std::set<std::string> borrowed;
  for (const auto& r : OuterReadsOf(b)) {
    if (auto it = enclosing.initializers.find(r);
        it != enclosing.initializers.end() && !enclosing.IsGraphInput(r)) {
      b->initializers.emplace(r, it->second);
      borrowed.insert(r);
      continue;
    }
    b->inputs.push_back(r);
    if (b->FindValueInfo(r) == nullptr) {
      if (const ValueInfo* vi = enclosing.FindValueInfo(r)) b->value_info[r] = *vi;
    }
  }
  if (Status st = InferBody(enclosing, node, num_formal, b.get()); !st.ok()) return leave(st);
  {  // clean-up, as at the top level; kept only if it leaves the interface alone
    Graph cleaned = *b;
    PassContext ctx;
    ctx.registry = &OpRegistry::Global();
    ctx.keep.insert(cleaned.outputs.begin(), cleaned.outputs.end());
    ctx.keep.insert(cleaned.inputs.begin(), cleaned.inputs.end());
    PassManager passes = PassManager::Standard();
    Status st = passes.Run(cleaned, ctx);
    if (st.ok() && cleaned.inputs == b->inputs && cleaned.outputs == b->outputs &&
        VerifyAndInferShapes(cleaned, OpRegistry::Global()).ok()) {
      *b = std::move(cleaned);
    }
  }
  // Nested bodies first, then this body's own segments.
  std::set<std::string> moved;
  const size_t summary_lines = c.summary->subgraphs.size();
  bool nested_changed = false;
  KILN_RETURN_IF_ERROR(ConvertBodiesOf(*b, scope + " / ", c, &moved, &nested_changed));
  const int total = static_cast<int>(b->nodes.size());
  int engines = 0, converted = 0;
  Status st = c.segment(*b, scope, &moved, &engines, &converted);
  if (!st.ok()) return st.WithContext(scope);
  c.summary->subgraphs.insert(
      c.summary->subgraphs.begin() + static_cast<std::ptrdiff_t>(summary_lines),
      scope + ": " + std::to_string(engines) + (engines == 1 ? " engine, " : " engines, ") +
          std::to_string(converted) + "/" + std::to_string(total) + " nodes");
  if (engines == 0 && !nested_changed) return std::shared_ptr<Graph>();
  // Undo the preparation: outer values are read from the enclosing scope again.
  const std::set<std::string> reads = ReadsOf(*b);
  for (const auto& name : moved) {
    if (!reads.count(name) && !borrowed.count(name)) b->initializers.erase(name);
  }
  for (const auto& name : borrowed) {
    b->initializers.erase(name);
    if (!reads.count(name)) moved_outer->insert(name);
  }
  b->inputs.resize(num_formal);
  b->opset_imports = original.opset_imports;
  b->name = original.name;
  // Declared infos as the original had them (seeded loop-carried shapes are not declared),
  // for the values the body still has.
  std::set<std::string> live(b->inputs.begin(), b->inputs.end());
  live.insert(b->outputs.begin(), b->outputs.end());
  for (const auto& [name, t] : b->initializers) live.insert(name);
  for (const auto& n : b->nodes) live.insert(n.outputs.begin(), n.outputs.end());
  std::map<std::string, ValueInfo> infos;
  for (const auto& [name, vi] : original.value_info) {
    if (live.count(name)) infos[name] = vi;
  }
  b->value_info = std::move(infos);
  return b;
}

}  // namespace

Status ConvertControlFlowBodies(Graph& graph, const std::string& where,
                                const SegmentScopeFn& segment, ConversionSummary* summary,
                                std::set<std::string>* moved_outer) {
  const BodyContext c{where, segment, summary};
  bool changed = false;
  return ConvertBodiesOf(graph, "", c, moved_outer, &changed);
}

}  // namespace kiln
