// A fresh folder for a test's files, removed with its contents when the object
// goes away (a function-local static one: at process exit), so test runs do
// not pile files up in /tmp.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <system_error>

namespace gemmarun::testing {

class TempDir {
 public:
  // The name carries the pid and a counter: ctest runs test processes in
  // parallel, from several build folders at once.
  explicit TempDir(const std::string& prefix = "gr_test")
      : path_(std::filesystem::temp_directory_path() /
              (prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++))) {
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;  // a destructor must not throw; a leftover folder is harmless
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  static inline std::atomic<int> counter_{0};
  std::filesystem::path path_;
};

}  // namespace gemmarun::testing
