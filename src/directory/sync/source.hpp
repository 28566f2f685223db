// directory/sync/source: reading one system's directory: an LDAP server (a full paged read,
// or its change feed from a cookie) or an LDIF file (always a full read). Every object comes
// with its immutable key (object_key); what to do with it is the engine's.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/expected.hpp"
#include "directory/entry.hpp"
#include "directory/sync/sync_settings.hpp"

namespace bridgehead::directory::sync {

/// The object's immutable key by profile: Domino dominoUNID, Exchange objectGUID (as GUID
/// text), else entryUUID. Empty when it has none (the entry cannot be synchronized).
std::string object_key(const Entry& entry, Profile profile);

struct SourceChange {
  enum class Kind {
    kUpsert,     ///< the object as it is now (new or changed)
    kDelete,     ///< gone; `key` or only `uuid` is known
    kUnchanged,  ///< still there, maybe unchanged since the cookie (RFC 4533 present phase: `uuid`
                 ///< only; a key enumeration after a uSNChanged or modifyTimestamp read: `key`)
  };
  Kind kind = Kind::kUpsert;
  std::string key;
  std::string uuid;  ///< entryUUID, when the source gives it
  Entry entry;       ///< kUpsert
};

struct ReadOutcome {
  /// Every object in the source was reported (as kUpsert or kUnchanged): one not reported is gone.
  bool full = true;
  /// false: stopped early (limit, paging error, disconnect, a bad LDIF record); nothing may be deleted.
  bool complete = true;
  std::optional<Error> problem;  ///< why incomplete
  std::string cookie;            ///< the feed position after this read; empty: the source has no feed
  std::size_t entries = 0;
};

using ChangeFn = std::function<void(SourceChange&& change)>;
using CountFn = std::function<void(std::size_t entries)>;

class Source {
 public:
  virtual ~Source() = default;
  /// Reads everything (`cookie` empty, or `full`) or the changes since `cookie`. Fails when
  /// the source cannot be reached or bound to, or the read is refused before any entry.
  virtual Expected<ReadOutcome> read(const std::string& cookie, bool full, const ChangeFn& fn,
                                     const CountFn& progress) = 0;
  /// Whether the object is still in the source: a base search of `dn` and, when it moved, a
  /// search for its key. Confirms a delete before it is made.
  virtual Expected<bool> still_there(const std::string& dn, const std::string& key) = 0;
};

/// The source for `settings`; `id` gives the connector ID for SASL EXTERNAL (kUnavailable
/// "the connector ID is locked" while it returns null). Objects whose stamp starts with
/// `stamp_prefix` (the contacts Bridgehead wrote into this directory) are not read.
Expected<std::unique_ptr<Source>> open_source(const DirectorySettings& settings, const IdSource& id,
                                              const std::string& stamp_prefix);

/// The filter every LDAP read of `settings` uses: its scope's filter, without the objects
/// whose stamp starts with `stamp_prefix` (Bridgehead's own contacts there).
std::string read_filter(const DirectorySettings& settings, const std::string& stamp_prefix);

/// The ldap::Options (bind, TLS, timeouts) of `settings`: shared with the target.
Expected<ldap::Options> ldap_options(const DirectorySettings& settings, const IdSource& id);

}  // namespace bridgehead::directory::sync
