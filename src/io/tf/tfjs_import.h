// TF.js graph model (model.json + binary weight shards) -> kiln IR.
//
// A TF.js graph model is a GraphDef written as proto3 JSON (`modelTopology`) whose Const nodes
// carry dtype and shape but no values; the values live in the `weightsManifest` shards. The
// importer fills each Const NodeDef with its weight (dequantizing uint8/uint16 affine and
// float16 weights to their original dtype, as TF.js does), then hands the GraphDef to
// ImportGraphDef with provenance format "tfjs". When the model carries a signature
// (`signature`, or `userDefinedMetadata.signature`, which TF.js prefers), its outputs become the
// graph outputs, in the signature's order, and its inputs are ordered first among the graph
// inputs. graph.metadata keeps "tfjs.signature", "tfjs.generatedBy", "tfjs.convertedBy".
//
// Shard paths must be relative and stay inside the model's directory; the shards of a group
// are concatenated in order and must hold exactly the bytes the manifest describes (a short
// shard is DataLoss naming the weight and the shard).
#pragma once

#include <string>

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln {

StatusOr<Graph> ImportTfjsModel(const std::string& model_json_path);

}  // namespace kiln
