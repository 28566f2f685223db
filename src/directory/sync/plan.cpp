#include "directory/sync/plan.hpp"

#include <algorithm>

#include "core/text.hpp"
#include "directory/dn.hpp"

namespace bridgehead::directory::sync {

namespace {

using Kind = EntryProblem::Kind;
using ldap::Modification;
using ldap::ModifyOp;
using State = std::unordered_map<std::string, ObjectRecord>;

constexpr std::int64_t kDayMs = 86'400'000;
// Past this many " (n)" candidates the name is given up on (refused): no directory holds
// that many objects of one name, so something is looping.
constexpr int kMaxNameSuffix = 1000;

// The form two DNs of one entry share; a DN that does not parse is compared as lower text.
std::string dn_key(std::string_view dn) {
  auto parsed = Dn::parse(dn);
  return parsed ? parsed->normalized() : to_lower(dn);
}

bool has_control(std::string_view v) {
  return std::any_of(v.begin(), v.end(), [](char c) {
    const auto o = static_cast<unsigned char>(c);
    return o < 0x20 || o == 0x7F;
  });
}

bool stamped_by(const Entry& e, std::string_view stamp_attribute, std::string_view stamp_prefix) {
  const auto* stamps = e.find(stamp_attribute);
  return stamps != nullptr && std::any_of(stamps->begin(), stamps->end(),
                                          [&](const std::string& v) { return istarts_with(v, stamp_prefix); });
}

bool contains_name(const std::vector<std::string>& names, std::string_view name) {
  return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return iequals(n, name); });
}

// The changes that turn `old` into `now`, attribute by attribute (names ASCII case-insensitive):
// a single value on both sides is replaced; otherwise removed values are deleted and new ones
// added, compared octet by octet so that a change of case only is written too. An attribute
// `now` lacks is deleted when `delete_missing`.
void diff(const Entry& old, const Entry& now, const std::vector<std::string>& skip, bool delete_missing,
          std::vector<Modification>& out) {
  for (const Attribute& a : now.attributes()) {
    if (contains_name(skip, a.name)) continue;
    const auto* before = old.find(a.name);
    if (before == nullptr) {
      out.push_back(Modification{ModifyOp::kAdd, a.name, a.values});
      continue;
    }
    if (before->size() == 1 && a.values.size() == 1) {
      if (before->front() != a.values.front()) out.push_back(Modification{ModifyOp::kReplace, a.name, a.values});
      continue;
    }
    Modification removed{ModifyOp::kDelete, a.name, {}};
    for (const std::string& v : *before) {
      if (std::find(a.values.begin(), a.values.end(), v) == a.values.end()) removed.values.push_back(v);
    }
    Modification added{ModifyOp::kAdd, a.name, {}};
    for (const std::string& v : a.values) {
      if (std::find(before->begin(), before->end(), v) == before->end()) added.values.push_back(v);
    }
    if (!removed.values.empty()) out.push_back(std::move(removed));
    if (!added.values.empty()) out.push_back(std::move(added));
  }
  if (!delete_missing) return;
  for (const Attribute& a : old.attributes()) {
    if (!contains_name(skip, a.name) && !now.has(a.name)) out.push_back(Modification{ModifyOp::kDelete, a.name, {}});
  }
}

// An empty TargetView for a plan given none.
class NoTarget final : public TargetView {
 public:
  std::vector<TargetObject> find_by_address(std::string_view) const override { return {}; }
  std::optional<TargetObject> find_by_dn(std::string_view) const override { return std::nullopt; }
};

// A desired object that passed the checks, with what the plan writes for it.
struct Name {
  std::string dn;
  std::string value;       // the naming value in it (the desired one, or with " (n)")
  std::string taken_note;  // why the desired name was not free; empty when it was
  std::string dn_key;      // dn_key(dn), when known
};

struct Accepted {
  const Desired* desired = nullptr;
  Entry written;
  const ObjectRecord* record = nullptr;
  std::optional<TargetObject> adopt;  // the object it takes over
  bool group = false;                 // written as a group, with its members
  std::optional<Name> named;          // its name, once settled
};

// The members `e` holds after `changes` to `attribute` (the other attributes ignored).
void apply_member_changes(std::vector<std::string>& members, const std::vector<Modification>& changes,
                          std::string_view attribute) {
  for (const Modification& m : changes) {
    if (!iequals(m.attribute, attribute)) continue;
    switch (m.op) {
      case ModifyOp::kAdd:
        members.insert(members.end(), m.values.begin(), m.values.end());
        break;
      case ModifyOp::kReplace:
        members = m.values;
        break;
      case ModifyOp::kDelete:
        if (m.values.empty()) {
          members.clear();
        } else {
          std::erase_if(members, [&](const std::string& v) {
            return std::find(m.values.begin(), m.values.end(), v) != m.values.end();
          });
        }
        break;
    }
  }
}

class Planner {
 public:
  Planner(const PlanSettings& settings, const PlanInput& input)
      : s_(settings),
        shape_(settings.shape),
        in_(input),
        state_(input.state != nullptr ? *input.state : no_state_),
        target_(input.target != nullptr ? *input.target : no_target_) {
    for (const std::string& a : shape_.address_attributes) {
      if (!iequals(a, shape_.proxy_attribute)) conflict_attributes_.push_back(a);
    }
    container_key_ = dn_key(shape_.container);
  }

  Plan run() {
    for (const auto& [key, record] : state_) taken_.emplace(dn_key(record.target_dn), key);
    leaving_.insert(in_.deleted_keys.begin(), in_.deleted_keys.end());
    leaving_.insert(in_.out_of_scope_keys.begin(), in_.out_of_scope_keys.end());

    std::vector<const Desired*> sorted;
    sorted.reserve(in_.desired.size());
    for (const Desired& d : in_.desired) sorted.push_back(&d);
    std::stable_sort(sorted.begin(), sorted.end(), [](const Desired* a, const Desired* b) { return a->key < b->key; });

    std::vector<Accepted> accepted;
    for (std::size_t i = 0; i < sorted.size(); ++i) {
      const Desired& d = *sorted[i];
      if (i > 0 && sorted[i - 1]->key == d.key) {
        problem(Kind::kBadData, d.key, d.source_dn,
                "the source delivered key " + escape_control(d.key) +
                    " twice; only its first entry is synchronized: check the source's key attribute");
        ++plan_.counts.errors;
        continue;
      }
      seen_.insert(d.key);
      for (const std::string& m : d.mapping_problems) problem(Kind::kMappingProblem, d.key, d.source_dn, m);
      auto a = accept(d);
      if (!a) continue;
      for (const std::string& attr : conflict_attributes_) {
        if (const auto* values = a->written.find(attr)) {
          for (const std::string& v : *values) primary_claims_.emplace(normalize_address(v), d.key);
        }
      }
      accepted.push_back(std::move(*a));
    }
    std::vector<Accepted*> groups;
    for (Accepted& a : accepted) {
      withhold_duplicate_proxies(a);
      if (a.group) {
        groups.push_back(&a);
      } else {
        plan_object(a);
      }
    }
    // A group's members are the DNs of other objects, groups among them: every name is settled
    // before any group is planned.
    plan_.first_group_operation = plan_.operations.size();
    for (Accepted* g : groups) {
      if (g->adopt) {
        dn_of_[g->desired->key] = g->adopt->dn;
      } else {
        settle_name(*g);
      }
    }
    for (Accepted* g : groups) {
      if ((g->adopt || g->named) && resolve_members(*g)) plan_object(*g);
    }
    const bool group_operations = plan_.operations.size() > plan_.first_group_operation;
    plan_deletions();
    if (!group_operations) plan_.first_group_operation = plan_.operations.size();
    return std::move(plan_);
  }

 private:
  void plan_object(Accepted& a) {
    if (a.adopt) {
      plan_adoption(a);
    } else if (a.record != nullptr) {
      plan_update(a);
    } else {
      plan_add(a);
    }
  }

  // The group's members: the DN planned for each member key this run, or the one its record
  // holds (an object written before and not leaving this run), and the DNs given. False (a
  // bad-data problem) when the target's class needs a member and none is left.
  bool resolve_members(Accepted& a) {
    const GroupShape& g = *shape_.groups;
    const Desired& d = *a.desired;
    std::vector<std::pair<std::string, std::string>> members;  // dn_key, dn
    std::unordered_set<std::string> have;
    const auto add = [&](const std::string& dn) {
      std::string k = dn_key(dn);
      if (have.insert(k).second) members.emplace_back(std::move(k), dn);
    };
    for (const std::string& dn : d.member_dns) add(dn);
    for (const std::string& key : d.member_keys) {
      if (const auto planned = dn_of_.find(key); planned != dn_of_.end()) {
        add(planned->second);
        continue;
      }
      const auto r = state_.find(key);
      if (r == state_.end() || leaving_.count(key) != 0 || (in_.full && seen_.count(key) == 0)) continue;
      add(r->second.target_dn);
    }
    if (members.empty()) {
      a.written.remove(g.member_attribute);
      if (!g.members_required) return true;
      problem(Kind::kBadData, d.key, d.source_dn,
              "none of the group's members is synchronized into the target, and a group there needs at least one " +
                  g.member_attribute +
                  ": add a synchronized member to the group in the source, or set group_members = false" +
                  (a.record != nullptr ? " (the group written before is left as it is)" : ""));
      ++plan_.counts.errors;
      return false;
    }
    std::sort(members.begin(), members.end());
    std::vector<std::string> values;
    values.reserve(members.size());
    for (auto& m : members) values.push_back(std::move(m.second));
    a.written.set(g.member_attribute, std::move(values));
    return true;
  }

  // Pushes `op`, split when it carries more member values than one request may: the first
  // request holds the other changes and the first members, each next one more members; each
  // records what the target holds once it is done, the last one `op.after`. `before`: the
  // members the target holds ahead of `op` (none for an add).
  void push_operation(Operation op, std::vector<std::string> before = {}) {
    const std::size_t chunk = shape_.groups ? std::max<std::size_t>(shape_.groups->member_chunk, 1) : 0;
    const std::string attribute = shape_.groups ? shape_.groups->member_attribute : std::string();
    const bool splittable =
        chunk > 0 && (op.kind == OpKind::kAdd || op.kind == OpKind::kModify || op.kind == OpKind::kAdopt);
    // The member changes, taken out of the operation.
    std::vector<Modification> member_changes;
    std::size_t values = 0;
    if (splittable && op.kind == OpKind::kAdd) {
      if (const auto* v = op.entry.find(attribute); v != nullptr && v->size() > chunk) {
        member_changes.push_back(Modification{ModifyOp::kAdd, attribute, *v});
        values = v->size();
      }
    } else if (splittable) {
      for (const Modification& m : op.changes) {
        if (iequals(m.attribute, attribute)) values += std::max<std::size_t>(m.values.size(), 1);
      }
      if (values > chunk) {
        std::vector<Modification> rest;
        for (Modification& m : op.changes)
          (iequals(m.attribute, attribute) ? member_changes : rest).push_back(std::move(m));
        op.changes = std::move(rest);
      }
    }
    if (values <= chunk) {
      plan_.operations.push_back(std::move(op));
      return;
    }
    // Requests of at most `chunk` values; a replace or a delete of the whole attribute is one.
    std::vector<std::vector<Modification>> requests(1);
    std::size_t room = chunk;
    for (Modification& m : member_changes) {
      if (m.op != ModifyOp::kAdd && (m.op != ModifyOp::kDelete || m.values.empty())) {
        if (room == 0) {
          requests.emplace_back();
          room = chunk;
        }
        requests.back().push_back(std::move(m));
        --room;
        continue;
      }
      for (std::size_t at = 0; at < m.values.size();) {
        if (room == 0) {
          requests.emplace_back();
          room = chunk;
        }
        const std::size_t n = std::min(room, m.values.size() - at);
        Modification piece{m.op, m.attribute,
                           std::vector<std::string>(m.values.begin() + static_cast<std::ptrdiff_t>(at),
                                                    m.values.begin() + static_cast<std::ptrdiff_t>(at + n))};
        requests.back().push_back(std::move(piece));
        at += n;
        room -= n;
      }
    }
    const ObjectRecord final_record = op.after;
    const auto record_after = [&](const std::vector<std::string>& members) {
      ObjectRecord r = final_record;
      if (members.empty()) {
        r.written.remove(attribute);
      } else {
        r.written.set(attribute, members);
      }
      r.hash = written_hash(r.written);
      return r;
    };
    std::vector<std::string> members = std::move(before);
    for (std::size_t i = 0; i < requests.size(); ++i) {
      apply_member_changes(members, requests[i], attribute);
      Operation piece;
      if (i == 0) {
        piece = std::move(op);
        if (piece.kind == OpKind::kAdd) {
          piece.entry.set(attribute, requests[0].front().values);  // the first request is one add
        } else {
          piece.changes.insert(piece.changes.end(), requests[0].begin(), requests[0].end());
        }
      } else {
        piece = op_like(plan_.operations.back());
        piece.kind = OpKind::kModify;
        piece.changes = std::move(requests[i]);
        piece.continues = true;
      }
      piece.after = i + 1 == requests.size() ? final_record : record_after(members);
      plan_.operations.push_back(std::move(piece));
    }
  }

  // A modify of the object `op` acts on, to follow it.
  static Operation op_like(const Operation& op) {
    Operation next;
    next.direction = op.direction;
    next.key = op.key;
    next.source_dn = op.source_dn;
    next.dn = op.kind == OpKind::kAdd ? op.entry.dn() : op.dn;
    return next;
  }

  void problem(Kind kind, const std::string& key, const std::string& source_dn, std::string message) {
    EntryProblem p;
    p.kind = kind;
    p.key = key;
    p.source_dn = source_dn;
    p.message = std::move(message);
    plan_.problems.push_back(std::move(p));
  }

  bool stamped_for(const TargetObject& o, const std::string& key) const {
    const auto* stamps = o.attributes.find(shape_.stamp_attribute);
    const std::string stamp = shape_.stamp_prefix + key;
    return stamps != nullptr &&
           std::any_of(stamps->begin(), stamps->end(), [&](const std::string& v) { return iequals(v, stamp); });
  }
  bool holds(const TargetObject& o, const std::string& address) const {
    for (const std::string& attr : shape_.address_attributes) {
      if (const auto* values = o.attributes.find(attr)) {
        for (const std::string& v : *values) {
          if (normalize_address(v) == address) return true;
        }
      }
    }
    return false;
  }
  // Target objects Bridgehead does not own that hold `address`.
  std::vector<TargetObject> foreign_holders(const std::string& address) const {
    if (const auto cached = looked_up_.find(address); cached != looked_up_.end()) return cached->second;
    std::vector<TargetObject> out;
    for (TargetObject& o : target_.find_foreign_by_address(address, shape_.stamp_attribute, shape_.stamp_prefix)) {
      if (!stamped_by(o.attributes, shape_.stamp_attribute, shape_.stamp_prefix) && holds(o, address)) {
        out.push_back(std::move(o));
      }
    }
    // One entry looks its targetAddress up twice (for conflicts, then as its primary proxy).
    looked_up_.clear();
    looked_up_.emplace(address, out);
    return out;
  }

  std::size_t max_length(std::string_view attribute) const {
    for (const auto& [name, limit] : shape_.max_length) {
      if (iequals(name, attribute)) return limit;
    }
    return 0;
  }

  // What is written for `d`, or nullopt when the entry is refused (bad data) or conflicts.
  std::optional<Accepted> accept(const Desired& d) {
    Accepted a;
    a.desired = &d;
    a.group = d.group && shape_.groups.has_value();
    const auto found = state_.find(d.key);
    a.record = found != state_.end() ? &found->second : nullptr;
    std::vector<std::string> refusals;
    std::vector<std::string> too_long;  // vital attributes refused for their length
    const std::vector<std::string>& classes = a.group ? shape_.groups->object_classes : shape_.object_classes;
    const std::vector<std::string>& required = a.group ? shape_.groups->required : shape_.required;
    Entry& w = a.written;
    if (!classes.empty()) w.set("objectClass", classes);
    for (const Attribute& attr : d.attributes.attributes()) {
      if (iequals(attr.name, "objectClass") || iequals(attr.name, shape_.stamp_attribute)) continue;
      // The members are resolved once every object is named, never mapped.
      if (a.group && iequals(attr.name, shape_.groups->member_attribute)) continue;
      const bool vital = iequals(attr.name, shape_.naming_attribute) || contains_name(required, attr.name);
      const std::size_t limit = max_length(attr.name);
      std::vector<std::string> values;
      for (const std::string& v : attr.values) {
        // An empty value is no value (LDAP refuses one); a repeated one is written once.
        if (v.empty() || std::find(values.begin(), values.end(), v) != values.end()) continue;
        if (limit > 0 && v.size() > limit) {
          const std::string what = attr.name + " value \"" + escape_control(v.substr(0, 64)) +
                                   (v.size() > 64 ? "...\"" : "\"") + " is " + std::to_string(v.size()) +
                                   " octets, more than the target's limit of " + std::to_string(limit);
          if (vital) {
            refusals.push_back(what + ": shorten it in the source entry or map a shorter value");
            too_long.push_back(attr.name);
          } else {
            problem(Kind::kWithheld, d.key, d.source_dn,
                    what + "; the value was left out: shorten it in the source entry to have it written");
          }
          continue;
        }
        values.push_back(v);
      }
      if (!values.empty()) w.set(attr.name, std::move(values));
    }
    if (a.group) {
      for (const Attribute& attr : shape_.groups->fixed.attributes()) {
        if (!w.has(attr.name)) w.set(attr.name, attr.values);
      }
    }
    for (const std::string& r : required) {
      if (!w.has(r) && !contains_name(too_long, r)) {
        refusals.push_back("the mapped entry has no " + r +
                           ", which the target requires: fill it in the source entry or map it in the rules");
      }
    }
    const std::string_view name = w.first(shape_.naming_attribute);
    if (name.empty()) {
      if (!contains_name(required, shape_.naming_attribute) && !contains_name(too_long, shape_.naming_attribute)) {
        refusals.push_back("the mapped entry has no " + shape_.naming_attribute +
                           " to name the target object by: fill it in the source entry or map it in the rules");
      }
    } else if (!is_valid_utf8(name)) {
      refusals.push_back("the name " + shape_.naming_attribute + "=" + escape_control(name) +
                         " is not valid UTF-8: correct it in the source entry");
    } else if (has_control(name)) {
      refusals.push_back("the name " + shape_.naming_attribute + "=" + escape_control(name) +
                         " holds control characters: correct it in the source entry");
    }
    if (!refusals.empty()) {
      for (std::string& r : refusals) {
        problem(Kind::kBadData, d.key, d.source_dn,
                std::move(r) + (a.record != nullptr ? " (the object written before is left as it is)" : ""));
      }
      ++plan_.counts.errors;
      return std::nullopt;
    }
    w.set(shape_.stamp_attribute, {shape_.stamp_prefix + d.key});
    if (!find_conflict(a)) return std::nullopt;
    return a;
  }

  // Whether `a` may be written: false (a kConflict problem) when an object Bridgehead does
  // not own holds one of its primary addresses, unless that object is adopted.
  bool find_conflict(Accepted& a) {
    std::vector<std::pair<std::string, TargetObject>> holders;  // address, object
    for (const std::string& attr : conflict_attributes_) {
      const auto* values = a.written.find(attr);
      if (values == nullptr) continue;
      for (const std::string& v : *values) {
        const std::string address = normalize_address(v);
        if (address.empty()) continue;
        for (TargetObject& o : foreign_holders(address)) {
          const bool known = std::any_of(holders.begin(), holders.end(),
                                         [&](const auto& h) { return dn_key(h.second.dn) == dn_key(o.dn); });
          if (!known) holders.emplace_back(address, std::move(o));
        }
      }
    }
    if (holders.empty()) return true;
    const Desired& d = *a.desired;
    // One object is adopted by one key: the lowest that matches it (or the one whose record
    // names it already, should its stamp have been removed).
    std::string adopter;
    if (s_.adopt && a.record == nullptr && holders.size() == 1) {
      const std::string dn = dn_key(holders.front().second.dn);
      const auto owner = taken_.find(dn);
      if (owner == taken_.end()) {
        taken_.emplace(dn, d.key);
        a.adopt = std::move(holders.front().second);
        return true;
      }
      adopter = owner->second;
    }
    std::string message;
    for (const auto& [address, o] : holders) {
      message += (message.empty() ? "" : "; ") + escape_control(address) + " is held by " + escape_control(o.dn);
    }
    message += ", which Bridgehead does not own: nothing was written for this entry; ";
    if (holders.size() > 1) {
      message += "more than one object holds its addresses, so it cannot be adopted either: remove the duplicates";
    } else if (!adopter.empty()) {
      message += "source object " + escape_control(adopter) +
                 " takes that object over already: remove the address from one of the source entries";
    } else if (a.record != nullptr) {
      message += "remove the address from that object or from the source entry";
    } else {
      message += "remove the address from one of them, or set adopt = true for the direction to take it over";
    }
    problem(Kind::kConflict, d.key, d.source_dn, "address conflict: " + message);
    ++plan_.counts.conflicts;
    return false;
  }

  // Leaves out each proxy value another object holds: an object Bridgehead does not own in the
  // target, another desired object's primary address, or a proxy value of a lower key.
  void withhold_duplicate_proxies(Accepted& a) {
    const auto* values = a.written.find(shape_.proxy_attribute);
    if (values == nullptr) return;
    const Desired& d = *a.desired;
    std::vector<std::string> kept;
    std::unordered_set<std::string> own;
    for (const std::string& v : *values) {
      const std::string address = normalize_address(v);
      std::string holder;
      if (const auto p = primary_claims_.find(address); p != primary_claims_.end() && p->second != d.key) {
        holder = "source object " + escape_control(p->second) + " has it as its address";
      } else if (const auto c = proxy_claims_.find(address); c != proxy_claims_.end() && c->second != d.key) {
        holder = "source object " + escape_control(c->second) + " has it too (the lower key keeps it)";
      } else if (own.count(address) != 0) {
        holder = "this entry has it twice";
      } else {
        for (const TargetObject& o : foreign_holders(address)) {
          if (a.adopt && dn_key(o.dn) == dn_key(a.adopt->dn)) continue;
          holder = escape_control(o.dn) + " holds it and Bridgehead does not own that object";
          break;
        }
      }
      if (!holder.empty()) {
        problem(Kind::kWithheld, d.key, d.source_dn,
                "duplicate " + shape_.proxy_attribute + " value \"" + escape_control(v) + "\": " + holder +
                    "; the value was left out and the rest written: remove it from one of them");
        continue;
      }
      own.insert(address);
      proxy_claims_.emplace(address, d.key);
      kept.push_back(v);
    }
    a.written.set(shape_.proxy_attribute, std::move(kept));
  }

  std::string make_dn(std::string_view value, std::string_view parent) const {
    std::string dn = shape_.naming_attribute + "=" + escape_dn_value(value);
    if (!parent.empty()) dn += "," + std::string(parent);
    return dn;
  }

  // Where `a` is to be: its record's DN while its naming value is the same, else
  // naming=value below the container (below the record's parent for a rename), disambiguated
  // with " (2)", " (3)"... when another key has that DN. Registers nothing.
  std::optional<Name> choose_name(const Accepted& a) const {
    const std::string& key = a.desired->key;
    const std::string value(a.written.first(shape_.naming_attribute));
    std::string parent = shape_.container;
    if (a.record != nullptr) {
      if (a.record->written.first(shape_.naming_attribute) == value) return Name{a.record->target_dn, value, {}, {}};
      auto old = Dn::parse(a.record->target_dn);
      if (old && !old->empty() && old->parent().normalized() != container_key_) parent = old->parent().to_string();
    }
    std::string note;
    for (int n = 1; n <= kMaxNameSuffix; ++n) {
      const std::string candidate = n == 1 ? value : value + " (" + std::to_string(n) + ")";
      std::string dn = make_dn(candidate, parent);
      std::string key_of_dn = dn_key(dn);
      const auto taken = taken_.find(key_of_dn);
      if (taken != taken_.end() && taken->second != key) {
        if (note.empty()) note = "source object " + escape_control(taken->second) + " has it";
        continue;
      }
      if (taken == taken_.end()) {
        const auto there = target_.find_by_dn(dn);
        if (there && !stamped_for(*there, key)) {
          if (note.empty()) note = "an object Bridgehead did not write for this entry is there";
          continue;
        }
      }
      return Name{std::move(dn), candidate, std::move(note), std::move(key_of_dn)};
    }
    return std::nullopt;
  }

  ObjectRecord record_for(const Accepted& a, std::string target_dn, Entry written, std::string hash = {}) const {
    ObjectRecord r;
    r.direction = s_.direction;
    r.key = a.desired->key;
    r.source_dn = a.desired->source_dn;
    r.target_dn = std::move(target_dn);
    r.hash = hash.empty() ? written_hash(written) : std::move(hash);
    r.written = std::move(written);
    r.hidden_since_ms = 0;
    return r;
  }

  Operation op_for(OpKind kind, const Accepted& a, std::string dn) const {
    Operation op;
    op.kind = kind;
    op.direction = s_.direction;
    op.key = a.desired->key;
    op.source_dn = a.desired->source_dn;
    op.dn = std::move(dn);
    return op;
  }

  // Applies the name to `a.written`, registers its DN and reports a disambiguation.
  std::optional<Name> name(Accepted& a) {
    auto chosen = choose_name(a);
    const Desired& d = *a.desired;
    if (!chosen) {
      problem(Kind::kBadData, d.key, d.source_dn,
              "no free name for " + shape_.naming_attribute + "=" +
                  escape_control(a.written.first(shape_.naming_attribute)) + " up to \" (" +
                  std::to_string(kMaxNameSuffix) + ")\": give the entry a distinct name in the source");
      ++plan_.counts.errors;
      return std::nullopt;
    }
    return chosen;
  }

  // The name `a` ends with, chosen and registered once: a rename the switch turns off keeps
  // the record's name. nullopt: no free name (a bad-data problem).
  std::optional<Name> settle_name(Accepted& a) {
    if (a.named) return a.named;
    auto n = name(a);
    if (!n) return n;
    if (a.record != nullptr && n->dn != a.record->target_dn && !s_.switches.rename) {
      ++plan_.counts.switched_off;
      n = Name{a.record->target_dn, std::string(a.record->written.first(shape_.naming_attribute)), {}, {}};
    }
    commit_name(a, *n);
    dn_of_[a.desired->key] = n->dn;
    a.named = n;
    return n;
  }

  void commit_name(Accepted& a, const Name& n) {
    const Desired& d = *a.desired;
    if (!n.taken_note.empty()) {
      problem(Kind::kDuplicateName, d.key, d.source_dn,
              "the name " + escape_control(make_dn(a.written.first(shape_.naming_attribute), shape_.container)) +
                  " is taken (" + n.taken_note + "); this entry is named " + escape_control(n.dn) +
                  " instead: give one of them a distinct " + shape_.naming_attribute + " in the source");
    }
    if (a.record != nullptr && n.dn == a.record->target_dn && n.value == a.written.first(shape_.naming_attribute)) {
      return;  // where it was: its DN is registered from the state already
    }
    set_naming_value(a.written, n.value);
    taken_[n.dn_key.empty() ? dn_key(n.dn) : n.dn_key] = d.key;
  }

  void set_naming_value(Entry& e, const std::string& value) const {
    std::vector<std::string> values =
        e.find(shape_.naming_attribute) != nullptr ? *e.find(shape_.naming_attribute) : std::vector<std::string>{};
    if (values.empty()) {
      values.push_back(value);
    } else {
      values.front() = value;
    }
    e.set(shape_.naming_attribute, std::move(values));
  }

  void plan_add(Accepted& a) {
    auto n = settle_name(a);
    if (!n) return;
    if (!s_.switches.create) {
      ++plan_.counts.switched_off;
      return;
    }
    Operation op = op_for(OpKind::kAdd, a, n->dn);
    op.after = record_for(a, n->dn, a.written);
    op.entry = std::move(a.written);
    op.entry.set_dn(n->dn);
    push_operation(std::move(op));
    ++plan_.counts.adds;
  }

  void plan_adoption(Accepted& a) {
    const TargetObject& holder = *a.adopt;
    // The object keeps its name and its classes: a modify cannot change the RDN's value, and
    // a directory refuses a change of structural class. The record keeps the written form, so
    // the next run compares like with like.
    Operation op = op_for(OpKind::kAdopt, a, holder.dn);
    diff(holder.attributes, a.written, {"objectClass", shape_.naming_attribute}, false, op.changes);
    op.after = record_for(a, holder.dn, a.written);
    dn_of_[a.desired->key] = holder.dn;
    if (!s_.switches.update) {
      ++plan_.counts.switched_off;
      return;
    }
    push_operation(std::move(op));
    ++plan_.counts.adoptions;
  }

  void plan_update(Accepted& a) {
    const ObjectRecord& r = *a.record;
    // A rename the switch turns off keeps the DN, so also the naming value the DN holds.
    auto n = settle_name(a);
    if (!n) return;
    const bool renamed = n->dn != r.target_dn;
    const bool hidden = r.hidden_since_ms != 0;
    std::string hash = written_hash(a.written);
    if (!renamed && !hidden && hash == r.hash) {
      ++plan_.counts.unchanged;
      return;
    }
    Entry base = r.written;  // what the target holds once the rename (if any) is done
    std::optional<Operation> rename;
    if (renamed) {
      rename = op_for(OpKind::kRename, a, r.target_dn);
      rename->new_rdn = make_dn(n->value, "");
      set_naming_value(base, n->value);
      rename->after = record_for(a, n->dn, base);
      rename->after.hidden_since_ms = r.hidden_since_ms;
    }
    std::vector<Modification> changes;
    if (hidden) {
      const auto* desired_hide = a.written.find(shape_.hide_attribute);
      changes.push_back(desired_hide != nullptr ? Modification{ModifyOp::kReplace, shape_.hide_attribute, *desired_hide}
                                                : Modification{ModifyOp::kDelete, shape_.hide_attribute, {}});
    }
    diff(base, a.written, hidden ? std::vector<std::string>{shape_.hide_attribute} : std::vector<std::string>{}, true,
         changes);
    ObjectRecord final_record = record_for(a, n->dn, std::move(a.written), std::move(hash));
    if (rename) {
      if (changes.empty()) rename->after = final_record;
      plan_.operations.push_back(std::move(*rename));
      ++plan_.counts.renames;
    }
    if (changes.empty()) {
      if (!renamed) ++plan_.counts.unchanged;
      return;
    }
    if (!s_.switches.update) {
      ++plan_.counts.switched_off;
      return;
    }
    Operation op = op_for(OpKind::kModify, a, n->dn);
    op.changes = std::move(changes);
    op.after = std::move(final_record);
    const auto* members = a.group ? base.find(shape_.groups->member_attribute) : nullptr;
    push_operation(std::move(op), members != nullptr ? *members : std::vector<std::string>{});
    ++plan_.counts.updates;
  }

  void plan_deletions() {
    if (!in_.read_complete) return;
    std::vector<std::pair<const ObjectRecord*, bool>> gone;  // record, out of scope
    std::unordered_set<std::string> listed;
    const auto consider = [&](const std::string& key, bool out_of_scope) {
      if (seen_.count(key) != 0 || listed.count(key) != 0) return;
      const auto r = state_.find(key);
      if (r == state_.end()) return;
      listed.insert(key);
      gone.emplace_back(&r->second, out_of_scope);
    };
    for (const std::string& key : in_.out_of_scope_keys) consider(key, true);
    for (const std::string& key : in_.deleted_keys) consider(key, false);
    if (in_.full) {
      for (const auto& [key, record] : state_) consider(key, false);
    }
    std::sort(gone.begin(), gone.end(), [](const auto& x, const auto& y) { return x.first->key < y.first->key; });

    std::vector<Operation> deletions;
    for (const auto& [r, out_of_scope] : gone) {
      Operation op;
      op.direction = s_.direction;
      op.key = r->key;
      op.source_dn = r->source_dn;
      op.dn = r->target_dn;
      op.after = *r;
      if (s_.soft_delete_days == 0 ||
          (r->hidden_since_ms != 0 &&
           s_.now_ms - r->hidden_since_ms >= static_cast<std::int64_t>(s_.soft_delete_days) * kDayMs)) {
        op.kind = OpKind::kDelete;
      } else if (r->hidden_since_ms == 0) {
        op.kind = OpKind::kHide;
        op.changes.push_back(Modification{ModifyOp::kReplace, shape_.hide_attribute, {shape_.hide_value}});
        op.after.hidden_since_ms = std::max<std::int64_t>(s_.now_ms, 1);  // 0 would read as visible
      } else {
        continue;  // hidden, its days not yet past
      }
      if (!s_.switches.remove) {
        ++plan_.counts.switched_off;
        continue;
      }
      if (out_of_scope) ++plan_.counts.out_of_scope;
      deletions.push_back(std::move(op));
    }
    hold_if_too_many(deletions);
    for (Operation& op : deletions) {
      ++(op.kind == OpKind::kDelete ? plan_.counts.deletes : plan_.counts.hides);
      plan_.operations.push_back(std::move(op));
    }
  }

  // The threshold: too many deletions (approved ones not counted) are all held back.
  void hold_if_too_many(std::vector<Operation>& deletions) {
    const auto approved = [&](const Operation& op) { return in_.approved_deletes.count(op.key) != 0; };
    const auto n = static_cast<std::size_t>(
        std::count_if(deletions.begin(), deletions.end(), [&](const Operation& op) { return !approved(op); }));
    const std::size_t total = state_.size();
    const DeletionLimits& l = s_.limits;
    const bool over_count = n > l.max_deletes;
    const bool over_share = n > l.percent_floor && n * 100 > static_cast<std::size_t>(l.max_percent) * total;
    if (!over_count && !over_share) return;
    plan_.deletions_held = true;
    const std::size_t percent = total == 0 ? 100 : (n * 100 + total / 2) / total;
    plan_.held_reason = grouped(n) + " deletions (" + std::to_string(percent) + "% of " + grouped(total) +
                        " objects) pass the limit of " + grouped(l.max_deletes) + " or " +
                        std::to_string(l.max_percent) + "% (above " + grouped(l.percent_floor) +
                        "): none of them was made; if they are meant, let them go with "
                        "`bridgehead dirsync approve RUN`, or raise [dirsync] max_deletes";
    std::vector<Operation> kept;
    for (Operation& op : deletions) (approved(op) ? kept : plan_.held).push_back(std::move(op));
    deletions = std::move(kept);
  }

  const PlanSettings& s_;
  const TargetShape& shape_;
  const PlanInput& in_;
  const State no_state_;
  const NoTarget no_target_;
  const State& state_;
  const TargetView& target_;
  std::vector<std::string> conflict_attributes_;
  std::string container_key_;
  Plan plan_;
  std::unordered_map<std::string, std::string> taken_;                            // normalized DN -> key
  std::unordered_map<std::string, std::string> primary_claims_;                   // address -> first key
  std::unordered_map<std::string, std::string> proxy_claims_;                     // proxy value -> first key
  std::unordered_set<std::string> seen_;                                          // keys desired this run
  std::unordered_set<std::string> leaving_;                                       // keys deleted or out of scope
  std::unordered_map<std::string, std::string> dn_of_;                            // key -> DN settled this run
  mutable std::unordered_map<std::string, std::vector<TargetObject>> looked_up_;  // the last lookup
};

}  // namespace

std::string_view to_string(EntryProblem::Kind kind) {
  switch (kind) {
    case Kind::kBadData:
      return "bad-data";
    case Kind::kWithheld:
      return "withheld";
    case Kind::kConflict:
      return "conflict";
    case Kind::kDuplicateName:
      return "duplicate-name";
    case Kind::kMappingProblem:
      return "mapping";
  }
  return "unknown";
}

std::string normalize_address(std::string_view value) {
  if (istarts_with(value, "smtp:")) value.remove_prefix(5);
  return to_lower(value);
}

void MemoryTargetView::add(TargetObject object) {
  const std::string key = dn_key(object.dn);
  std::size_t index = objects_.size();
  if (const auto there = by_dn_.find(key); there != by_dn_.end()) {
    index = there->second;
    objects_[index] = std::move(object);
  } else {
    objects_.push_back(std::move(object));
    by_dn_.emplace(key, index);
  }
  // Entries of a replaced object stay in by_address_; find_by_address checks each hit.
  for (const std::string& attr : address_attributes_) {
    if (const auto* values = objects_[index].attributes.find(attr)) {
      for (const std::string& v : *values) by_address_.emplace(normalize_address(v), index);
    }
  }
}

std::vector<TargetObject> TargetView::find_foreign_by_address(std::string_view address,
                                                              std::string_view stamp_attribute,
                                                              std::string_view stamp_prefix) const {
  std::vector<TargetObject> all = find_by_address(address);
  std::erase_if(all, [&](const TargetObject& o) { return stamped_by(o.attributes, stamp_attribute, stamp_prefix); });
  return all;
}

std::vector<TargetObject> MemoryTargetView::find_by_address(std::string_view address) const {
  std::vector<TargetObject> out;
  for (std::size_t i : holders(address)) out.push_back(objects_[i]);
  return out;
}

std::vector<TargetObject> MemoryTargetView::find_foreign_by_address(std::string_view address,
                                                                    std::string_view stamp_attribute,
                                                                    std::string_view stamp_prefix) const {
  std::vector<TargetObject> out;
  for (std::size_t i : holders(address)) {
    if (!stamped_by(objects_[i].attributes, stamp_attribute, stamp_prefix)) out.push_back(objects_[i]);
  }
  return out;
}

std::vector<std::size_t> MemoryTargetView::holders(std::string_view address) const {
  const std::string wanted = normalize_address(address);
  std::vector<std::size_t> hits;
  const auto [first, last] = by_address_.equal_range(wanted);
  for (auto it = first; it != last; ++it) {
    if (std::find(hits.begin(), hits.end(), it->second) != hits.end()) continue;
    const TargetObject& o = objects_[it->second];
    const bool holds = std::any_of(address_attributes_.begin(), address_attributes_.end(), [&](const std::string& a) {
      const auto* values = o.attributes.find(a);
      return values != nullptr && std::any_of(values->begin(), values->end(),
                                              [&](const std::string& v) { return normalize_address(v) == wanted; });
    });
    if (holds) hits.push_back(it->second);
  }
  std::sort(hits.begin(), hits.end());
  return hits;
}

std::optional<TargetObject> MemoryTargetView::find_by_dn(std::string_view dn) const {
  const auto it = by_dn_.find(dn_key(dn));
  if (it == by_dn_.end()) return std::nullopt;
  return objects_[it->second];
}

Plan make_plan(const PlanSettings& settings, const PlanInput& input) { return Planner(settings, input).run(); }

}  // namespace bridgehead::directory::sync
