// RFC 4533 content synchronization against a real slapd with syncprov (tests/support/slapd.py):
// a full refresh, a refresh from a cookie after an add, a modify and a delete (once through
// the present phase, once through syncprov's session log), bad cookies, and persisting: a
// change delivered while it happens, stop(), and slapd dying under it.
#include "directory/ldap/content_sync.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "feed_test_directory.hpp"

namespace bridgehead::directory::ldap {
namespace {

using feed_test::Directory;
using Clock = std::chrono::steady_clock;

constexpr int kPeople = 20;

test_support::SlapdOptions domino(int sessionlog) {
  test_support::SlapdOptions o;
  o.profile = "domino";
  o.sessionlog = sessionlog;
  return o;
}

Entry person(const Directory& d, const std::string& cn) {
  Entry e(d.person_dn(cn));
  e.add("objectClass", "inetOrgPerson");
  e.add("cn", cn);
  e.add("sn", cn);
  e.add("mail", cn + "@acme.example");
  return e;
}

void add_people(Directory& d, int n, const std::string& prefix = "Person ") {
  auto c = d.connect();
  for (int i = 0; i < n; ++i) Directory::must(c.add(person(d, prefix + std::to_string(i))), "add");
}

SyncRequest people(const Directory& d, std::string cookie = {}) {
  SyncRequest r;
  r.base = "ou=People," + d.base();
  r.filter = "(objectClass=inetOrgPerson)";
  r.attributes = {"cn", "mail", "entryUUID"};
  r.cookie = std::move(cookie);
  return r;
}

// What a refresh delivered, by kind.
struct Seen {
  std::vector<SyncEvent> events;
  std::map<std::string, std::string> changed;  // cn -> entryUUID
  std::set<std::string> present, deleted;      // entryUUIDs
  void operator()(SyncEvent e) {
    if (e.kind == SyncEventKind::kChanged) changed[std::string(e.entry.first("cn"))] = e.entry_uuid;
    if (e.kind == SyncEventKind::kPresent) present.insert(e.entry_uuid);
    if (e.kind == SyncEventKind::kDeleted) deleted.insert(e.entry_uuid);
    events.push_back(std::move(e));
  }
};

SyncOutcome refresh(Connection& c, const SyncRequest& r, Seen& seen) {
  auto out = refresh_only(c, r, [&](SyncEvent e) {
    seen(std::move(e));
    return true;
  });
  if (!out) throw std::runtime_error(out.error().describe());
  return *out;
}

// The entryUUID attribute of `dn`, as slapd shows it.
std::string entry_uuid(Connection& c, const std::string& dn) {
  SearchRequest r;
  r.base = dn;
  r.scope = Scope::kBase;
  r.paged = false;
  r.attributes = {"entryUUID"};
  std::string uuid;
  auto out = c.search(r, [&](Entry e) {
    uuid = std::string(e.first("entryUUID"));
    return true;
  });
  if (!out || uuid.empty()) throw std::runtime_error("no entryUUID for " + dn);
  return uuid;
}

// Adds "New", changes the mail of "Person 1", deletes "Person 2"; returns the deleted UUID.
std::string change_three(Directory& d) {
  auto c = d.connect();
  const std::string gone = entry_uuid(c, d.person_dn("Person 2"));
  Directory::must(c.add(person(d, "New")), "add New");
  Modification m;
  m.op = ModifyOp::kReplace;
  m.attribute = "mail";
  m.values = {"changed@acme.example"};
  Directory::must(c.modify(d.person_dn("Person 1"), {m}), "modify Person 1");
  Directory::must(c.remove(d.person_dn("Person 2")), "delete Person 2");
  return gone;
}

TEST(ContentSync, AnEmptyCookieRefreshesEverythingWithUuidsAsTheAttributeShowsThem) {
  Directory d(domino(0));
  add_people(d, kPeople);
  auto c = d.connect();
  Seen seen;
  SyncOutcome out = refresh(c, people(d), seen);
  EXPECT_TRUE(out.complete()) << (out.problem ? out.problem->describe() : "");
  EXPECT_FALSE(out.refresh_required);
  ASSERT_TRUE(out.cookie.has_value());
  EXPECT_FALSE(out.cookie->empty());
  EXPECT_EQ(out.deletes, DeleteReporting::kPresentPhase);  // a full refresh: what was not sent is gone
  EXPECT_EQ(out.changed, static_cast<std::size_t>(kPeople));
  ASSERT_EQ(seen.changed.size(), static_cast<std::size_t>(kPeople));
  for (const SyncEvent& e : seen.events) {
    ASSERT_EQ(e.kind, SyncEventKind::kChanged);
    EXPECT_EQ(e.entry_uuid, e.entry.first("entryUUID")) << e.entry.dn();
    EXPECT_TRUE(e.entry.has("mail")) << e.entry.dn();
  }
}

// A full refresh, change_three(), then a refresh from the first cookie.
struct AfterThreeChanges {
  Directory d;
  Connection c;
  Seen first, seen;
  SyncOutcome start, out;
  std::string gone;
  explicit AfterThreeChanges(int sessionlog) : d(domino(sessionlog)), c((add_people(d, kPeople), d.connect())) {
    start = refresh(c, people(d), first);
    if (!start.cookie) throw std::runtime_error("no cookie after a full refresh");
    gone = change_three(d);
    out = refresh(c, people(d, *start.cookie), seen);
  }
};

TEST(ContentSync, WithoutASessionLogTheCookieGivesTheChangesAndAPresentPhase) {
  AfterThreeChanges r(0);
  auto& [d, c, first, seen, start, out, gone] = r;
  EXPECT_TRUE(out.complete()) << (out.problem ? out.problem->describe() : "");
  EXPECT_EQ(out.deletes, DeleteReporting::kPresentPhase);
  ASSERT_TRUE(out.cookie);
  EXPECT_NE(*out.cookie, *start.cookie);
  // Exactly the added and the modified entry come with their attributes...
  ASSERT_EQ(seen.changed.size(), 2u);
  EXPECT_TRUE(seen.changed.count("New"));
  ASSERT_TRUE(seen.changed.count("Person 1"));
  EXPECT_EQ(seen.changed["Person 1"], first.changed["Person 1"]);
  // ...every entry still there as present (syncprov lists the changed ones too), and the
  // deleted one is not: the caller finds it gone.
  std::set<std::string> there;
  for (const auto& [cn, uuid] : first.changed) {
    if (cn != "Person 2") there.insert(uuid);
  }
  there.insert(seen.changed["New"]);
  EXPECT_EQ(seen.present, there);
  EXPECT_FALSE(seen.present.count(gone));
  EXPECT_TRUE(seen.deleted.empty());

  // Nothing changed since: no change, the same present set.
  Seen again;
  SyncOutcome quiet = refresh(c, people(d, *out.cookie), again);
  EXPECT_TRUE(quiet.complete());
  EXPECT_TRUE(again.changed.empty());
  EXPECT_TRUE(again.deleted.empty());
}

TEST(ContentSync, WithASessionLogDeletionsAreReportedExplicitly) {
  AfterThreeChanges r(100);
  const auto& [seen, out, gone] = std::tie(r.seen, r.out, r.gone);
  EXPECT_TRUE(out.complete()) << (out.problem ? out.problem->describe() : "");
  EXPECT_EQ(out.deletes, DeleteReporting::kExplicit);
  ASSERT_EQ(seen.changed.size(), 2u);
  EXPECT_TRUE(seen.changed.count("New"));
  EXPECT_TRUE(seen.changed.count("Person 1"));
  EXPECT_EQ(seen.deleted, std::set<std::string>{gone});
  EXPECT_TRUE(seen.present.empty());
  EXPECT_EQ(out.deleted, 1u);
}

// What slapd 2.5's syncprov does with cookies it did not give, pinned here (the feed reports
// it as the server says; e-syncRefreshRequired itself is tested with a scripted peer below).
TEST(ContentSync, ForeignCookiesGiveAPresentPhaseOrTheWholeContentAsSlapdAnswers) {
  Directory d(domino(100));
  add_people(d, kPeople);
  auto c = d.connect();
  // Another provider's cookie from long ago: a present phase, so deletions are not missed.
  Seen foreign;
  SyncOutcome out = refresh(c, people(d, "rid=001,sid=abc,csn=20000101000000.000000Z#000000#abc#000000"), foreign);
  EXPECT_TRUE(out.complete()) << (out.problem ? out.problem->describe() : "");
  EXPECT_FALSE(out.refresh_required);
  EXPECT_EQ(out.deletes, DeleteReporting::kPresentPhase);
  EXPECT_EQ(foreign.changed.size() + foreign.present.size(), static_cast<std::size_t>(kPeople));

  // Text that is no cookie is taken as none: the whole content again, every entry changed,
  // and refreshDeletes (see SyncRequest::cookie: only a cookie of this server is passed).
  Seen garbage;
  out = refresh(c, people(d, "not a cookie"), garbage);
  EXPECT_TRUE(out.complete()) << (out.problem ? out.problem->describe() : "");
  EXPECT_EQ(garbage.changed.size(), static_cast<std::size_t>(kPeople));
  EXPECT_EQ(out.deletes, DeleteReporting::kExplicit);
  ASSERT_TRUE(out.cookie);
  EXPECT_NE(*out.cookie, "not a cookie");
}

TEST(ContentSync, AStaleCookieBeyondTheSessionLogFallsBackToThePresentPhase) {
  Directory d(domino(3));  // a session log of three operations
  add_people(d, kPeople);
  auto c = d.connect();
  Seen first;
  const SyncOutcome start = refresh(c, people(d), first);
  ASSERT_TRUE(start.cookie);
  auto w = d.connect();
  for (int i = 0; i < 6; ++i) Directory::must(w.remove(d.person_dn("Person " + std::to_string(i))), "delete");

  Seen seen;
  SyncOutcome out = refresh(c, people(d, *start.cookie), seen);
  EXPECT_TRUE(out.complete()) << (out.problem ? out.problem->describe() : "");
  EXPECT_FALSE(out.refresh_required);
  EXPECT_EQ(out.deletes, DeleteReporting::kPresentPhase);
  EXPECT_EQ(seen.present.size() + seen.changed.size(), static_cast<std::size_t>(kPeople - 6));
  for (int i = 0; i < 6; ++i) EXPECT_FALSE(seen.present.count(first.changed["Person " + std::to_string(i)]));
}

TEST(ContentSync, AServerRefusalBeforeAnyEventFailsNamingTheProblem) {
  Directory d(domino(0));
  auto c = d.connect();
  SyncRequest r = people(d);
  r.base = "ou=Nowhere," + d.base();
  auto out = refresh_only(c, r, [](SyncEvent) { return true; });
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kNotFound) << out.error().describe();
  EXPECT_NE(out.error().message.find("ou=Nowhere"), std::string::npos) << out.error().describe();
}

// A persisting search on its own thread, recording what it gets.
class Persisting {
 public:
  Persisting(Connection& c, SyncRequest r) {
    thread_ = std::thread([this, &c, r = std::move(r)] {
      auto out = refresh_and_persist(
          c, r,
          [this](SyncEvent e) {
            std::lock_guard lock(mu_);
            if (e.kind == SyncEventKind::kRefreshDone) refreshed_ = true;
            events_.push_back({Clock::now(), std::move(e)});
            return true;
          },
          stop_.get_token());
      std::lock_guard lock(mu_);
      outcome_ = std::move(out);
      ended_ = Clock::now();
      done_ = true;
    });
  }
  ~Persisting() {
    stop_.request_stop();
    if (thread_.joinable()) thread_.join();
  }
  // Waits up to `limit` for `pred` over the events; true when it held.
  template <typename Pred>
  bool wait_for(std::chrono::milliseconds limit, Pred pred) {
    const auto until = Clock::now() + limit;
    while (Clock::now() < until) {
      {
        std::lock_guard lock(mu_);
        if (pred()) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::lock_guard lock(mu_);
    return pred();
  }
  Clock::time_point stop() {
    const auto asked = Clock::now();
    stop_.request_stop();
    thread_.join();
    return asked;
  }
  // Only after stop() or done().
  const Expected<SyncOutcome>& outcome() const { return *outcome_; }
  Clock::time_point ended() const { return ended_; }
  bool refreshed() const { return refreshed_; }
  bool done() const { return done_; }
  const std::vector<std::pair<Clock::time_point, SyncEvent>>& events() const { return events_; }
  void join() { thread_.join(); }

 private:
  std::mutex mu_;
  std::stop_source stop_;
  std::vector<std::pair<Clock::time_point, SyncEvent>> events_;
  std::optional<Expected<SyncOutcome>> outcome_;
  Clock::time_point ended_{};
  bool refreshed_ = false;
  bool done_ = false;
  std::thread thread_;
};

TEST(ContentSync, PersistDeliversAChangeWithinASecondWithItsCookieAndStopsPromptly) {
  Directory d(domino(100));
  add_people(d, 3);
  auto c = d.connect();
  Persisting p(c, people(d));
  ASSERT_TRUE(p.wait_for(std::chrono::seconds(10), [&] { return p.refreshed(); })) << "no refreshDone";
  std::size_t after_refresh = 0;
  p.wait_for(std::chrono::milliseconds(0), [&] {
    after_refresh = p.events().size();
    return true;
  });

  auto w = d.connect();
  const auto added = Clock::now();
  Directory::must(w.add(person(d, "Live")), "add Live");
  bool seen = p.wait_for(std::chrono::seconds(5), [&] {
    for (std::size_t i = after_refresh; i < p.events().size(); ++i) {
      if (p.events()[i].second.kind == SyncEventKind::kChanged && p.events()[i].second.entry.first("cn") == "Live")
        return true;
    }
    return false;
  });
  ASSERT_TRUE(seen) << "the new entry was not delivered while persisting";

  const auto asked = p.stop();
  EXPECT_LT(Clock::now() - asked, std::chrono::milliseconds(1000));
  ASSERT_TRUE(p.outcome()) << p.outcome().error().describe();
  EXPECT_EQ(p.outcome()->completeness, Completeness::kStoppedByCaller);

  const auto& events = p.events();
  ASSERT_EQ(events[after_refresh - 1].second.kind, SyncEventKind::kRefreshDone);
  EXPECT_EQ(events[after_refresh - 1].second.deletes, DeleteReporting::kPresentPhase);  // from an empty cookie
  std::size_t live = 0;
  for (std::size_t i = after_refresh; i < events.size(); ++i) {
    if (events[i].second.entry.first("cn") == "Live") live = i;
  }
  const SyncEvent& e = events[live].second;
  EXPECT_LT(events[live].first - added, std::chrono::milliseconds(1000));
  ASSERT_TRUE(e.cookie) << "a change while persisting comes with the cookie after it";
  EXPECT_EQ(p.outcome()->cookie, e.cookie);
  EXPECT_EQ(e.entry_uuid, e.entry.first("entryUUID"));

  // The connection is still usable after the stop; the cookie resumes after the change.
  Seen rest;
  SyncOutcome again = refresh(c, people(d, *e.cookie), rest);
  EXPECT_TRUE(again.complete()) << (again.problem ? again.problem->describe() : "");
  EXPECT_TRUE(rest.changed.empty());
}

TEST(ContentSync, SlapdKilledWhilePersistingIsDisconnectedWithARemedy) {
  Directory d(domino(0));
  add_people(d, 3);
  auto c = d.connect();
  Persisting p(c, people(d));
  ASSERT_TRUE(p.wait_for(std::chrono::seconds(10), [&] { return p.refreshed(); }));
  ASSERT_GT(d.info().pid, 0);
  ::kill(d.info().pid, SIGKILL);
  ASSERT_TRUE(p.wait_for(std::chrono::seconds(5), [&] { return p.done(); })) << "the search did not end";
  p.join();
  ASSERT_TRUE(p.outcome()) << p.outcome().error().describe();
  EXPECT_EQ(p.outcome()->completeness, Completeness::kDisconnected);
  ASSERT_TRUE(p.outcome()->problem);
  EXPECT_TRUE(p.outcome()->problem->transient());
  EXPECT_NE(p.outcome()->problem->message.find(d.info().uri), std::string::npos) << p.outcome()->problem->describe();
  EXPECT_NE(p.outcome()->problem->remedy.find("last cookie"), std::string::npos);
}

// slapd 2.5's syncprov answers every stale or foreign cookie above with a present phase, so
// e-syncRefreshRequired is taken from a scripted LDAP peer on loopback: it accepts the bind and
// ends the first search with result code 4096, as RFC 4533 3.3.1 lets a server do.
class RefreshRequiredPeer {
 public:
  RefreshRequiredPeer() {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listener_, 1) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("cannot listen on loopback");
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~RefreshRequiredPeer() {
    ::shutdown(listener_, SHUT_RDWR);
    thread_.join();
    ::close(listener_);
  }
  std::string uri() const { return "ldap://127.0.0.1:" + std::to_string(port_); }

 private:
  // One LDAPMessage: SEQUENCE, its length (short or long form), then the body.
  static bool read_message(int fd, std::string& body) {
    unsigned char head[2];
    if (::recv(fd, head, 2, MSG_WAITALL) != 2 || head[0] != 0x30) return false;
    std::size_t len = head[1];
    if (len & 0x80) {
      unsigned char n[4];
      const std::size_t count = len & 0x7f;
      if (count > 4 || ::recv(fd, n, count, MSG_WAITALL) != static_cast<ssize_t>(count)) return false;
      len = 0;
      for (std::size_t i = 0; i < count; ++i) len = (len << 8) | n[i];
    }
    body.resize(len);
    return len == 0 || ::recv(fd, body.data(), len, MSG_WAITALL) == static_cast<ssize_t>(len);
  }
  void serve() {
    int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    std::string body;
    while (read_message(fd, body)) {
      // body: messageID INTEGER (02 01 id: libldap's first ids are small), then the operation.
      if (body.size() < 4 || body[0] != 0x02 || body[1] != 0x01) break;
      const char id = body[2];
      const auto op = static_cast<unsigned char>(body[3]);
      std::string reply;
      if (op == 0x60) {  // BindRequest -> BindResponse success
        reply = std::string("\x30\x0c\x02\x01", 4) + id + std::string("\x61\x07\x0a\x01\x00\x04\x00\x04\x00", 9);
      } else if (op == 0x63) {  // SearchRequest -> SearchResultDone e-syncRefreshRequired (4096)
        reply = std::string("\x30\x0d\x02\x01", 4) + id + std::string("\x65\x08\x0a\x02\x10\x00\x04\x00\x04\x00", 10);
      } else {
        break;  // unbind
      }
      if (::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(reply.size())) break;
    }
    ::close(fd);
  }
  int listener_ = -1;
  int port_ = 0;
  std::thread thread_;
};

TEST(ContentSync, RefreshRequiredIsReportedAsSuchWithTheRemedy) {
  RefreshRequiredPeer peer;
  Options o;
  o.uri = peer.uri();
  o.timeouts.connect = std::chrono::seconds(5);
  o.timeouts.operation = std::chrono::seconds(5);
  auto c = Connection::open(std::move(o));
  ASSERT_TRUE(c) << c.error().describe();
  SyncRequest r;
  r.base = "o=Acme";
  r.cookie = "rid=000,csn=20000101000000.000000Z#000000#000#000000";
  std::size_t events = 0;
  auto out = refresh_only(*c, r, [&](SyncEvent) {
    ++events;
    return true;
  });
  ASSERT_TRUE(out) << out.error().describe();
  EXPECT_TRUE(out->refresh_required);
  EXPECT_FALSE(out->complete());
  EXPECT_EQ(out->completeness, Completeness::kServerError);
  EXPECT_EQ(events, 0u);
  ASSERT_TRUE(out->problem);
  EXPECT_NE(out->problem->message.find("e-syncRefreshRequired"), std::string::npos) << out->problem->describe();
  EXPECT_NE(out->problem->message.find(peer.uri()), std::string::npos) << out->problem->describe();
  EXPECT_NE(out->problem->remedy.find("full run"), std::string::npos);
}

}  // namespace
}  // namespace bridgehead::directory::ldap
