// directory/sync/plan: what one direction's run must write, decided from what the source holds
// now (already mapped to target attributes), what Bridgehead wrote before (the state), and
// what the target holds that Bridgehead does not own (conflicts, adoption). Pure: no I/O, so
// every rule of the issue (naming, value-level diffs, renames by key, scope, conflicts,
// adoption, duplicate proxy addresses, bad data, soft delete, the deletion threshold) is unit
// tested here; the engine reads, confirms deletes with a base search, and applies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "directory/entry.hpp"
#include "directory/sync/operation.hpp"

namespace bridgehead::directory::sync {

/// How groups are written when their membership is synchronized (`[dirsync] group_members`):
/// as groups of the target (an AD group, a Domino group) whose members are the target objects
/// standing for their members. Without it a group is written like a person (a contact that
/// routes to the group in its home system, where it is expanded).
struct GroupShape {
  std::vector<std::string> object_classes;  ///< written on add: {"top","group","mailRecipient"}
  std::vector<std::string> required;        ///< as TargetShape::required, for groups: {"cn"}
  /// Written when the rules map no value for them: what the target's group class requires
  /// (AD's groupType, 8 = a universal distribution group).
  Entry fixed;
  std::string member_attribute = "member";
  /// A group class that requires a member (groupOfNames): a group none of whose members is
  /// synchronized is refused (bad data) instead of written.
  bool members_required = false;
  /// At most this many member values in one request: a larger group is added with the first
  /// ones and completed by modifies, each recorded once done (AD takes about 5,000 at once).
  std::size_t member_chunk = 1000;
};

/// How the objects of one direction are named, stamped and limited in the target.
struct TargetShape {
  std::string container;                    ///< "ou=Notes Contacts,dc=acme,dc=example": every object is a child
  std::string naming_attribute = "cn";      ///< the RDN's attribute; its value comes from the mapped entry
  std::vector<std::string> object_classes;  ///< written on add: {"top","person","organizationalPerson","contact"}
  /// The ownership stamp: `stamp_attribute` = `stamp_prefix` + the source key. Only objects
  /// whose stamp starts with the prefix are Bridgehead's.
  std::string stamp_attribute = "importedFrom";
  std::string stamp_prefix;  ///< "bridgehead:<connector name>:"
  /// Attributes whose values are addresses: for conflicts, adoption and duplicate values.
  /// The first is the primary one ("targetAddress" toward AD: a conflict is decided on it and
  /// on `mail`); values compare ASCII case-insensitively, "SMTP:"/"smtp:" prefixes ignored.
  std::vector<std::string> address_attributes = {"mail", "proxyAddresses", "targetAddress"};
  /// A multi-valued address attribute whose colliding values are withheld one by one.
  std::string proxy_attribute = "proxyAddresses";
  std::vector<std::string> required;  ///< a mapped entry without one of these is refused: {"cn","targetAddress"}
  /// Upper bounds in octets (AD's rangeUpper); longer: refused when the attribute is required
  /// or naming, else that value is withheld.
  std::unordered_map<std::string, std::size_t> max_length;
  /// Soft delete: the modification that hides an object ({replace msExchHideFromAddressLists TRUE}).
  std::string hide_attribute = "msExchHideFromAddressLists";
  std::string hide_value = "TRUE";
  /// Set: groups (Desired::group) are written as groups, with their members.
  std::optional<GroupShape> groups;
};

struct Switches {
  bool create = true, update = true, remove = true, rename = true;
};

struct DeletionLimits {
  std::size_t max_deletes = 500;   ///< more than this in one run is held
  unsigned max_percent = 10;       ///< more than this share of the direction's objects is held...
  std::size_t percent_floor = 10;  ///< ...once more than this many are deleted (a small directory may lose a few)
};

struct PlanSettings {
  std::string direction;  ///< "notes->exchange"
  TargetShape shape;
  Switches switches;
  DeletionLimits limits;
  bool adopt = false;             ///< stamp a matching object Bridgehead does not own instead of a conflict
  unsigned soft_delete_days = 0;  ///< 0: delete at once; else hide now, delete after this many days
  std::int64_t now_ms = 0;        ///< unix ms, for soft delete
};

/// One source object of the direction, mapped.
struct Desired {
  std::string key;
  std::string source_dn;
  Entry attributes;  ///< mapped target attributes, without DN, objectClass and stamp (the planner adds them)
  /// Problems the mapping had (RuleProblem::describe()), reported with the entry.
  std::vector<std::string> mapping_problems;
  /// A group, written as one when the shape has `groups`; its members, as keys of this
  /// direction's source objects (written as the DN the plan gives each, or the state holds),
  /// and as DNs in the target (the target system's own objects, where the source group holds
  /// the contacts Bridgehead made for them). Members that are neither, or whose objects are not
  /// written (out of scope, refused, deleted this run), are left out.
  bool group = false;
  std::vector<std::string> member_keys;
  std::vector<std::string> member_dns;
};

/// An object of the target that matters to the plan: one found by an address, or one at a
/// DN the plan wants.
struct TargetObject {
  std::string dn;
  Entry attributes;  ///< as read: at least the address attributes and the stamp
};

/// What the target holds that the state does not say: the engine fills it from one read of
/// the target (full runs) or by a search per address (incremental runs).
class TargetView {
 public:
  virtual ~TargetView() = default;
  /// Objects having `address` (ASCII case ignored, no "smtp:" prefix) in an address attribute.
  virtual std::vector<TargetObject> find_by_address(std::string_view address) const = 0;
  /// The object at `dn`, if any (to avoid naming a new object over an existing one).
  virtual std::optional<TargetObject> find_by_dn(std::string_view dn) const = 0;
  /// find_by_address without the objects whose `stamp_attribute` has a value starting with
  /// `stamp_prefix` (ASCII case ignored): the ones Bridgehead owns. A view may override it to
  /// skip copying those (in a full run nearly every address is held by Bridgehead's own object).
  virtual std::vector<TargetObject> find_foreign_by_address(std::string_view address, std::string_view stamp_attribute,
                                                            std::string_view stamp_prefix) const;
};

/// An address value as the plan compares it: a leading "SMTP:"/"smtp:" removed, ASCII
/// lower case ("SMTP:John@Acme.example" -> "john@acme.example", "X500:/o=A" -> "x500:/o=a").
std::string normalize_address(std::string_view value);

/// A TargetView over objects held in memory (tests, full runs).
class MemoryTargetView final : public TargetView {
 public:
  /// `address_attributes`: the attributes whose values find_by_address looks at.
  explicit MemoryTargetView(std::vector<std::string> address_attributes = {"mail", "proxyAddresses", "targetAddress"})
      : address_attributes_(std::move(address_attributes)) {}
  /// Adds `object`; one already at the same DN (compared as a directory does) is replaced.
  void add(TargetObject object);
  std::vector<TargetObject> find_by_address(std::string_view address) const override;
  std::optional<TargetObject> find_by_dn(std::string_view dn) const override;
  std::vector<TargetObject> find_foreign_by_address(std::string_view address, std::string_view stamp_attribute,
                                                    std::string_view stamp_prefix) const override;

 private:
  std::vector<std::size_t> holders(std::string_view address) const;
  std::vector<std::string> address_attributes_;
  std::vector<TargetObject> objects_;
  std::unordered_multimap<std::string, std::size_t> by_address_;  // lowercased address
  std::unordered_map<std::string, std::size_t> by_dn_;            // normalized DN
};

struct PlanInput {
  /// true: `desired` holds every in-scope source object, so a record not among them is
  /// deleted. false: an incremental read; only `deleted_keys` are deleted.
  bool full = false;
  /// false when the read stopped early (limit, paging error, disconnect): nothing is deleted,
  /// whatever `full` says.
  bool read_complete = true;
  std::vector<Desired> desired;
  std::vector<std::string> deleted_keys;
  /// Keys whose source object left the scope (filter, containers, ignored groups): deleted
  /// like a removed object, counted as out of scope.
  std::vector<std::string> out_of_scope_keys;
  /// The direction's state, by key.
  const std::unordered_map<std::string, ObjectRecord>* state = nullptr;
  const TargetView* target = nullptr;
  /// Keys whose deletion an administrator approved (`bridgehead dirsync approve RUN`): they
  /// pass the threshold.
  std::unordered_set<std::string> approved_deletes;
};

/// A problem with one entry; the run goes on.
struct EntryProblem {
  enum class Kind : std::uint8_t {
    kBadData,         ///< refused: over-long naming or required value, invalid name, missing required attribute
    kWithheld,        ///< a value left out (over-long optional value, duplicate proxy address); the object is written
    kConflict,        ///< an object Bridgehead does not own has its address; left alone
    kDuplicateName,   ///< the naming value was taken; the object got a disambiguated name
    kMappingProblem,  ///< from the mapping rules
  };
  Kind kind = Kind::kBadData;
  std::string key;
  std::string source_dn;
  std::string message;  ///< names the attribute and the value, and what to do
};
std::string_view to_string(EntryProblem::Kind kind);  ///< "bad-data", "withheld", "conflict", ...

struct PlanCounts {
  std::size_t adds = 0, updates = 0, renames = 0, deletes = 0, hides = 0, adoptions = 0;
  std::size_t unchanged = 0, conflicts = 0, out_of_scope = 0, errors = 0;
  /// Operations left out by a switch (create = false, ...).
  std::size_t switched_off = 0;
};

struct Plan {
  /// In the order to apply: for one key a rename comes before its modify; the groups after
  /// every other object (their members must exist first); deletes and hides last. A group
  /// larger than GroupShape::member_chunk has an add (or modify) and then modifies adding
  /// the rest of its members.
  std::vector<Operation> operations;
  /// The index in `operations` of the first group operation (operations.size() when none): a
  /// target that checks member values (AD) must have the objects before it written first.
  std::size_t first_group_operation = 0;
  /// Deletes (and hides) the threshold holds back; empty unless `held`.
  std::vector<Operation> held;
  bool deletions_held = false;
  std::string held_reason;  ///< "612 deletions (61% of 1,000 objects) pass the limit of 500 or 10%: ..."
  std::vector<EntryProblem> problems;
  PlanCounts counts;
};

/// Decides the operations. Target objects: DN `naming_attribute=<value>,container` (value
/// escaped per RFC 4514; when another key holds it, " (2)", " (3)"... appended and a
/// kDuplicateName problem); attributes = desired + object classes + the stamp. An existing
/// record with another DN is renamed; changed attributes are a modify: a single value on
/// both sides is replaced, multi-valued ones change by value deletes and adds (a case-only
/// change included), an attribute gone is deleted. Conflicts are decided on every address
/// attribute but `proxy_attribute` (mail and targetAddress by default); an adopted object keeps
/// its DN, objectClass and naming value (a modify may change neither the RDN nor the structural
/// class), the record stores what the plan would have written, so the next run finds it
/// unchanged. Empty values are not written and repeated ones are written once. Groups (with
/// `shape.groups`) are named after every other object, then get their resolved members, sorted.
/// counts.deletes
/// and counts.hides count the operations in `operations` (not the held ones); out_of_scope
/// counts those of them that are for keys in out_of_scope_keys. Deletions an administrator
/// approved do not count toward the threshold.
Plan make_plan(const PlanSettings& settings, const PlanInput& input);

}  // namespace bridgehead::directory::sync
