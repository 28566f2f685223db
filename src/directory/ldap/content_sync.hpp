// directory/ldap/content_sync: RFC 4533 content synchronization (OpenLDAP's syncrepl protocol)
// over an open Connection: refresh-only from a cookie, and refresh-and-persist, which keeps the
// search open and hands over each change as it happens until stopped. It reports what the
// server said (changed, deleted, present-unchanged entries by entryUUID, the new cookie, how
// deletions were told); what to do with it, and where the cookie is kept, is dirsync's.
// Written over ldap_search_ext and liblber (the sync request control by hand) rather than
// libldap's ldap_sync_* API, which restarts by itself on e-syncRefreshRequired and so hides it.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"
#include "directory/entry.hpp"
#include "directory/ldap/connection.hpp"

namespace bridgehead::directory::ldap {

/// The RFC 4533 result code e-syncRefreshRequired: the cookie is too old (or not this server's).
inline constexpr int kSyncRefreshRequired = 4096;

/// The usual text of a UUID given as 16 octets (RFC 4122 order, as the sync controls carry
/// entryUUID): 8-4-4-4-12 lowercase hex digits, as slapd shows the entryUUID attribute.
/// nullopt when `octets` is not 16 octets long.
std::optional<std::string> uuid_text(std::string_view octets);

enum class SyncEventKind {
  kChanged,      ///< added or modified since the cookie: `entry` holds its DN and attributes
  kDeleted,      ///< deleted: `entry_uuid` only (the server no longer knows the DN)
  kPresent,      ///< still there (present phase): `entry_uuid`, sometimes a DN; may repeat a kChanged
  kRefreshDone,  ///< persist only: the refresh phase is over; `cookie` and `deletes` say how it ended
  kNewCookie,    ///< the server moved the cookie on without a change (`cookie`)
};

/// How the refresh told the caller about deletions.
enum class DeleteReporting {
  /// Each deleted entry was reported (kDeleted events): the server used its session log
  /// (refreshDeletes), or there was nothing to refresh from.
  kExplicit,
  /// The present phase was used, or the refresh started from an empty cookie (its events are
  /// the whole content): every entry the caller knows of that was reported neither as
  /// kChanged nor as kPresent is gone. Only a complete refresh allows that conclusion.
  kPresentPhase,
};
std::string_view to_string(DeleteReporting d);  ///< "explicit", "present-phase"

struct SyncEvent {
  SyncEventKind kind = SyncEventKind::kChanged;
  std::string entry_uuid;  ///< text form (uuid_text); empty for kRefreshDone and kNewCookie
  Entry entry;             ///< kChanged: DN and attributes; otherwise at most a DN
  /// The cookie the server attached to this event: the position after it. While persisting,
  /// storing it with the change it came with resumes exactly there. nullopt: none came.
  std::optional<std::string> cookie;
  DeleteReporting deletes = DeleteReporting::kExplicit;  ///< kRefreshDone only
};

/// Called once per event, in the server's order; return false to stop (kStoppedByCaller).
using SyncCallback = std::function<bool(SyncEvent event)>;

struct SyncRequest {
  std::string base;
  Scope scope = Scope::kSubtree;
  std::string filter = "(objectClass=*)";
  std::vector<std::string> attributes;  ///< empty: all user attributes
  /// From the last outcome; empty: everything (a full refresh). Only ever a cookie this server
  /// gave: slapd takes one it cannot parse as none and sends everything as kChanged with
  /// refreshDeletes, so deletions since would go unnoticed.
  std::string cookie;
};

struct SyncOutcome {
  /// kComplete: the refresh ran to its end. kDisconnected: the connection broke (reconnect
  /// and refresh from the last cookie stored). kTimeLimit: no message within
  /// Timeouts::operation during the refresh. kServerError: the server ended the search with an
  /// error. kStoppedByCaller: the callback returned false, or (persist) a stop was requested.
  Completeness completeness = Completeness::kComplete;
  std::optional<Error> problem;  ///< why not complete, with the remedy; nullopt when complete
  /// e-syncRefreshRequired (4096): the server cannot refresh from this cookie. Events
  /// delivered before it do not count; do a full run (an empty cookie).
  bool refresh_required = false;
  /// The last cookie the server sent: the position to store once the events are applied.
  /// nullopt: it sent none (keep the old one).
  std::optional<std::string> cookie;
  DeleteReporting deletes = DeleteReporting::kExplicit;  ///< of the refresh phase
  std::size_t changed = 0, deleted = 0, present = 0;     ///< events of each kind delivered
  bool complete() const { return completeness == Completeness::kComplete && !refresh_required; }
};

/// Refresh-only: everything changed since `request.cookie` (everything, for an empty one),
/// then the new cookie. Fails (nothing delivered) when the search cannot be sent or the server
/// refuses it at once (no such base, bad filter, no access, no syncprov: "critical extension
/// is unavailable"); refresh required, disconnects and timeouts are told in the outcome.
Expected<SyncOutcome> refresh_only(Connection& connection, const SyncRequest& request, const SyncCallback& on_event);

/// How often a persisting search looks at its stop token: it returns within about this long
/// after a stop is requested.
inline constexpr std::chrono::milliseconds kPersistStopCheck{200};

/// Refresh-and-persist: the refresh as refresh_only() (ending with a kRefreshDone event),
/// then each change as the server makes it, with its cookie, until `stop` is requested
/// (kStoppedByCaller; the search is abandoned and the connection stays usable), the callback
/// returns false, or the connection breaks (kDisconnected, with an Error saying to reconnect
/// and resume from the last cookie). Only the refresh phase has a time limit
/// (Timeouts::operation between messages); a persisting search waits for changes forever.
/// Fails as refresh_only() does.
Expected<SyncOutcome> refresh_and_persist(Connection& connection, const SyncRequest& request,
                                          const SyncCallback& on_event, std::stop_token stop);

}  // namespace bridgehead::directory::ldap
