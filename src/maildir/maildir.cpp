#include "maildir/maildir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <optional>

#include <fmt/format.h>

namespace bridgehead::maildir {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxNameBytes = 255;  // NAME_MAX: the name is one path component
constexpr int kMaxNameTries = 16;

// Shared by every writer in the process, so two writers on the same root never pick one name.
std::atomic<std::uint64_t> g_counter{0};

Error fs_error(int err, std::string_view what, const fs::path& p) {
  return Error::from_errno(err, fmt::format("{} {}", what, p.string()));
}

// Creates `dir` with mode 0700; an existing directory is fine. Returns whether it was created.
Expected<bool> make_dir(const fs::path& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0) {
    // mkdir's mode is filtered by the umask; the mailbox must be private whatever it is.
    if (::chmod(dir.c_str(), 0700) != 0) return fail(fs_error(errno, "cannot set mode 0700 on Maildir directory", dir));
    return true;
  }
  if (errno == EEXIST) return false;
  return fail(fs_error(errno, "cannot create Maildir directory", dir));
}

Expected<void> sync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail(fs_error(errno, "cannot open Maildir directory", dir));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return fail(fs_error(err, "cannot sync Maildir directory", dir));
  return {};
}

// The file in tmp/ until it is renamed into new/: closed and removed on every early return.
class TmpFile {
 public:
  TmpFile(int fd, fs::path path) : fd_(fd), path_(std::move(path)) {}
  TmpFile(const TmpFile&) = delete;
  TmpFile& operator=(const TmpFile&) = delete;
  ~TmpFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!renamed_) ::unlink(path_.c_str());
  }

  Expected<void> write(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail(fs_error(errno, "cannot write Maildir file", path_));
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
  }

  Expected<void> sync_and_close() {
    // The data must be on disk before the name appears in new/: a reader (or a crash) must
    // never see an empty or partial message under a final name.
    if (::fsync(fd_) != 0) return fail(fs_error(errno, "cannot sync Maildir file", path_));
    const int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) return fail(fs_error(errno, "cannot close Maildir file", path_));
    return {};
  }

  const fs::path& path() const { return path_; }
  void mark_renamed() { renamed_ = true; }

 private:
  int fd_;
  fs::path path_;
  bool renamed_ = false;
};

// Moves `from` to `to` without ever replacing an existing message (a replaced file is a lost
// message). EEXIST tells the caller to pick another name.
int rename_noreplace(const fs::path& from, const fs::path& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return errno;
  // A file system without RENAME_NOREPLACE: link + unlink, the classic qmail way (also atomic
  // and never replacing).
  if (::link(from.c_str(), to.c_str()) != 0) return errno;
  ::unlink(from.c_str());
  return 0;
}

}  // namespace

Expected<std::string> mailbox_name(std::string_view recipient) {
  const auto bad = [&](std::string_view why) {
    std::string shown;
    for (const char c : recipient) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f) {
        shown += fmt::format("\\x{:02x}", u);
      } else {
        shown += c;
      }
    }
    return fail(Error::permanent(ErrorCode::kInvalidArgument,
                                 fmt::format("cannot deliver to Maildir for <{}>: {}", shown, why),
                                 "the address cannot be a local mailbox; check address rewriting"));
  };
  if (recipient.empty()) return bad("empty address");
  if (recipient.size() > kMaxNameBytes) return bad("address longer than 255 bytes");
  if (recipient.front() == '.') return bad("address starts with '.'");
  if (recipient.find("..") != std::string_view::npos) return bad("address contains \"..\"");
  std::string name;
  name.reserve(recipient.size());
  for (const char c : recipient) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '/') return bad("address contains '/'");
    if (u < 0x20 || u == 0x7f) return bad("address contains a control character");
    // Only ASCII letters fold, so the mapping stays one-to-one on lowercased addresses
    // (a locale-dependent tolower could merge two UTF-8 addresses).
    name += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  return name;
}

std::string encode_hostname(std::string_view host) {
  std::string out;
  for (const char c : host) {
    if (c == '/') {
      out += "\\057";
    } else if (c == ':') {
      out += "\\072";
    } else {
      out += c;
    }
  }
  return out.empty() ? std::string("localhost") : out;
}

MaildirWriter::MaildirWriter(fs::path root, std::string hostname)
    : root_(std::move(root)), hostname_(encode_hostname(hostname)) {}

std::string MaildirWriter::unique_name() {
  return fmt::format("{}.{}_{}.{}", static_cast<long long>(std::time(nullptr)), static_cast<long>(::getpid()),
                     g_counter.fetch_add(1, std::memory_order_relaxed), hostname_);
}

Expected<fs::path> MaildirWriter::ensure_mailbox(const std::string& name) {
  fs::path box = root_ / name;
  {
    std::lock_guard lock(mutex_);
    if (ready_.contains(name)) return box;
  }
  if (!fs::is_directory(root_)) {
    std::error_code ec;
    const fs::path parent = root_.parent_path();
    if (!parent.empty()) fs::create_directories(parent, ec);
    auto created = make_dir(root_);
    if (!created) return fail(created.error());
    if (*created && !parent.empty()) {
      if (auto r = sync_dir(parent); !r) return fail(r.error());
    }
  }
  if (auto r = make_dir(box); !r) return fail(r.error());
  for (const char* sub : {"tmp", "new", "cur"}) {
    if (auto r = make_dir(box / sub); !r) return fail(r.error());
  }
  // A mailbox's directory entries must be durable before the first message in it is reported
  // delivered, or a crash could take the new/ directory, and the message, with it. Synced on
  // first use in this process even when another thread or process created them: its mkdir may
  // not have been synced yet.
  if (auto r = sync_dir(box); !r) return fail(r.error());
  if (auto r = sync_dir(root_); !r) return fail(r.error());
  std::lock_guard lock(mutex_);
  ready_.insert(name);
  return box;
}

Expected<fs::path> MaildirWriter::deliver(std::string_view recipient, std::string_view prepend,
                                          const ContentSource& content) {
  auto name = mailbox_name(recipient);
  if (!name) return fail(name.error());
  auto box = ensure_mailbox(*name);
  if (!box) return fail(box.error());

  std::string file;
  int fd = -1;
  for (int i = 0; i < kMaxNameTries && fd < 0; ++i) {
    file = unique_name();
    const fs::path p = *box / "tmp" / file;
    fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) {
      const int err = errno;
      // Someone may have removed the mailbox; let the next delivery create it again.
      std::lock_guard lock(mutex_);
      ready_.erase(*name);
      return fail(fs_error(err, "cannot create Maildir file", p));
    }
  }
  if (fd < 0) {
    return fail(Error::transient_error(ErrorCode::kIo,
                                       fmt::format("cannot find an unused file name in {}", (*box / "tmp").string()),
                                       "check the clock and for stale files in tmp/"));
  }
  TmpFile tmp(fd, *box / "tmp" / file);

  if (auto r = tmp.write(prepend); !r) return fail(r.error());
  // Remember the sink's first failure, so a source that ignores it cannot make a truncated
  // message look delivered.
  std::optional<Error> sink_error;
  const ContentSink sink = [&](std::string_view piece) -> Expected<void> {
    if (sink_error) return fail(*sink_error);
    auto r = tmp.write(piece);
    if (!r) sink_error = r.error();
    return r;
  };
  if (auto r = content(sink); !r) return fail(r.error());
  if (sink_error) return fail(*sink_error);
  if (auto r = tmp.sync_and_close(); !r) return fail(r.error());

  fs::path final_path = *box / "new" / file;
  for (int i = 0;; ++i) {
    const int err = rename_noreplace(tmp.path(), final_path);
    if (err == 0) break;
    if (err != EEXIST || i + 1 >= kMaxNameTries)
      return fail(fs_error(err, "cannot move Maildir file into", final_path));
    final_path = *box / "new" / unique_name();
  }
  tmp.mark_renamed();
  // The rename is only durable once new/ itself is synced; before that a crash can undo it and
  // the message would be gone although we reported it delivered (DESIGN rule 2). If the sync
  // fails, take the message back out and report a transient error: the queue retries, and at
  // worst the recipient gets it twice.
  if (auto r = sync_dir(*box / "new"); !r) {
    ::unlink(final_path.c_str());
    return fail(r.error());
  }
  return final_path;
}

Expected<fs::path> MaildirWriter::deliver(std::string_view recipient, std::string_view prepend,
                                          std::string_view message) {
  return deliver(recipient, prepend, [message](const ContentSink& sink) { return sink(message); });
}

}  // namespace bridgehead::maildir
