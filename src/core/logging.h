// Logging and internal invariant checks.
//
// KILN_LOG(INFO) << "...";  levels DEBUG < INFO < WARNING < ERROR; the threshold comes from the
// environment variable KILN_LOG_LEVEL (a name or 0..3, default WARNING). Messages go to stderr.
// KILN_DCHECK(cond) is for kiln's own invariants only, never for user input (ARCHITECTURE §5).
#pragma once

#include <sstream>
#include <string>

namespace kiln {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

LogLevel CurrentLogLevel();
void SetLogLevel(LogLevel level);  // overrides KILN_LOG_LEVEL (tests, CLI --verbose)
bool LogEnabled(LogLevel level);

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

[[noreturn]] void DcheckFailed(const char* cond, const char* file, int line);

}  // namespace kiln

#define KILN_LOG_LEVEL_DEBUG ::kiln::LogLevel::kDebug
#define KILN_LOG_LEVEL_INFO ::kiln::LogLevel::kInfo
#define KILN_LOG_LEVEL_WARNING ::kiln::LogLevel::kWarning
#define KILN_LOG_LEVEL_ERROR ::kiln::LogLevel::kError

#define KILN_LOG(level)                                  \
  if (!::kiln::LogEnabled(KILN_LOG_LEVEL_##level)) {     \
  } else                                                 \
    ::kiln::LogMessage(KILN_LOG_LEVEL_##level, __FILE__, __LINE__).stream()

#define KILN_DCHECK(cond) \
  ((cond) ? (void)0 : ::kiln::DcheckFailed(#cond, __FILE__, __LINE__))
