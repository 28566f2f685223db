#include "core/durable_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include <fmt/format.h>

namespace bridgehead::durable {

namespace fs = std::filesystem;

namespace {

fs::path directory_of(const fs::path& p) { return p.has_parent_path() ? p.parent_path() : fs::path("."); }

Expected<void> write_all(int fd, std::string_view data, const fs::path& shown) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(Error::from_errno(errno, fmt::format("cannot write {}", shown.string())));
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

// 0 or the errno of the rename. kKeep never replaces: a replaced file is lost data (a
// Maildir message, an ID someone meant to keep).
int rename_file(const fs::path& from, const fs::path& to, IfExists if_exists) {
  if (if_exists == IfExists::kReplace) return ::rename(from.c_str(), to.c_str()) == 0 ? 0 : errno;
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return errno;
  // A file system without RENAME_NOREPLACE: link + unlink, the classic qmail way (atomic and
  // never replacing too).
  if (::link(from.c_str(), to.c_str()) != 0) return errno;
  ::unlink(from.c_str());
  return 0;
}

}  // namespace

Expected<void> sync_directory(int dir_fd, const fs::path& dir) {
  if (::fsync(dir_fd) != 0) return fail(Error::from_errno(errno, fmt::format("cannot sync directory {}", dir.string())));
  return {};
}

Expected<void> sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail(Error::from_errno(errno, fmt::format("cannot open directory {}", dir.string())));
  auto synced = sync_directory(fd, dir);
  ::close(fd);
  return synced;
}

Expected<bool> rename_durably(const fs::path& from, const fs::path& to, IfExists if_exists) {
  if (const int err = rename_file(from, to, if_exists); err != 0) {
    if (err == EEXIST && if_exists == IfExists::kKeep) return false;
    return fail(Error::from_errno(err, fmt::format("cannot rename {} to {}", from.string(), to.string())));
  }
  // The rename lives in the directory: until the directory is synced a crash can undo it,
  // and whoever relies on the new name (a 250, a finished spool message) would be wrong.
  if (auto synced = sync_directory(directory_of(to)); !synced) {
    // A name that did not exist before can be taken back, so the failure leaves no doubt
    // about what is there; a replaced file cannot be restored, the caller retries instead.
    if (if_exists == IfExists::kKeep) ::unlink(to.c_str());
    return fail(synced.error());
  }
  return true;
}

Expected<PendingFile> PendingFile::create(fs::path tmp, mode_t mode, bool* exists) {
  if (exists != nullptr) *exists = false;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == EEXIST && exists != nullptr) *exists = true;
    return fail(Error::from_errno(errno, fmt::format("cannot create {}", tmp.string())));
  }
  // open()'s mode is filtered by the umask; the file gets exactly what the caller asked for.
  if (::fchmod(fd, mode) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return fail(Error::from_errno(err, fmt::format("cannot set the mode of {}", tmp.string())));
  }
  return PendingFile(fd, std::move(tmp));
}

Expected<PendingFile> PendingFile::create_beside(const fs::path& target, mode_t mode) {
  // Beside the target (a rename cannot cross file systems), hidden, unique (two writers of
  // one name never share a temporary file) and ending in ".tmp", which the spool's recovery
  // removes as an interrupted write.
  std::string tmp = (directory_of(target) / ("." + target.filename().string() + ".XXXXXX.tmp")).string();
  const int fd = ::mkstemps(tmp.data(), 4);
  if (fd < 0) {
    return fail(Error::from_errno(errno, fmt::format("cannot create a temporary file for {}", target.string())));
  }
  if (::fchmod(fd, mode) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return fail(Error::from_errno(err, fmt::format("cannot set the mode of {}", tmp)));
  }
  return PendingFile(fd, std::move(tmp));
}

PendingFile::PendingFile(PendingFile&& other) noexcept
    : fd_(other.fd_), tmp_(std::move(other.tmp_)), synced_(other.synced_), published_(other.published_) {
  other.fd_ = -1;
  other.published_ = true;  // the moved-from object owns no name any more
}

PendingFile::~PendingFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!published_) ::unlink(tmp_.c_str());
}

Expected<void> PendingFile::write(std::string_view data) {
  if (fd_ < 0) {
    return fail(Error::permanent(ErrorCode::kInternal, fmt::format("{} is closed already", tmp_.string())));
  }
  return write_all(fd_, data, tmp_);
}

Expected<bool> PendingFile::publish(const fs::path& target, IfExists if_exists) {
  if (!synced_) {
    // The data reaches the disk before a name points at it: after a crash the final name
    // either does not exist or refers to complete contents, never to an empty or short file.
    if (::fsync(fd_) != 0) return fail(Error::from_errno(errno, fmt::format("cannot sync {}", tmp_.string())));
    const int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) return fail(Error::from_errno(errno, fmt::format("cannot close {}", tmp_.string())));
    synced_ = true;
  }
  auto renamed = rename_durably(tmp_, target, if_exists);
  // Renamed (even if its directory could not be synced): the temporary name is gone.
  if (renamed ? *renamed : (::access(tmp_.c_str(), F_OK) != 0 && errno == ENOENT)) published_ = true;
  return renamed;
}

Expected<void> write_file_durably(const fs::path& path, std::string_view data, WriteOptions options) {
  auto file = PendingFile::create_beside(path, options.mode);
  if (!file) return fail(file.error());
  if (auto w = file->write(data); !w) return fail(w.error());
  auto published = file->publish(path, options.if_exists);
  if (!published) return fail(published.error());
  if (!*published) {
    return fail(Error::permanent(ErrorCode::kInvalidArgument, fmt::format("{} already exists", path.string()),
                                 "choose another file name, or remove the existing file first"));
  }
  return {};
}

std::size_t remove_interrupted_writes(const fs::path& dir) {
  std::size_t removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    // ".NAME.XXXXXX.tmp": a dot, a name, six characters of mkstemps, ".tmp".
    if (name.size() < 1 + 1 + 7 + 4 || name.front() != '.' || !name.ends_with(".tmp")) continue;
    if (name[name.size() - 11] != '.') continue;
    if (!entry.is_regular_file(ec)) continue;
    if (::unlink(entry.path().c_str()) == 0) ++removed;
  }
  return removed;
}

}  // namespace bridgehead::durable
