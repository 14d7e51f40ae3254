// Runs the built `kiln` binary for end-to-end CLI tests (tests/cli, tests/convert).
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace kiln::testing {

// What one run of the binary gave back.
struct CliResult {
  int exit_code;       // 128 + signal number when it was killed; -1 when it could not start
  std::string output;  // stdout and stderr together
};

// Runs `$KILN_BINARY_DIR/bin/kiln <args>` through the shell (so `args` may hold redirections
// and quoting) and collects its exit code and combined output.
inline CliResult Kiln(const std::string& args) {
  std::string cmd = std::string(KILN_BINARY_DIR) + "/bin/kiln " + args + " 2>&1";
  CliResult r{-1, ""};
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

}  // namespace kiln::testing
