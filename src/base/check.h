// Invariant checks for programmer errors (never for user input: that is a Status).
// GR_CHECK is always on; GR_DCHECK only in debug and sanitizer builds.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace gemmarun::internal {

class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition) {
    stream_ << file << ":" << line << ": check failed: " << condition << " ";
  }
  [[noreturn]] ~CheckFailure() {
    std::fprintf(stderr, "%s\n", stream_.str().c_str());
    std::fflush(stderr);
    std::abort();
  }
  template <class T>
  CheckFailure& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  std::ostringstream stream_;
};

// Lets `GR_CHECK(c) << "msg";` compile to a single branch.
struct Voidify {
  void operator&(const CheckFailure&) {}
};

}  // namespace gemmarun::internal

#define GR_CHECK(condition)                    \
  (condition) ? (void)0                        \
              : ::gemmarun::internal::Voidify() & \
                    ::gemmarun::internal::CheckFailure(__FILE__, __LINE__, #condition)

#if defined(NDEBUG) && !defined(GEMMARUN_DCHECKS)
#define GR_DCHECK(condition) \
  while (false) GR_CHECK(condition)
#else
#define GR_DCHECK(condition) GR_CHECK(condition)
#endif
