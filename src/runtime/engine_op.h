// kiln.EngineOp at run time (ARCHITECTURE §5; attributes in convert/engine_op_def.h).
//
// The kernel is stateful (one instance per node, made when the executor compiles the graph):
//   - it deserializes the embedded plan once: ReadPlan (checksum, format), then backend,
//     kiln version, device fingerprint and content hash (the plan must belong to this node's
//     native segment and build config) are checked, then Backend::Deserialize. A rejected plan
//     is logged once with its reason and never executed;
//   - Compute runs the engine when it accepts the input dims; in dynamic mode
//     (allow_build_at_runtime) it builds an engine for unseen shapes, keeping at most
//     max_cached_engines_count; otherwise it runs the native segment (an Executor over
//     Graph::functions[segment_func]) and logs once per EngineOp why (batch above
//     max_batch_size, no engine, rejected plan, ...). KILN_ALLOW_NATIVE_FALLBACK=0 turns that
//     fallback into a FailedPrecondition error.
#pragma once

#include <string>
#include <vector>

#include "engine/engine.h"
#include "ir/graph.h"
#include "kiln/session.h"
#include "kiln/status.h"

namespace kiln {

// Adds kiln.EngineOp to OpRegistry::Global() (once; Session and InspectModel call it).
void RegisterEngineOp();

// What `kiln inspect` shows of one EngineOp node of `graph`: its plan's status and, when the
// plan is usable here, the engine's layers (timed on random inputs when `profile`).
EngineInfo InspectEngineOp(const Graph& graph, const Node& node, bool profile, int iterations);

}  // namespace kiln
