#include "core/logging.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace kiln {
namespace {

LogLevel ParseLevel(const char* s) {
  if (s == nullptr || *s == '\0') return LogLevel::kWarning;
  std::string v(s);
  for (auto& c : v) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (v == "DEBUG" || v == "0") return LogLevel::kDebug;
  if (v == "INFO" || v == "1") return LogLevel::kInfo;
  if (v == "WARNING" || v == "WARN" || v == "2") return LogLevel::kWarning;
  if (v == "ERROR" || v == "3") return LogLevel::kError;
  return LogLevel::kWarning;
}

std::atomic<int>& LevelStorage() {
  static std::atomic<int> level(static_cast<int>(ParseLevel(std::getenv("KILN_LOG_LEVEL"))));
  return level;
}

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "D";
    case LogLevel::kInfo: return "I";
    case LogLevel::kWarning: return "W";
    case LogLevel::kError: return "E";
  }
  return "?";
}

}  // namespace

LogLevel CurrentLogLevel() { return static_cast<LogLevel>(LevelStorage().load()); }
void SetLogLevel(LogLevel level) { LevelStorage().store(static_cast<int>(level)); }
bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= LevelStorage().load(); }

LogMessage::LogMessage(LogLevel level, const char* file, int line) : level_(level) {
  const char* base = std::strrchr(file, '/');
  stream_ << "[kiln " << LevelName(level) << " " << (base ? base + 1 : file) << ":" << line
          << "] ";
}

LogMessage::~LogMessage() {
  stream_ << '\n';
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::string s = stream_.str();
  std::fwrite(s.data(), 1, s.size(), stderr);
  (void)level_;
}

void DcheckFailed(const char* cond, const char* file, int line) {
  std::fprintf(stderr, "kiln internal invariant failed: %s at %s:%d\n", cond, file, line);
  std::abort();
}

}  // namespace kiln
