// Writer against a real slapd (tests/support/slapd.py through slapd_process.hpp): batches of
// adds with many requests in flight and in RFC 5805 transactions, a bad entry failing alone,
// operations on one entry kept in order, and slapd killed or stopped mid-batch.
#include "directory/ldap/writer.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdio.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <memory>
#include <set>
#include <thread>

#include "slapd_process.hpp"
#include "temp_dir.hpp"

namespace bridgehead::directory::ldap {
namespace {

using test_support::SlapdProcess;
using test_support::TempDir;

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

// An AD contact the ad profile accepts, as Bridgehead creates one from a Domino person.
Entry contact(const std::string& dn, const std::string& cn) {
  Entry e(dn);
  for (const char* oc : {"top", "person", "organizationalPerson", "contact", "mailRecipient"}) e.add("objectClass", oc);
  e.add("cn", cn);
  e.add("sn", cn);
  e.add("instanceType", "4");
  e.add("nTSecurityDescriptor", std::string("\x01\x00\x04\x80", 4));
  e.add("objectCategory", "CN=Person,CN=Schema,CN=Configuration,dc=acme,dc=example");
  e.add("targetAddress", "SMTP:" + cn + "@notes.acme.example");
  return e;
}

Entry container(const std::string& dn, const std::string& ou) {
  Entry e(dn);
  e.add("objectClass", "organizationalUnit");
  e.add("ou", ou);
  return e;
}

std::string cn_of(int i) { return "Contact " + std::to_string(i); }

Options service(const test_support::SlapdInfo& info) {
  Options o;
  o.uri = info.uri;
  o.bind = SimpleBind{info.service_dn, identity::SecretString(info.service_password)};
  o.timeouts.connect = std::chrono::seconds(5);
  o.timeouts.operation = std::chrono::seconds(30);
  return o;
}

Connection connect(Options o) {
  auto c = Connection::open(std::move(o));
  if (!c) throw std::runtime_error(c.error().describe());
  return std::move(*c);
}

// The cn of every entry one level below `base`.
std::set<std::string> names_below(Connection& c, const std::string& base) {
  std::set<std::string> names;
  SearchRequest r;
  r.base = base;
  r.scope = Scope::kOneLevel;
  r.attributes = {"cn"};
  auto out = c.search(r, [&](Entry e) {
    names.insert(std::string(e.first("cn")));
    return true;
  });
  if (!out || !out->complete()) throw std::runtime_error("search of " + base + " failed");
  return names;
}

std::optional<Entry> read(Connection& c, const std::string& dn) {
  std::optional<Entry> found;
  SearchRequest r;
  r.base = dn;
  r.scope = Scope::kBase;
  auto out = c.search(r, [&](Entry e) {
    found = std::move(e);
    return true;
  });
  if (!out) return std::nullopt;
  return found;
}

std::vector<WriteOperation> adds(const std::string& base, int n) {
  std::vector<WriteOperation> ops;
  for (int i = 0; i < n; ++i) ops.emplace_back(AddRequest{contact("cn=" + cn_of(i) + "," + base, cn_of(i))});
  return ops;
}

class WriterTest : public ::testing::Test {
 protected:
  // One slapd (ad profile, dbnosync) for the suite; every test writes below its own container.
  static void SetUpTestSuite() {
    dir_ = std::make_unique<TempDir>("writer_test");
    slapd_ = std::make_unique<SlapdProcess>(dir_->path() / "slapd");
  }
  static void TearDownTestSuite() {
    slapd_.reset();  // before its directory goes
    dir_.reset();
  }
  static const test_support::SlapdInfo& info() { return slapd_->info(); }

  // A fresh container for the test, named after it.
  std::string make_container(Connection& c) {
    const std::string ou = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    const std::string dn = "ou=" + ou + "," + info().base;
    auto added = c.add(container(dn, ou));
    if (!added) throw std::runtime_error(added.error().describe());
    return dn;
  }

  static inline std::unique_ptr<TempDir> dir_;
  static inline std::unique_ptr<SlapdProcess> slapd_;
};

void expect_all_done(const WriteOutcome& out) {
  for (std::size_t i = 0; i < out.results.size(); ++i) {
    EXPECT_TRUE(out.results[i]) << i << ": " << out.results[i].error().describe();
  }
}

// Two bad entries in the middle: one the server refuses as it reads it (an attribute its
// schema lacks), one it refuses only when it applies it (its DN exists already).
std::vector<WriteOperation> with_two_bad(const std::string& base, int n, int undefined_at, int duplicate_at,
                                         std::string& duplicate_dn) {
  auto ops = adds(base, n);
  Entry bad = contact("cn=" + cn_of(undefined_at) + "," + base, cn_of(undefined_at));
  bad.add("noSuchAttributeAnywhere", "x");
  ops[static_cast<std::size_t>(undefined_at)] = AddRequest{bad};
  duplicate_dn = "cn=" + cn_of(duplicate_at - 10) + "," + base;
  ops[static_cast<std::size_t>(duplicate_at)] = AddRequest{contact(duplicate_dn, cn_of(duplicate_at - 10))};
  return ops;
}

void expect_bad_entries_fail_alone(Connection& c, const std::string& base, const WriteOutcome& out, int n,
                                   int undefined_at, int duplicate_at, const std::string& duplicate_dn) {
  ASSERT_EQ(out.results.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto& r = out.results[static_cast<std::size_t>(i)];
    if (i == undefined_at) {
      ASSERT_FALSE(r);
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << r.error().describe();
      EXPECT_FALSE(r.error().transient());
      EXPECT_TRUE(contains(r.error().message, "add of cn=" + cn_of(i) + "," + base)) << r.error().describe();
      EXPECT_TRUE(contains(r.error().message, "undefined attribute type")) << r.error().describe();
      EXPECT_TRUE(contains(r.error().message, "noSuchAttributeAnywhere")) << r.error().describe();
      EXPECT_FALSE(r.error().remedy.empty());
    } else if (i == duplicate_at) {
      ASSERT_FALSE(r);
      EXPECT_TRUE(contains(r.error().message, "add of " + duplicate_dn)) << r.error().describe();
      EXPECT_TRUE(contains(r.error().message, "entry already exists")) << r.error().describe();
    } else {
      EXPECT_TRUE(r) << i << ": " << r.error().describe();
    }
  }
  EXPECT_EQ(out.succeeded(), static_cast<std::size_t>(n - 2));
  auto names = names_below(c, base);
  EXPECT_EQ(names.size(), static_cast<std::size_t>(n - 2));
  EXPECT_FALSE(names.contains(cn_of(undefined_at)));
  EXPECT_FALSE(names.contains(cn_of(duplicate_at)));
}

// Per object: add, rename, modify under the new name, a child added below it, and for every
// other object (with_deletes) the child deleted, then its parent. Any of these overtaking the
// one before it fails.
std::vector<WriteOperation> chains(const std::string& base, int objects, bool with_deletes) {
  std::vector<WriteOperation> ops;
  for (int i = 0; i < objects; ++i) {
    const std::string ou = "Unit " + std::to_string(i), renamed = "Renamed " + std::to_string(i);
    const std::string dn = "ou=" + ou + "," + base, new_dn = "ou=" + renamed + "," + base;
    ops.emplace_back(AddRequest{container(dn, ou)});
    RenameRequest rename;
    rename.dn = dn;
    rename.new_rdn = "ou=" + renamed;
    ops.emplace_back(rename);
    Modification m;
    m.op = ModifyOp::kReplace;
    m.attribute = "description";
    m.values = {"step " + std::to_string(i)};
    ops.emplace_back(ModifyRequest{new_dn, {m}});
    const std::string child = "cn=" + cn_of(i) + "," + new_dn;
    ops.emplace_back(AddRequest{contact(child, cn_of(i))});
    if (with_deletes && i % 2 == 1) {
      ops.emplace_back(DeleteRequest{child});
      ops.emplace_back(DeleteRequest{new_dn});
    }
  }
  return ops;
}

void expect_chains_applied(Connection& c, const std::string& base, int objects, bool with_deletes) {
  for (int i = 0; i < objects; ++i) {
    const std::string new_dn = "ou=Renamed " + std::to_string(i) + "," + base;
    auto e = read(c, new_dn);
    if (with_deletes && i % 2 == 1) {
      EXPECT_FALSE(e) << new_dn;
      continue;
    }
    ASSERT_TRUE(e) << new_dn;
    EXPECT_EQ(e->first("description"), "step " + std::to_string(i));
    EXPECT_TRUE(read(c, "cn=" + cn_of(i) + "," + new_dn));
    EXPECT_FALSE(read(c, "ou=Unit " + std::to_string(i) + "," + base));
  }
}

TEST_F(WriterTest, Slapd25OffersTransactions) {
  Connection c = connect(service(info()));
  Writer w(c);
  auto offered = w.supports_transactions();
  ASSERT_TRUE(offered) << offered.error().describe();
  EXPECT_TRUE(*offered);
}

TEST_F(WriterTest, AThousandAddsLandWhole) {
  Connection c = connect(service(info()));
  const std::string base = make_container(c);
  const auto ops = adds(base, 1000);
  Writer w(c);
  WriteOptions o;
  o.in_flight = 64;
  auto out = w.write(ops, o);
  ASSERT_TRUE(out) << out.error().describe();
  ASSERT_EQ(out->results.size(), 1000u);
  expect_all_done(*out);
  EXPECT_EQ(out->succeeded(), 1000u);
  EXPECT_EQ(out->transactions_committed, 0u);
  EXPECT_EQ(names_below(c, base).size(), 1000u);
}

TEST_F(WriterTest, ABadEntryInTheMiddleFailsAloneAndTheRestLand) {
  Connection c = connect(service(info()));
  const std::string base = make_container(c);
  std::string duplicate_dn;
  const auto ops = with_two_bad(base, 300, 100, 200, duplicate_dn);
  Writer w(c);
  WriteOptions o;
  o.in_flight = 64;
  auto out = w.write(ops, o);
  ASSERT_TRUE(out) << out.error().describe();
  expect_bad_entries_fail_alone(c, base, *out, 300, 100, 200, duplicate_dn);
}

TEST_F(WriterTest, OperationsOnOneEntryStayInInputOrder) {
  Connection c = connect(service(info()));
  const std::string base = make_container(c);
  const auto ops = chains(base, 100, true);
  Writer w(c);
  WriteOptions o;
  o.in_flight = 256;
  auto out = w.write(ops, o);
  ASSERT_TRUE(out) << out.error().describe();
  expect_all_done(*out);
  expect_chains_applied(c, base, 100, true);
}

TEST_F(WriterTest, ModifyAndDeleteFailuresNameTheDn) {
  Connection c = connect(service(info()));
  const std::string base = make_container(c);
  const std::string missing = "cn=Nobody," + base;
  Modification m;
  m.attribute = "description";
  m.values = {"x"};
  std::vector<WriteOperation> ops = {ModifyRequest{missing, {m}}, DeleteRequest{missing}, ModifyRequest{base, {}}};
  Writer w(c);
  auto out = w.write(ops, WriteOptions{});
  ASSERT_TRUE(out) << out.error().describe();
  ASSERT_FALSE(out->results[0]);
  EXPECT_EQ(out->results[0].error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(contains(out->results[0].error().message, "modify of " + missing + " to " + info().uri + " failed"))
      << out->results[0].error().describe();
  ASSERT_FALSE(out->results[1]);
  EXPECT_TRUE(contains(out->results[1].error().message, "delete of " + missing)) << out->results[1].error().describe();
  EXPECT_TRUE(out->results[2]);  // nothing to change: nothing sent
}

TEST_F(WriterTest, BadOptionsSendNothing) {
  Connection c = connect(service(info()));
  Writer w(c);
  const auto ops = adds("ou=Never," + info().base, 3);
  for (int n : {0, kMaxInFlight + 1}) {
    WriteOptions o;
    o.in_flight = n;
    auto out = w.write(ops, o);
    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().code, ErrorCode::kInvalidArgument);
    EXPECT_TRUE(contains(out.error().message, "in flight " + std::to_string(n))) << out.error().describe();
  }
}

// ---- Transactions: a fresh slapd each time, because slapd itself may crash ------------------

// slapd 2.5.13 (Debian 12) now and then dies of a segmentation fault at a transaction's commit,
// with or without syncprov, also under its own `ldapmodify -E txn=commit` (see writer.hpp).
// The writer then reports the operations as not done (kUnavailable, which is checked), and the
// scenario runs again on a fresh slapd, up to three times, so that a slapd crash does not make
// these tests flaky while a fault of the writer's still fails them.
struct FreshSlapd {
  TempDir dir{"writer_txn"};
  SlapdProcess slapd{dir.path() / "slapd", SlapdProcess::Options{}};
  Connection connection = connect(service(slapd.info()));
  std::string base = "ou=Txn," + slapd.info().base;
  FreshSlapd() {
    auto added = connection.add(container(base, "Txn"));
    if (!added) throw std::runtime_error(added.error().describe());
  }
};

bool slapd_crashed(const WriteOutcome& out) {
  bool lost = false;
  for (const auto& r : out.results) {
    if (r || r.error().code != ErrorCode::kUnavailable) continue;
    EXPECT_TRUE(r.error().transient()) << r.error().describe();
    EXPECT_TRUE(contains(r.error().message, "the connection broke")) << r.error().describe();
    lost = true;
  }
  return lost;
}

// Writes make_ops(base) with `options` on fresh slapds until one survives (three at most),
// then hands the outcome to `check`.
template <class MakeOps, class Check>
void on_a_surviving_slapd(const WriteOptions& options, MakeOps make_ops, Check check) {
  for (int attempt = 1;; ++attempt) {
    FreshSlapd s;
    const auto ops = make_ops(s.base);
    Writer w(s.connection);
    auto out = w.write(ops, options);
    ASSERT_TRUE(out) << out.error().describe();
    ASSERT_EQ(out->results.size(), ops.size());
    if (slapd_crashed(*out) && attempt < 3) {
      std::fprintf(stderr, "slapd crashed during a transaction (attempt %d): again on a fresh slapd\n", attempt);
      continue;
    }
    check(s.connection, s.base, *out);
    return;
  }
}

TEST(WriterTransactions, AThousandAddsInTransactionsLandWhole) {
  WriteOptions o;
  o.in_flight = 128;
  o.transaction_size = 100;
  on_a_surviving_slapd(
      o, [](const std::string& base) { return adds(base, 1000); },
      [](Connection& c, const std::string& base, const WriteOutcome& out) {
        expect_all_done(out);
        EXPECT_EQ(out.transactions_committed, 10u);
        EXPECT_EQ(out.transactions_rejected, 0u);
        EXPECT_EQ(out.replayed, 0u);
        EXPECT_EQ(names_below(c, base).size(), 1000u);
      });
}

TEST(WriterTransactions, ABadEntryInATransactionFailsAloneAndTheOthersAreReplayed) {
  WriteOptions o;
  o.in_flight = 64;
  o.transaction_size = 100;
  std::string duplicate_dn;
  // Both bad entries in the second of three transactions of 100.
  on_a_surviving_slapd(
      o, [&](const std::string& base) { return with_two_bad(base, 300, 120, 150, duplicate_dn); },
      [&](Connection& c, const std::string& base, const WriteOutcome& out) {
        expect_bad_entries_fail_alone(c, base, out, 300, 120, 150, duplicate_dn);
        EXPECT_EQ(out.transactions_committed, 2u);
        EXPECT_EQ(out.transactions_rejected, 1u);
        EXPECT_EQ(out.replayed, 98u);  // the 100 less the two bad ones
        ASSERT_EQ(out.transaction_problems.size(), 1u);
        const Error& p = out.transaction_problems[0];
        EXPECT_TRUE(contains(p.message, "because of the add of " + duplicate_dn)) << p.describe();
        EXPECT_TRUE(contains(p.message, "entry already exists")) << p.describe();
        EXPECT_TRUE(contains(p.message, "the other 98 were sent again without a transaction")) << p.describe();
        EXPECT_TRUE(contains(out.results[150].error().message, "(in a transaction)"))
            << out.results[150].error().describe();
      });
}

TEST(WriterTransactions, OperationsOnOneEntryStayInInputOrderInATransaction) {
  WriteOptions o;
  o.in_flight = 256;
  o.transaction_size = 200;
  on_a_surviving_slapd(
      o, [](const std::string& base) { return chains(base, 100, false); },
      [](Connection& c, const std::string& base, const WriteOutcome& out) {
        expect_all_done(out);
        EXPECT_EQ(out.transactions_committed, 2u);
        EXPECT_EQ(out.transactions_rejected, 0u);
        expect_chains_applied(c, base, 100, false);
      });
}

// ---- slapd going away mid-batch: a fresh slapd each, so the others keep theirs --------------

// The DNs slapcat finds in the (stopped) slapd's database.
std::set<std::string> slapcat_dns(const test_support::SlapdInfo& info) {
  const std::string cmd = "/usr/sbin/slapcat -o ldif_wrap=no -f " + info.dir + "/slapd.conf 2>/dev/null";
  std::set<std::string> dns;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) throw std::runtime_error("cannot run " + cmd);
  std::array<char, 4096> line{};
  while (::fgets(line.data(), static_cast<int>(line.size()), p) != nullptr) {
    std::string l(line.data());
    if (l.rfind("dn: ", 0) == 0) dns.insert(l.substr(4, l.find_last_not_of("\r\n") - 3));
  }
  ::pclose(p);
  return dns;
}

void kill_mid_batch(std::size_t transaction_size) {
  TempDir dir("writer_kill");
  SlapdProcess::Options so;
  so.profile = "ad";
  SlapdProcess slapd(dir.path() / "slapd", so);
  Connection c = connect(service(slapd.info()));
  const std::string base = "ou=Killed," + slapd.info().base;
  ASSERT_TRUE(c.add(container(base, "Killed")));
  const int n = 40000;
  const auto ops = adds(base, n);
  // Killed once the server has acknowledged some of the batch: a watcher reads the entry count.
  std::atomic<bool> done{false};
  // SIGPIPE is not ignored in this process: the writer must not die of its broken connection.
  std::thread killer([&] {
    {
      Connection watch = connect(service(slapd.info()));  // closed before the kill
      while (!done && !read(watch, "cn=" + cn_of(2000) + "," + base)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    ::kill(slapd.info().pid, SIGKILL);
  });
  Writer w(c);
  WriteOptions o;
  o.in_flight = 64;
  o.transaction_size = transaction_size;
  auto out = w.write(ops, o);
  done = true;
  killer.join();
  ASSERT_TRUE(out) << out.error().describe();
  ASSERT_EQ(out->results.size(), static_cast<std::size_t>(n));
  std::size_t reported_done = 0, not_done = 0;
  for (const auto& r : out->results) {
    if (r) {
      ++reported_done;
      continue;
    }
    ++not_done;
    EXPECT_TRUE(r.error().code == ErrorCode::kUnavailable || r.error().code == ErrorCode::kTimeout)
        << r.error().describe();
    EXPECT_TRUE(r.error().transient()) << r.error().describe();
  }
  EXPECT_GT(reported_done, 0u);
  EXPECT_GT(not_done, 0u);
  const std::string& sample = out->results.back().error().message;
  EXPECT_TRUE(contains(sample, "the connection broke")) << sample;
  // Whatever was reported done is in the database (slapd had no time to lose it: dbnosync
  // leaves written pages to the kernel, which keeps them when only the process dies).
  const auto stored = slapcat_dns(slapd.info());
  std::size_t missing = 0;
  for (std::size_t i = 0; i < out->results.size(); ++i) {
    if (out->results[i] && !stored.contains(target_dn(ops[i]))) ++missing;
  }
  EXPECT_EQ(missing, 0u) << "operations reported done but not in the database";
  // And a write after it reports every operation as not done, at once.
  auto after = w.write(adds(base, 3), WriteOptions{});
  ASSERT_TRUE(after);
  EXPECT_EQ(after->succeeded(), 0u);
  EXPECT_EQ(after->results[0].error().code, ErrorCode::kUnavailable) << after->results[0].error().describe();
}

TEST(WriterKill, SlapdKilledMidBatchReportsUnacknowledgedOperationsAsNotDone) { kill_mid_batch(0); }

TEST(WriterKill, SlapdKilledMidTransactionsReportsUncommittedOperationsAsNotDone) { kill_mid_batch(500); }

TEST(WriterKill, ASlapdThatStopsAnsweringTimesOutAndNothingUnansweredIsDone) {
  TempDir dir("writer_stop");
  SlapdProcess::Options so;
  so.profile = "ad";
  SlapdProcess slapd(dir.path() / "slapd", so);
  Options opts = service(slapd.info());
  opts.timeouts.operation = std::chrono::milliseconds(1500);
  Connection c = connect(std::move(opts));
  const std::string base = "ou=Stopped," + slapd.info().base;
  ASSERT_TRUE(c.add(container(base, "Stopped")));
  const auto ops = adds(base, 40000);
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ::kill(slapd.info().pid, SIGSTOP);
  });
  Writer w(c);
  WriteOptions o;
  o.in_flight = 64;
  auto out = w.write(ops, o);
  stopper.join();
  ::kill(slapd.info().pid, SIGCONT);
  ASSERT_TRUE(out) << out.error().describe();
  std::size_t timed_out = 0;
  for (const auto& r : out->results) {
    if (r) continue;
    ++timed_out;
    EXPECT_EQ(r.error().code, ErrorCode::kTimeout) << r.error().describe();
    EXPECT_TRUE(r.error().transient());
  }
  EXPECT_GT(timed_out, 0u);
  EXPECT_TRUE(contains(out->results.back().error().message, "no answer within 1.5 s"))
      << out->results.back().error().describe();
}

}  // namespace
}  // namespace bridgehead::directory::ldap
