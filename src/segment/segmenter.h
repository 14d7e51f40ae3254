// The segmenter (ARCHITECTURE §5): clusters the nodes a backend supports into segments that
// become EngineOps. It knows nothing of any backend — it takes a support predicate.
//
// Union-find over supported nodes, merging along data edges in a deterministic order (by
// node position, never by pointer), refusing any merge that would create a cycle (a path
// leaving the cluster and coming back). Segments smaller than `minimum_segment_size`
// (identity-like nodes do not count) are dropped; `minimum_segment_size == -1` disables
// conversion; nodes whose op is denied (option or KILN_OP_DENYLIST, comma-separated) and the
// producers of values named in `keep_outside` are never absorbed; at most `max_engines`
// segments are kept (largest first).
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln {

struct SegmenterOptions {
  int minimum_segment_size = 3;
  std::set<std::string> op_denylist;  // merged with KILN_OP_DENYLIST
  int max_engines = 1000;
  std::set<std::string> keep_outside;  // values whose producers stay outside engines
};

// OK, or why the backend can't take the node.
using SupportPredicate = std::function<Status(const Node& node)>;

struct Segment {
  std::vector<int> nodes;            // indices into graph.nodes, in topological order
  std::vector<std::string> inputs;   // values read from outside, in first-use order
  std::vector<std::string> outputs;  // values used outside (or graph outputs), in order
};

// Why nodes stayed outside engines: op type -> reason -> count.
struct NonConversionReport {
  std::map<std::string, std::map<std::string, int>> by_op;
  int total_nodes = 0;
  int converted_nodes = 0;
  std::string ToString() const;  // a table a person can read
};

struct SegmentationResult {
  std::vector<Segment> segments;
  NonConversionReport report;
};

StatusOr<SegmentationResult> SegmentGraph(const Graph& graph, const SupportPredicate& supports,
                                          const SegmenterOptions& options);

// True for ops that do not count toward minimum_segment_size (Identity and friends).
bool IsIdentityLike(const Node& node);

}  // namespace kiln
