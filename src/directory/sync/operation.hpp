// directory/sync/operation: one write that directory synchronization makes to a target
// directory, as the planner decides it, a preview stores it and a target applies it. Each
// operation carries the state to record once it has been applied, so a preview applied later
// and a run update the state the same way. Pure data: no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/expected.hpp"
#include "directory/entry.hpp"
#include "directory/ldap/connection.hpp"

namespace bridgehead::directory::sync {

enum class OpKind : std::uint8_t {
  kAdd,     ///< create `entry` (its DN is the new object's)
  kModify,  ///< apply `changes` to `dn`
  kRename,  ///< modrdn `dn` to `new_rdn` (the container does not change: one per direction)
  kDelete,  ///< delete `dn`
  kHide,    ///< soft delete: `changes` hide `dn` from address lists; deleted after N days
  kAdopt,   ///< stamp an object Bridgehead did not create (`changes` set the stamp and the
            ///< mapped values), so that it owns it from now on
};
/// "add", "modify", "rename", "delete", "hide", "adopt".
std::string_view to_string(OpKind kind);
std::optional<OpKind> op_kind_from_string(std::string_view text);
/// A modification's op as previews and reports write it: "add", "delete", "replace".
std::string_view to_string(ldap::ModifyOp op);
std::optional<ldap::ModifyOp> modify_op_from_string(std::string_view text);

/// What the state records of a target object once an operation on it has been applied.
struct ObjectRecord {
  std::string direction;  ///< "notes->exchange"
  std::string key;        ///< the source object's immutable id (dominoUNID, objectGUID text, entryUUID)
  std::string source_dn;  ///< where the source object was last seen
  std::string target_dn;  ///< the object Bridgehead owns in the target
  /// The attributes Bridgehead manages, as last written (objectClass and the stamp included;
  /// no DN). A modify is computed from these, value by value.
  Entry written;
  std::string hash;                  ///< written_hash(written): equal hash, nothing to write
  std::int64_t hidden_since_ms = 0;  ///< soft-deleted at (unix ms); 0 while visible
  bool operator==(const ObjectRecord&) const = default;
};

/// A stable digest (SHA-256, hex) of `attributes`: names ASCII-lowercased and sorted, values
/// in their order, octets exact (so a change of case only is a change).
std::string written_hash(const Entry& attributes);

struct Operation {
  OpKind kind = OpKind::kAdd;
  std::string direction;
  std::string key;                          ///< the source object's id
  std::string source_dn;                    ///< for the report, and for the base search that confirms a delete
  std::string dn;                           ///< the target object acted on; kAdd: the new object's DN
  Entry entry;                              ///< kAdd: the object to create, with its DN
  std::vector<ldap::Modification> changes;  ///< kModify, kHide, kAdopt: in order, one request
  std::string new_rdn;                      ///< kRename: "cn=John Doe"
  /// A further request of one change too large for one (a group's members in pieces of
  /// member_chunk): reports count the change once, by its first request.
  bool continues = false;
  /// The record to store once applied; for kDelete only its direction and key matter (the
  /// record is removed).
  ObjectRecord after;
  /// One line for reports and previews: "add cn=John Doe,ou=Notes,dc=acme,dc=example".
  std::string describe() const;
  bool operator==(const Operation&) const = default;
};

/// JSON for previews and held deletions: binary values (objectGUID) survive, as base64 where
/// a value is not valid UTF-8. from_json fails (kCorrupt) naming the member that is wrong.
nlohmann::json to_json(const Operation& op);
Expected<Operation> operation_from_json(const nlohmann::json& j);
nlohmann::json to_json(const ObjectRecord& r);
Expected<ObjectRecord> object_record_from_json(const nlohmann::json& j);

/// `octets` as JSON: a string when they are valid UTF-8, else {"base64": "..."} (the marker:
/// a JSON string is always the text itself). For every octet string the state stores as JSON.
nlohmann::json octets_to_json(std::string_view octets);
/// The inverse of octets_to_json; nullopt when `j` is neither form or its base64 is bad.
std::optional<std::string> octets_from_json(const nlohmann::json& j);

}  // namespace bridgehead::directory::sync
