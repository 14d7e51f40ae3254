// Writing output files safely: every file kiln writes (models, plans, caches, tables, JSON
// summaries) goes to a temporary name in the target's directory and is renamed into place, so
// a reader never sees a half-written file and a failed write leaves the old file untouched.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "kiln/status.h"

namespace kiln {

// Writes `bytes` to `path` through "<dir>/.<name>.tmp.<pid>.<n>" (unique per process and call,
// so concurrent writers of one path never share a temporary), then renames it over `path`.
// On any failure the temporary is removed and the Status names the file: NotFound when the
// file cannot be created, DataLoss when writing fails, FailedPrecondition when the rename does.
Status WriteFileAtomically(const std::string& path, std::string_view bytes);

// kiln's timing caches: a first line `header`, then one "key<TAB>value" line per entry (the
// value has no tab; the key may). Read: NotFound when there is no such file,
// FailedPrecondition when its first line is not `header`; malformed lines are skipped.
// Write: through WriteFileAtomically.
StatusOr<std::map<std::string, std::string>> ReadKeyValueFile(const std::string& path,
                                                              const std::string& header);
Status WriteKeyValueFile(const std::string& path, const std::string& header,
                         const std::map<std::string, std::string>& entries);

}  // namespace kiln
