// The quarantine directory: where a message the connector itself cannot process is set
// aside, intact, with why. Per message three files, each written durably: NAME.eml (the
// content as spooled), NAME.txt (a note for people) and NAME.json (the machine-readable
// record: envelope, reason, where each recipient stood). The .json is written last, so a
// message is in quarantine exactly when its record exists; anything else is a leftover.
// Owns the files only; deciding what to quarantine, release or bounce is the queue manager's.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/envelope.hpp"
#include "core/expected.hpp"
#include "spool/spool.hpp"

namespace bridgehead::queue {

struct QuarantineRecord {
  std::string id;                 ///< the spool id it had ("00000000000000a1")
  std::string reason;             ///< why it was set aside
  std::int64_t quarantined_at = 0;
  Envelope envelope;
  /// Per envelope recipient, in order: where it stood when the message left the spool.
  std::vector<spool::RecipientStatus> status;
  std::uint64_t size = 0;         ///< content bytes

  nlohmann::json to_json() const;  ///< the .json file's contents (and the control socket's answer)
  static Expected<QuarantineRecord> from_json(const nlohmann::json& j);
};


class QuarantineStore {
 public:
  explicit QuarantineStore(std::filesystem::path dir) : dir_(std::move(dir)) {}
  const std::filesystem::path& dir() const { return dir_; }

  /// Sets a message aside: content, note, then record, each durable (file and directory
  /// entry fsynced) before this returns; an existing quarantine of the same id is replaced.
  /// Fails naming the file, after which the caller must keep the message in the spool.
  Expected<void> put(const QuarantineRecord& record, std::string_view content);
  /// Rewrites the record only (the recipients' final states), durably.
  Expected<void> update(const QuarantineRecord& record);
  /// Every quarantined message, oldest first. Fails when the directory cannot be read.
  Expected<std::vector<QuarantineRecord>> list() const;
  /// Number of records; 0 when the directory does not exist.
  std::size_t count() const;
  /// One record: kNotFound naming the id with the remedy, kCorrupt for an unreadable record.
  Expected<QuarantineRecord> get(std::string_view id) const;
  /// The quarantined content of `id`.
  Expected<std::string> content(std::string_view id) const;
  /// Takes a message out of quarantine: the record first (so it is no longer listed even if
  /// the rest fails), then the copy and the note; durable when it returns.
  Expected<void> remove(std::string_view id);

  std::filesystem::path eml_path(std::string_view id) const { return dir_ / (std::string(id) + ".eml"); }
  std::filesystem::path note_path(std::string_view id) const { return dir_ / (std::string(id) + ".txt"); }
  std::filesystem::path record_path(std::string_view id) const { return dir_ / (std::string(id) + ".json"); }

 private:
  Expected<void> check_id(std::string_view id) const;
  std::filesystem::path dir_;
};

}  // namespace bridgehead::queue
