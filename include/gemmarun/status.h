// Status and Result<T>: how every failure a user can cause (a bad file, config,
// flag or request) travels up to the caller. Library code never throws and never
// exits; apps map a Status to an exit code or an HTTP status.
#pragma once

#include <cstdint>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace gemmarun {

enum class StatusCode : uint8_t {
  kOk = 0,
  kInvalidArgument,  // a flag, request or prompt the caller can fix
  kNotFound,         // missing file, tensor or key
  kCorrupt,          // a file that is truncated or inconsistent
  kUnsupported,      // valid input we do not handle (unknown model_type, dtype)
  kOutOfRange,       // context or cache exhausted
  kResourceExhausted,  // out of memory, a full queue: retrying later or with less may work
  kInternal,
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Prepends context ("model.safetensors: " + message) while keeping the code.
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) {
  return Status(StatusCode::kInvalidArgument, std::move(m));
}
inline Status NotFound(std::string m) {
  return Status(StatusCode::kNotFound, std::move(m));
}
inline Status Corrupt(std::string m) {
  return Status(StatusCode::kCorrupt, std::move(m));
}
inline Status Unsupported(std::string m) {
  return Status(StatusCode::kUnsupported, std::move(m));
}
inline Status OutOfRange(std::string m) {
  return Status(StatusCode::kOutOfRange, std::move(m));
}
inline Status ResourceExhausted(std::string m) {
  return Status(StatusCode::kResourceExhausted, std::move(m));
}
inline Status Internal(std::string m) {
  return Status(StatusCode::kInternal, std::move(m));
}

namespace internal {
[[noreturn]] void DieOnValueOfError(const Status& status);
}  // namespace internal

// A value or the Status that explains why there is none.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : state_(std::move(status)) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(state_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(state_);
  }
  // Dies with the status message when there is no value (a programmer error).
  T& value() & {
    CheckHasValue();
    return std::get<T>(state_);
  }
  const T& value() const& {
    CheckHasValue();
    return std::get<T>(state_);
  }
  T&& value() && {
    CheckHasValue();
    return std::get<T>(std::move(state_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  void CheckHasValue() const {
    if (!ok()) internal::DieOnValueOfError(std::get<Status>(state_));
  }
  std::variant<T, Status> state_;
};

}  // namespace gemmarun

#define GR_STATUS_CONCAT_INNER(a, b) a##b
#define GR_STATUS_CONCAT(a, b) GR_STATUS_CONCAT_INNER(a, b)

#define GR_RETURN_IF_ERROR(expr)                 \
  do {                                           \
    ::gemmarun::Status gr_status_ = (expr);      \
    if (!gr_status_.ok()) return gr_status_;     \
  } while (0)

#define GR_ASSIGN_OR_RETURN(lhs, expr)                                   \
  auto GR_STATUS_CONCAT(gr_result_, __LINE__) = (expr);                  \
  if (!GR_STATUS_CONCAT(gr_result_, __LINE__).ok())                      \
    return GR_STATUS_CONCAT(gr_result_, __LINE__).status();              \
  lhs = std::move(GR_STATUS_CONCAT(gr_result_, __LINE__)).value()
