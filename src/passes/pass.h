// Whole-graph passes and the pass manager.
//
// Whole-graph passes only prune (dead nodes, identities) and fold constants (ARCHITECTURE §2):
// nodes that stay outside engines must still export as the user's original nodes, so no pass
// here rewrites an op into another. Every pass is idempotent: running it twice changes nothing
// the second time. Each lives in its own file with a one-paragraph contract at the top.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "ops/base/op_schema.h"

namespace kiln {

struct PassContext {
  const OpRegistry* registry = nullptr;  // OpRegistry::Global() when null
  // Values that must survive (the model's outputs and any user-named fetch).
  std::set<std::string> keep;
};

class GraphPass {
 public:
  virtual ~GraphPass() = default;
  virtual const char* name() const = 0;
  // Returns whether the graph changed.
  virtual StatusOr<bool> Run(Graph& graph, const PassContext& ctx) = 0;
};

std::unique_ptr<GraphPass> CreateDeadNodeRemovalPass();     // dead_node_removal.cc
std::unique_ptr<GraphPass> CreateIdentityRemovalPass();     // identity_removal.cc
std::unique_ptr<GraphPass> CreateConstantFoldingPass();     // constant_folding.cc

struct PassStats {
  std::string pass;
  int nodes_before = 0;
  int nodes_after = 0;
};

class PassManager {
 public:
  void Add(std::unique_ptr<GraphPass> pass);
  // Runs the passes in order, repeating the list until nothing changes (at most
  // `max_rounds`). With KILN_DUMP_GRAPH=DIR set, writes the graph's text dump after each pass.
  Status Run(Graph& graph, const PassContext& ctx, int max_rounds = 4);
  const std::vector<PassStats>& stats() const { return stats_; }

  // The standard clean-up: dead nodes, identities, constant folding.
  static PassManager Standard();

 private:
  std::vector<std::unique_ptr<GraphPass>> passes_;
  std::vector<PassStats> stats_;
};

}  // namespace kiln
