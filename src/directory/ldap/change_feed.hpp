// directory/ldap/change_feed: the incremental reads of the directories without RFC 4533:
// Active Directory's uSNChanged feed (a position of invocationID and USN; a different server
// means a full run) and Domino's modifyTimestamp feed (a position in time, re-read with an
// overlap so that a change in the same second as the last read is never skipped). Each read
// hands over the changed entries and the next position; storing the position with the state
// it covers, and finding deletions where a feed cannot show them, is dirsync's.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/expected.hpp"
#include "directory/entry.hpp"
#include "directory/ldap/connection.hpp"

namespace bridgehead::directory::ldap {

// ---- Active Directory: uSNChanged ---------------------------------------------------------

/// AD's show-deleted control (LDAP_SERVER_SHOW_DELETED_OID): deleted objects (tombstones,
/// isDeleted=TRUE) are returned by searches that reach them.
inline constexpr std::string_view kShowDeletedOid = "1.2.840.113556.1.4.417";

/// The usual text of an objectGUID-like value (16 octets; the first three groups are stored
/// little-endian, as Windows writes a GUID): "8-4-4-4-12" lowercase. nullopt unless 16 octets.
std::optional<std::string> windows_guid_text(std::string_view octets);

/// Where a uSNChanged feed has read to: changes up to `usn` on the domain controller whose
/// database is `invocation_id`. USNs are per domain controller and start over when its
/// database is restored, which gives it a new invocationID: a position is only good on the
/// DC and the database it was taken from.
struct UsnPosition {
  std::string invocation_id;  ///< windows_guid_text of the DC's invocationId
  std::uint64_t usn = 0;
  /// "invocation-id/usn": the form StateStore keeps as the directory's cookie.
  std::string text() const;
  /// The inverse of text(); kParse naming the text when it is not one.
  static Expected<UsnPosition> parse(std::string_view text);
  bool operator==(const UsnPosition&) const = default;
};

/// What the rootDSE and the DC's NTDS Settings object say about the server.
struct DomainController {
  std::string dsa_dn;                       ///< rootDSE dsServiceName: its NTDS Settings object
  std::string invocation_id;                ///< that object's invocationId, as windows_guid_text
  std::uint64_t highest_committed_usn = 0;  ///< rootDSE highestCommittedUSN
  bool offers_show_deleted = false;         ///< rootDSE supportedControl lists kShowDeletedOid
};

/// Reads the rootDSE (highestCommittedUSN, dsServiceName, supportedControl) and the
/// invocationId of the object dsServiceName names. kUnavailable naming what is missing when
/// the server is not an AD domain controller (no such rootDSE attribute, no invocationId).
Expected<DomainController> read_domain_controller(Connection& connection);

struct UsnFeedRequest {
  /// Base, scope, filter and attributes of the objects to follow; the feed ANDs
  /// (uSNChanged>=N+1) to the filter and asks for uSNChanged and isDeleted too. Paged as usual.
  SearchRequest search;
  /// The position of the last read; nullopt: read everything (a full run), which gives the
  /// first position.
  std::optional<UsnPosition> since;
  /// Ask for deleted objects with the show-deleted control when the server offers it. They
  /// come only where the search reaches them: AD moves them to the naming context's
  /// CN=Deleted Objects with most attributes stripped (objectClass and objectGUID stay,
  /// objectCategory does not), so the base must be the naming context and the filter must
  /// match a tombstone, e.g. (objectClass=user).
  bool deleted_objects = true;
};

struct UsnFeedOutcome {
  SearchOutcome search;  ///< as Connection::search: only a complete read may move the position
  /// The server is not the one of `since` (another DC, or a restored database: another
  /// invocationID). Nothing was read; do a full run (since = nullopt).
  bool different_server = false;
  /// The position to store after applying this read (when search.complete()): this DC's
  /// invocationID and the highestCommittedUSN read before the search (never below `since`):
  /// what was committed during the search comes again. `since` when different_server.
  UsnPosition position;
  /// Deleted objects were asked for (show-deleted) and come as `deleted` entries. false: the
  /// server does not offer the control (or it was not asked for), and this feed cannot see
  /// deletions: the caller finds them by reading every key (attributes = {"objectGUID"}) and
  /// comparing with what it knows.
  bool deletions_reported = false;
};

/// Called once per changed entry; `deleted` when it is a tombstone (isDeleted=TRUE). Return
/// false to stop.
using UsnEntryCallback = std::function<bool(Entry entry, bool deleted)>;

/// The entries changed since `request.since` (all, without one), and the next position.
/// Fails as read_domain_controller() and Connection::search do; an entry without a readable
/// uSNChanged is still delivered (it cannot move the position).
Expected<UsnFeedOutcome> read_usn_changes(Connection& connection, const UsnFeedRequest& request,
                                          const UsnEntryCallback& on_entry);

// ---- Domino: modifyTimestamp ---------------------------------------------------------------

/// How far before the last position a modifyTimestamp read starts again, by default.
inline constexpr std::chrono::seconds kDefaultTimestampOverlap{600};

/// An LDAP GeneralizedTime (RFC 4517 3.3.13): "YYYYMMDDHH[MM[SS]][.fraction](Z|+hhmm|-hhmm)",
/// to UTC, the fraction dropped. kParse naming the text and what is wrong with it.
Expected<std::chrono::sys_seconds> parse_generalized_time(std::string_view text);
/// "YYYYMMDDHHMMSSZ".
std::string format_generalized_time(std::chrono::sys_seconds time);

struct TimestampFeedRequest {
  /// Base, scope, filter and attributes; the feed ANDs (modifyTimestamp>=since - overlap) to
  /// the filter and asks for modifyTimestamp too (it is operational).
  SearchRequest search;
  /// The position of the last read; nullopt: read everything (a full run).
  std::optional<std::chrono::sys_seconds> since;
  /// Changes of the `overlap` before `since` are read again: a change in the second of the
  /// last read, or one the server stamped a little late, is never skipped. The caller's diff
  /// is idempotent, so re-reading costs only time. Zero or more.
  std::chrono::seconds overlap = kDefaultTimestampOverlap;
};

struct TimestampFeedOutcome {
  SearchOutcome search;  ///< only a complete read may move the position
  /// The position to store after applying this read: the highest modifyTimestamp read, never
  /// before `since`; nullopt when nothing was read and there was no `since`. This feed cannot
  /// see deletions: the caller finds them by reading every key and comparing.
  std::optional<std::chrono::sys_seconds> position;
  std::size_t without_timestamp = 0;  ///< entries delivered without a readable modifyTimestamp
};

/// The entries modified since `request.since - request.overlap` (all, without a since), and
/// the next position. kInvalidArgument for a negative overlap; otherwise fails as
/// Connection::search does.
Expected<TimestampFeedOutcome> read_timestamp_changes(Connection& connection, const TimestampFeedRequest& request,
                                                      const EntryCallback& on_entry);

}  // namespace bridgehead::directory::ldap
