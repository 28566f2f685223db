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

#include "core/durable_file.hpp"
#include "core/text.hpp"

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

// Errors name the Maildir, so the status says which mailbox store is in trouble.
Expected<void> sync_dir(const fs::path& dir) {
  auto r = durable::sync_directory(dir);
  if (!r) return fail(Error{r.error().code, r.error().severity, "Maildir: " + r.error().message, r.error().remedy});
  return r;
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
    name += to_lower(c);
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
  std::optional<durable::PendingFile> tmp;
  for (int i = 0; i < kMaxNameTries && !tmp; ++i) {
    file = unique_name();
    bool taken = false;
    auto created = durable::PendingFile::create(*box / "tmp" / file, 0600, &taken);
    if (created) {
      tmp.emplace(std::move(*created));
    } else if (!taken) {
      // Someone may have removed the mailbox; let the next delivery create it again.
      std::lock_guard lock(mutex_);
      ready_.erase(*name);
      return fail(Error{created.error().code, created.error().severity, "cannot create Maildir file: " + created.error().message,
                        created.error().remedy});
    }
  }
  if (!tmp) {
    return fail(Error::transient_error(ErrorCode::kIo,
                                       fmt::format("cannot find an unused file name in {}", (*box / "tmp").string()),
                                       "check the clock and for stale files in tmp/"));
  }

  if (auto r = tmp->write(prepend); !r) return fail(r.error());
  // Remember the sink's first failure, so a source that ignores it cannot make a truncated
  // message look delivered.
  std::optional<Error> sink_error;
  const ContentSink sink = [&](std::string_view piece) -> Expected<void> {
    if (sink_error) return fail(*sink_error);
    auto r = tmp->write(piece);
    if (!r) sink_error = r.error();
    return r;
  };
  if (auto r = content(sink); !r) return fail(r.error());
  if (sink_error) return fail(*sink_error);

  // Never replacing an existing message (a replaced file is a lost message): a name taken in
  // new/ meanwhile means another name. Durable once it returns true; if new/ cannot be
  // synced the message is taken back out, so the error is honest: the queue retries, and at
  // worst the recipient gets it twice (DESIGN rule 2).
  fs::path final_path = *box / "new" / file;
  for (int i = 0;; ++i) {
    auto published = tmp->publish(final_path, durable::IfExists::kKeep);
    if (!published) return fail(published.error());
    if (*published) break;
    if (i + 1 >= kMaxNameTries) {
      return fail(Error::transient_error(ErrorCode::kIo, fmt::format("cannot move Maildir file into {}: every name "
                                                                     "tried exists", final_path.string()),
                                         "check the clock and for stale files in new/"));
    }
    final_path = *box / "new" / unique_name();
  }
  return final_path;
}

Expected<fs::path> MaildirWriter::deliver(std::string_view recipient, std::string_view prepend,
                                          std::string_view message) {
  return deliver(recipient, prepend, [message](const ContentSink& sink) { return sink(message); });
}

}  // namespace bridgehead::maildir
