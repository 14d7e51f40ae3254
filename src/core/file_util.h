// Writing output files safely: every file kiln writes (models, plans, caches, tables, JSON
// summaries) goes to a temporary name in the target's directory and is renamed into place, so
// a reader never sees a half-written file and a failed write leaves the old file untouched.
#pragma once

#include <string>
#include <string_view>

#include "kiln/status.h"

namespace kiln {

// Writes `bytes` to `path` through "<dir>/.<name>.tmp.<pid>.<n>" (unique per process and call,
// so concurrent writers of one path never share a temporary), then renames it over `path`.
// On any failure the temporary is removed and the Status names the file: NotFound when the
// file cannot be created, DataLoss when writing fails, FailedPrecondition when the rename does.
Status WriteFileAtomically(const std::string& path, std::string_view bytes);

}  // namespace kiln
