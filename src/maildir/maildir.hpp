// Local Maildir delivery: one Maildir per recipient below a root directory, each message
// written to tmp/, fsynced, renamed into new/ and made durable there. Owns the mapping of an
// address to a safe directory name and the Maildir file naming. Does not own the message
// content (line endings, trace headers, dot-stuffing are the caller's), retries or bounces.
#pragma once

#include <filesystem>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include "core/expected.hpp"

namespace bridgehead::maildir {

/// Receives one piece of the message; fails (transient kDiskFull/kIo) when it cannot be written.
using ContentSink = std::function<Expected<void>(std::string_view)>;
/// Streams the whole message into the sink, piece by piece; its own error aborts the delivery.
using ContentSource = std::function<Expected<void>(const ContentSink&)>;

/// The directory name below the root for `recipient`: the address with ASCII letters lowercased.
/// Fails (permanent kInvalidArgument) on an empty or over-long address, '/', "..", a leading '.'
/// and control characters. Distinct lowercased addresses always give distinct names.
Expected<std::string> mailbox_name(std::string_view recipient);

/// `host` made safe for a Maildir file name: '/' becomes "\057" and ':' becomes "\072".
std::string encode_hostname(std::string_view host);

class MaildirWriter {
 public:
  /// Delivers below `root` (created with mode 0700 when missing); `hostname` goes into file names.
  MaildirWriter(std::filesystem::path root, std::string hostname);

  /// Writes `prepend` (e.g. "Delivered-To: ...\n") then the source's pieces into the recipient's
  /// Maildir and returns the file's path in new/ once it is durable. Fails with a permanent
  /// kInvalidArgument for an unusable address, a transient error (kDiskFull, kIo, kPermission)
  /// naming the path for file-system trouble, or the source's own error; nothing is left behind.
  Expected<std::filesystem::path> deliver(std::string_view recipient, std::string_view prepend,
                                          const ContentSource& content);

  /// Same, for a message already in memory.
  Expected<std::filesystem::path> deliver(std::string_view recipient, std::string_view prepend,
                                          std::string_view message);

  const std::filesystem::path& root() const { return root_; }

 private:
  Expected<std::filesystem::path> ensure_mailbox(const std::string& name);
  std::string unique_name();

  std::filesystem::path root_;
  std::string hostname_;  // already encoded
  std::mutex mutex_;
  std::set<std::string> ready_;  // mailboxes whose directories are known to exist durably
};

}  // namespace bridgehead::maildir
