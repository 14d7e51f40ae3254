// Model file -> IR, whatever the format (chosen by extension and content).
#pragma once

#include <string>

#include "ir/graph.h"
#include "kiln/session.h"
#include "kiln/status.h"

namespace kiln {

enum class ModelFormat { kUnknown, kOnnx, kTfGraphDef, kTfJs, kSavedModel };

// Guesses the format: a SavedModel directory (or its saved_model.pb), else from the extension,
// then from the first bytes.
ModelFormat DetectModelFormat(const std::string& path);
const char* ModelFormatName(ModelFormat f);

// Loads the model into the IR. Does not require that kiln can run every op.
StatusOr<Graph> LoadModelGraph(const std::string& path);
// The same; a SavedModel is read with `options`' tags and signature.
StatusOr<Graph> LoadModelGraph(const std::string& path, const LoadOptions& options);

}  // namespace kiln
