// directory/sync/state_store: what directory synchronization remembers between runs, in one
// SQLite file in the state directory (dirsync.sqlite, WAL, synchronous=FULL): per direction the
// objects Bridgehead owns in the target (ObjectRecord), per source directory the recipients it
// read (the address book is rebuilt from them, so an incremental run needs no full read) and
// its change-feed cookie, the runs with their reports, held deletions and previews. Writes go
// in batches, one transaction each: a batch carries the cookie with the state it covers, so a
// crash mid-run leaves either both or neither. One process opens it at a time (the daemon or a
// CLI command); a second open fails at once (kUnavailable, naming the file) instead of waiting.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/expected.hpp"
#include "directory/addressbook/recipient.hpp"
#include "directory/sync/operation.hpp"

struct sqlite3;

namespace bridgehead::directory::sync {

/// One source object as last read: what the address book and delete confirmation need.
struct SourceRecord {
  std::string directory;  ///< the source's name in the config ("notes")
  std::string key;
  std::string dn;
  /// entryUUID where the source has one besides its key: an RFC 4533 feed names a deleted
  /// entry by it alone. Empty otherwise.
  std::string uuid;
  /// The recipient derived from it; nullopt when it is not one (skipped or refused).
  std::optional<Recipient> recipient;
  bool operator==(const SourceRecord&) const = default;
};

enum class RunKind : std::uint8_t { kFull, kIncremental, kPreview, kApply, kApprove };
enum class RunStatus : std::uint8_t {
  kRunning,  ///< started, not finished (a crash leaves it so; the next open marks it kFailed)
  kOk,       ///< everything written
  kHeld,     ///< written except the deletions the threshold held; `approve` releases them
  kPartial,  ///< finished, some entries had problems (listed)
  kFailed,   ///< stopped: `error` says why; state as of the last committed batch
};
std::string_view to_string(RunKind k);    ///< "full", "incremental", "preview", "apply", "approve"
std::string_view to_string(RunStatus s);  ///< "running", "ok", "held", "partial", "failed"

struct RunCounts {
  std::uint64_t read = 0, adds = 0, updates = 0, renames = 0, deletes = 0, hides = 0, adoptions = 0;
  std::uint64_t unchanged = 0, conflicts = 0, out_of_scope = 0, errors = 0, held = 0, switched_off = 0;
  bool operator==(const RunCounts&) const = default;
};

struct RunProblem {
  std::string direction, key, dn, kind, message;  ///< kind: EntryProblem's to_string, or "write"
  bool operator==(const RunProblem&) const = default;
};

struct RunRecord {
  std::int64_t id = 0;  ///< assigned by begin_run, from 1
  RunKind kind = RunKind::kFull;
  RunStatus status = RunStatus::kRunning;
  std::string directions;  ///< "notes->exchange, exchange->notes"
  std::int64_t started_ms = 0, finished_ms = 0;
  RunCounts counts;
  std::string error;                 ///< kFailed, kHeld: the cause and the remedy
  std::vector<RunProblem> problems;  ///< at most kMaxStoredProblems kept; `problem_count` says how many there were
  std::uint64_t problem_count = 0;
  std::int64_t preview_id = 0;  ///< kPreview: the preview it stored; kApply: the one it applied
  bool operator==(const RunRecord&) const = default;
};
inline constexpr std::size_t kMaxStoredProblems = 1000;

/// Writes that commit together.
struct Batch {
  std::vector<ObjectRecord> put_objects;
  std::vector<std::pair<std::string, std::string>> erase_objects;  ///< (direction, key)
  std::vector<SourceRecord> put_sources;
  std::vector<std::pair<std::string, std::string>> erase_sources;  ///< (directory, key)
  /// (directory, cookie): the feed position the sources above bring the state to. An empty
  /// cookie forgets it (the next run is full).
  std::vector<std::pair<std::string, std::string>> cookies;
  bool empty() const;
};

class StateStore {
 public:
  /// Opens or creates `file` (mode 0600) with its schema; a file of a newer schema version is
  /// refused (kConfig) and one that is not a state file is kCorrupt, naming the file. Runs left
  /// kRunning by a crash are marked kFailed ("interrupted: the connector stopped mid-run").
  /// A file another process has open: kUnavailable ("FILE is in use by another bridgehead
  /// process"), at once.
  static Expected<StateStore> open(const std::filesystem::path& file);
  StateStore(StateStore&&) noexcept;
  StateStore& operator=(StateStore&&) noexcept;
  ~StateStore();

  /// Commits `batch` in one transaction; on any failure nothing of it is kept (a full disk:
  /// kDiskFull, transient; a record without its key or name: kInvalidArgument).
  Expected<void> commit(const Batch& batch);

  // Objects Bridgehead owns, per direction.
  Expected<std::unordered_map<std::string, ObjectRecord>> objects(const std::string& direction);
  Expected<std::optional<ObjectRecord>> object(const std::string& direction, const std::string& key);
  Expected<std::size_t> object_count(const std::string& direction);
  /// Only the key and the two DNs of each: what resolving group members needs.
  Expected<void> for_each_object_dn(
      const std::string& direction,
      const std::function<void(std::string_view key, std::string_view source_dn, std::string_view target_dn)>& fn);

  // Source objects, per directory.
  Expected<void> for_each_source(const std::string& directory, const std::function<void(const SourceRecord&)>& fn);
  /// Only the key and UUID of each: what finding the deleted objects needs, without decoding
  /// every recipient.
  Expected<void> for_each_source_key(const std::string& directory,
                                     const std::function<void(std::string_view key, std::string_view uuid)>& fn);
  /// Only the key and the DN of each.
  Expected<void> for_each_source_dn(const std::string& directory,
                                    const std::function<void(std::string_view key, std::string_view dn)>& fn);
  Expected<std::optional<SourceRecord>> source(const std::string& directory, const std::string& key);
  Expected<std::optional<SourceRecord>> source_by_uuid(const std::string& directory, const std::string& uuid);
  Expected<std::size_t> source_count(const std::string& directory);
  /// Every recipient of every directory: what the address book is built from.
  Expected<void> for_each_recipient(const std::function<void(const Recipient&)>& fn);

  Expected<std::optional<std::string>> cookie(const std::string& directory);

  // Runs.
  Expected<std::int64_t> begin_run(RunKind kind, const std::string& directions, std::int64_t started_ms);
  /// Stores the outcome of run `record.id` (status, counts, problems, error, finished_ms,
  /// preview_id), replacing the problems stored before; problems past kMaxStoredProblems are
  /// dropped, problem_count is kept (at least problems.size()). kNotFound: no such run.
  Expected<void> finish_run(const RunRecord& record);
  Expected<std::optional<RunRecord>> run(std::int64_t id);
  /// The latest `n`, newest first.
  Expected<std::vector<RunRecord>> last_runs(std::size_t n);

  // Deletions a run's threshold held, until approved (or a later run's plan no longer has them).
  /// Adds `ops` to what `run` holds (one call per direction); kNotFound: no such run.
  Expected<void> hold(std::int64_t run, const std::vector<Operation>& ops);
  /// What `run` holds, in the order held; empty when nothing.
  Expected<std::vector<Operation>> held(std::int64_t run);
  /// Marks `run`'s held deletions approved; kNotFound when it held none.
  Expected<void> approve(std::int64_t run);
  /// The keys approved for deletion, per direction, not yet carried out.
  Expected<std::unordered_map<std::string, std::vector<std::string>>> approved_keys();
  /// Forgets the held deletions of `run` (carried out, or superseded).
  Expected<void> clear_held(std::int64_t run);

  // Previews: the exact operations a run would make.
  /// Stores `ops` as a new preview of `run` and returns its id; kNotFound: no such run.
  Expected<std::int64_t> save_preview(std::int64_t run, const std::vector<Operation>& ops);
  /// The operations of preview `id`, in order; kNotFound: no such preview.
  Expected<std::vector<Operation>> preview(std::int64_t id);
  /// Marks preview `id` applied by `run`; applying it again is refused (kInvalidArgument).
  Expected<void> mark_preview_applied(std::int64_t id, std::int64_t run);
  /// The run that applied preview `id`, nullopt while none has; kNotFound: no such preview.
  Expected<std::optional<std::int64_t>> preview_applied_by(std::int64_t id);

 private:
  explicit StateStore(sqlite3* db, std::filesystem::path file);
  struct Statements;
  sqlite3* db_ = nullptr;
  std::filesystem::path file_;
  std::unique_ptr<Statements> st_;
};

}  // namespace bridgehead::directory::sync
