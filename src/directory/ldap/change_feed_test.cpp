// The uSNChanged feed against the AD-shaped slapd (its rootDSE gives highestCommittedUSN and
// dsServiceName; the test sets uSNChanged on each change as AD would), and the
// modifyTimestamp feed against the Domino-shaped one (slapd keeps modifyTimestamp itself).
#include "directory/ldap/change_feed.hpp"

#include <map>
#include <thread>

#include "feed_test_directory.hpp"

namespace bridgehead::directory::ldap {
namespace {

using feed_test::Directory;

constexpr const char* kInvocationId = "33221100-5544-7766-8899-aabbccddeeff";  // the fixture's, as a GUID

test_support::SlapdOptions ad(bool show_deleted) {
  test_support::SlapdOptions o;
  o.profile = "ad";
  o.ad_dsa = true;
  o.highest_usn = 1000;
  o.show_deleted = show_deleted;
  return o;
}

Entry ad_user(const Directory& d, const std::string& cn, int usn) {
  Entry e(d.person_dn(cn));
  for (const char* c : {"top", "person", "organizationalPerson", "user"}) e.add("objectClass", c);
  e.add("cn", cn);
  e.add("sn", cn);
  e.add("instanceType", "4");
  e.add("nTSecurityDescriptor", std::string("\x01\x00\x04\x80", 4));
  e.add("objectCategory", "CN=Person,CN=Schema,CN=Configuration,dc=acme,dc=example");
  e.add("uSNChanged", std::to_string(usn));
  return e;
}

void replace(Connection& c, const std::string& dn, std::vector<std::pair<std::string, std::string>> values) {
  std::vector<Modification> mods;
  for (auto& [name, value] : values) {
    Modification m;
    m.op = ModifyOp::kReplace;
    m.attribute = name;
    m.values = {value};
    mods.push_back(std::move(m));
  }
  Directory::must(c.modify(dn, mods), "modify " + dn);
}

UsnFeedRequest users(const Directory& d, std::optional<UsnPosition> since) {
  UsnFeedRequest r;
  r.search.base = "ou=People," + d.base();
  r.search.filter = "(objectClass=user)";
  r.search.attributes = {"cn"};
  r.since = std::move(since);
  return r;
}

// cn -> deleted, of one read.
struct UsnRead {
  UsnFeedOutcome outcome;
  std::map<std::string, bool> entries;
};

UsnRead read_usn(Connection& c, const UsnFeedRequest& r) {
  UsnRead got;
  auto out = read_usn_changes(c, r, [&](Entry e, bool deleted) {
    EXPECT_TRUE(e.has("uSNChanged")) << e.dn();
    got.entries[std::string(e.first("cn"))] = deleted;
    return true;
  });
  if (!out) throw std::runtime_error(out.error().describe());
  got.outcome = std::move(*out);
  return got;
}

TEST(UsnFeed, TheDomainControllerIsReadFromTheRootDseAndItsNtdsSettings) {
  Directory d(ad(false));
  auto c = d.connect();
  auto dc = read_domain_controller(c);
  ASSERT_TRUE(dc) << dc.error().describe();
  EXPECT_EQ(dc->dsa_dn, d.info().dsa_dn);
  EXPECT_EQ(dc->invocation_id, kInvocationId);
  EXPECT_EQ(dc->highest_committed_usn, 1000u);
  EXPECT_FALSE(dc->offers_show_deleted);
}

TEST(UsnFeed, ChangesAfterThePositionAreFoundAndThePositionMovesOn) {
  Directory d(ad(false));
  auto c = d.connect();
  for (int i = 0; i < 5; ++i) Directory::must(c.add(ad_user(d, "User " + std::to_string(i), 900 + i)), "add");

  UsnRead full = read_usn(c, users(d, std::nullopt));
  EXPECT_TRUE(full.outcome.search.complete());
  EXPECT_EQ(full.entries.size(), 5u);
  EXPECT_FALSE(full.outcome.different_server);
  EXPECT_FALSE(full.outcome.deletions_reported);  // slapd offers no show-deleted: keys must be enumerated
  EXPECT_EQ(full.outcome.position, (UsnPosition{kInvocationId, 1000}));

  // As AD would: a modify and an add, each with the next USN.
  replace(c, d.person_dn("User 3"), {{"sn", "Changed"}, {"uSNChanged", "1001"}});
  Directory::must(c.add(ad_user(d, "User 5", 1002)), "add");
  UsnRead next = read_usn(c, users(d, full.outcome.position));
  EXPECT_TRUE(next.outcome.search.complete());
  EXPECT_EQ(next.entries, (std::map<std::string, bool>{{"User 3", false}, {"User 5", false}}));
  // The rootDSE said 1000 before the search: 1001 and 1002 were committed during it, as far as
  // the feed can tell, and a change made then to an object the search had already passed may
  // have a lower USN than one it read. The position stays at 1000, so they come again.
  EXPECT_EQ(next.outcome.position, (UsnPosition{kInvocationId, 1000}));
  UsnRead again = read_usn(c, users(d, next.outcome.position));
  EXPECT_EQ(again.entries, next.entries);

  // Past every change: nothing.
  UsnRead quiet = read_usn(c, users(d, UsnPosition{kInvocationId, 1002}));
  EXPECT_TRUE(quiet.entries.empty());
  EXPECT_EQ(quiet.outcome.position, (UsnPosition{kInvocationId, 1002}));
  // The position survives its text form (StateStore's cookie).
  EXPECT_EQ(UsnPosition::parse(quiet.outcome.position.text()).value(), quiet.outcome.position);
}

TEST(UsnFeed, ANewInvocationIdIsADifferentServerAndNothingIsRead) {
  Directory d(ad(false));
  auto c = d.connect();
  Directory::must(c.add(ad_user(d, "User 0", 1001)), "add");
  UsnRead full = read_usn(c, users(d, std::nullopt));
  ASSERT_EQ(full.outcome.position.invocation_id, kInvocationId);

  // The DC's database restored from a backup: a new invocationID.
  replace(c, d.info().dsa_dn, {{"invocationId", std::string(16, '\x42')}});
  UsnRead after = read_usn(c, users(d, full.outcome.position));
  EXPECT_TRUE(after.outcome.different_server);
  EXPECT_TRUE(after.entries.empty());
  EXPECT_FALSE(after.outcome.search.complete());
  ASSERT_TRUE(after.outcome.search.problem);
  EXPECT_NE(after.outcome.search.problem->remedy.find("full run"), std::string::npos);
  EXPECT_NE(after.outcome.search.problem->message.find("42424242-4242-4242-4242-424242424242"), std::string::npos)
      << after.outcome.search.problem->describe();
  EXPECT_EQ(after.outcome.position, full.outcome.position);

  // The full run the caller then does starts on the new invocationID.
  UsnRead full_again = read_usn(c, users(d, std::nullopt));
  EXPECT_EQ(full_again.entries.size(), 1u);
  EXPECT_EQ(full_again.outcome.position.invocation_id, "42424242-4242-4242-4242-424242424242");
}

TEST(UsnFeed, WithShowDeletedOfferedTombstonesComeAsDeleted) {
  Directory d(ad(true));
  auto c = d.connect();
  Directory::must(c.add(ad_user(d, "Keep", 990)), "add");
  Directory::must(c.add(ad_user(d, "Gone", 991)), "add");
  auto dc = read_domain_controller(c);
  ASSERT_TRUE(dc) << dc.error().describe();
  EXPECT_TRUE(dc->offers_show_deleted);
  UsnRead full = read_usn(c, users(d, std::nullopt));
  EXPECT_TRUE(full.outcome.deletions_reported);

  // As AD shows a deleted object to a search with the show-deleted control.
  replace(c, d.person_dn("Gone"), {{"isDeleted", "TRUE"}, {"uSNChanged", "1001"}});
  UsnRead next = read_usn(c, users(d, full.outcome.position));
  EXPECT_TRUE(next.outcome.deletions_reported);
  EXPECT_EQ(next.entries, (std::map<std::string, bool>{{"Gone", true}}));
}

TEST(UsnFeed, AServerWithoutTheRootDseAttributesIsNotAnAdDomainController) {
  test_support::SlapdOptions o;
  o.profile = "ad";
  Directory d(o);
  auto c = d.connect();
  auto out = read_usn_changes(c, users(d, std::nullopt), [](Entry, bool) { return true; });
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(out.error().message.find("highestCommittedUSN"), std::string::npos) << out.error().describe();
  EXPECT_NE(out.error().remedy.find("full run"), std::string::npos);
}

// ---- modifyTimestamp -------------------------------------------------------------------------

Entry domino_person(const Directory& d, const std::string& cn) {
  Entry e(d.person_dn(cn));
  e.add("objectClass", "inetOrgPerson");
  e.add("cn", cn);
  e.add("sn", cn);
  return e;
}

struct TimeRead {
  TimestampFeedOutcome outcome;
  std::map<std::string, std::chrono::sys_seconds> entries;  // cn -> modifyTimestamp
};

TimeRead read_times(Connection& c, const Directory& d, std::optional<std::chrono::sys_seconds> since,
                    std::chrono::seconds overlap) {
  TimestampFeedRequest r;
  r.search.base = "ou=People," + d.base();
  r.search.filter = "objectClass=inetOrgPerson";  // without parentheses: the feed adds them
  r.search.attributes = {"cn"};
  r.since = since;
  r.overlap = overlap;
  TimeRead got;
  auto out = read_timestamp_changes(c, r, [&](Entry e) {
    auto t = parse_generalized_time(e.first("modifyTimestamp"));
    EXPECT_TRUE(t) << e.dn();
    if (t) got.entries[std::string(e.first("cn"))] = *t;
    return true;
  });
  if (!out) throw std::runtime_error(out.error().describe());
  got.outcome = std::move(*out);
  return got;
}

TEST(TimestampFeed, ChangesAfterThePositionAreFoundAndTheSameSecondIsReadAgain) {
  test_support::SlapdOptions o;
  o.profile = "domino";
  Directory d(o);
  auto c = d.connect();
  for (const char* cn : {"Ann", "Bob", "Cid"}) Directory::must(c.add(domino_person(d, cn)), "add");

  TimeRead full = read_times(c, d, std::nullopt, kDefaultTimestampOverlap);
  EXPECT_TRUE(full.outcome.search.complete());
  ASSERT_EQ(full.entries.size(), 3u);
  ASSERT_TRUE(full.outcome.position);
  std::chrono::sys_seconds newest{};
  for (const auto& [cn, t] : full.entries) newest = std::max(newest, t);
  EXPECT_EQ(*full.outcome.position, newest);

  // Without overlap, the entries of the position's own second are still read again (>=):
  // a change made in that second after the read is never skipped.
  TimeRead same = read_times(c, d, full.outcome.position, std::chrono::seconds(0));
  EXPECT_FALSE(same.entries.empty());
  for (const auto& [cn, t] : same.entries) EXPECT_EQ(t, newest) << cn;
  EXPECT_EQ(same.outcome.position, full.outcome.position);

  // The default overlap re-reads the last ten minutes: all three.
  TimeRead overlapped = read_times(c, d, full.outcome.position, kDefaultTimestampOverlap);
  EXPECT_EQ(overlapped.entries.size(), 3u);

  // A change a second later is found, and moves the position to its timestamp.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  Modification m;
  m.op = ModifyOp::kReplace;
  m.attribute = "sn";
  m.values = {"Changed"};
  Directory::must(c.modify(d.person_dn("Ann"), {m}), "modify Ann");
  TimeRead next = read_times(c, d, full.outcome.position, std::chrono::seconds(0));
  ASSERT_TRUE(next.entries.count("Ann"));
  EXPECT_GT(next.entries["Ann"], newest);
  EXPECT_EQ(next.outcome.position, next.entries["Ann"]);
  EXPECT_EQ(next.outcome.without_timestamp, 0u);
}

TEST(TimestampFeed, ANegativeOverlapIsRefused) {
  test_support::SlapdOptions o;
  o.profile = "domino";
  Directory d(o);
  auto c = d.connect();
  TimestampFeedRequest r;
  r.search.base = d.base();
  r.overlap = std::chrono::seconds(-1);
  auto out = read_timestamp_changes(c, r, [](Entry) { return true; });
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(out.error().message.find("overlap"), std::string::npos);
}

}  // namespace
}  // namespace bridgehead::directory::ldap
