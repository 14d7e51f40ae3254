// kiln/status.h — error handling for every kiln API.
//
// No exception crosses kiln's public API. Functions that can fail return Status or StatusOr<T>.
// A Status carries a code and a message that names what failed: the file, the node, the op
// (ARCHITECTURE §5). Codes and when to use each:
//   kInvalidArgument    the caller's input is wrong (bad parameter, malformed model, bad feed)
//   kNotFound           a named thing does not exist (file, node, tensor, tag, signature)
//   kUnimplemented      valid input that kiln does not support yet (op, attribute value, dtype)
//   kFailedPrecondition the system is not in a state to do this (e.g. graph not calibrated)
//   kResourceExhausted  a size limit or allocation failed
//   kDataLoss           stored data is corrupt (checksum mismatch, truncated file)
//   kInternal           a kiln bug: an invariant of our own was broken
#pragma once

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <variant>

namespace kiln {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kUnimplemented,
  kFailedPrecondition,
  kResourceExhausted,
  kDataLoss,
  kInternal,
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message);

  static Status OK() { return Status(); }

  bool ok() const { return state_ == nullptr; }
  StatusCode code() const { return state_ ? state_->code : StatusCode::kOk; }
  const std::string& message() const;
  // "InvalidArgument: message", or "OK".
  std::string ToString() const;

  // Returns a copy whose message is "context: message" (the outermost context first), so
  // callers can say where an inner failure happened without losing its detail.
  Status WithContext(const std::string& context) const;

 private:
  struct State {
    StatusCode code;
    std::string message;
  };
  std::shared_ptr<const State> state_;
};

std::ostream& operator<<(std::ostream& os, const Status& s);

Status InvalidArgument(std::string message);
Status NotFound(std::string message);
Status Unimplemented(std::string message);
Status FailedPrecondition(std::string message);
Status ResourceExhausted(std::string message);
Status DataLoss(std::string message);
Status Internal(std::string message);

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const Status& status) : value_(status) {  // NOLINT: implicit by design
    if (status.ok()) value_ = Internal("StatusOr constructed from an OK Status without a value");
  }
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(value_); }
  Status status() const { return ok() ? Status::OK() : std::get<Status>(value_); }

  T& value() & { return std::get<T>(value_); }
  const T& value() const& { return std::get<T>(value_); }
  T&& value() && { return std::get<T>(std::move(value_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<Status, T> value_;
};

}  // namespace kiln

#define KILN_CONCAT_IMPL(a, b) a##b
#define KILN_CONCAT(a, b) KILN_CONCAT_IMPL(a, b)

// Returns from the enclosing function if `expr` is not OK.
#define KILN_RETURN_IF_ERROR(...)                  \
  do {                                             \
    ::kiln::Status _kiln_status = (__VA_ARGS__);   \
    if (!_kiln_status.ok()) return _kiln_status;   \
  } while (0)

// `KILN_ASSIGN_OR_RETURN(auto x, F());` assigns the value or returns the error.
#define KILN_ASSIGN_OR_RETURN(lhs, ...) \
  KILN_ASSIGN_OR_RETURN_IMPL(KILN_CONCAT(_kiln_statusor_, __LINE__), lhs, (__VA_ARGS__))
#define KILN_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
