// directory/sync/engine: one synchronization run over every configured direction: read each
// source (a full read, or its change feed from the stored cookie), derive its recipients for
// the address book, map and plan each direction, confirm each delete with a base search of the
// source, apply the operations to the target in batches and commit the state batch by batch
// (the cookie with the last one), then rebuild the address book from the state and hand it to
// `on_address_book`. Previews store the plan instead of writing; approve releases a held
// run's deletions. Blocking (libldap, SQLite): the daemon runs it on a thread of its own.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/expected.hpp"
#include "directory/addressbook/address_book.hpp"
#include "directory/sync/state_store.hpp"
#include "directory/sync/sync_settings.hpp"

namespace bridgehead::directory::sync {

struct RunOptions {
  RunKind kind = RunKind::kIncremental;  ///< kFull, kIncremental or kPreview
  bool full = false;                     ///< with kPreview: plan from a full read
};

/// What a run is doing, for the status: "reading notes: 12,000 entries".
using ProgressFn = std::function<void(const std::string& activity)>;
/// A new address book, built from the state after a run that changed it.
using AddressBookFn = std::function<void(std::shared_ptr<const AddressBook> book, std::size_t collisions)>;

class Engine {
 public:
  /// `state_dir` holds dirsync.sqlite and addressbook.bin. Checks the settings (rules parse,
  /// DNs, scope) and fails (kConfig) naming what is wrong; opens the state (kUnavailable when
  /// another process has it).
  static Expected<std::unique_ptr<Engine>> open(SyncSettings settings, std::filesystem::path state_dir, IdSource id);
  ~Engine();

  void on_progress(ProgressFn fn) { progress_ = std::move(fn); }
  void on_address_book(AddressBookFn fn) { address_book_ = std::move(fn); }

  /// Runs. The record tells what happened; an Error only when the run could not be recorded
  /// at all (the state file failed). A directory down, a locked ID, a held deletion are the
  /// record's status and error, with the remedy.
  Expected<RunRecord> run(const RunOptions& options);
  /// Applies exactly the operations of preview `id` (written, or reported per operation).
  Expected<RunRecord> apply_preview(std::int64_t id);
  /// Approves the held deletions of run `id` and carries them out now.
  Expected<RunRecord> approve(std::int64_t id);

  StateStore& state() { return state_; }
  const SyncSettings& settings() const { return settings_; }
  const IdSource& id_source() const { return id_; }
  /// Asks a run in progress to stop after its current batch (the daemon's shutdown).
  void request_stop() { stop_.store(true); }

  /// Rebuilds addressbook.bin from the state's recipients and hands it to on_address_book.
  Expected<void> rebuild_address_book();

  struct Direction;  // engine.cpp
 private:
  Engine(SyncSettings settings, std::filesystem::path state_dir, IdSource id, StateStore state);
  Direction* direction(const std::string& name) const;
  /// Applies `ops` as they are (a preview, approved deletions) and records them.
  Expected<RunRecord> write_exactly(RunKind kind, std::vector<Operation> ops, bool confirm_deletes);

  SyncSettings settings_;
  std::filesystem::path state_dir_;
  IdSource id_;
  StateStore state_;
  std::vector<std::unique_ptr<Direction>> directions_;
  ProgressFn progress_;
  AddressBookFn address_book_;
  std::atomic<bool> stop_{false};
};

}  // namespace bridgehead::directory::sync
