// Durable file writes: the one implementation of tmp -> write -> fsync -> rename -> fsync of
// the directory that every component uses when a file must survive a crash the moment the
// call returns (spool metadata, quarantine copies, Maildir messages, connector ID files).
// Owns no policy about names or contents; callers choose paths and modes.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string_view>

#include "core/expected.hpp"

namespace bridgehead::durable {

/// What a rename does when the target name already exists.
enum class IfExists {
  kReplace,  ///< the target is replaced atomically (rename(2))
  kKeep,     ///< the target is never replaced (RENAME_NOREPLACE, or link + unlink)
};

/// fsyncs the directory `dir`, so the entries created, renamed or removed in it survive a
/// crash. Fails (transient kIo) naming the directory.
Expected<void> sync_directory(const std::filesystem::path& dir);
/// The same on a directory the caller keeps open; `dir` only names it in errors.
Expected<void> sync_directory(int dir_fd, const std::filesystem::path& dir);

/// Renames `from` to `to`, then fsyncs the directory of `to`: the new name is durable when
/// this returns true. Returns false, changing nothing, when `to` exists and `if_exists` is
/// kKeep. With kKeep a failed directory sync also takes the new name away again, so a
/// failure never leaves a half-durable file under `to`. Fails naming both paths.
Expected<bool> rename_durably(const std::filesystem::path& from, const std::filesystem::path& to,
                              IfExists if_exists = IfExists::kReplace);

struct WriteOptions {
  mode_t mode = 0600;
  IfExists if_exists = IfExists::kReplace;
};

/// Writes `data` as `path` so that, after a crash at any moment, the name refers either to
/// what was there before or to the complete new contents, and once this returns the new
/// contents survive a crash. The temporary file lives beside `path` and is removed on every
/// failure. With IfExists::kKeep an existing `path` fails with kInvalidArgument ("already
/// exists", remedy: choose another name or remove it); other failures are errno errors.
Expected<void> write_file_durably(const std::filesystem::path& path, std::string_view data, WriteOptions options = {});

/// Removes what a write interrupted by a crash left in `dir`: temporary files of the
/// form write_file_durably and PendingFile::create_beside use (".NAME.XXXXXX.tmp"), never
/// renamed, so never anyone's data. Returns how many went; a missing or unreadable
/// directory is nothing to remove. For startup, before anything writes in `dir`.
std::size_t remove_interrupted_writes(const std::filesystem::path& dir);

/// A file written in pieces and then published durably under its final name (a Maildir
/// message streamed from the spool). Owns the descriptor and the temporary name: until
/// publish() succeeds, destruction closes the file and removes the temporary name.
class PendingFile {
 public:
  /// Creates `tmp` exclusively (O_EXCL) with `mode`. Fails with the errno error; `exists`
  /// (when given) is set when the failure was only that `tmp` exists already, so the
  /// caller can pick another name.
  static Expected<PendingFile> create(std::filesystem::path tmp, mode_t mode, bool* exists = nullptr);
  /// Creates a new, uniquely named, hidden temporary file in the directory of `target`
  /// (".NAME.XXXXXX.tmp") with `mode`. Fails with the errno error naming `target`.
  static Expected<PendingFile> create_beside(const std::filesystem::path& target, mode_t mode);
  PendingFile(PendingFile&& other) noexcept;
  PendingFile& operator=(PendingFile&&) = delete;
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;
  ~PendingFile();

  /// Appends `data`; fails naming the temporary file.
  Expected<void> write(std::string_view data);
  /// fsyncs and closes the file, then rename_durably(tmp, `target`, `if_exists`). Returns
  /// false when `target` exists and `if_exists` is kKeep: the file stays pending (closed),
  /// so publish() may be called again with another name.
  Expected<bool> publish(const std::filesystem::path& target, IfExists if_exists = IfExists::kReplace);

  const std::filesystem::path& path() const { return tmp_; }

 private:
  PendingFile(int fd, std::filesystem::path tmp) : fd_(fd), tmp_(std::move(tmp)) {}
  int fd_ = -1;
  std::filesystem::path tmp_;
  bool synced_ = false;
  bool published_ = false;
};

}  // namespace bridgehead::durable
