// SegmentContentHash (segment_hash.h).
#include "convert/segment_hash.h"

#include <string>
#include <utility>
#include <vector>

#include "core/content_hash.h"
#include "io/onnx/onnx_export.h"

namespace kiln {

StatusOr<uint64_t> SegmentContentHash(const Graph& segment) {
  // The structure: the segment without its numeric initializers (tensors share their storage:
  // copying the graph copies no weights).
  Graph skeleton = segment;
  std::vector<std::pair<const std::string*, const Tensor*>> weights;
  for (const auto& [name, t] : segment.initializers) {
    if (!t.is_tensor() || !t.defined() || DataTypeSize(t.dtype()) == 0) continue;
    if (t.nbytes() > 0 && t.raw_data() == nullptr) continue;  // nothing to read: exported
    weights.emplace_back(&name, &t);
    skeleton.initializers.erase(name);
  }
  KILN_ASSIGN_OR_RETURN(std::string bytes, ExportOnnx(skeleton));
  // Then one record per weight, in name order: name (length-prefixed, so no name can run
  // into the next field), dtype, dims, hash of the bytes.
  bytes += "\n|kiln segment hash v" + std::to_string(kSegmentHashVersion) + "|";
  for (const auto& [name, t] : weights) {
    bytes += std::to_string(name->size()) + ":" + *name + ":";
    bytes += std::to_string(static_cast<int>(t->dtype()));
    bytes += DimsToString(t->dims());
    bytes += ContentHashHex(ContentHash64(t->raw_data(), t->nbytes()));
    bytes += '\n';
  }
  return ContentHash64(bytes.data(), bytes.size(), kSegmentHashVersion);
}

}  // namespace kiln
