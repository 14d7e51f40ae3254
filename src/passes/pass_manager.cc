// The pass manager: runs a list of GraphPasses in order, repeating the list until a round
// changes nothing (passes enable each other: folding leaves dead producers, removing
// identities exposes constants), at most `max_rounds` times. Records, per pass execution, the
// node count before and after. With KILN_DUMP_GRAPH=DIR, writes DIR/00_input.txt and then
// DIR/NN_<pass>.txt (Graph::Dump) after each pass execution, NN counting executions.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/logging.h"
#include "passes/pass.h"

namespace kiln {
namespace {

// Writes `graph`'s dump as DIR/NN_<label>.txt when KILN_DUMP_GRAPH is set; never fails the run.
void MaybeDump(const Graph& graph, int seq, const std::string& label) {
  const char* dir = std::getenv("KILN_DUMP_GRAPH");
  if (dir == nullptr || *dir == '\0') return;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  char prefix[16];
  std::snprintf(prefix, sizeof(prefix), "%02d_", seq);
  std::filesystem::path path = std::filesystem::path(dir) / (prefix + label + ".txt");
  std::ofstream file(path);
  file << graph.Dump();
  if (!file) {
    KILN_LOG(WARNING) << "KILN_DUMP_GRAPH: cannot write " << path.string();
  }
}

}  // namespace

void PassManager::Add(std::unique_ptr<GraphPass> pass) { passes_.push_back(std::move(pass)); }

Status PassManager::Run(Graph& graph, const PassContext& ctx, int max_rounds) {
  int seq = 0;
  MaybeDump(graph, seq++, "input");
  for (int round = 0; round < max_rounds; ++round) {
    bool changed = false;
    for (const auto& pass : passes_) {
      PassStats stats{pass->name(), static_cast<int>(graph.nodes.size()), 0};
      StatusOr<bool> pass_changed = pass->Run(graph, ctx);
      if (!pass_changed.ok()) {
        return pass_changed.status().WithContext(std::string("pass ") + pass->name());
      }
      stats.nodes_after = static_cast<int>(graph.nodes.size());
      KILN_LOG(INFO) << "pass " << stats.pass << ": " << stats.nodes_before << " -> "
                     << stats.nodes_after << " nodes" << (*pass_changed ? "" : " (unchanged)");
      stats_.push_back(std::move(stats));
      MaybeDump(graph, seq++, pass->name());
      changed |= *pass_changed;
    }
    if (!changed) break;
  }
  return Status::OK();
}

PassManager PassManager::Standard() {
  PassManager pm;
  pm.Add(CreateDeadNodeRemovalPass());
  pm.Add(CreateIdentityRemovalPass());
  pm.Add(CreateConstantFoldingPass());
  return pm;
}

}  // namespace kiln
