#include "gemmarun/status.h"

#include <cstdio>
#include <cstdlib>

namespace gemmarun {

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kNotFound: return "not found";
    case StatusCode::kCorrupt: return "corrupt";
    case StatusCode::kUnsupported: return "unsupported";
    case StatusCode::kOutOfRange: return "out of range";
    case StatusCode::kResourceExhausted: return "resource exhausted";
    case StatusCode::kInternal: return "internal";
  }
  return "unknown";
}

namespace internal {
void DieOnValueOfError(const Status& status) {
  std::fprintf(stderr, "fatal: Result::value() of an error (%s): %s\n", StatusCodeName(status.code()),
               status.message().c_str());
  std::abort();
}
}  // namespace internal

}  // namespace gemmarun
