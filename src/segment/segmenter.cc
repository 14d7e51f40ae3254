// The segmenter (see segmenter.h for the contract).
//
// Algorithm (TF-TRT's segment.cc): build a "cluster graph" whose vertices start as single nodes
// (identified by their position in Graph::TopologicalOrder, which breaks ties by node index, so
// everything below is deterministic) and whose edges are the data edges, subgraph reads
// included. Visit candidate nodes in topological order; for each, repeatedly contract the
// edges to candidate successor clusters. Contracting A -> B is allowed iff no other path
// A -> x -> ... -> B exists (x outside A ∪ B, supported or not): such a path would become a
// cycle A∪B -> x -> A∪B once A and B are one engine. Contracting keeps the graph a DAG, so the
// check stays a plain reachability search. Clusters are then filtered by size and capped.
#include "segment/segmenter.h"

#include <algorithm>
#include <cstdlib>
#include <iomanip>
#include <numeric>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

namespace kiln {
namespace {

bool IsDefaultDomain(const Node& node) { return node.domain.empty() || node.domain == "ai.onnx"; }

std::string OpName(const Node& node) {
  return IsDefaultDomain(node) ? node.op_type : node.domain + "." + node.op_type;
}

std::set<std::string> EffectiveDenylist(const SegmenterOptions& options) {
  std::set<std::string> denied = options.op_denylist;
  const char* env = std::getenv("KILN_OP_DENYLIST");
  std::stringstream list(env ? env : "");
  std::string item;
  while (std::getline(list, item, ',')) {
    const auto begin = item.find_first_not_of(" \t");
    if (begin == std::string::npos) continue;
    denied.insert(item.substr(begin, item.find_last_not_of(" \t") - begin + 1));
  }
  return denied;
}

// The predicate's message without the "node 'x' (Op): " prefix, so that reasons aggregate
// per op type in the report.
std::string ReasonOf(const Status& status, const Node& node) {
  std::string message = status.message();
  const std::string prefix = node.Describe() + ": ";
  if (message.compare(0, prefix.size(), prefix) == 0) message.erase(0, prefix.size());
  return message.empty() ? StatusCodeName(status.code()) : message;
}

// Names read inside `g`'s nodes and nested subgraphs (outer-scope reads of a subgraph owner).
void CollectReads(const Graph& g, std::set<std::string>* names) {
  for (const Node& node : g.nodes) {
    for (const auto& in : node.inputs) {
      if (!in.empty()) names->insert(in);
    }
    for (const auto& [key, attr] : node.attrs) {
      if (attr.type == AttrType::kGraph && attr.g) CollectReads(*attr.g, names);
    }
  }
  names->insert(g.outputs.begin(), g.outputs.end());
}

// Every value `node` reads: its inputs, then what its subgraphs read (sorted).
std::vector<std::string> ReadsOf(const Node& node) {
  std::vector<std::string> reads;
  for (const auto& in : node.inputs) {
    if (!in.empty()) reads.push_back(in);
  }
  std::set<std::string> nested;
  for (const auto& [key, attr] : node.attrs) {
    if (attr.type == AttrType::kGraph && attr.g) CollectReads(*attr.g, &nested);
  }
  reads.insert(reads.end(), nested.begin(), nested.end());
  return reads;
}

// A DAG of clusters over vertices 0..n-1 with union-find membership. Only representatives
// carry edges; the representative of a cluster is its smallest vertex.
class ClusterGraph {
 public:
  explicit ClusterGraph(int n) : parent_(n), out_(n), in_(n), seen_(n, 0) {
    std::iota(parent_.begin(), parent_.end(), 0);
  }

  void AddEdge(int from, int to) {
    if (from == to) return;
    out_[from].insert(to);
    in_[to].insert(from);
  }

  int Find(int v) {
    while (parent_[v] != v) v = parent_[v] = parent_[parent_[v]];
    return v;
  }

  const std::set<int>& successors(int rep) const { return out_[rep]; }

  // True when the only path from `a` to its successor `b` is the direct edge.
  bool CanContract(int a, int b) {
    ++stamp_;
    std::vector<int> stack;
    for (int s : out_[a]) {
      if (s != b) stack.push_back(s);
    }
    while (!stack.empty()) {
      int v = stack.back();
      stack.pop_back();
      if (v == b) return false;
      if (seen_[v] == stamp_) continue;
      seen_[v] = stamp_;
      stack.insert(stack.end(), out_[v].begin(), out_[v].end());
    }
    return true;
  }

  // Merges clusters `a` and `b` (an edge joins them); returns the new representative.
  int Contract(int a, int b) {
    const int rep = std::min(a, b), gone = std::max(a, b);
    for (int s : out_[gone]) {
      in_[s].erase(gone);
      if (s != rep) AddEdge(rep, s);
    }
    for (int p : in_[gone]) {
      out_[p].erase(gone);
      if (p != rep) AddEdge(p, rep);
    }
    out_[gone].clear();
    in_[gone].clear();
    parent_[gone] = rep;
    return rep;
  }

 private:
  std::vector<int> parent_;
  std::vector<std::set<int>> out_, in_;
  std::vector<int> seen_;
  int stamp_ = 0;
};

struct Cluster {
  std::vector<int> positions;  // topological positions, ascending
  int size = 0;                // nodes counting toward minimum_segment_size
};

}  // namespace

bool IsIdentityLike(const Node& node) {
  return IsDefaultDomain(node) && (node.op_type == "Identity" || node.op_type == "Dropout");
}

StatusOr<SegmentationResult> SegmentGraph(const Graph& graph, const SupportPredicate& supports,
                                          const SegmenterOptions& options) {
  if (options.minimum_segment_size < -1) {
    return InvalidArgument("minimum_segment_size must be >= -1, got " +
                           std::to_string(options.minimum_segment_size));
  }
  if (options.max_engines < 0) {
    return InvalidArgument("max_engines must be >= 0, got " + std::to_string(options.max_engines));
  }
  if (!supports) return InvalidArgument("SegmentGraph needs a support predicate");
  KILN_ASSIGN_OR_RETURN(std::vector<int> order, graph.TopologicalOrder());
  const int n = static_cast<int>(order.size());

  SegmentationResult result;
  NonConversionReport& report = result.report;
  report.total_nodes = n;
  auto reject = [&report](const Node& node, const std::string& reason) {
    ++report.by_op[OpName(node)][reason];
  };
  if (options.minimum_segment_size == -1) {
    for (const Node& node : graph.nodes) {
      reject(node, "conversion disabled (minimum_segment_size = -1)");
    }
    return result;
  }

  // Candidates: not denied, not producing a kept value, accepted by the backend.
  const std::set<std::string> denied = EffectiveDenylist(options);
  std::vector<bool> candidate(n, false);
  for (int p = 0; p < n; ++p) {
    const Node& node = graph.nodes[order[p]];
    const bool kept =
        std::any_of(node.outputs.begin(), node.outputs.end(),
                    [&](const std::string& v) { return options.keep_outside.count(v); });
    if (denied.count(node.op_type) || denied.count(OpName(node))) {
      reject(node, "denied by op denylist");
    } else if (kept) {
      reject(node, "output kept outside engines");
    } else if (Status st = supports(node); !st.ok()) {
      reject(node, ReasonOf(st, node));
    } else {
      candidate[p] = true;
    }
  }

  // Data edges between topological positions; consumers of each value for segment outputs.
  const std::unordered_map<std::string, int> producer = graph.ProducerIndex();
  std::vector<int> position(graph.nodes.size());
  for (int p = 0; p < n; ++p) position[order[p]] = p;
  std::unordered_map<std::string, std::vector<int>> consumers;
  ClusterGraph clusters(n);
  for (int p = 0; p < n; ++p) {
    for (const auto& value : ReadsOf(graph.nodes[order[p]])) {
      consumers[value].push_back(order[p]);
      auto it = producer.find(value);
      if (it != producer.end()) clusters.AddEdge(position[it->second], p);
    }
  }

  for (int p = 0; p < n; ++p) {
    if (!candidate[p] || clusters.Find(p) != p) continue;
    int rep = p;
    for (bool merged = true; merged;) {
      merged = false;
      const std::vector<int> next(clusters.successors(rep).begin(), clusters.successors(rep).end());
      for (int s : next) {
        if (!candidate[s] || !clusters.successors(rep).count(s)) continue;
        if (clusters.CanContract(rep, s)) {
          rep = clusters.Contract(rep, s);
          merged = true;
        }
      }
    }
  }

  std::map<int, Cluster> by_rep;  // ordered by representative = first topological position
  for (int p = 0; p < n; ++p) {
    if (!candidate[p]) continue;
    Cluster& c = by_rep[clusters.Find(p)];
    c.positions.push_back(p);
    if (!IsIdentityLike(graph.nodes[order[p]])) ++c.size;
  }
  std::vector<const Cluster*> ranked;
  for (const auto& [rep, c] : by_rep) {
    if (c.size >= options.minimum_segment_size) {
      ranked.push_back(&c);
      continue;
    }
    const std::string reason = "segment too small (" + std::to_string(c.size) +
                               " < minimum_segment_size " +
                               std::to_string(options.minimum_segment_size) + ")";
    for (int p : c.positions) reject(graph.nodes[order[p]], reason);
  }
  // Largest first, ties by first node; stable_sort keeps by_rep's order among equals.
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const Cluster* a, const Cluster* b) { return a->size > b->size; });
  if (static_cast<int>(ranked.size()) > options.max_engines) {
    for (size_t k = options.max_engines; k < ranked.size(); ++k) {
      for (int p : ranked[k]->positions) reject(graph.nodes[order[p]], "engine cap reached");
    }
    ranked.resize(options.max_engines);
  }
  std::sort(ranked.begin(), ranked.end(), [](const Cluster* a, const Cluster* b) {
    return a->positions.front() < b->positions.front();
  });

  const std::set<std::string> graph_outputs(graph.outputs.begin(), graph.outputs.end());
  for (const Cluster* c : ranked) {
    Segment segment;
    std::unordered_set<int> members;
    std::set<std::string> produced, seen_inputs;
    for (int p : c->positions) {
      segment.nodes.push_back(order[p]);
      members.insert(order[p]);
    }
    for (int index : segment.nodes) {
      const Node& node = graph.nodes[index];
      for (const auto& value : ReadsOf(node)) {
        const bool is_value = producer.count(value) || graph.IsGraphInput(value);
        if (!is_value || produced.count(value) || !seen_inputs.insert(value).second) continue;
        if (graph.IsInitializer(value) && !graph.IsGraphInput(value)) continue;
        segment.inputs.push_back(value);
      }
      for (const auto& out : node.outputs) {
        if (!out.empty()) produced.insert(out);
      }
    }
    for (int index : segment.nodes) {
      for (const auto& out : graph.nodes[index].outputs) {
        if (out.empty()) continue;
        auto it = consumers.find(out);
        const bool used_outside =
            it != consumers.end() && std::any_of(it->second.begin(), it->second.end(),
                                                 [&](int k) { return !members.count(k); });
        if (used_outside || graph_outputs.count(out) || options.keep_outside.count(out)) {
          segment.outputs.push_back(out);
        }
      }
    }
    report.converted_nodes += static_cast<int>(segment.nodes.size());
    result.segments.push_back(std::move(segment));
  }
  return result;
}

std::string NonConversionReport::ToString() const {
  std::ostringstream os;
  const double percent = total_nodes ? 100.0 * converted_nodes / total_nodes : 0.0;
  os << "Converted " << converted_nodes << " of " << total_nodes << " nodes (" << std::fixed
     << std::setprecision(1) << percent << "%) into engines.\n";
  if (by_op.empty()) return os.str();
  size_t op_width = 7;  // "op type"
  for (const auto& [op, reasons] : by_op) op_width = std::max(op_width, op.size());
  os << "Nodes not converted:\n";
  os << "  " << std::left << std::setw(static_cast<int>(op_width)) << "op type"
     << "  " << std::right << std::setw(5) << "nodes"
     << "  reason\n";
  for (const auto& [op, reasons] : by_op) {
    for (const auto& [reason, count] : reasons) {
      os << "  " << std::left << std::setw(static_cast<int>(op_width)) << op << "  " << std::right
         << std::setw(5) << count << "  " << reason << "\n";
    }
  }
  return os.str();
}

}  // namespace kiln
