// directory/sync/sync_settings: what directory synchronization is told by the config: each
// system's directory (where its objects are read from, and where the other system's contacts
// are written into it), and the run-wide rules (threshold, switches, soft delete, adoption,
// schedule). Plain settings types, filled by the config component; defaults live here.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "directory/addressbook/recipient.hpp"
#include "directory/ldap/connection.hpp"
#include "directory/mapping/rule_set.hpp"
#include "directory/sync/plan.hpp"
#include "directory/sync/scope.hpp"
#include "identity/id_file.hpp"

namespace bridgehead::directory::sync {

/// How changes are found after the first full read.
enum class Feed {
  kAuto,       ///< RFC 4533 when the server offers it; else uSNChanged (exchange profile, a server
               ///< with AD's rootDSE), modifyTimestamp (domino profile); else a full read each run
  kFull,       ///< a full read every run
  kSyncRepl,   ///< RFC 4533 content synchronization (OpenLDAP)
  kUsn,        ///< AD's uSNChanged with the DC's invocationID (another DC: a full read)
  kTimestamp,  ///< modifyTimestamp with an overlap window (Domino)
};

enum class BindKind { kAnonymous, kSimple, kSaslExternal };

/// One system's directory, as a source (its objects) and as a target (contacts for the other
/// system's objects, in `contacts_container`).
struct DirectorySettings {
  std::string system;  ///< the [[system]] name: "notes", "exchange"
  Profile profile = Profile::kDomino;
  /// Exactly one of the two: an LDAP URI, or an LDIF file read as the source.
  std::string uri;
  std::filesystem::path ldif_file;
  ldap::TlsMode tls = ldap::TlsMode::kNone;
  std::filesystem::path ca_file;
  BindKind bind = BindKind::kAnonymous;
  std::string bind_dn;
  std::filesystem::path password_file;  ///< simple bind: the password, same rules as the ID password file
  ldap::Timeouts timeouts;
  int page_size = ldap::kMaxPageSize;
  std::string base;  ///< the search base of its objects: "o=Acme", "dc=acme,dc=example"
  ScopeSettings scope;
  Feed feed = Feed::kAuto;
  bool persist = true;  ///< keep an RFC 4533 refresh-and-persist search open between runs
  /// Where the other system's objects go in this directory; empty: nothing is written here.
  std::string contacts_container;
  /// Instead of writing over LDAP: an LDIF change file (RFC 2849) for the administrator to
  /// import, rewritten by each run that changes something. Set: this directory is not written.
  std::filesystem::path ldif_output;
  /// The attribute holding the ownership stamp on objects Bridgehead writes here
  /// (importedFrom on the AD side; a configured one, default "description", on the Domino side).
  std::string stamp_attribute;
  /// The mapping rules for objects written INTO this directory; empty: the defaults
  /// (default_rules.hpp) for the two profiles.
  std::vector<mapping::RuleSource> rules;
  /// The same for the other system's groups; empty: the default group rules.
  std::vector<mapping::RuleSource> group_rules;
  std::string full_name_generator = "given-surname";  ///< Exchange user -> Notes full name
  /// $routing_domain when this directory's objects are written into the other one: the
  /// domain at which mail for them reaches this system through Bridgehead (its first domain).
  std::string routing_domain;
};

struct SyncSettings {
  std::vector<DirectorySettings> directories;
  std::string connector_name = "bridgehead";  ///< in the stamp: "bridgehead:<name>:<key>"
  std::string notes_domain;                   ///< $notes_domain
  DeletionLimits limits;
  Switches switches;
  bool adopt = false;
  unsigned soft_delete_days = 0;
  std::chrono::seconds interval{900};          ///< between scheduled runs (the daemon's)
  std::chrono::seconds full_interval{86'400};  ///< at least one full run this often
  std::size_t batch_size = 500;                ///< operations a state commit covers
  int in_flight = 64;                          ///< LDAP write requests outstanding on a target connection
  /// Batches of adds in one RFC 5805 transaction each, where the target offers them.
  bool transactions = false;
  /// Groups are written as groups of the other system with their members (the other system's
  /// objects for them), instead of contacts that route to the group in its home system.
  bool group_members = false;
  /// Member values in one write: a larger group is written in several.
  std::size_t member_chunk = 1000;
};

/// The attribute of the ownership stamp on objects written into `d`: its stamp_attribute, or
/// the profile's default (importedFrom for AD, description for Domino).
inline std::string stamp_attribute_of(const DirectorySettings& d) {
  if (!d.stamp_attribute.empty()) return d.stamp_attribute;
  return d.profile == Profile::kExchange ? "importedFrom" : "description";
}

/// The start of every ownership stamp this connector writes: "bridgehead:<connector name>:".
inline std::string stamp_prefix_of(const std::string& connector_name) { return "bridgehead:" + connector_name + ":"; }

/// The connector ID for SASL EXTERNAL binds: null while it is locked.
using IdSource = std::function<std::shared_ptr<const identity::ConnectorId>()>;

}  // namespace bridgehead::directory::sync
