#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace gemmarun {

MappedFile::~MappedFile() { Release(); }

MappedFile::MappedFile(MappedFile&& other) noexcept { *this = std::move(other); }

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    path_ = std::move(other.path_);
  }
  return *this;
}

void MappedFile::Release() {
  if (data_ != nullptr && size_ > 0) munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

Result<MappedFile> MappedFile::Open(const std::string& path) {
  int fd = -1;
  GR_RETURN_IF_ERROR(OpenRegularFile(path, &fd));
  struct stat info;
  if (fstat(fd, &info) != 0) {
    close(fd);
    return Internal(path + ": cannot stat: " + std::strerror(errno));
  }
  MappedFile file;
  file.path_ = path;
  file.size_ = static_cast<size_t>(info.st_size);
  if (file.size_ > 0) {
    void* p = mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      close(fd);
      file.size_ = 0;
      return Internal(path + ": mmap failed: " + std::strerror(err));
    }
    madvise(p, file.size_, MADV_SEQUENTIAL);
    file.data_ = static_cast<const uint8_t*>(p);
  }
  close(fd);
  return file;
}

Status OpenRegularFile(const std::string& path, int* fd_out) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return NotFound(path + ": cannot open: " + std::strerror(errno));
  struct stat info{};
  if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    const bool is_dir = S_ISDIR(info.st_mode);
    close(fd);
    return InvalidArgument(path + (is_dir ? ": is a folder, expected a file" : ": not a regular file"));
  }
  // Back to blocking reads for the regular file.
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  *fd_out = fd;
  return Status::Ok();
}

Result<std::string> ReadTextFile(const std::string& path) {
  int fd = -1;
  GR_RETURN_IF_ERROR(OpenRegularFile(path, &fd));
  std::string text;
  char buffer[1 << 16];
  while (true) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      close(fd);
      return Internal(path + ": read error: " + std::strerror(err));
    }
    text.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return text;
}

}  // namespace gemmarun
