#include "core/read_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

namespace bridgehead {

Expected<std::string> read_whole_file(const std::filesystem::path& path, std::string_view what, Error missing,
                                      std::size_t limit) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return fail(std::move(missing));
    return fail(Error::from_errno(err, fmt::format("cannot open {}", what)));
  }
  std::string out;
  char buf[65536];
  while (out.size() <= limit) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return fail(Error::from_errno(err, fmt::format("cannot read {}", what)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace bridgehead
