// The executor: runs a verified Graph node by node through the op table's kernels.
//
// Compile() turns the graph into a plan once: a slot per value, nodes in topological order with
// their input/output slots, and for each slot the last step that reads it. Run() then works on
// a per-call vector of slots, so concurrent runs share nothing mutable; each intermediate is
// released right after its last use (unless it is fetched), and only nodes the fetches need
// are executed. Values may live on a CUDA device (Tensor::on_device): only kernels that take
// device tensors (CUDA EngineOps) see them; every other step gets host copies.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "ir/graph.h"
#include "kiln/session.h"
#include "ops/base/op_schema.h"

namespace kiln {

class Executor {
 public:
  static StatusOr<Executor> Compile(const Graph& graph, const OpRegistry& registry);

  // `feeds` by slot; fetches by slot. Returns the fetched tensors.
  StatusOr<std::vector<Tensor>> Run(const std::vector<std::pair<int, Tensor>>& feeds,
                                    const std::vector<int>& fetch_slots,
                                    const RunOptions& options, RunStats* stats) const;

  // Slot of a value name, or -1.
  int SlotOf(const std::string& value) const;

 private:
  struct Step {
    const Node* node = nullptr;
    const OpSchema* schema = nullptr;
    std::vector<int> inputs;   // -1 = absent optional input
    std::vector<int> outputs;  // -1 = unused optional output
    std::shared_ptr<const OpKernel> kernel;  // for stateful ops (EngineOp)
  };
  const Graph* graph_ = nullptr;
  int64_t opset_ = 17;
  std::unordered_map<std::string, int> slots_;
  std::vector<Tensor> constants_;        // by slot; undefined where not a constant
  std::vector<int> producer_step_;       // by slot; -1 for inputs and constants
  std::vector<Step> steps_;
  std::vector<int> last_use_;            // by slot: last step index reading it, or -1
  // by slot: read by at least one step, and only by kernels that take device tensors
  std::vector<char> device_readers_;
};

}  // namespace kiln
