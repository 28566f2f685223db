#include "directory/sync/plan.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "core/text.hpp"
#include "directory/dn.hpp"

namespace bridgehead::directory::sync {
namespace {

using ldap::Modification;
using ldap::ModifyOp;
using State = std::unordered_map<std::string, ObjectRecord>;
using Attrs = std::vector<std::pair<std::string, std::vector<std::string>>>;

constexpr std::int64_t kNow = 1'700'000'000'000;
constexpr std::int64_t kDay = 86'400'000;
const std::string kContainer = "ou=Notes,dc=acme,dc=example";
const std::vector<std::string> kClasses = {"top", "person", "organizationalPerson", "contact"};

PlanSettings settings() {
  PlanSettings s;
  s.direction = "notes->exchange";
  s.shape.container = kContainer;
  s.shape.object_classes = kClasses;
  s.shape.stamp_prefix = "bridgehead:test:";
  s.shape.required = {"cn", "targetAddress"};
  s.now_ms = kNow;
  return s;
}

Entry entry(const Attrs& attributes) {
  Entry e;
  for (const auto& [name, values] : attributes) e.set(name, values);
  return e;
}

// A mapped Domino person: cn, targetAddress and whatever else is given.
Desired person(std::string key, std::string cn, Attrs more = {}) {
  Desired d;
  d.key = std::move(key);
  d.source_dn = "cn=" + cn + ",o=Acme";
  d.attributes.set("cn", {cn});
  d.attributes.set("targetAddress", {"SMTP:" + d.key + "@notes.acme.example"});
  for (auto& [name, values] : more) d.attributes.set(name, values);
  return d;
}

// What the planner writes for `d`: classes, the mapped attributes, the stamp.
Entry written_for(const Desired& d) {
  Entry w;
  w.set("objectClass", kClasses);
  for (const Attribute& a : d.attributes.attributes()) w.set(a.name, a.values);
  w.set("importedFrom", {"bridgehead:test:" + d.key});
  return w;
}

std::string dn_of(std::string_view cn) { return "cn=" + escape_dn_value(cn) + "," + kContainer; }

ObjectRecord record(const Desired& d, std::string target_dn = {}) {
  ObjectRecord r;
  r.direction = "notes->exchange";
  r.key = d.key;
  r.source_dn = d.source_dn;
  r.target_dn = target_dn.empty() ? dn_of(d.attributes.first("cn")) : std::move(target_dn);
  r.written = written_for(d);
  r.hash = written_hash(r.written);
  return r;
}

TargetObject foreign(std::string dn, Attrs attributes) {
  TargetObject o;
  o.dn = std::move(dn);
  o.attributes = entry(attributes);
  return o;
}

struct Scenario {
  PlanSettings s = settings();
  State state;
  MemoryTargetView target;
  PlanInput input;
  Scenario() { input.full = true; }
  void known(const ObjectRecord& r) { state[r.key] = r; }
  Plan plan(std::vector<Desired> desired) {
    input.desired = std::move(desired);
    input.state = &state;
    input.target = &target;
    return make_plan(s, input);
  }
};

std::vector<OpKind> kinds(const Plan& p) {
  std::vector<OpKind> out;
  for (const Operation& op : p.operations) out.push_back(op.kind);
  return out;
}

std::size_t count(const Plan& p, EntryProblem::Kind kind) {
  return static_cast<std::size_t>(
      std::count_if(p.problems.begin(), p.problems.end(), [&](const EntryProblem& e) { return e.kind == kind; }));
}

const EntryProblem* find_problem(const Plan& p, EntryProblem::Kind kind) {
  for (const EntryProblem& e : p.problems) {
    if (e.kind == kind) return &e;
  }
  return nullptr;
}

bool same_changes(const std::vector<Modification>& a, const std::vector<Modification>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].op != b[i].op || a[i].attribute != b[i].attribute || a[i].values != b[i].values) return false;
  }
  return true;
}

std::string show(const std::vector<Modification>& changes) {
  std::string out;
  for (const Modification& m : changes) {
    out += m.op == ModifyOp::kAdd ? "add " : m.op == ModifyOp::kDelete ? "delete " : "replace ";
    out += m.attribute + " [";
    for (const std::string& v : m.values) out += v + ";";
    out += "] ";
  }
  return out;
}

#define EXPECT_CHANGES(actual, ...)                                       \
  do {                                                                    \
    const std::vector<Modification> expected_changes = __VA_ARGS__;       \
    EXPECT_TRUE(same_changes(actual, expected_changes))                   \
        << "got " << show(actual) << "\nwant " << show(expected_changes); \
  } while (0)

// --- naming and adds ---------------------------------------------------------------------

TEST(Plan, ANewObjectIsAddedWithItsClassesAndStampUnderAnEscapedName) {
  Scenario run;
  const Desired d = person("K1", "Doe, John", {{"displayName", {"John Doe"}}});
  const Plan p = run.plan({d});
  ASSERT_EQ(kinds(p), std::vector<OpKind>{OpKind::kAdd});
  const Operation& op = p.operations[0];
  EXPECT_EQ(op.dn, "cn=Doe\\, John,ou=Notes,dc=acme,dc=example");
  EXPECT_EQ(op.entry.dn(), op.dn);
  EXPECT_EQ(op.key, "K1");
  EXPECT_EQ(op.source_dn, d.source_dn);
  EXPECT_EQ(op.direction, "notes->exchange");
  Entry expected = written_for(d);
  EXPECT_EQ(op.after.written, expected);
  expected.set_dn(op.dn);
  EXPECT_EQ(op.entry, expected);
  EXPECT_EQ(*op.entry.find("objectClass"), kClasses);
  EXPECT_EQ(op.entry.first("importedFrom"), "bridgehead:test:K1");
  EXPECT_EQ(op.after.target_dn, op.dn);
  EXPECT_EQ(op.after.key, "K1");
  EXPECT_EQ(op.after.hash, written_hash(op.after.written));
  EXPECT_EQ(op.after.hidden_since_ms, 0);
  EXPECT_EQ(p.counts.adds, 1u);
  EXPECT_TRUE(p.problems.empty());
}

TEST(Plan, DesiredObjectClassAndStampAreTheShapes) {
  Scenario run;
  const Desired d = person("K1", "A", {{"objectClass", {"inetOrgPerson"}}, {"IMPORTEDFROM", {"forged"}}});
  const Plan p = run.plan({d});
  ASSERT_EQ(p.operations.size(), 1u);
  EXPECT_EQ(*p.operations[0].entry.find("objectClass"), kClasses);
  EXPECT_EQ(*p.operations[0].entry.find("importedFrom"), std::vector<std::string>{"bridgehead:test:K1"});
}

TEST(Plan, AnUnchangedRecordIsCountedAndWritesNothing) {
  Scenario run;
  const Desired d = person("K1", "A", {{"proxyAddresses", {"SMTP:a@x", "smtp:b@x"}}});
  run.known(record(d));
  const Plan p = run.plan({d});
  EXPECT_TRUE(p.operations.empty());
  EXPECT_EQ(p.counts.unchanged, 1u);
  EXPECT_TRUE(p.problems.empty());
}

TEST(Plan, ARecordKeepsItsDnWhileItsNamingValueIsTheSame) {
  Scenario run;
  const Desired d = person("K1", "A");
  run.known(record(d, "cn=A,ou=Old Contacts,dc=acme,dc=example"));  // the container setting moved since
  Desired changed = d;
  changed.attributes.set("displayName", {"A."});
  const Plan p = run.plan({changed});
  ASSERT_EQ(kinds(p), std::vector<OpKind>{OpKind::kModify});
  EXPECT_EQ(p.operations[0].dn, "cn=A,ou=Old Contacts,dc=acme,dc=example");
  EXPECT_EQ(p.operations[0].after.target_dn, "cn=A,ou=Old Contacts,dc=acme,dc=example");
}

TEST(Plan, ATakenNameGetsANumberWhateverTheOrderOfDesired) {
  const std::vector<Desired> desired = {person("K3", "Jo Doe"), person("K1", "Jo Doe"), person("K2", "Jo Doe")};
  std::vector<Desired> reversed(desired.rbegin(), desired.rend());
  Scenario a, b;
  const Plan p = a.plan(desired);
  const Plan q = b.plan(reversed);
  EXPECT_EQ(p.operations, q.operations);
  ASSERT_EQ(p.operations.size(), 3u);
  EXPECT_EQ(p.operations[0].key, "K1");
  EXPECT_EQ(p.operations[0].dn, dn_of("Jo Doe"));
  EXPECT_EQ(p.operations[1].dn, dn_of("Jo Doe (2)"));
  EXPECT_EQ(p.operations[1].entry.first("cn"), "Jo Doe (2)");  // the RDN's value is an attribute value
  EXPECT_EQ(p.operations[2].dn, dn_of("Jo Doe (3)"));
  EXPECT_EQ(count(p, EntryProblem::Kind::kDuplicateName), 2u);
  const EntryProblem* dup = find_problem(p, EntryProblem::Kind::kDuplicateName);
  ASSERT_NE(dup, nullptr);
  EXPECT_EQ(dup->key, "K2");
  EXPECT_NE(dup->message.find("named cn=Jo Doe (2),ou=Notes"), std::string::npos) << dup->message;
}

TEST(Plan, ANameHeldByAnotherKeysRecordOrByAForeignObjectIsTaken) {
  Scenario run;
  const Desired old = person("K0", "Jo Doe");
  run.known(record(old));
  run.target.add(foreign(dn_of("Ann"), {{"cn", {"Ann"}}}));  // created by hand, not ours
  const Plan p = run.plan({old, person("K1", "JO DOE"), person("K2", "ann")});
  ASSERT_EQ(kinds(p), (std::vector<OpKind>{OpKind::kAdd, OpKind::kAdd}));
  EXPECT_EQ(p.operations[0].dn, dn_of("JO DOE (2)"));
  EXPECT_EQ(p.operations[1].dn, dn_of("ann (2)"));
  EXPECT_EQ(p.counts.unchanged, 1u);
}

TEST(Plan, AnObjectOfThisKeyAtTheNameIsNotAClash) {
  Scenario run;
  const Desired d = person("K1", "A");
  TargetObject ours = foreign(dn_of("A"), {{"cn", {"A"}}, {"importedFrom", {"bridgehead:test:K1"}}});
  run.target.add(ours);
  const Plan p = run.plan({d});
  ASSERT_EQ(p.operations.size(), 1u);
  EXPECT_EQ(p.operations[0].dn, dn_of("A"));
  EXPECT_EQ(count(p, EntryProblem::Kind::kDuplicateName), 0u);
}

TEST(Plan, ADuplicateKeyIsReportedAndOnlyItsFirstEntryWritten) {
  Scenario run;
  const Plan p = run.plan({person("K1", "A"), person("K1", "B")});
  ASSERT_EQ(p.operations.size(), 1u);
  EXPECT_EQ(p.operations[0].dn, dn_of("A"));
  EXPECT_EQ(count(p, EntryProblem::Kind::kBadData), 1u);
  EXPECT_EQ(p.counts.errors, 1u);
}

// --- modifies ----------------------------------------------------------------------------

TEST(Plan, SingleValuesAreReplacedGoneAttributesDeletedNewOnesAdded) {
  Scenario run;
  const Desired before = person("K1", "A", {{"displayName", {"A"}}, {"department", {"Sales"}}});
  run.known(record(before));
  const Desired now = person("K1", "A", {{"displayName", {"A B"}}, {"telephoneNumber", {"+1 555", "+1 556"}}});
  const Plan p = run.plan({now});
  ASSERT_EQ(kinds(p), std::vector<OpKind>{OpKind::kModify});
  const Operation& op = p.operations[0];
  EXPECT_EQ(op.dn, dn_of("A"));
  EXPECT_CHANGES(op.changes, {{ModifyOp::kReplace, "displayName", {"A B"}},
                              {ModifyOp::kAdd, "telephoneNumber", {"+1 555", "+1 556"}},
                              {ModifyOp::kDelete, "department", {}}});
  EXPECT_EQ(op.after.written, written_for(now));
  EXPECT_EQ(op.after.hash, written_hash(written_for(now)));
  EXPECT_EQ(p.counts.updates, 1u);
}

TEST(Plan, AttributeNamesCompareWithoutCase) {
  Scenario run;
  const Desired before = person("K1", "A", {{"displayName", {"A"}}});
  run.known(record(before));
  const Desired now = person("K1", "A", {{"DISPLAYNAME", {"A"}}});
  EXPECT_TRUE(run.plan({now}).operations.empty());
  const Desired changed = person("K1", "A", {{"DisplayName", {"B"}}});
  const Plan p = run.plan({changed});
  ASSERT_EQ(p.operations.size(), 1u);
  EXPECT_CHANGES(p.operations[0].changes, {{ModifyOp::kReplace, "DisplayName", {"B"}}});
}

TEST(Plan, MultiValuedAttributesChangeByValueIncludingACaseOnlyChange) {
  Scenario run;
  const Desired before = person("K1", "A", {{"proxyAddresses", {"SMTP:a@x", "smtp:old@x", "X500:/o=Acme/cn=a"}}});
  run.known(record(before));
  const Desired now = person("K1", "A", {{"proxyAddresses", {"SMTP:A@x", "X500:/o=Acme/cn=a", "smtp:new@x"}}});
  const Plan p = run.plan({now});
  ASSERT_EQ(p.operations.size(), 1u);
  EXPECT_CHANGES(p.operations[0].changes, {{ModifyOp::kDelete, "proxyAddresses", {"SMTP:a@x", "smtp:old@x"}},
                                           {ModifyOp::kAdd, "proxyAddresses", {"SMTP:A@x", "smtp:new@x"}}});
}

TEST(Plan, ACaseOnlyChangeOfASingleValueIsReplaced) {
  Scenario run;
  run.known(record(person("K1", "A", {{"displayName", {"john doe"}}})));
  const Plan p = run.plan({person("K1", "A", {{"displayName", {"John Doe"}}})});
  ASSERT_EQ(p.operations.size(), 1u);
  EXPECT_CHANGES(p.operations[0].changes, {{ModifyOp::kReplace, "displayName", {"John Doe"}}});
}

TEST(Plan, EmptyAndRepeatedValuesAreNotWritten) {
  Scenario run;
  run.known(record(person("K1", "A", {{"displayName", {"A"}}})));
  const Plan p = run.plan({person("K1", "A", {{"displayName", {""}}, {"mail", {"a@x", "a@x"}}})});
  ASSERT_EQ(p.operations.size(), 1u);
  EXPECT_CHANGES(p.operations[0].changes, {{ModifyOp::kAdd, "mail", {"a@x"}}, {ModifyOp::kDelete, "displayName", {}}});
}

// --- renames -----------------------------------------------------------------------------

TEST(Plan, ANewNamingValueIsARenameBeforeTheModifyWhichLeavesTheNameAlone) {
  Scenario run;
  run.known(record(person("K1", "John Doe", {{"displayName", {"John"}}})));
  const Desired now = person("K1", "Doe, John Q", {{"displayName", {"John Q"}}});
  const Plan p = run.plan({now});
  ASSERT_EQ(kinds(p), (std::vector<OpKind>{OpKind::kRename, OpKind::kModify}));
  const Operation& rename = p.operations[0];
  EXPECT_EQ(rename.dn, dn_of("John Doe"));
  EXPECT_EQ(rename.new_rdn, "cn=Doe\\, John Q");
  EXPECT_EQ(rename.after.target_dn, dn_of("Doe, John Q"));
  EXPECT_EQ(rename.after.written.first("cn"), "Doe, John Q");
  EXPECT_EQ(rename.after.written.first("displayName"), "John");  // the modify is not applied yet
  const Operation& modify = p.operations[1];
  EXPECT_EQ(modify.dn, dn_of("Doe, John Q"));
  EXPECT_CHANGES(modify.changes, {{ModifyOp::kReplace, "displayName", {"John Q"}}});
  EXPECT_EQ(modify.after.written, written_for(now));
  EXPECT_EQ(p.counts.renames, 1u);
  EXPECT_EQ(p.counts.updates, 1u);
}

TEST(Plan, ARenameAloneCarriesTheWholeRecord) {
  Scenario run;
  run.known(record(person("K1", "John Doe")));
  const Desired now = person("K1", "john doe");  // case only: still a rename, the DN's text changes
  const Plan p = run.plan({now});
  ASSERT_EQ(kinds(p), std::vector<OpKind>{OpKind::kRename});
  EXPECT_EQ(p.operations[0].new_rdn, "cn=john doe");
  EXPECT_EQ(p.operations[0].after.written, written_for(now));
  EXPECT_EQ(p.operations[0].after.hash, written_hash(written_for(now)));
  EXPECT_EQ(p.operations[0].after.target_dn, dn_of("john doe"));
  EXPECT_EQ(count(p, EntryProblem::Kind::kDuplicateName), 0u);  // its own old DN is no clash
}

TEST(Plan, ARenameStaysInTheRecordsContainer) {
  Scenario run;
  run.known(record(person("K1", "A"), "cn=A,ou=Old,dc=acme,dc=example"));
  const Plan p = run.plan({person("K1", "B")});
  ASSERT_EQ(kinds(p), std::vector<OpKind>{OpKind::kRename});
  EXPECT_EQ(p.operations[0].after.target_dn, "cn=B,ou=Old,dc=acme,dc=example");
}

TEST(Plan, ARenameOntoAnotherKeysNameIsNumbered) {
  Scenario run;
  run.known(record(person("K1", "A")));
  run.known(record(person("K2", "B")));
  const Plan p = run.plan({person("K1", "B"), person("K2", "B")});
  ASSERT_EQ(kinds(p), std::vector<OpKind>{OpKind::kRename});
  EXPECT_EQ(p.operations[0].new_rdn, "cn=B (2)");
  EXPECT_EQ(count(p, EntryProblem::Kind::kDuplicateName), 1u);
  // The next run finds it at its numbered name: nothing to do, and still reported.
  run.known(p.operations[0].after);
  const Plan again = run.plan({person("K1", "B"), person("K2", "B")});
  EXPECT_TRUE(again.operations.empty());
  EXPECT_EQ(again.counts.unchanged, 2u);
}

// --- conflicts and adoption ---------------------------------------------------------------

TEST(Plan, AnAddressHeldByAnObjectWeDoNotOwnIsAConflict) {
  Scenario run;
  run.target.add(
      foreign("cn=John Doe,ou=Users,dc=acme,dc=example", {{"cn", {"John Doe"}}, {"mail", {"K1@Notes.Acme.Example"}}}));
  const Plan p = run.plan({person("K1", "John"), person("K2", "Other")});
  ASSERT_EQ(p.operations.size(), 1u);
  EXPECT_EQ(p.operations[0].key, "K2");
  EXPECT_EQ(p.counts.conflicts, 1u);
  const EntryProblem* c = find_problem(p, EntryProblem::Kind::kConflict);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->key, "K1");
  EXPECT_NE(c->message.find("k1@notes.acme.example is held by cn=John Doe,ou=Users,dc=acme,dc=example"),
            std::string::npos)
      << c->message;
  EXPECT_NE(c->message.find("adopt = true"), std::string::npos) << c->message;
}

TEST(Plan, AConflictLeavesAnExistingRecordAloneAndUndeleted) {
  Scenario run;
  const Desired d = person("K1", "A");
  run.known(record(d));
  run.target.add(foreign("cn=Intruder,dc=acme,dc=example", {{"proxyAddresses", {"smtp:k1@notes.acme.example"}}}));
  Desired changed = d;
  changed.attributes.set("displayName", {"new"});
  const Plan p = run.plan({changed});
  EXPECT_TRUE(p.operations.empty());
  EXPECT_EQ(p.counts.conflicts, 1u);
}

TEST(Plan, ObjectsStampedByUsUnderAnotherKeyAreNotConflicts) {
  Scenario run;
  run.target.add(foreign("cn=Old,ou=Notes,dc=acme,dc=example", {{"targetAddress", {"SMTP:k1@notes.acme.example"}},
                                                                {"importedFrom", {"bridgehead:test:OLD"}}}));
  const Plan p = run.plan({person("K1", "A")});
  EXPECT_EQ(kinds(p), std::vector<OpKind>{OpKind::kAdd});
  EXPECT_EQ(p.counts.conflicts, 0u);
}

TEST(Plan, AdoptionStampsTheMatchingObjectAndTakesOverItsMappedValues) {
  Scenario run;
  run.s.adopt = true;
  const std::string dn = "cn=Doe\\, John,ou=Migrated,dc=acme,dc=example";
  run.target.add(foreign(dn, {{"objectClass", {"top", "person", "organizationalPerson", "user"}},
                              {"cn", {"Doe, John"}},
                              {"targetAddress", {"SMTP:k1@notes.acme.example"}},
                              {"displayName", {"J. Doe"}},
                              {"proxyAddresses", {"SMTP:k1@notes.acme.example", "smtp:keep@x"}},
                              {"importedFrom", {"some other tool"}},
                              {"description", {"left alone"}}}));
  const Desired d =
      person("K1", "John Doe", {{"displayName", {"John Doe"}}, {"proxyAddresses", {"SMTP:k1@notes.acme.example"}}});
  const Plan p = run.plan({d});
  ASSERT_EQ(kinds(p), std::vector<OpKind>{OpKind::kAdopt});
  const Operation& op = p.operations[0];
  EXPECT_EQ(op.dn, dn);
  EXPECT_CHANGES(op.changes, {{ModifyOp::kReplace, "targetAddress", {"SMTP:K1@notes.acme.example"}},
                              {ModifyOp::kReplace, "displayName", {"John Doe"}},
                              {ModifyOp::kDelete, "proxyAddresses", {"smtp:keep@x"}},
                              {ModifyOp::kReplace, "importedFrom", {"bridgehead:test:K1"}}});
  EXPECT_EQ(op.after.target_dn, dn);
  EXPECT_EQ(op.after.written, written_for(d));
  EXPECT_EQ(p.counts.adoptions, 1u);
  EXPECT_EQ(p.counts.conflicts, 0u);
  EXPECT_EQ(count(p, EntryProblem::Kind::kWithheld), 0u);  // its own proxy values are no duplicates
  // Owned from now on: the next run, with the stamp in place, has nothing to do.
  run.known(op.after);
  MemoryTargetView after;
  TargetObject stamped =
      foreign(dn, {{"targetAddress", {"SMTP:K1@notes.acme.example"}}, {"importedFrom", {"bridgehead:test:K1"}}});
  after.add(stamped);
  run.target = after;
  EXPECT_TRUE(run.plan({d}).operations.empty());
}

TEST(Plan, OneObjectIsAdoptedByOneKeyTheOthersConflict) {
  Scenario run;
  run.s.adopt = true;
  run.target.add(foreign("cn=Shared,dc=acme,dc=example",
                         {{"mail", {"k1@notes.acme.example"}}, {"proxyAddresses", {"smtp:k2@notes.acme.example"}}}));
  const Plan p = run.plan({person("K2", "B"), person("K1", "A")});
  ASSERT_EQ(kinds(p), std::vector<OpKind>{OpKind::kAdopt});
  EXPECT_EQ(p.operations[0].key, "K1");
  EXPECT_EQ(p.counts.conflicts, 1u);
  const EntryProblem* c = find_problem(p, EntryProblem::Kind::kConflict);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->key, "K2");
  EXPECT_NE(c->message.find("source object K1 takes that object over already"), std::string::npos) << c->message;
}

TEST(Plan, TwoObjectsWeDoNotOwnHoldingItsAddressesAreAConflictEvenWithAdoption) {
  Scenario run;
  run.s.adopt = true;
  run.target.add(foreign("cn=X,dc=acme,dc=example", {{"mail", {"k1@notes.acme.example"}}}));
  run.target.add(foreign("cn=Y,dc=acme,dc=example", {{"targetAddress", {"smtp:K1@NOTES.acme.example"}}}));
  const Plan p = run.plan({person("K1", "A")});
  EXPECT_TRUE(p.operations.empty());
  EXPECT_EQ(p.counts.conflicts, 1u);
  EXPECT_NE(find_problem(p, EntryProblem::Kind::kConflict)->message.find("cannot be adopted"), std::string::npos);
}

// --- duplicate proxy addresses -------------------------------------------------------------

TEST(Plan, ADuplicateProxyValueIsWithheldAndTheObjectStillWritten) {
  Scenario run;
  run.target.add(foreign("cn=Hand Made,dc=acme,dc=example", {{"proxyAddresses", {"SMTP:taken@acme.example"}}}));
  run.target.add(foreign("cn=Ours,ou=Notes,dc=acme,dc=example",
                         {{"proxyAddresses", {"smtp:ours@acme.example"}}, {"importedFrom", {"bridgehead:test:Z"}}}));
  const Desired k1 = person("K1", "A", {{"proxyAddresses", {"SMTP:a@acme.example", "smtp:shared@acme.example"}}});
  const Desired k2 = person("K2", "B",
                            {{"proxyAddresses",
                              {"SMTP:b@acme.example", "SMTP:Shared@Acme.example", "smtp:taken@acme.example",
                               "smtp:ours@acme.example", "X500:/o=Acme/cn=b"}}});
  const Plan p = run.plan({k2, k1});
  ASSERT_EQ(kinds(p), (std::vector<OpKind>{OpKind::kAdd, OpKind::kAdd}));
  EXPECT_EQ(*p.operations[0].entry.find("proxyAddresses"), *k1.attributes.find("proxyAddresses"));
  EXPECT_EQ(*p.operations[1].entry.find("proxyAddresses"),
            (std::vector<std::string>{"SMTP:b@acme.example", "smtp:ours@acme.example", "X500:/o=Acme/cn=b"}));
  EXPECT_EQ(count(p, EntryProblem::Kind::kWithheld), 2u);
  for (const EntryProblem& e : p.problems) EXPECT_EQ(e.key, "K2");
  EXPECT_EQ(p.counts.adds, 2u);
}

TEST(Plan, AProxyValueThatIsAnotherObjectsPrimaryAddressIsWithheldWhateverTheKeys) {
  Scenario run;
  const Desired a = person("A", "A", {{"proxyAddresses", {"smtp:b@notes.acme.example", "SMTP:a@x"}}});
  const Desired b = person("B", "B");  // targetAddress SMTP:B@notes.acme.example
  const Plan p = run.plan({a, b});
  ASSERT_EQ(p.operations.size(), 2u);
  EXPECT_EQ(*p.operations[0].entry.find("proxyAddresses"), std::vector<std::string>{"SMTP:a@x"});
  EXPECT_EQ(count(p, EntryProblem::Kind::kWithheld), 1u);
}

TEST(Plan, OtherProxyTypesMustMatchTheirTypeExactly) {
  Scenario run;
  const Desired a = person("A", "A", {{"proxyAddresses", {"X500:/o=Acme/cn=x"}}});
  const Desired b = person("B", "B", {{"proxyAddresses", {"x500:/O=ACME/cn=X", "NOTES:/o=Acme/cn=x"}}});
  const Plan p = run.plan({a, b});
  ASSERT_EQ(p.operations.size(), 2u);
  EXPECT_EQ(*p.operations[1].entry.find("proxyAddresses"), std::vector<std::string>{"NOTES:/o=Acme/cn=x"});
}

// --- bad data ------------------------------------------------------------------------------

TEST(Plan, AMissingRequiredAttributeRefusesTheEntryAndTheRestGoesOn) {
  Scenario run;
  Desired bad = person("K1", "A");
  bad.attributes.remove("targetAddress");
  const Plan p = run.plan({bad, person("K2", "B")});
  EXPECT_EQ(kinds(p), std::vector<OpKind>{OpKind::kAdd});
  EXPECT_EQ(p.counts.errors, 1u);
  const EntryProblem* e = find_problem(p, EntryProblem::Kind::kBadData);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->key, "K1");
  EXPECT_EQ(e->source_dn, "cn=A,o=Acme");
  EXPECT_NE(e->message.find("no targetAddress"), std::string::npos) << e->message;
}

TEST(Plan, InvalidNamesAreRefused) {
  Scenario run;
  Desired empty = person("K1", "x");
  empty.attributes.set("cn", {""});
  Desired missing = person("K2", "x");
  missing.attributes.remove("cn");
  const Desired not_utf8 = person("K3", "Caf\xE9");
  const Desired control = person("K4", "Tab\there");
  const Plan p = run.plan({empty, missing, not_utf8, control});
  EXPECT_TRUE(p.operations.empty());
  EXPECT_EQ(p.counts.errors, 4u);
  ASSERT_EQ(count(p, EntryProblem::Kind::kBadData), 4u);
  EXPECT_NE(p.problems[2].message.find("not valid UTF-8"), std::string::npos) << p.problems[2].message;
  EXPECT_NE(p.problems[3].message.find("control characters"), std::string::npos) << p.problems[3].message;
}

TEST(Plan, OverLongValuesRefuseTheEntryWhenVitalElseAreWithheld) {
  Scenario run;
  run.s.shape.max_length = {{"CN", 8}, {"targetAddress", 40}, {"displayName", 5}};
  const Desired long_name = person("K1", "A very long name");
  const Desired long_required = person("K2", "B", {{"targetAddress", {"SMTP:" + std::string(50, 'b') + "@x"}}});
  const Desired long_optional = person("K3", "C", {{"displayName", {"Too long", "ok"}}});
  const Plan p = run.plan({long_name, long_required, long_optional});
  ASSERT_EQ(kinds(p), std::vector<OpKind>{OpKind::kAdd});
  EXPECT_EQ(p.operations[0].key, "K3");
  EXPECT_EQ(*p.operations[0].entry.find("displayName"), std::vector<std::string>{"ok"});
  EXPECT_EQ(p.counts.errors, 2u);
  EXPECT_EQ(count(p, EntryProblem::Kind::kBadData), 2u);
  const EntryProblem* w = find_problem(p, EntryProblem::Kind::kWithheld);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->key, "K3");
  EXPECT_NE(w->message.find("displayName value \"Too long\" is 8 octets, more than the target's limit of 5"),
            std::string::npos)
      << w->message;
}

TEST(Plan, ARefusedEntryLeavesItsObjectAsItIsAndUndeleted) {
  Scenario run;
  const Desired d = person("K1", "A");
  run.known(record(d));
  Desired bad = d;
  bad.attributes.remove("targetAddress");
  const Plan p = run.plan({bad});
  EXPECT_TRUE(p.operations.empty());
  EXPECT_EQ(p.counts.errors, 1u);
  EXPECT_NE(p.problems[0].message.find("left as it is"), std::string::npos);
}

TEST(Plan, MappingProblemsAreReportedWithTheEntry) {
  Scenario run;
  Desired d = person("K1", "A");
  d.mapping_problems = {"displayName: concat: attribute sn is missing"};
  const Plan p = run.plan({d});
  EXPECT_EQ(p.operations.size(), 1u);
  ASSERT_EQ(p.problems.size(), 1u);
  EXPECT_EQ(p.problems[0].kind, EntryProblem::Kind::kMappingProblem);
  EXPECT_EQ(p.problems[0].message, "displayName: concat: attribute sn is missing");
  EXPECT_EQ(p.problems[0].source_dn, "cn=A,o=Acme");
}

// --- deletes -------------------------------------------------------------------------------

TEST(Plan, AFullRunDeletesRecordsNoLongerDesiredLast) {
  Scenario run;
  run.known(record(person("K1", "A")));
  run.known(record(person("K9", "Z")));
  const Plan p = run.plan({person("K5", "New")});
  ASSERT_EQ(kinds(p), (std::vector<OpKind>{OpKind::kAdd, OpKind::kDelete, OpKind::kDelete}));
  EXPECT_EQ(p.operations[1].key, "K1");
  EXPECT_EQ(p.operations[1].dn, dn_of("A"));
  EXPECT_EQ(p.operations[1].source_dn, "cn=A,o=Acme");
  EXPECT_EQ(p.operations[1].after.key, "K1");
  EXPECT_EQ(p.operations[2].key, "K9");
  EXPECT_EQ(p.counts.deletes, 2u);
}

TEST(Plan, AnIncrementalRunDeletesOnlyTheDeletedKeysItHasRecordsOf) {
  Scenario run;
  run.input.full = false;
  run.known(record(person("K1", "A")));
  run.known(record(person("K2", "B")));
  run.input.deleted_keys = {"K2", "UNKNOWN"};
  const Plan p = run.plan({});
  ASSERT_EQ(kinds(p), std::vector<OpKind>{OpKind::kDelete});
  EXPECT_EQ(p.operations[0].key, "K2");
}

TEST(Plan, OutOfScopeKeysAreDeletedAndCounted) {
  Scenario run;
  run.input.full = false;
  run.known(record(person("K1", "A")));
  run.input.out_of_scope_keys = {"K1", "K7"};
  const Plan p = run.plan({});
  ASSERT_EQ(kinds(p), std::vector<OpKind>{OpKind::kDelete});
  EXPECT_EQ(p.counts.out_of_scope, 1u);
  EXPECT_EQ(p.counts.deletes, 1u);
  // In a full run too, counted once.
  Scenario full;
  full.known(record(person("K1", "A")));
  full.input.out_of_scope_keys = {"K1"};
  const Plan q = full.plan({});
  EXPECT_EQ(q.operations.size(), 1u);
  EXPECT_EQ(q.counts.out_of_scope, 1u);
}

TEST(Plan, AnIncompleteReadDeletesNothing) {
  Scenario run;
  run.input.read_complete = false;
  run.known(record(person("K1", "A")));
  run.known(record(person("K2", "B")));
  run.known(record(person("K3", "C")));
  run.input.deleted_keys = {"K2"};
  run.input.out_of_scope_keys = {"K3"};
  const Plan p = run.plan({person("K4", "D")});
  EXPECT_EQ(kinds(p), std::vector<OpKind>{OpKind::kAdd});
  EXPECT_EQ(p.counts.deletes + p.counts.hides + p.counts.out_of_scope, 0u);
}

TEST(Plan, ADesiredKeyIsNotDeletedEvenWhenListedAsDeleted) {
  Scenario run;
  run.input.full = false;
  const Desired d = person("K1", "A");
  run.known(record(d));
  run.input.deleted_keys = {"K1"};
  EXPECT_TRUE(run.plan({d}).operations.empty());
}

// --- soft delete ---------------------------------------------------------------------------

TEST(Plan, SoftDeleteHidesFirstThenDeletesAfterTheDays) {
  Scenario run;
  run.s.soft_delete_days = 30;
  run.known(record(person("K1", "A")));
  ObjectRecord waiting = record(person("K2", "B"));
  waiting.hidden_since_ms = kNow - 29 * kDay;
  run.known(waiting);
  ObjectRecord due = record(person("K3", "C"));
  due.hidden_since_ms = kNow - 30 * kDay;
  run.known(due);
  const Plan p = run.plan({});
  ASSERT_EQ(kinds(p), (std::vector<OpKind>{OpKind::kHide, OpKind::kDelete}));
  const Operation& hide = p.operations[0];
  EXPECT_EQ(hide.key, "K1");
  EXPECT_EQ(hide.dn, dn_of("A"));
  EXPECT_CHANGES(hide.changes, {{ModifyOp::kReplace, "msExchHideFromAddressLists", {"TRUE"}}});
  EXPECT_EQ(hide.after.hidden_since_ms, kNow);
  EXPECT_EQ(hide.after.written, run.state["K1"].written);
  EXPECT_EQ(p.operations[1].key, "K3");
  EXPECT_EQ(p.counts.hides, 1u);
  EXPECT_EQ(p.counts.deletes, 1u);
}

TEST(Plan, AHiddenObjectDesiredAgainIsUnhiddenWithItsChangesInOneModify) {
  Scenario run;
  run.s.soft_delete_days = 30;
  ObjectRecord hidden = record(person("K1", "A", {{"displayName", {"A"}}}));
  hidden.hidden_since_ms = kNow - kDay;
  run.known(hidden);
  const Desired same = person("K1", "A", {{"displayName", {"A"}}});
  Plan p = run.plan({same});
  ASSERT_EQ(kinds(p), std::vector<OpKind>{OpKind::kModify});
  EXPECT_CHANGES(p.operations[0].changes, {{ModifyOp::kDelete, "msExchHideFromAddressLists", {}}});
  EXPECT_EQ(p.operations[0].after.hidden_since_ms, 0);
  const Desired changed = person("K1", "A", {{"displayName", {"A2"}}});
  p = run.plan({changed});
  ASSERT_EQ(p.operations.size(), 1u);
  EXPECT_CHANGES(p.operations[0].changes,
                 {{ModifyOp::kDelete, "msExchHideFromAddressLists", {}}, {ModifyOp::kReplace, "displayName", {"A2"}}});
  EXPECT_EQ(p.operations[0].after.written, written_for(changed));
}

// --- the deletion threshold ----------------------------------------------------------------

Scenario with_records(std::size_t n) {
  Scenario run;
  for (std::size_t i = 0; i < n; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "K%04zu", i);
    run.known(record(person(key, std::string("Name ") + key)));
  }
  return run;
}

std::vector<Desired> desired_from(const Scenario& run, std::size_t keep) {
  std::vector<std::string> keys;
  for (const auto& [key, r] : run.state) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  std::vector<Desired> out;
  for (std::size_t i = 0; i < keep; ++i) out.push_back(person(keys[i], "Name " + keys[i]));
  return out;
}

TEST(Plan, TooManyDeletionsAreHeldAndTheRestProceeds) {
  Scenario run = with_records(1000);
  run.s.limits.max_deletes = 500;
  std::vector<Desired> desired = desired_from(run, 388);  // 612 gone
  desired.push_back(person("NEW", "New One"));
  const Plan p = run.plan(desired);
  EXPECT_TRUE(p.deletions_held);
  EXPECT_EQ(p.held.size(), 612u);
  EXPECT_EQ(kinds(p), std::vector<OpKind>{OpKind::kAdd});
  EXPECT_EQ(p.counts.deletes, 0u);
  EXPECT_EQ(p.held_reason,
            "612 deletions (61% of 1,000 objects) pass the limit of 500 or 10% (above 10): none of them was made; if "
            "they are meant, let them go with `bridgehead dirsync approve RUN`, or raise [dirsync] max_deletes");
  for (const Operation& op : p.held) EXPECT_EQ(op.kind, OpKind::kDelete);
}

TEST(Plan, TheShareLimitHoldsOnlyAboveTheFloor) {
  Scenario run = with_records(100);
  Plan p = run.plan(desired_from(run, 89));  // 11 of 100: above 10% and above the floor of 10
  EXPECT_TRUE(p.deletions_held);
  EXPECT_EQ(p.held.size(), 11u);
  p = run.plan(desired_from(run, 90));  // 10: not above 10%
  EXPECT_FALSE(p.deletions_held);
  EXPECT_EQ(p.counts.deletes, 10u);
  Scenario small = with_records(20);
  p = small.plan(desired_from(small, 12));  // 8 of 20 = 40%, but no more than the floor
  EXPECT_FALSE(p.deletions_held);
  EXPECT_EQ(p.counts.deletes, 8u);
  EXPECT_TRUE(p.held_reason.empty());
}

TEST(Plan, HidesCountTowardTheThreshold) {
  Scenario run = with_records(100);
  run.s.soft_delete_days = 7;
  const Plan p = run.plan(desired_from(run, 50));
  EXPECT_TRUE(p.deletions_held);
  EXPECT_EQ(p.held.size(), 50u);
  EXPECT_EQ(p.held[0].kind, OpKind::kHide);
  EXPECT_TRUE(p.operations.empty());
}

TEST(Plan, ApprovedDeletionsPassTheThreshold) {
  Scenario run = with_records(100);
  const std::vector<Desired> desired = desired_from(run, 50);
  const Plan held = run.plan(desired);
  ASSERT_TRUE(held.deletions_held);
  for (const Operation& op : held.held) run.input.approved_deletes.insert(op.key);
  const Plan approved = run.plan(desired);
  EXPECT_FALSE(approved.deletions_held);
  EXPECT_EQ(approved.counts.deletes, 50u);
  // Approved ones stay in the plan even when others are held.
  run.input.approved_deletes.erase(held.held[0].key);
  run.input.approved_deletes.erase(held.held[1].key);
  run.s.limits.max_deletes = 1;
  const Plan mixed = run.plan(desired);
  EXPECT_TRUE(mixed.deletions_held);
  EXPECT_EQ(mixed.held.size(), 2u);
  EXPECT_EQ(mixed.operations.size(), 48u);
}

// --- switches ------------------------------------------------------------------------------

TEST(Plan, SwitchedOffOperationsAreDroppedAndCounted) {
  Scenario run;
  run.s.switches.create = false;
  run.s.switches.update = false;
  run.s.switches.remove = false;
  run.known(record(person("K1", "A", {{"displayName", {"x"}}})));
  run.known(record(person("K2", "B")));
  const Plan p = run.plan({person("K1", "A", {{"displayName", {"y"}}}), person("K3", "C")});
  EXPECT_TRUE(p.operations.empty());
  EXPECT_EQ(p.counts.switched_off, 3u);
  EXPECT_EQ(p.counts.adds + p.counts.updates + p.counts.deletes, 0u);
}

TEST(Plan, WithRenamesOffTheObjectKeepsItsDnAndIsStillUpdated) {
  Scenario run;
  run.s.switches.rename = false;
  run.known(record(person("K1", "Old Name", {{"displayName", {"x"}}})));
  const Plan p = run.plan({person("K1", "New Name", {{"displayName", {"y"}}})});
  ASSERT_EQ(kinds(p), std::vector<OpKind>{OpKind::kModify});
  EXPECT_EQ(p.operations[0].dn, dn_of("Old Name"));
  EXPECT_CHANGES(p.operations[0].changes, {{ModifyOp::kReplace, "displayName", {"y"}}});
  EXPECT_EQ(p.operations[0].after.target_dn, dn_of("Old Name"));
  EXPECT_EQ(p.operations[0].after.written.first("cn"), "Old Name");
  EXPECT_EQ(p.counts.switched_off, 1u);
}

// --- odds and ends ---------------------------------------------------------------------------

TEST(Plan, WithoutStateOrTargetEverythingIsNew) {
  PlanInput in;
  in.full = true;
  in.desired = {person("K1", "A")};
  const Plan p = make_plan(settings(), in);
  EXPECT_EQ(kinds(p), std::vector<OpKind>{OpKind::kAdd});
}

TEST(EntryProblemKind, Names) {
  EXPECT_EQ(to_string(EntryProblem::Kind::kBadData), "bad-data");
  EXPECT_EQ(to_string(EntryProblem::Kind::kWithheld), "withheld");
  EXPECT_EQ(to_string(EntryProblem::Kind::kConflict), "conflict");
  EXPECT_EQ(to_string(EntryProblem::Kind::kDuplicateName), "duplicate-name");
  EXPECT_EQ(to_string(EntryProblem::Kind::kMappingProblem), "mapping");
}

TEST(NormalizeAddress, StripsTheSmtpPrefixAndCase) {
  EXPECT_EQ(normalize_address("SMTP:John@Acme.Example"), "john@acme.example");
  EXPECT_EQ(normalize_address("smtp:a@b"), "a@b");
  EXPECT_EQ(normalize_address("A@B"), "a@b");
  EXPECT_EQ(normalize_address("X500:/o=Acme"), "x500:/o=acme");
}

TEST(MemoryTargetView, FindsByAddressAndByDnAsADirectoryWould) {
  MemoryTargetView view;
  view.add(
      foreign("cn=John Doe,ou=Users,dc=acme", {{"mail", {"John@Acme.example"}},
                                               {"proxyAddresses", {"SMTP:john@acme.example", "smtp:jd@acme.example"}},
                                               {"description", {"x@acme.example"}}}));
  view.add(foreign("cn=Jane,ou=Users,dc=acme", {{"targetAddress", {"SMTP:jane@acme.example"}}}));
  ASSERT_EQ(view.find_by_address("JOHN@acme.example").size(), 1u);  // once, though held twice
  EXPECT_EQ(view.find_by_address("smtp:jd@acme.example").size(), 1u);
  EXPECT_EQ(view.find_by_address("jane@ACME.example")[0].dn, "cn=Jane,ou=Users,dc=acme");
  EXPECT_TRUE(view.find_by_address("x@acme.example").empty());  // not an address attribute
  EXPECT_TRUE(view.find_by_dn("CN=john doe, OU=users,DC=ACME"));
  EXPECT_FALSE(view.find_by_dn("cn=John,ou=Users,dc=acme"));
  // Replaced at the same DN: the old addresses are gone.
  view.add(foreign("cn=JOHN DOE,ou=Users,dc=acme", {{"mail", {"new@acme.example"}}}));
  EXPECT_TRUE(view.find_by_address("john@acme.example").empty());
  EXPECT_EQ(view.find_by_address("new@acme.example").size(), 1u);
  MemoryTargetView custom({"otherMailbox"});
  custom.add(foreign("cn=A", {{"otherMailbox", {"a@x"}}, {"mail", {"b@x"}}}));
  EXPECT_EQ(custom.find_by_address("a@x").size(), 1u);
  EXPECT_TRUE(custom.find_by_address("b@x").empty());
}

// A view that knows only find_by_address and find_by_dn: the default find_foreign_by_address.
class ListView final : public TargetView {
 public:
  explicit ListView(std::vector<TargetObject> objects) : objects_(std::move(objects)) {}
  std::vector<TargetObject> find_by_address(std::string_view address) const override {
    std::vector<TargetObject> out;
    for (const TargetObject& o : objects_) {
      if (normalize_address(o.attributes.first("mail")) == normalize_address(address)) out.push_back(o);
    }
    return out;
  }
  std::optional<TargetObject> find_by_dn(std::string_view) const override { return std::nullopt; }

 private:
  std::vector<TargetObject> objects_;
};

TEST(TargetView, FindForeignByAddressLeavesOutTheObjectsBridgeheadOwns) {
  const std::vector<TargetObject> objects = {
      foreign("cn=Ours", {{"mail", {"a@x"}}, {"importedFrom", {"BRIDGEHEAD:test:K1"}}}),
      foreign("cn=Theirs", {{"mail", {"a@x"}}, {"importedFrom", {"other tool"}}}),
      foreign("cn=Plain", {{"mail", {"A@X"}}})};
  MemoryTargetView memory;
  for (const TargetObject& o : objects) memory.add(o);
  const ListView list(objects);
  for (const TargetView* view : std::initializer_list<const TargetView*>{&memory, &list}) {
    EXPECT_EQ(view->find_by_address("a@x").size(), 3u);
    const auto foreign_ones = view->find_foreign_by_address("a@x", "importedFrom", "bridgehead:test:");
    ASSERT_EQ(foreign_ones.size(), 2u);
    EXPECT_EQ(foreign_ones[0].dn, "cn=Theirs");
    EXPECT_EQ(foreign_ones[1].dn, "cn=Plain");
  }
}

TEST(Plan, AViewWithOnlyTheRequiredFunctionsFindsConflicts) {
  const ListView view({foreign("cn=Hand,dc=acme", {{"mail", {"k1@notes.acme.example"}}})});
  PlanInput in;
  in.desired = {person("K1", "A")};
  in.target = &view;
  const Plan p = make_plan(settings(), in);
  EXPECT_TRUE(p.operations.empty());
  EXPECT_EQ(p.counts.conflicts, 1u);
}

// --- the property: a plan applied gives the desired objects, and then nothing to do ---------

std::string dn_key(std::string_view dn) {
  auto parsed = Dn::parse(dn);
  EXPECT_TRUE(parsed) << dn;
  return parsed ? parsed->normalized() : std::string(dn);
}

// The target as a directory would hold it, and the state as the engine would keep it.
struct Model {
  std::map<std::string, Entry> objects;  // by normalized DN
  State state;

  Entry* at(const std::string& dn) {
    const auto it = objects.find(dn_key(dn));
    EXPECT_NE(it, objects.end()) << "no object at " << dn;
    return it == objects.end() ? nullptr : &it->second;
  }

  void modify(Entry& e, const std::vector<Modification>& changes) {
    for (const Modification& m : changes) {
      const auto* have = e.find(m.attribute);
      std::vector<std::string> values = have != nullptr ? *have : std::vector<std::string>{};
      switch (m.op) {
        case ModifyOp::kAdd:
          for (const std::string& v : m.values) {
            EXPECT_EQ(std::count(values.begin(), values.end(), v), 0) << "add of a present value " << v;
            values.push_back(v);
          }
          break;
        case ModifyOp::kDelete:
          EXPECT_NE(have, nullptr) << "delete of an absent attribute " << m.attribute;
          if (m.values.empty()) values.clear();
          for (const std::string& v : m.values) {
            const auto it = std::find(values.begin(), values.end(), v);
            EXPECT_NE(it, values.end()) << "delete of an absent value " << v;
            if (it != values.end()) values.erase(it);
          }
          break;
        case ModifyOp::kReplace:
          values = m.values;
          break;
      }
      e.set(m.attribute, std::move(values));
    }
  }

  void apply(const Operation& op) {
    switch (op.kind) {
      case OpKind::kAdd:
        EXPECT_EQ(objects.count(dn_key(op.dn)), 0u) << "add over an existing object " << op.dn;
        objects[dn_key(op.dn)] = op.entry;
        break;
      case OpKind::kModify:
      case OpKind::kHide:
      case OpKind::kAdopt:
        if (Entry* e = at(op.dn)) modify(*e, op.changes);
        break;
      case OpKind::kRename: {
        Entry* e = at(op.dn);
        if (e == nullptr) break;
        Entry moved = *e;
        objects.erase(dn_key(op.dn));
        auto old_dn = Dn::parse(op.dn);
        auto rdn = Dn::parse(op.new_rdn);
        EXPECT_TRUE(old_dn && rdn && rdn->size() == 1);
        if (!old_dn || !rdn) break;
        const Ava& old_ava = old_dn->first_rdn().avas[0];
        const Ava& new_ava = rdn->first_rdn().avas[0];
        // modrdn with deleteoldrdn: the old RDN value goes, the new one comes.
        std::vector<std::string> values = *moved.find(old_ava.type);
        values.erase(std::find(values.begin(), values.end(), old_ava.value));
        values.push_back(new_ava.value);
        moved.set(new_ava.type, values);
        const std::string new_dn = old_dn->parent().child(rdn->first_rdn()).to_string();
        moved.set_dn(new_dn);
        EXPECT_EQ(objects.count(dn_key(new_dn)), 0u) << "rename onto an existing object " << new_dn;
        objects[dn_key(new_dn)] = moved;
        break;
      }
      case OpKind::kDelete:
        EXPECT_EQ(objects.erase(dn_key(op.dn)), 1u) << "delete of a missing object " << op.dn;
        break;
    }
    if (op.kind == OpKind::kDelete) {
      state.erase(op.key);
    } else {
      state[op.key] = op.after;
    }
  }

  // A full run's plan over what the model holds now.
  Plan plan(const PlanSettings& settings, const std::vector<Desired>& desired) const {
    const MemoryTargetView target = view();
    PlanInput in;
    in.full = true;
    in.desired = desired;
    in.state = &state;
    in.target = &target;
    return make_plan(settings, in);
  }

  MemoryTargetView view() const {
    MemoryTargetView v;
    for (const auto& [key, e] : objects) {
      TargetObject o;
      o.dn = e.dn();
      o.attributes = e;
      v.add(o);
    }
    return v;
  }
};

using ValueSets = std::map<std::string, std::vector<std::string>>;
ValueSets value_sets(const Entry& e) {
  ValueSets out;
  for (const Attribute& a : e.attributes()) {
    std::vector<std::string> v = a.values;
    std::sort(v.begin(), v.end());
    out[to_lower(a.name)] = v;
  }
  return out;
}

// A source object of the random scenario; each field changes between runs now and then.
struct Person {
  int id = 0;
  std::string cn, display;
  std::vector<std::string> proxies, phones;
  Desired desired() const {
    Desired d = person("P" + std::to_string(1000 + id), cn);
    if (!display.empty()) d.attributes.set("displayName", {display});
    d.attributes.set("proxyAddresses", proxies);
    d.attributes.set("telephoneNumber", phones);
    return d;
  }
};

Person random_person(int id, std::mt19937& rng) {
  Person p;
  p.id = id;
  p.cn = "User " + std::to_string(id);
  if (rng() % 4 == 0) p.cn = "Doe, " + p.cn + " #1";  // characters a DN must escape
  p.display = rng() % 3 == 0 ? "" : "Display " + std::to_string(id);
  p.proxies = {"SMTP:u" + std::to_string(id) + "@acme.example"};
  for (auto k = rng() % 3; k > 0; --k)
    p.proxies.push_back("smtp:alias" + std::to_string(id * 10 + k) + "@acme.example");
  for (auto k = rng() % 3; k > 0; --k) p.phones.push_back("+1 555 " + std::to_string(id * 10 + k));
  return p;
}

void mutate(Person& p, std::mt19937& rng) {
  switch (rng() % 7) {
    case 0:
      p.cn = "Renamed " + std::to_string(p.id) + " " + std::to_string(rng() % 100);
      break;
    case 1:  // a change of case only, in the name
      for (char& c : p.cn) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      break;
    case 2:
      p.display = p.display.empty() ? "Shown " + std::to_string(p.id) : "";
      break;
    case 3:  // a change of case only, in a multi-valued attribute
      for (char& c : p.proxies[0]) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      break;
    case 4:
      if (p.proxies.size() > 1) {
        p.proxies.pop_back();
      } else {
        p.proxies.push_back("smtp:extra" + std::to_string(p.id) + "@acme.example");
      }
      break;
    case 5:
      if (const std::string phone = "+1 666 " + std::to_string(p.id * 10 + static_cast<int>(rng() % 9));
          std::find(p.phones.begin(), p.phones.end(), phone) == p.phones.end()) {
        p.phones.push_back(phone);
      }
      if (p.phones.size() > 1 && rng() % 2) p.phones.erase(p.phones.begin());
      break;
    default:
      break;
  }
}

void expect_target_is(Model& model, const std::vector<Desired>& desired, int seed, int step) {
  SCOPED_TRACE("seed " + std::to_string(seed) + " step " + std::to_string(step));
  EXPECT_EQ(model.objects.size(), desired.size());
  EXPECT_EQ(model.state.size(), desired.size());
  for (const Desired& d : desired) {
    const auto r = model.state.find(d.key);
    ASSERT_NE(r, model.state.end()) << d.key;
    const auto it = model.objects.find(dn_key(r->second.target_dn));
    ASSERT_NE(it, model.objects.end()) << r->second.target_dn;
    EXPECT_EQ(it->second.dn(), r->second.target_dn);
    EXPECT_EQ(dn_key(r->second.target_dn), dn_key(dn_of(d.attributes.first("cn"))));
    EXPECT_EQ(value_sets(it->second), value_sets(written_for(d))) << r->second.target_dn;
    EXPECT_EQ(value_sets(r->second.written), value_sets(written_for(d)));
    EXPECT_EQ(r->second.hash, written_hash(r->second.written));
  }
}

// No threshold: random runs delete what they like.
PlanSettings unlimited() {
  PlanSettings s = settings();
  s.limits.max_deletes = 1000;
  s.limits.max_percent = 100;
  return s;
}

TEST(PlanProperty, AppliedPlansGiveTheDesiredObjectsAndASecondPlanIsEmpty) {
  for (int seed = 1; seed <= 60; ++seed) {
    std::mt19937 rng(static_cast<std::mt19937::result_type>(seed));
    std::vector<Person> people;
    int next_id = 0;
    for (auto n = 5 + rng() % 20; n > 0; --n) people.push_back(random_person(next_id++, rng));
    Model model;
    PlanSettings s = unlimited();
    for (int step = 0; step < 6; ++step) {
      if (step > 0) {
        for (Person& p : people) mutate(p, rng);
        std::shuffle(people.begin(), people.end(), rng);
        for (auto n = rng() % 4; n > 0 && !people.empty(); --n) people.pop_back();
        for (auto n = rng() % 4; n > 0; --n) people.push_back(random_person(next_id++, rng));
      }
      std::vector<Desired> desired;
      for (const Person& p : people) desired.push_back(p.desired());
      const Plan p = model.plan(s, desired);
      EXPECT_TRUE(p.problems.empty()) << "seed " << seed << ": " << p.problems[0].message;
      EXPECT_FALSE(p.deletions_held);
      for (const Operation& op : p.operations) model.apply(op);
      expect_target_is(model, desired, seed, step);

      const Plan again = model.plan(s, desired);
      EXPECT_TRUE(again.operations.empty())
          << "seed " << seed << " step " << step << ": " << again.operations[0].describe();
      EXPECT_EQ(again.counts.unchanged, desired.size());
      if (HasFailure()) return;
    }
  }
}

}  // namespace
}  // namespace bridgehead::directory::sync

namespace bridgehead::directory::sync {
namespace {

TEST(PlanProperty, SoftDeleteHidesThenDeletesAndUnhidesWhatComesBack) {
  std::size_t hides = 0, unhides = 0, deletes = 0;  // so that the scenario is known to reach each
  for (int seed = 1; seed <= 30; ++seed) {
    std::mt19937 rng(static_cast<std::mt19937::result_type>(seed));
    std::vector<Person> people, gone;
    int next_id = 0;
    for (auto n = 5 + rng() % 15; n > 0; --n) people.push_back(random_person(next_id++, rng));
    Model model;
    PlanSettings s = unlimited();
    s.soft_delete_days = 2;
    for (int step = 0; step < 8; ++step) {
      s.now_ms = kNow + step * kDay;
      if (step > 0) {
        for (Person& p : people) mutate(p, rng);
        std::shuffle(people.begin(), people.end(), rng);
        for (auto n = rng() % 4; n > 0 && !people.empty(); --n) {
          gone.push_back(people.back());
          people.pop_back();
        }
        for (auto n = rng() % 3; n > 0 && !gone.empty(); --n) {  // back, maybe while still hidden
          people.push_back(gone.front());
          gone.erase(gone.begin());
        }
      }
      std::vector<Desired> desired;
      std::unordered_set<std::string> keys;
      for (const Person& p : people) {
        desired.push_back(p.desired());
        keys.insert(desired.back().key);
      }
      const Plan p = model.plan(s, desired);
      EXPECT_TRUE(p.problems.empty()) << "seed " << seed << ": " << p.problems[0].message;
      for (const Operation& op : p.operations) {
        model.apply(op);
        hides += op.kind == OpKind::kHide;
        deletes += op.kind == OpKind::kDelete;
        unhides += op.kind == OpKind::kModify && op.changes[0].attribute == "msExchHideFromAddressLists";
      }

      SCOPED_TRACE("seed " + std::to_string(seed) + " step " + std::to_string(step));
      EXPECT_EQ(model.objects.size(), model.state.size());
      for (const Desired& d : desired) {
        const auto r = model.state.find(d.key);
        ASSERT_NE(r, model.state.end()) << d.key;
        EXPECT_EQ(r->second.hidden_since_ms, 0);
        const Entry* e = model.at(r->second.target_dn);
        ASSERT_NE(e, nullptr);
        EXPECT_EQ(value_sets(*e), value_sets(written_for(d)));
      }
      for (const auto& [key, r] : model.state) {
        if (keys.count(key) != 0) continue;
        EXPECT_NE(r.hidden_since_ms, 0) << key;
        EXPECT_LT(s.now_ms - r.hidden_since_ms, 2 * kDay) << key;
        const Entry* e = model.at(r.target_dn);
        ASSERT_NE(e, nullptr);
        EXPECT_EQ(e->first("msExchHideFromAddressLists"), "TRUE");
      }

      const Plan again = model.plan(s, desired);
      EXPECT_TRUE(again.operations.empty()) << again.operations[0].describe();
      if (HasFailure()) return;
    }
  }
  EXPECT_GT(hides, 0u);
  EXPECT_GT(unhides, 0u);
  EXPECT_GT(deletes, 0u);
}

std::string fmt_key(int i) {
  std::string k = std::to_string(i);
  return "k" + std::string(5 - k.size(), '0') + k;
}

// ---- Groups with their members ([dirsync] group_members) ----

const std::vector<std::string> kGroupClasses = {"top", "group", "mailRecipient"};

PlanSettings group_settings(std::size_t chunk = 1000) {
  PlanSettings s = settings();
  GroupShape g;
  g.object_classes = kGroupClasses;
  g.required = {"cn"};
  g.fixed.set("groupType", {"8"});
  g.member_chunk = chunk;
  s.shape.groups = g;
  return s;
}

Desired group(std::string key, std::string cn, std::vector<std::string> member_keys,
              std::vector<std::string> member_dns = {}) {
  Desired d;
  d.key = std::move(key);
  d.source_dn = "cn=" + cn + ",o=Acme";
  d.group = true;
  d.attributes.set("cn", {cn});
  d.attributes.set("mail", {to_lower(cn) + "@notes.acme.example"});
  // A rule that maps member gives source DNs: never written as they are.
  d.attributes.set("member", {"cn=Someone,o=Acme"});
  d.member_keys = std::move(member_keys);
  d.member_dns = std::move(member_dns);
  return d;
}

const Operation* op_for_key(const Plan& p, std::string_view key, OpKind kind) {
  for (const Operation& op : p.operations) {
    if (op.key == key && op.kind == kind) return &op;
  }
  return nullptr;
}

TEST(PlanGroups, AGroupIsWrittenAsAGroupAfterItsMembersWithTheirTargetDns) {
  Scenario sc;
  sc.s = group_settings();
  const std::string native = "CN=Ann Native,OU=Users,DC=acme,DC=example";
  const Plan p = sc.plan(
      {group("g1", "Sales", {"p2", "p1", "nobody"}, {native}), person("p1", "Bob Able"), person("p2", "Carl Baker")});
  ASSERT_EQ(p.operations.size(), 3u);
  EXPECT_EQ(p.operations[0].key, "p1");
  EXPECT_EQ(p.operations[1].key, "p2");
  EXPECT_EQ(p.first_group_operation, 2u);
  const Operation& g = p.operations[2];
  EXPECT_EQ(g.kind, OpKind::kAdd);
  EXPECT_EQ(g.key, "g1");
  EXPECT_EQ(*g.entry.find("objectClass"), kGroupClasses);
  EXPECT_EQ(g.entry.first("groupType"), "8");
  // Resolved, in DN order; the unknown key is left out; no targetAddress was required.
  const std::vector<std::string> members = {native, dn_of("Bob Able"), dn_of("Carl Baker")};
  ASSERT_NE(g.entry.find("member"), nullptr);
  EXPECT_EQ(*g.entry.find("member"), members);
  EXPECT_EQ(*g.after.written.find("member"), members);
  EXPECT_EQ(g.after.hash, written_hash(g.after.written));
  EXPECT_TRUE(p.problems.empty()) << p.problems[0].message;
}

TEST(PlanGroups, WithoutGroupShapeAGroupIsAContactWithoutMembers) {
  Scenario sc;
  Desired g = group("g1", "Sales", {"p1"});
  g.attributes.set("targetAddress", {"SMTP:sales@notes.acme.example"});
  g.attributes.remove("member");
  const Plan p = sc.plan({g, person("p1", "Bob Able")});
  const Operation* add = op_for_key(p, "g1", OpKind::kAdd);
  ASSERT_NE(add, nullptr);
  EXPECT_EQ(*add->entry.find("objectClass"), kClasses);
  EXPECT_FALSE(add->entry.has("member"));
  EXPECT_EQ(p.first_group_operation, p.operations.size());
}

TEST(PlanGroups, AGroupNamesAnotherGroupAmongItsMembers) {
  Scenario sc;
  sc.s = group_settings();
  const Plan p = sc.plan({group("g1", "All", {"g2", "p1"}), group("g2", "Sales", {"p1"}), person("p1", "Bob Able")});
  const Operation* all = op_for_key(p, "g1", OpKind::kAdd);
  ASSERT_NE(all, nullptr);
  const std::vector<std::string> members = {dn_of("Bob Able"), dn_of("Sales")};
  EXPECT_EQ(*all->entry.find("member"), members);
}

TEST(PlanGroups, AMemberRenamedOrGoneChangesTheGroupByValue) {
  Scenario sc;
  sc.s = group_settings();
  Model model;
  std::vector<Desired> desired = {group("g1", "Sales", {"p1", "p2"}), person("p1", "Bob Able"),
                                  person("p2", "Carl Baker")};
  for (const Operation& op : model.plan(sc.s, desired).operations) model.apply(op);
  ASSERT_EQ(model.objects.size(), 3u);
  // Bob is renamed, Carl leaves the directory (and the group in the source).
  desired = {group("g1", "Sales", {"p1", "p2"}), person("p1", "Bob Archer")};
  const Plan p = model.plan(sc.s, desired);
  const Operation* rename = op_for_key(p, "p1", OpKind::kRename);
  const Operation* modify = op_for_key(p, "g1", OpKind::kModify);
  const Operation* del = op_for_key(p, "p2", OpKind::kDelete);
  ASSERT_TRUE(rename != nullptr && modify != nullptr && del != nullptr);
  EXPECT_LT(rename, modify);
  EXPECT_LT(modify, del);  // the member value goes before the object
  EXPECT_TRUE(same_changes(modify->changes,
                           {Modification{ModifyOp::kDelete, "member", {dn_of("Bob Able"), dn_of("Carl Baker")}},
                            Modification{ModifyOp::kAdd, "member", {dn_of("Bob Archer")}}}));
  for (const Operation& op : p.operations) model.apply(op);
  const Entry* g = model.at(dn_of("Sales"));
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(*g->find("member"), std::vector<std::string>{dn_of("Bob Archer")});
  EXPECT_TRUE(model.plan(sc.s, desired).operations.empty());
}

TEST(PlanGroups, AnIncrementalRunKeepsMembersFromTheStateAndDropsTheLeavingOnes) {
  Scenario sc;
  sc.s = group_settings();
  sc.known(record(person("p1", "Bob Able")));
  sc.known(record(person("p2", "Carl Baker")));
  sc.known(record(person("p3", "Dan Cole")));
  sc.input.full = false;
  sc.input.deleted_keys = {"p2"};
  sc.input.out_of_scope_keys = {"p3"};
  const Plan p = sc.plan({group("g1", "Sales", {"p1", "p2", "p3"})});
  const Operation* add = op_for_key(p, "g1", OpKind::kAdd);
  ASSERT_NE(add, nullptr);
  EXPECT_EQ(*add->entry.find("member"), std::vector<std::string>{dn_of("Bob Able")});
}

TEST(PlanGroups, AGroupClassThatNeedsAMemberRefusesAnEmptyGroup) {
  Scenario sc;
  sc.s = group_settings();
  sc.s.shape.groups->members_required = true;
  const Plan p = sc.plan({group("g1", "Sales", {"nobody"}), person("p1", "Bob Able")});
  EXPECT_EQ(op_for_key(p, "g1", OpKind::kAdd), nullptr);
  const EntryProblem* bad = find_problem(p, EntryProblem::Kind::kBadData);
  ASSERT_NE(bad, nullptr);
  EXPECT_EQ(bad->key, "g1");
  EXPECT_NE(bad->message.find("none of the group's members is synchronized"), std::string::npos) << bad->message;
  EXPECT_EQ(p.counts.errors, 1u);
  // Without the requirement the group is written without members.
  sc.s.shape.groups->members_required = false;
  const Plan q = sc.plan({group("g1", "Sales", {"nobody"})});
  const Operation* add = op_for_key(q, "g1", OpKind::kAdd);
  ASSERT_NE(add, nullptr);
  EXPECT_FALSE(add->entry.has("member"));
}

TEST(PlanGroups, ALargeGroupIsWrittenInChunksEachRecordingWhatIsWritten) {
  Scenario sc;
  sc.s = group_settings(1000);
  Model model;
  std::vector<Desired> desired;
  std::vector<std::string> keys;
  for (int i = 0; i < 2500; ++i) {
    keys.push_back(fmt_key(i));
    desired.push_back(person(keys.back(), "Person " + keys.back()));
  }
  desired.push_back(group("g1", "Everyone", keys));
  Plan p = model.plan(sc.s, desired);
  ASSERT_EQ(p.first_group_operation, 2500u);
  ASSERT_EQ(p.operations.size(), 2503u);
  const Operation& add = p.operations[2500];
  ASSERT_EQ(add.kind, OpKind::kAdd);
  EXPECT_FALSE(add.continues);
  EXPECT_EQ(add.entry.find("member")->size(), 1000u);
  EXPECT_EQ(add.after.written.find("member")->size(), 1000u);
  EXPECT_EQ(add.after.hash, written_hash(add.after.written));
  for (std::size_t i : {2501u, 2502u}) {
    const Operation& m = p.operations[i];
    ASSERT_EQ(m.kind, OpKind::kModify);
    EXPECT_TRUE(m.continues) << "counted with the add";
    EXPECT_EQ(m.dn, dn_of("Everyone"));
    ASSERT_EQ(m.changes.size(), 1u);
    EXPECT_EQ(m.changes[0].op, ModifyOp::kAdd);
    EXPECT_EQ(m.changes[0].values.size(), i == 2501 ? 1000u : 500u);
    EXPECT_EQ(m.after.written.find("member")->size(), i == 2501 ? 2000u : 2500u);
    EXPECT_EQ(m.after.hash, written_hash(m.after.written));
  }
  EXPECT_EQ(p.counts.adds, 2501u);
  // Stopped after the first chunk (a crash, a broken connection): the next run adds the rest.
  Model partial = model;
  for (std::size_t i = 0; i <= 2500; ++i) partial.apply(p.operations[i]);
  const Plan rest = partial.plan(sc.s, desired);
  ASSERT_EQ(rest.operations.size(), 2u);
  EXPECT_FALSE(rest.operations[0].continues) << "the first request of this run's change";
  EXPECT_TRUE(rest.operations[1].continues);
  EXPECT_EQ(rest.operations[0].changes.size(), 1u);
  EXPECT_EQ(rest.operations[0].changes[0].values.size(), 1000u);
  for (const Operation& op : rest.operations) partial.apply(op);
  EXPECT_EQ(partial.at(dn_of("Everyone"))->find("member")->size(), 2500u);
  EXPECT_TRUE(partial.plan(sc.s, desired).operations.empty());

  // 1,500 members leave and the group's mail changes: the mail and the first 1,000 deletions
  // in one request, the other 500 in the next.
  for (const Operation& op : p.operations) model.apply(op);
  desired.back().member_keys.resize(1000);
  desired.back().attributes.set("mail", {"all@notes.acme.example"});
  p = model.plan(sc.s, desired);
  ASSERT_EQ(p.operations.size(), 2u);
  EXPECT_EQ(p.operations[0].changes.size(), 2u);
  EXPECT_EQ(p.operations[0].changes[0].attribute, "mail");
  EXPECT_EQ(p.operations[0].changes[1].values.size(), 1000u);
  EXPECT_EQ(p.operations[1].changes[0].values.size(), 500u);
  EXPECT_EQ(p.counts.updates, 1u);
  for (const Operation& op : p.operations) model.apply(op);
  EXPECT_EQ(model.at(dn_of("Everyone"))->find("member")->size(), 1000u);
  EXPECT_TRUE(model.plan(sc.s, desired).operations.empty());
}

}  // namespace
}  // namespace bridgehead::directory::sync
