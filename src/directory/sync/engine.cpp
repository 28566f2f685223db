#include "directory/sync/engine.hpp"

#include <algorithm>
#include <chrono>
#include <unordered_set>

#include <fmt/format.h>

#include "core/duration.hpp"
#include "core/text.hpp"
#include "directory/addressbook/address_book_file.hpp"
#include "directory/dn.hpp"
#include "directory/mapping/default_rules.hpp"
#include "directory/sync/members.hpp"
#include "directory/sync/source.hpp"
#include "directory/sync/target.hpp"

namespace bridgehead::directory::sync {
namespace {

constexpr std::string_view kStateFileName = "dirsync.sqlite";
// Above this many changed entries in one read, the stored source records are read in one scan
// rather than looked up one by one.
constexpr std::size_t kLookupsBeforeScan = 256;

std::string stamp_prefix(const std::string& connector) { return stamp_prefix_of(connector); }

Error config_error(std::string message, std::string remedy = {}) {
  return Error::permanent(ErrorCode::kConfig, std::move(message), std::move(remedy));
}

// How objects written into a directory of `profile` look: AD contacts, or Domino persons.
TargetShape shape_for(const DirectorySettings& to, const std::string& connector) {
  TargetShape s;
  s.container = to.contacts_container;
  s.stamp_prefix = stamp_prefix(connector);
  s.stamp_attribute = stamp_attribute_of(to);
  if (to.profile == Profile::kExchange) {
    s.object_classes = {"top", "person", "organizationalPerson", "contact", "mailRecipient"};
    s.address_attributes = {"targetAddress", "mail", "proxyAddresses"};
    s.required = {"cn", "sn", "targetAddress"};
    // AD's rangeUpper of each attribute (its schema); longer values are refused by AD.
    s.max_length = {{"cn", 64},           {"sn", 64},      {"givenName", 64},       {"displayName", 256},
                    {"mailNickname", 64}, {"mail", 256},   {"targetAddress", 1123}, {"proxyAddresses", 1123},
                    {"initials", 6},      {"company", 64}, {"department", 64}};
  } else {
    s.object_classes = {"top", "person", "organizationalPerson", "inetOrgPerson", "dominoPerson"};
    s.address_attributes = {"mailAddress", "mail"};
    s.proxy_attribute.clear();
    s.required = {"cn", "sn", "mailAddress"};
    s.hide_attribute = "availableForDirSync";
    s.hide_value = "FALSE";
  }
  return s;
}

// Groups written with their members: AD distribution groups, or Domino groups.
GroupShape group_shape_for(const DirectorySettings& to, std::size_t member_chunk) {
  GroupShape g;
  g.member_chunk = member_chunk;
  g.required = {"cn"};
  if (to.profile == Profile::kExchange) {
    g.object_classes = {"top", "group", "mailRecipient"};
    g.fixed.set("groupType", {"8"});  // ADS_GROUP_TYPE_UNIVERSAL_GROUP, not a security group: a distribution list
  } else {
    g.object_classes = {"top", "groupOfNames", "dominoGroup"};
    g.fixed.set("dominoGroupType", {"1"});  // mail only
    g.members_required = true;              // groupOfNames: MUST member
  }
  return g;
}

std::string direction_name(const DirectorySettings& from, const DirectorySettings& to) {
  return from.system + "->" + to.system;
}

}  // namespace

struct Engine::Direction {
  std::string name;
  const DirectorySettings* from = nullptr;
  const DirectorySettings* to = nullptr;
  mapping::RuleSet rules;
  mapping::RuleSet group_rules;  // for the groups: name and address, expanded in their home system
  mapping::Context context;
  Scope scope;
  PlanSettings plan;
};

namespace {

// `members`: groups are written as groups with their members ([dirsync] group_members).
Expected<mapping::RuleSet> rules_for(const DirectorySettings& from, const DirectorySettings& to, bool groups,
                                     bool members) {
  std::vector<mapping::RuleSource> sources = groups ? to.group_rules : to.rules;
  const std::string_view table = groups ? "[system.directory.group_rules]" : "[system.directory.rules]";
  if (sources.empty() && groups && members && from.profile != to.profile) {
    sources = from.profile == Profile::kDomino ? mapping::domino_group_to_ad_group()
                                               : mapping::exchange_group_to_domino_group();
  }
  if (sources.empty()) {
    if (from.profile == Profile::kDomino && to.profile == Profile::kExchange) {
      sources = groups ? mapping::domino_group_to_ad_contact() : mapping::domino_person_to_ad_contact();
    } else if (from.profile == Profile::kExchange && to.profile == Profile::kDomino && groups) {
      sources = mapping::exchange_group_to_domino_person();
    } else if (from.profile == Profile::kExchange && to.profile == Profile::kDomino) {
      const auto* g = mapping::find_full_name_generator(from.full_name_generator);
      if (g == nullptr) {
        return tl::unexpected(config_error(fmt::format("the {} directory's full_name_generator '{}' is not one",
                                                       from.system, from.full_name_generator),
                                           "use given-surname, given-initials-surname, surname-given, display-name "
                                           "or alias"));
      }
      sources = mapping::exchange_user_to_domino_person(*g);
    } else if (groups && !to.rules.empty()) {
      sources = to.rules;  // the administrator's rules for the persons serve the groups too
    } else {
      return tl::unexpected(
          config_error(fmt::format("no default mapping from a {} directory to a {} directory ({} -> {})",
                                   from.profile == Profile::kDomino ? "domino" : "exchange",
                                   to.profile == Profile::kDomino ? "domino" : "exchange", from.system, to.system),
                       fmt::format("write the rules in {} of {}", table, to.system)));
    }
  }
  // The naming attribute comes from the source's cn unless a rule says otherwise.
  bool names = false;
  for (const auto& r : sources) names = names || iequals(r.target, "cn");
  if (!names) {
    mapping::RuleSource cn;
    cn.target = "cn";
    cn.text = "first(if_empty(displayName, cn))";
    sources.push_back(std::move(cn));
  }
  const auto known = from.profile == Profile::kDomino ? mapping::domino_person_known() : mapping::exchange_user_known();
  auto parsed = mapping::RuleSet::parse(sources, known);
  if (!parsed) {
    std::string all;
    for (const auto& p : parsed.error()) all += "\n  " + p.describe();
    return tl::unexpected(config_error(fmt::format("the mapping rules {} -> {}{} have problems:{}", from.system,
                                                   to.system, groups ? " for groups" : "", all),
                                       fmt::format("fix the rules in {}; `bridgehead check` lists them", table)));
  }
  return std::move(*parsed);
}

}  // namespace

Expected<std::unique_ptr<Engine>> Engine::open(SyncSettings settings, std::filesystem::path state_dir, IdSource id) {
  for (const auto& d : settings.directories) {
    if (d.uri.empty() == d.ldif_file.empty()) {
      return tl::unexpected(
          config_error(fmt::format("the {} directory needs exactly one of uri and ldif_file", d.system),
                       "set uri = \"ldap://host:389\" for an LDAP server, or ldif_file for an LDIF source"));
    }
    if (!d.uri.empty() && d.base.empty()) {
      return tl::unexpected(config_error(fmt::format("the {} directory has no base", d.system),
                                         "set base to the DN its objects are below, e.g. \"o=Acme\""));
    }
    if (auto s = Scope::make(d.scope); !s) return tl::unexpected(s.error());
  }
  auto state = StateStore::open(state_dir / kStateFileName);
  if (!state) return tl::unexpected(state.error());
  std::unique_ptr<Engine> e(new Engine(std::move(settings), std::move(state_dir), std::move(id), std::move(*state)));
  for (const auto& from : e->settings_.directories) {
    for (const auto& to : e->settings_.directories) {
      if (&from == &to || to.contacts_container.empty()) continue;
      auto d = std::make_unique<Direction>();
      d->name = direction_name(from, to);
      d->from = &from;
      d->to = &to;
      const bool members = e->settings_.group_members;
      auto rules = rules_for(from, to, false, members);
      if (!rules) return tl::unexpected(rules.error());
      d->rules = std::move(*rules);
      auto group_rules = rules_for(from, to, true, members);
      if (!group_rules) return tl::unexpected(group_rules.error());
      d->group_rules = std::move(*group_rules);
      d->context.set("routing_domain", from.routing_domain);
      d->context.set("notes_domain", e->settings_.notes_domain);
      d->context.set("system", from.system);
      d->scope = *Scope::make(from.scope);
      d->plan.direction = d->name;
      d->plan.shape = shape_for(to, e->settings_.connector_name);
      if (members) d->plan.shape.groups = group_shape_for(to, e->settings_.member_chunk);
      d->plan.switches = e->settings_.switches;
      d->plan.limits = e->settings_.limits;
      d->plan.adopt = e->settings_.adopt;
      d->plan.soft_delete_days = e->settings_.soft_delete_days;
      e->directions_.push_back(std::move(d));
    }
  }
  return e;
}

Engine::Engine(SyncSettings settings, std::filesystem::path state_dir, IdSource id, StateStore state)
    : settings_(std::move(settings)), state_dir_(std::move(state_dir)), id_(std::move(id)), state_(std::move(state)) {}

Engine::~Engine() = default;

namespace {

// What one directory's read gave.
struct ReadResult {
  const DirectorySettings* dir = nullptr;
  bool ok = false;
  std::optional<Error> error;
  ReadOutcome outcome;
  std::vector<SourceChange> upserts;  // in source order, our own objects left out
  // Some objects were reported only as still there (a present phase, a key enumeration): the
  // upserts are not every object, and what is gone is in `deleted`, worked out from the state.
  bool presence_reported = false;
  std::vector<std::string> deleted;         // keys
  std::vector<EntryOutcome> derived;        // of each upsert, in the same order
  std::unordered_set<std::string> refused;  // keys of entries with bad data: never deleted for it
  Batch sources;                            // the source records, committed after the directions
};

void add_problem(RunRecord& rec, std::string direction, std::string key, std::string dn, std::string kind,
                 std::string message) {
  ++rec.problem_count;
  if (rec.problems.size() >= kMaxStoredProblems) return;
  RunProblem p;
  p.direction = std::move(direction);
  p.key = std::move(key);
  p.dn = std::move(dn);
  p.kind = std::move(kind);
  p.message = std::move(message);
  rec.problems.push_back(std::move(p));
}

void fail(RunRecord& rec, const std::string& message) {
  rec.status = RunStatus::kFailed;
  if (!rec.error.empty()) rec.error += "; ";
  rec.error += message;
}

void count(RunCounts& c, OpKind kind) {
  switch (kind) {
    case OpKind::kAdd:
      ++c.adds;
      break;
    case OpKind::kModify:
      ++c.updates;
      break;
    case OpKind::kRename:
      ++c.renames;
      break;
    case OpKind::kDelete:
      ++c.deletes;
      break;
    case OpKind::kHide:
      ++c.hides;
      break;
    case OpKind::kAdopt:
      ++c.adoptions;
      break;
  }
}

// Counts and reports what a target did with `ops`, and gathers the state of the ones done.
// Returns whether a failure was transient (the target went away: stop writing to it).
bool record_results(RunRecord& rec, const std::string& direction, const std::vector<Operation>& ops,
                    const std::vector<Expected<void>>& results, Batch& batch) {
  bool broke = false;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const auto& op = ops[i];
    if (!results[i]) {
      ++rec.counts.errors;
      add_problem(rec, direction, op.key, op.kind == OpKind::kAdd ? op.entry.dn() : op.dn, "write",
                  fmt::format("{}: {}", op.describe(), results[i].error().describe()));
      broke = broke || results[i].error().transient();
      continue;
    }
    if (!op.continues) count(rec.counts, op.kind);
    if (op.kind == OpKind::kDelete) {
      batch.erase_objects.emplace_back(op.after.direction, op.after.key);
    } else {
      batch.put_objects.push_back(op.after);
    }
  }
  return broke;
}

}  // namespace

Expected<RunRecord> Engine::run(const RunOptions& options) {
  const bool preview = options.kind == RunKind::kPreview;
  const bool full = options.kind == RunKind::kFull || options.full;
  std::string names;
  for (const auto& d : directions_) names += (names.empty() ? "" : ", ") + d->name;
  RunRecord rec;
  rec.kind = options.kind;
  rec.directions = names;
  rec.started_ms = unix_now_ms();
  auto id = state_.begin_run(options.kind, names, rec.started_ms);
  if (!id) return tl::unexpected(id.error());
  rec.id = *id;
  stop_.store(false);

  // 1. Read every directory.
  std::vector<ReadResult> reads;
  for (const auto& dir : settings_.directories) {
    ReadResult rr;
    rr.dir = &dir;
    std::string cookie;
    if (!full) {
      auto c = state_.cookie(dir.system);
      if (!c) return tl::unexpected(c.error());
      cookie = c->value_or("");
    }
    auto source = open_source(dir, id_, stamp_prefix(settings_.connector_name));
    Expected<ReadOutcome> outcome = source ? Expected<ReadOutcome>{} : tl::unexpected(source.error());
    std::unordered_set<std::string> seen;
    std::unordered_set<std::string> present;  // UUIDs a present phase reported, resolved after the read
    const std::string own = stamp_prefix(settings_.connector_name);
    const std::string stamp = stamp_attribute_of(dir);
    if (source) {
      // The entries the last run kept are what this read is expected to come to.
      std::size_t expected = 0;
      if (auto n = state_.source_count(dir.system); n) expected = *n;
      if (progress_) progress_(fmt::format("reading {}", dir.system));
      outcome = (*source)->read(
          cookie, full,
          [&](SourceChange&& c) {
            if (c.kind == SourceChange::Kind::kUpsert) {
              // The contacts Bridgehead wrote into this directory are the other system's objects:
              // never read back as this system's (no loops), never in its address book.
              if (c.entry.first(stamp).starts_with(own)) return;
              if (c.key.empty()) {
                // An organizational unit, a server document: not an object to synchronize at all.
                if (derive_recipient(c.entry, dir.profile, dir.system).status == EntryOutcome::Status::kSkipped) return;
                add_problem(rec, dir.system, "", c.entry.dn(), "bad-data",
                            fmt::format("{} has no immutable id ({}): it cannot be synchronized", c.entry.dn(),
                                        dir.profile == Profile::kDomino ? "dominoUNID or entryUUID"
                                                                        : "objectGUID or entryUUID"));
                ++rec.counts.errors;
                return;
              }
              seen.insert(c.key);
              rr.upserts.push_back(std::move(c));
            } else if (c.kind == SourceChange::Kind::kDelete) {
              if (c.key.empty() && !c.uuid.empty()) {
                if (auto s = state_.source_by_uuid(dir.system, c.uuid); s && *s) c.key = (*s)->key;
              }
              if (!c.key.empty()) rr.deleted.push_back(c.key);
            } else {
              rr.presence_reported = true;
              if (!c.key.empty()) {
                seen.insert(c.key);
              } else if (!c.uuid.empty()) {
                present.insert(std::move(c.uuid));
              }
            }
          },
          [&](std::size_t n) {
            if (!progress_) return;
            progress_(expected > n ? fmt::format("reading {}: {}/{} entries", dir.system, grouped(n), grouped(expected))
                                   : fmt::format("reading {}: {} entries", dir.system, grouped(n)));
          });
    }
    if (!outcome) {
      rr.error = outcome.error();
      fail(rec, fmt::format("reading the {} directory failed: {}", dir.system, outcome.error().describe()));
      reads.push_back(std::move(rr));
      continue;
    }
    rr.ok = true;
    rr.outcome = std::move(*outcome);
    rec.counts.read += rr.outcome.entries;
    if (!rr.outcome.complete && rr.outcome.problem) {
      add_problem(rec, dir.system, "", "", "incomplete-read",
                  rr.outcome.problem->describe() + "; nothing is deleted this run");
    }
    // Source records: what the address book and later deletes are made of. Only what changed
    // is written, so a run over an unchanged directory leaves the state and the book alone.
    // Many upserts (a full read) are compared after one scan of the stored records, a few
    // after a lookup each.
    std::unordered_map<std::string, SourceRecord> known;
    const bool scanned = rr.upserts.size() > kLookupsBeforeScan;
    if (scanned) {
      auto each = state_.for_each_source(dir.system, [&](const SourceRecord& s) { known.emplace(s.key, s); });
      if (!each) return tl::unexpected(each.error());
    } else {
      for (const auto& c : rr.upserts) {
        auto s = state_.source(dir.system, c.key);
        if (!s) return tl::unexpected(s.error());
        if (*s) known.emplace(c.key, std::move(**s));
      }
    }
    rr.derived.reserve(rr.upserts.size());
    for (const auto& c : rr.upserts) {
      SourceRecord s;
      s.directory = dir.system;
      s.key = c.key;
      s.dn = c.entry.dn();
      s.uuid = c.uuid;
      auto derived = derive_recipient(c.entry, dir.profile, dir.system);
      if (derived.status == EntryOutcome::Status::kRecipient) {
        s.recipient = derived.recipient;
      } else if (derived.status == EntryOutcome::Status::kRefused) {
        rr.refused.insert(c.key);
        ++rec.counts.errors;
        add_problem(rec, dir.system, c.key, c.entry.dn(), "bad-data", derived.reason);
      }
      rr.derived.push_back(std::move(derived));
      // A refused entry keeps what was read of it before.
      if (rr.refused.contains(c.key) && known.contains(c.key)) continue;
      if (auto it = known.find(c.key); it == known.end() || !(it->second == s)) {
        rr.sources.put_sources.push_back(std::move(s));
      }
    }
    for (const auto& k : rr.deleted) {
      if (scanned && !known.contains(k)) continue;
      if (!scanned) {
        auto s = state_.source(dir.system, k);
        if (!s) return tl::unexpected(s.error());
        if (!*s) continue;  // never stored (out of scope, or not a recipient): nothing changes
      }
      rr.sources.erase_sources.emplace_back(dir.system, k);
    }
    if (rr.outcome.full && rr.outcome.complete) {
      // Whatever the read did not report, by key or by UUID, is gone.
      auto each = state_.for_each_source_key(dir.system, [&](std::string_view key, std::string_view uuid) {
        const std::string k(key);
        if (seen.contains(k) || (!uuid.empty() && present.contains(std::string(uuid)))) return;
        rr.deleted.push_back(k);
        rr.sources.erase_sources.emplace_back(dir.system, k);
      });
      if (!each) return tl::unexpected(each.error());
    }
    reads.push_back(std::move(rr));
  }

  // 2. Each direction: map, plan, confirm deletes, apply, commit.
  std::vector<Operation> preview_ops;
  std::unordered_set<std::string> failed_sources;  // directories whose cookie must not move
  for (const auto& d : directions_) {
    if (stop_.load()) break;
    ReadResult* rr = nullptr;
    for (auto& r : reads) rr = r.dir == d->from ? &r : rr;
    if (rr == nullptr || !rr->ok) continue;
    const bool can_delete = rr->outcome.complete;
    PlanInput in;
    // The planner deletes what a full read left out of `desired`; after a present phase or a
    // key enumeration, `desired` holds only the changed objects, and `deleted` the gone ones.
    in.full = rr->outcome.full && !rr->presence_reported;
    in.read_complete = can_delete;
    // Group members by source DN: read from the state once the first group needs them; this
    // read's DNs win over the stored ones (a renamed member).
    std::optional<MemberIndex> member_index;
    const auto index_members = [&]() -> Expected<void> {
      member_index.emplace();
      auto objects = state_.for_each_source_dn(d->from->system, [&](std::string_view key, std::string_view dn) {
        member_index->add_object(dn, std::string(key));
      });
      if (!objects) return tl::unexpected(objects.error());
      for (const auto& c : rr->upserts) member_index->add_object(c.entry.dn(), c.key);
      // The contacts Bridgehead made in the source stand for the target's own objects, but
      // not for one this run read as gone (its contact goes in the other direction).
      std::unordered_set<std::string> gone;
      for (const auto& r : reads) {
        if (r.dir == d->to) gone.insert(r.deleted.begin(), r.deleted.end());
      }
      return state_.for_each_object_dn(direction_name(*d->to, *d->from),
                                       [&](std::string_view key, std::string_view native, std::string_view contact) {
                                         if (!gone.contains(std::string(key)))
                                           member_index->add_contact(contact, std::string(native));
                                       });
    };
    for (std::size_t i = 0; i < rr->upserts.size(); ++i) {
      const auto& c = rr->upserts[i];
      if (rr->refused.contains(c.key)) continue;
      if (auto why = d->scope.excludes(c.entry)) {
        in.out_of_scope_keys.push_back(c.key);
        continue;
      }
      const auto& derived = rr->derived[i];
      if (derived.status != EntryOutcome::Status::kRecipient || derived.recipient.hidden) {
        // Not mail-enabled, or hidden from address lists: known for routing, not exported.
        in.out_of_scope_keys.push_back(c.key);
        continue;
      }
      const bool group = derived.recipient.kind == RecipientKind::kGroup;
      if (group && std::none_of(derived.recipient.forms.begin(), derived.recipient.forms.end(),
                                [](const Form& f) { return f.kind == FormKind::kSmtp; })) {
        // A group reached only by its Notes name: nothing in the other system could address it.
        in.out_of_scope_keys.push_back(c.key);
        continue;
      }
      auto mapped = (group ? d->group_rules : d->rules).apply(c.entry, d->context);
      Desired want;
      want.key = c.key;
      want.source_dn = c.entry.dn();
      want.attributes = std::move(mapped.entry);
      for (const auto& p : mapped.problems) want.mapping_problems.push_back(p.describe());
      want.group = group;
      if (group && d->plan.shape.groups) {
        if (!member_index) {
          if (auto indexed = index_members(); !indexed) return tl::unexpected(indexed.error());
        }
        const auto* values = c.entry.find("member");
        auto resolved = member_index->resolve(values != nullptr ? *values : std::vector<std::string>{});
        want.member_keys = std::move(resolved.keys);
        want.member_dns = std::move(resolved.dns);
      }
      in.desired.push_back(std::move(want));
    }
    in.deleted_keys = rr->deleted;
    // Nothing changed in the source (a quiet incremental run): nothing to plan or write.
    if (!in.full && in.desired.empty() && in.deleted_keys.empty() && in.out_of_scope_keys.empty()) continue;
    auto objects = state_.objects(d->name);
    if (!objects) return tl::unexpected(objects.error());
    in.state = &*objects;
    auto target = open_target(*d->to, id_, tuning());
    if (!target) {
      fail(rec, fmt::format("{}: {}", d->name, target.error().describe()));
      failed_sources.insert(d->from->system);
      continue;
    }
    auto view = (*target)->view(d->plan.shape);
    in.target = view.get();
    if (auto approved = state_.approved_keys(); approved) {
      if (auto it = approved->find(d->name); it != approved->end()) {
        in.approved_deletes.insert(it->second.begin(), it->second.end());
      }
    }
    auto settings = d->plan;
    settings.now_ms = unix_now_ms();
    if (progress_) progress_(fmt::format("planning {}: {} entries", d->name, in.desired.size()));
    Plan plan = make_plan(settings, in);
    if (auto problem = (*target)->view_problem()) {
      fail(rec, fmt::format("{}: reading the {} directory failed: {}", d->name, d->to->system, problem->describe()));
      failed_sources.insert(d->from->system);
      continue;
    }
    // An entry with bad data keeps what was written for it before: it is not deleted for it.
    auto keep = [&](const Operation& op) {
      return (op.kind == OpKind::kDelete || op.kind == OpKind::kHide) && rr->refused.contains(op.key);
    };
    std::erase_if(plan.operations, keep);
    std::erase_if(plan.held, keep);
    for (const auto& p : plan.problems) {
      add_problem(rec, d->name, p.key, p.source_dn, std::string(to_string(p.kind)), p.message);
    }
    rec.counts.unchanged += plan.counts.unchanged;
    rec.counts.conflicts += plan.counts.conflicts;
    rec.counts.out_of_scope += plan.counts.out_of_scope;
    rec.counts.errors += plan.counts.errors;
    rec.counts.switched_off += plan.counts.switched_off;
    if (plan.deletions_held) {
      rec.counts.held += plan.held.size();
      if (!preview) {
        if (auto h = state_.hold(rec.id, plan.held); !h) return tl::unexpected(h.error());
      }
      if (rec.status == RunStatus::kRunning) rec.status = RunStatus::kHeld;
      rec.error += (rec.error.empty() ? "" : "; ") +
                   fmt::format("{}: {}", d->name, plan.held_reason.empty() ? "deletions held" : plan.held_reason);
    }
    if (preview) {
      for (auto& op : plan.operations) preview_ops.push_back(std::move(op));
      continue;
    }
    // Each delete is confirmed in the source first: an object still there is not deleted.
    std::unique_ptr<Source> confirm;
    std::vector<Operation> ops;
    ops.reserve(plan.operations.size());
    for (auto& op : plan.operations) {
      if (op.kind == OpKind::kDelete || op.kind == OpKind::kHide) {
        if (!confirm) {
          auto s = open_source(*d->from, id_, stamp_prefix(settings_.connector_name));
          if (!s) {
            add_problem(rec, d->name, op.key, op.source_dn, "not-confirmed", s.error().describe());
            continue;
          }
          confirm = std::move(*s);
        }
        auto there = op.source_dn.empty() ? Expected<bool>{false} : confirm->still_there(op.source_dn, op.key);
        if (!there || *there) {
          add_problem(rec, d->name, op.key, op.source_dn, "not-confirmed",
                      there ? fmt::format("{} is still in the {} directory: not deleted", op.source_dn, d->from->system)
                            : fmt::format("could not confirm that {} is gone: {}; not deleted", op.source_dn,
                                          there.error().describe()));
          continue;
        }
      }
      ops.push_back(std::move(op));
    }
    bool broke = false;
    // The groups start a batch of their own: a target that checks member values (AD) has
    // every object they name by then.
    const std::size_t first_group = std::min(plan.first_group_operation, ops.size());
    for (std::size_t at = 0, end = 0; at < ops.size() && !broke && !stop_.load(); at = end) {
      end = std::min(ops.size(), at + settings_.batch_size);
      if (at < first_group && end > first_group) end = first_group;
      std::vector<Operation> chunk(std::make_move_iterator(ops.begin() + static_cast<std::ptrdiff_t>(at)),
                                   std::make_move_iterator(ops.begin() + static_cast<std::ptrdiff_t>(end)));
      if (progress_) progress_(fmt::format("writing {}: {}/{} operations", d->name, at, ops.size()));
      auto results = (*target)->apply(chunk);
      Batch batch;
      broke = record_results(rec, d->name, chunk, results, batch);
      if (auto c = state_.commit(batch); !c) return tl::unexpected(c.error());
    }
    if (auto f = (*target)->finish(); !f) {
      fail(rec, fmt::format("{}: {}", d->name, f.error().describe()));
      failed_sources.insert(d->from->system);
    }
    if (broke) {
      fail(rec, fmt::format("{}: the {} directory stopped answering mid-run; what was written is recorded, the "
                            "next run goes on from there",
                            d->name, d->to->system));
      failed_sources.insert(d->from->system);
    }
  }

  // 3. The sources, with their cookies when every direction they feed went through.
  bool sources_changed = false;
  if (!preview) {
    for (auto& rr : reads) {
      if (!rr.ok) continue;
      if (!failed_sources.contains(rr.dir->system) && rr.outcome.complete && !stop_.load()) {
        rr.sources.cookies.emplace_back(rr.dir->system, rr.outcome.cookie);
      }
      sources_changed = sources_changed || !rr.sources.put_sources.empty() || !rr.sources.erase_sources.empty();
      if (auto c = state_.commit(rr.sources); !c) return tl::unexpected(c.error());
    }
  } else {
    auto saved = state_.save_preview(rec.id, preview_ops);
    if (!saved) return tl::unexpected(saved.error());
    rec.preview_id = *saved;
    for (const auto& op : preview_ops) {
      if (!op.continues) count(rec.counts, op.kind);
    }
  }

  // 4. The address book, from every directory's recipients.
  if (sources_changed || !std::filesystem::exists(state_dir_ / kAddressBookFileName)) {
    if (auto b = rebuild_address_book(); !b) {
      fail(rec, b.error().describe());
    }
  }

  if (rec.status == RunStatus::kRunning) rec.status = rec.problem_count > 0 ? RunStatus::kPartial : RunStatus::kOk;
  if (stop_.load() && rec.status != RunStatus::kFailed) fail(rec, "stopped: the connector is shutting down");
  rec.finished_ms = unix_now_ms();
  if (auto f = state_.finish_run(rec); !f) return tl::unexpected(f.error());
  return rec;
}

Expected<void> Engine::rebuild_address_book() {
  if (progress_) progress_("building the address book");
  AddressBookBuilder builder;
  std::optional<Error> bad;
  auto each = state_.for_each_recipient([&](const Recipient& r) {
    if (auto a = builder.add(r); !a && !bad) bad = a.error();
  });
  if (!each) return tl::unexpected(each.error());
  auto built = std::move(builder).build();
  if (!built) return tl::unexpected(built.error());
  if (auto saved = save_address_book(*built->book, state_dir_ / kAddressBookFileName); !saved) {
    return tl::unexpected(saved.error());
  }
  if (address_book_) address_book_(built->book, built->collisions.size());
  return {};
}

WriteTuning Engine::tuning() const {
  WriteTuning t;
  t.in_flight = settings_.in_flight;
  t.transactions = settings_.transactions;
  return t;
}

Engine::Direction* Engine::direction(const std::string& name) const {
  for (const auto& d : directions_) {
    if (d->name == name) return d.get();
  }
  return nullptr;
}

Expected<RunRecord> Engine::write_exactly(RunKind kind, std::vector<Operation> ops, bool confirm_deletes) {
  RunRecord rec;
  rec.kind = kind;
  rec.started_ms = unix_now_ms();
  std::vector<std::string> names;
  for (const auto& op : ops) {
    if (std::find(names.begin(), names.end(), op.direction) == names.end()) names.push_back(op.direction);
  }
  for (const auto& n : names) rec.directions += (rec.directions.empty() ? "" : ", ") + n;
  auto id = state_.begin_run(kind, rec.directions, rec.started_ms);
  if (!id) return tl::unexpected(id.error());
  rec.id = *id;
  for (const auto& name : names) {
    Direction* d = direction(name);
    if (d == nullptr) {
      fail(rec, fmt::format("direction {} is no longer configured: its operations were not applied", name));
      continue;
    }
    auto target = open_target(*d->to, id_, tuning());
    if (!target) {
      fail(rec, fmt::format("{}: {}", name, target.error().describe()));
      continue;
    }
    std::unique_ptr<Source> source;
    std::vector<Operation> mine;
    for (auto& op : ops) {
      if (op.direction != name) continue;
      if (confirm_deletes && (op.kind == OpKind::kDelete || op.kind == OpKind::kHide)) {
        if (!source) {
          auto s = open_source(*d->from, id_, stamp_prefix(settings_.connector_name));
          if (!s) {
            add_problem(rec, name, op.key, op.source_dn, "not-confirmed", s.error().describe());
            continue;
          }
          source = std::move(*s);
        }
        auto there = source->still_there(op.source_dn, op.key);
        if (!there || *there) {
          add_problem(rec, name, op.key, op.source_dn, "not-confirmed",
                      there ? fmt::format("{} is back in the {} directory: not deleted", op.source_dn, d->from->system)
                            : there.error().describe());
          continue;
        }
      }
      mine.push_back(op);
    }
    auto results = (*target)->apply(mine);
    Batch batch;
    record_results(rec, name, mine, results, batch);
    if (auto c = state_.commit(batch); !c) return tl::unexpected(c.error());
    if (auto f = (*target)->finish(); !f) fail(rec, fmt::format("{}: {}", name, f.error().describe()));
  }
  if (rec.status == RunStatus::kRunning) rec.status = rec.problem_count > 0 ? RunStatus::kPartial : RunStatus::kOk;
  rec.finished_ms = unix_now_ms();
  return rec;
}

Expected<RunRecord> Engine::apply_preview(std::int64_t id) {
  auto applied = state_.preview_applied_by(id);
  if (!applied) return tl::unexpected(applied.error());
  if (*applied) {
    return tl::unexpected(Error::permanent(ErrorCode::kInvalidArgument,
                                           fmt::format("preview {} was applied already, by run {}", id, **applied),
                                           "make a new preview with `bridgehead dirsync preview`"));
  }
  auto ops = state_.preview(id);
  if (!ops) return tl::unexpected(ops.error());
  auto rec = write_exactly(RunKind::kApply, std::move(*ops), false);
  if (!rec) return rec;
  rec->preview_id = id;
  if (auto m = state_.mark_preview_applied(id, rec->id); !m) return tl::unexpected(m.error());
  if (auto f = state_.finish_run(*rec); !f) return tl::unexpected(f.error());
  return rec;
}

Expected<RunRecord> Engine::approve(std::int64_t id) {
  auto run = state_.run(id);
  if (!run) return tl::unexpected(run.error());
  if (!*run) {
    return tl::unexpected(Error::permanent(ErrorCode::kNotFound, fmt::format("there is no run {}", id),
                                           "`bridgehead dirsync status` lists the runs"));
  }
  auto held = state_.held(id);
  if (!held) return tl::unexpected(held.error());
  if (held->empty()) {
    return tl::unexpected(Error::permanent(ErrorCode::kNotFound, fmt::format("run {} holds no deletions", id),
                                           "`bridgehead dirsync status` shows which run held them"));
  }
  if (auto a = state_.approve(id); !a) return tl::unexpected(a.error());
  auto rec = write_exactly(RunKind::kApprove, std::move(*held), true);
  if (!rec) return rec;
  if (auto c = state_.clear_held(id); !c) return tl::unexpected(c.error());
  if (auto f = state_.finish_run(*rec); !f) return tl::unexpected(f.error());
  return rec;
}

}  // namespace bridgehead::directory::sync
