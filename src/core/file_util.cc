#include "core/file_util.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

namespace kiln {

Status WriteFileAtomically(const std::string& path, std::string_view bytes) {
  namespace fs = std::filesystem;
  static std::atomic<uint64_t> counter{0};
  const fs::path target(path);
  const fs::path tmp = target.parent_path() /
                       ("." + target.filename().string() + ".tmp." +
                        std::to_string(static_cast<long long>(::getpid())) + "." +
                        std::to_string(counter++));
  std::error_code ec;
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return NotFound("cannot create '" + tmp.string() + "' (writing '" + path + "')");
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.close();
    if (!f) {
      fs::remove(tmp, ec);
      return DataLoss("error writing '" + tmp.string() + "' (writing '" + path + "')");
    }
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    const std::string why = ec.message();
    fs::remove(tmp, ec);
    return FailedPrecondition("cannot rename the temporary file to '" + path + "': " + why);
  }
  return Status::OK();
}

StatusOr<std::map<std::string, std::string>> ReadKeyValueFile(const std::string& path,
                                                              const std::string& header) {
  std::ifstream f(path);
  if (!f) return NotFound("no file " + path);
  std::string line;
  if (!std::getline(f, line) || line != header) {
    return FailedPrecondition(path + " does not start with '" + header + "'");
  }
  std::map<std::string, std::string> entries;
  while (std::getline(f, line)) {
    const size_t tab = line.rfind('\t');
    if (tab == std::string::npos || tab == 0) continue;
    entries[line.substr(0, tab)] = line.substr(tab + 1);
  }
  return entries;
}

Status WriteKeyValueFile(const std::string& path, const std::string& header,
                         const std::map<std::string, std::string>& entries) {
  std::string text = header + "\n";
  for (const auto& [k, v] : entries) text += k + "\t" + v + "\n";
  return WriteFileAtomically(path, text);
}

}  // namespace kiln
