#include "directory/sync/state_store.hpp"

#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "temp_dir.hpp"

namespace bridgehead::directory::sync {
namespace {

namespace fs = std::filesystem;
using test_support::TempDir;

const std::string kGuid("\x00\xd1\xb7\xc6\xa5\x3f\x2e\x4d\x1c\x9b\x8a\x01\x23\x45\x67\xff", 16);

ObjectRecord object(const std::string& direction, const std::string& key, int attributes = 10) {
  ObjectRecord r;
  r.direction = direction;
  r.key = key;
  r.source_dn = fmt::format("cn={},ou=Sales,o=Acme", key);
  r.target_dn = fmt::format("cn={},ou=Notes,dc=acme,dc=example", key);
  r.written.add("objectClass", "top");
  r.written.add("objectClass", "contact");
  r.written.add("objectGUID", kGuid);
  for (int i = 3; i < attributes; ++i)
    r.written.add(fmt::format("extensionAttribute{}", i), fmt::format("{} value {}", key, i));
  r.hash = fmt::format("{:064x}", std::hash<std::string>{}(key));
  return r;
}

Recipient recipient(const std::string& id, const std::string& system) {
  Recipient r;
  r.id = id;
  r.system = system;
  r.kind = RecipientKind::kContact;
  r.display_name = "Jürgen Groß";
  // Kinds interleaved: the order must survive, the first SMTP form is the primary.
  r.forms = {{FormKind::kSmtp, id + "@acme.example"},
             {FormKind::kNotesAbbreviated, "Jürgen Groß/Sales/Acme"},
             {FormKind::kSmtp, id + ".alt@acme.example"},
             {FormKind::kX500, "/o=Acme/ou=Exchange/cn=Recipients/cn=" + id}};
  r.routing_address = id + "@notes.acme.example";
  r.hidden = true;
  return r;
}

SourceRecord source(const std::string& directory, const std::string& key, bool with_recipient = true) {
  SourceRecord s;
  s.directory = directory;
  s.key = key;
  s.dn = fmt::format("cn={},o=Acme", key);
  s.uuid = "uuid-" + key;
  if (with_recipient) s.recipient = recipient(key, directory);
  return s;
}

Operation operation(OpKind kind, const std::string& direction, const std::string& key) {
  Operation op;
  op.kind = kind;
  op.direction = direction;
  op.key = key;
  op.after = object(direction, key);
  op.dn = op.after.target_dn;
  return op;
}

// A deletion's `after` carries only its direction and key.
Operation deletion(const std::string& direction, const std::string& key) {
  Operation op = operation(OpKind::kDelete, direction, key);
  op.after = ObjectRecord{};
  op.after.direction = direction;
  op.after.key = key;
  return op;
}

Operation addition(const std::string& direction, const std::string& key) {
  Operation op = operation(OpKind::kAdd, direction, key);
  op.entry = op.after.written;
  op.entry.set_dn(op.dn);
  return op;
}

StateStore open_ok(const fs::path& file) {
  auto store = StateStore::open(file);
  if (!store) throw std::runtime_error(store.error().describe());
  return std::move(*store);
}

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A database made by SQLite itself, to stand for files Bridgehead did not write.
void make_sqlite_file(const fs::path& file, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
}

TEST(StateStore, ObjectsRoundTripPerDirectionWithBinaryValues) {
  TempDir dir;
  const fs::path file = dir.path() / "dirsync.sqlite";
  {
    StateStore store = open_ok(file);
    Batch b;
    for (int i = 0; i < 5; ++i) b.put_objects.push_back(object("notes->exchange", fmt::format("k{}", i)));
    b.put_objects.push_back(object("exchange->notes", "k0"));
    b.put_objects.back().hidden_since_ms = 1764806400123;
    b.put_objects.back().written.set_dn("cn=kept,o=Acme");  // not stored by the engine, but kept
    ASSERT_TRUE(store.commit(b));
  }
  StateStore store = open_ok(file);  // and it survives a reopen
  auto all = store.objects("notes->exchange");
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_EQ(all->size(), 5u);
  for (int i = 0; i < 5; ++i) {
    const std::string key = fmt::format("k{}", i);
    ASSERT_TRUE(all->count(key));
    EXPECT_EQ(all->at(key), object("notes->exchange", key));
  }
  auto other = store.object("exchange->notes", "k0");
  ASSERT_TRUE(other && *other);
  EXPECT_EQ((*other)->hidden_since_ms, 1764806400123);
  EXPECT_EQ((*other)->written.dn(), "cn=kept,o=Acme");
  EXPECT_EQ(*(*other)->written.find("objectGUID"), std::vector<std::string>{kGuid});
  EXPECT_EQ(store.object_count("notes->exchange").value(), 5u);
  EXPECT_EQ(store.object_count("nowhere").value(), 0u);
  EXPECT_EQ(store.object("notes->exchange", "missing").value(), std::nullopt);

  // A put of a known key replaces it; erase forgets it, in its direction only.
  Batch b;
  ObjectRecord changed = object("notes->exchange", "k1", 4);
  changed.target_dn = "cn=renamed,ou=Notes,dc=acme,dc=example";
  b.put_objects.push_back(changed);
  b.erase_objects.emplace_back("notes->exchange", "k0");
  ASSERT_TRUE(store.commit(b));
  EXPECT_EQ(store.object("notes->exchange", "k1").value(), changed);
  EXPECT_EQ(store.object("notes->exchange", "k0").value(), std::nullopt);
  EXPECT_TRUE(store.object("exchange->notes", "k0").value().has_value());
  EXPECT_EQ(store.object_count("notes->exchange").value(), 4u);
}

TEST(StateStore, SourcesAndRecipientsRoundTrip) {
  TempDir dir;
  StateStore store = open_ok(dir.path() / "dirsync.sqlite");
  Batch b;
  b.put_sources = {source("notes", "n1"), source("notes", "n2", false), source("exchange", "e1")};
  b.put_sources[2].uuid = "";  // AD: the key is the objectGUID, no entryUUID besides
  b.put_sources[2].recipient->display_name = std::string("bin\xff\xfe", 5);  // survives, though not UTF-8
  ASSERT_TRUE(store.commit(b));

  std::vector<SourceRecord> notes;
  ASSERT_TRUE(store.for_each_source("notes", [&](const SourceRecord& s) { notes.push_back(s); }));
  std::sort(notes.begin(), notes.end(), [](const auto& a, const auto& c) { return a.key < c.key; });
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_EQ(notes[0], b.put_sources[0]);
  EXPECT_EQ(notes[1], b.put_sources[1]);
  EXPECT_EQ(store.source("exchange", "e1").value(), b.put_sources[2]);
  EXPECT_EQ(store.source_by_uuid("notes", "uuid-n2").value(), b.put_sources[1]);
  EXPECT_EQ(store.source_by_uuid("exchange", "").value(), std::nullopt);  // no uuid matches nothing
  EXPECT_EQ(store.source_count("notes").value(), 2u);
  std::vector<std::pair<std::string, std::string>> keys;
  ASSERT_TRUE(
      store.for_each_source_key("notes", [&](std::string_view k, std::string_view u) { keys.emplace_back(k, u); }));
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::pair<std::string, std::string>>{{"n1", "uuid-n1"}, {"n2", "uuid-n2"}}));

  std::vector<Recipient> recipients;
  ASSERT_TRUE(store.for_each_recipient([&](const Recipient& r) { recipients.push_back(r); }));
  std::sort(recipients.begin(), recipients.end(), [](const auto& a, const auto& c) { return a.id < c.id; });
  ASSERT_EQ(recipients.size(), 2u);  // n2 is no recipient
  EXPECT_EQ(recipients[0], *b.put_sources[2].recipient);
  EXPECT_EQ(recipients[1], *b.put_sources[0].recipient);

  Batch erase;
  erase.erase_sources.emplace_back("notes", "n1");
  ASSERT_TRUE(store.commit(erase));
  EXPECT_EQ(store.source("notes", "n1").value(), std::nullopt);
  EXPECT_EQ(store.source_count("notes").value(), 1u);
}

TEST(StateStore, CookiesAreBinaryAndAnEmptyOneForgets) {
  TempDir dir;
  StateStore store = open_ok(dir.path() / "dirsync.sqlite");
  EXPECT_EQ(store.cookie("notes").value(), std::nullopt);
  const std::string cookie("rid=001,csn=\x00\xff\x01", 15);
  Batch b;
  b.cookies = {{"notes", cookie}, {"exchange", "usn:12345"}};
  ASSERT_TRUE(store.commit(b));
  EXPECT_EQ(store.cookie("notes").value(), cookie);
  EXPECT_EQ(store.cookie("exchange").value(), "usn:12345");
  Batch forget;
  forget.cookies = {{"notes", ""}};
  ASSERT_TRUE(store.commit(forget));
  EXPECT_EQ(store.cookie("notes").value(), std::nullopt);
  EXPECT_EQ(store.cookie("exchange").value(), "usn:12345");
}

TEST(StateStore, AFailureMidBatchCommitsNothingOfIt) {
  TempDir dir;
  StateStore store = open_ok(dir.path() / "dirsync.sqlite");
  Batch first;
  first.put_objects.push_back(object("notes->exchange", "kept"));
  first.cookies = {{"notes", "cookie-1"}};
  ASSERT_TRUE(store.commit(first));

  // Writes of every kind, then a record without its key: the CHECK refuses it mid-batch.
  Batch bad;
  bad.put_objects.push_back(object("notes->exchange", "new"));
  bad.put_objects.push_back(object("notes->exchange", ""));
  bad.erase_objects.emplace_back("notes->exchange", "kept");
  bad.put_sources.push_back(source("notes", "s1"));
  bad.cookies = {{"notes", "cookie-2"}};
  auto r = store.commit(bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("dirsync.sqlite"), std::string::npos) << r.error().message;

  EXPECT_EQ(store.object("notes->exchange", "new").value(), std::nullopt);
  EXPECT_TRUE(store.object("notes->exchange", "kept").value().has_value());
  EXPECT_EQ(store.source_count("notes").value(), 0u);
  EXPECT_EQ(store.cookie("notes").value(), "cookie-1");

  // The failed batch left no transaction open: the next one commits.
  Batch next;
  next.cookies = {{"notes", "cookie-3"}};
  ASSERT_TRUE(store.commit(next));
  EXPECT_EQ(store.cookie("notes").value(), "cookie-3");

  // The same when the bad record comes last, after the cookie would have been written.
  Batch late;
  late.cookies = {{"notes", "cookie-4"}};
  late.put_sources.push_back(source("", "orphan"));
  ASSERT_FALSE(store.commit(late));
  EXPECT_EQ(store.cookie("notes").value(), "cookie-3");
}

// Batch n of the crash test: ten new objects, the "latest" object rewritten, the first object
// of batch n-1 erased, one source, and the cookie n, all in one commit.
Batch crash_batch(int n) {
  Batch b;
  for (int i = 0; i < 10; ++i) b.put_objects.push_back(object("notes->exchange", fmt::format("b{}-{}", n, i)));
  ObjectRecord latest = object("notes->exchange", "latest");
  latest.source_dn = fmt::format("batch {}", n);
  b.put_objects.push_back(latest);
  if (n > 1) b.erase_objects.emplace_back("notes->exchange", fmt::format("b{}-0", n - 1));
  b.put_sources.push_back(source("notes", fmt::format("s{}", n)));
  b.cookies = {{"notes", std::to_string(n)}};
  return b;
}

// Whether the state is exactly batches 1..n: every object, erase and source of each, nothing else.
void expect_exactly_batches(StateStore& store, int n) {
  auto objects = store.objects("notes->exchange");
  ASSERT_TRUE(objects) << objects.error().message;
  std::size_t expected = n == 0 ? 0 : static_cast<std::size_t>(9 * n + 2);  // +b{n}-0, +latest
  EXPECT_EQ(objects->size(), expected) << "after batch " << n;
  for (int m = 1; m <= n; ++m) {
    for (int i = m == n ? 0 : 1; i < 10; ++i) {
      const std::string key = fmt::format("b{}-{}", m, i);
      const auto it = objects->find(key);
      ASSERT_NE(it, objects->end()) << key << " missing after batch " << n;
      EXPECT_EQ(it->second, object("notes->exchange", key));
    }
  }
  if (n > 0) {
    ASSERT_TRUE(objects->count("latest"));
    EXPECT_EQ(objects->at("latest").source_dn, fmt::format("batch {}", n));
  }
  EXPECT_EQ(store.source_count("notes").value(), static_cast<std::size_t>(n));
}

// A real crash: a child commits batches as fast as it can and is killed with SIGKILL at a
// random moment, mid-commit or between commits. The cookie it left must name exactly the
// batches whose state is there.
TEST(StateStore, KillNineLeavesEveryCommittedBatchWholeAndNothingOfTheNext) {
  TempDir dir;
  std::random_device seed_source;
  const unsigned seed = seed_source();
  std::mt19937 rng(seed);
  SCOPED_TRACE(fmt::format("seed {}", seed));
  int max_seen = 0;
  for (int round = 0; round < 4; ++round) {
    const fs::path file = dir.path() / fmt::format("dirsync-{}.sqlite", round);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto store = StateStore::open(file);
      if (!store) ::_exit(2);
      for (int n = 1;; ++n) {
        if (!store->commit(crash_batch(n))) ::_exit(3);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(50, 600)(rng)));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child stopped by itself, exit " << WEXITSTATUS(status);

    StateStore store = open_ok(file);
    const auto cookie = store.cookie("notes").value();
    const int n = cookie ? std::stoi(*cookie) : 0;
    max_seen = std::max(max_seen, n);
    expect_exactly_batches(store, n);
    // And the store goes on from there.
    ASSERT_TRUE(store.commit(crash_batch(n + 1)));
    expect_exactly_batches(store, n + 1);
  }
  EXPECT_GT(max_seen, 0) << "no round committed a batch before the kill: the test proved little";
}

TEST(StateStore, ASecondOpenIsRefusedAtOnceAlsoFromAnotherProcess) {
  TempDir dir;
  const fs::path file = dir.path() / "dirsync.sqlite";
  StateStore first = open_ok(file);
  const auto started = std::chrono::steady_clock::now();
  auto second = StateStore::open(file);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(second.error().message, file.string() + " is in use by another bridgehead process");
  EXPECT_FALSE(second.error().remedy.empty());
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(1));

  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto other = StateStore::open(file);
    ::_exit(!other && other.error().code == ErrorCode::kUnavailable ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "another process opened the file while it was in use";

  // The refused opens changed nothing: the first still writes.
  Batch b;
  b.cookies = {{"notes", "c"}};
  EXPECT_TRUE(first.commit(b));
}

TEST(StateStore, TheFileIsCreatedWithMode0600AndReleasedOnClose) {
  TempDir dir;
  const fs::path file = dir.path() / "dirsync.sqlite";
  {
    StateStore store = open_ok(file);
    Batch b;
    b.put_objects.push_back(object("notes->exchange", "k"));
    ASSERT_TRUE(store.commit(b));
    EXPECT_EQ(mode_of(file), 0600u);
    const fs::path wal = file.string() + "-wal";
    ASSERT_TRUE(fs::exists(wal)) << "not in WAL mode";
    EXPECT_EQ(mode_of(wal), 0600u);
    EXPECT_FALSE(fs::exists(file.string() + "-shm"));  // exclusive: no shared memory
  }
  StateStore again = open_ok(file);  // closed: open again
  EXPECT_EQ(again.object_count("notes->exchange").value(), 1u);
}

TEST(StateStore, ANewerSchemaIsRefusedNamingTheFileAndBothVersions) {
  TempDir dir;
  const fs::path file = dir.path() / "dirsync.sqlite";
  { StateStore store = open_ok(file); }
  make_sqlite_file(file, "PRAGMA user_version = 7");
  auto r = StateStore::open(file);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kConfig);
  EXPECT_EQ(r.error().message, file.string() + " has state schema version 7; this bridgehead knows versions up to 1");
  EXPECT_FALSE(r.error().remedy.empty());
}

TEST(StateStore, AFileThatIsNotAStateFileIsCorrupt) {
  TempDir dir;
  struct Case {
    std::string name;
    std::function<void(const fs::path&)> make;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"garbage",
       [](const fs::path& f) {
         std::ofstream out(f, std::ios::binary);
         for (int i = 0; i < 512; ++i) out << "not a database ";
       },
       "not a database"},
      {"another program's database", [](const fs::path& f) { make_sqlite_file(f, "CREATE TABLE mail(x)"); },
       "not a bridgehead state file (tables mail)"},
      {"our version without our tables",
       [](const fs::path& f) { make_sqlite_file(f, "PRAGMA user_version = 1; CREATE TABLE objects(x)"); },
       "lacks the table sources"},
  };
  for (const auto& c : cases) {
    const fs::path file = dir.path() / (c.name + ".sqlite");
    c.make(file);
    const std::string before = slurp(file);
    auto r = StateStore::open(file);
    ASSERT_FALSE(r) << c.name;
    EXPECT_EQ(r.error().code, ErrorCode::kCorrupt) << c.name << ": " << r.error().message;
    EXPECT_NE(r.error().message.find(file.string()), std::string::npos) << c.name << ": " << r.error().message;
    EXPECT_NE(r.error().message.find(c.says), std::string::npos) << c.name << ": " << r.error().message;
    EXPECT_FALSE(r.error().remedy.empty());
    // Refused without a change: another program's file is not switched to WAL or written.
    EXPECT_EQ(slurp(file), before) << c.name;
    EXPECT_FALSE(fs::exists(file.string() + "-wal")) << c.name;
  }
  // An empty file (a crash before the first open finished) is initialized.
  const fs::path empty = dir.path() / "empty.sqlite";
  std::ofstream{empty};
  EXPECT_TRUE(StateStore::open(empty));
}

TEST(StateStore, ARunLeftRunningIsMarkedFailedByTheNextOpen) {
  TempDir dir;
  const fs::path file = dir.path() / "dirsync.sqlite";
  std::int64_t finished = 0, interrupted = 0;
  {
    StateStore store = open_ok(file);
    finished = store.begin_run(RunKind::kFull, "notes->exchange", 1000).value();
    RunRecord done_run = store.run(finished).value().value();
    done_run.status = RunStatus::kOk;
    done_run.finished_ms = 2000;
    ASSERT_TRUE(store.finish_run(done_run));
    interrupted = store.begin_run(RunKind::kIncremental, "notes->exchange", 3000).value();
    EXPECT_EQ(store.run(interrupted).value()->status, RunStatus::kRunning);
  }
  StateStore store = open_ok(file);
  const RunRecord r = store.run(interrupted).value().value();
  EXPECT_EQ(r.status, RunStatus::kFailed);
  EXPECT_EQ(r.error, "interrupted: the connector stopped mid-run");
  EXPECT_EQ(r.kind, RunKind::kIncremental);
  EXPECT_EQ(r.started_ms, 3000);
  EXPECT_EQ(store.run(finished).value()->status, RunStatus::kOk);
}

TEST(StateStore, ARunRoundTripsAndLastRunsAreNewestFirst) {
  TempDir dir;
  StateStore store = open_ok(dir.path() / "dirsync.sqlite");
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 5; ++i) {
    // Started times out of order: the order is the order of begin_run, not of the clock.
    ids.push_back(store.begin_run(RunKind::kIncremental, "notes->exchange, exchange->notes", 5000 - i).value());
  }
  EXPECT_EQ(ids, (std::vector<std::int64_t>{1, 2, 3, 4, 5}));

  RunRecord r;
  r.id = 3;
  r.kind = RunKind::kIncremental;
  r.status = RunStatus::kPartial;
  r.directions = "notes->exchange, exchange->notes";
  r.started_ms = 4998;
  r.finished_ms = 9000;
  r.counts.read = 40000;
  r.counts.adds = 1;
  r.counts.updates = 2;
  r.counts.renames = 3;
  r.counts.deletes = 4;
  r.counts.hides = 5;
  r.counts.adoptions = 6;
  r.counts.unchanged = 7;
  r.counts.conflicts = 8;
  r.counts.out_of_scope = 9;
  r.counts.errors = 10;
  r.counts.held = 11;
  r.error = "";
  r.problems = {{"notes->exchange", "k1", "cn=a,o=Acme", "duplicate-proxy", "smtp:a@acme.example is taken"},
                {"exchange->notes", "k2", "cn=b,dc=acme", "write", "insufficient access"}};
  r.problem_count = 2;
  r.preview_id = 0;
  ASSERT_TRUE(store.finish_run(r));
  EXPECT_EQ(store.run(3).value(), r);
  EXPECT_EQ(store.run(99).value(), std::nullopt);

  auto last = store.last_runs(3).value();
  ASSERT_EQ(last.size(), 3u);
  EXPECT_EQ(last[0].id, 5);
  EXPECT_EQ(last[1].id, 4);
  EXPECT_EQ(last[2], r);
  EXPECT_EQ(store.last_runs(10).value().size(), 5u);
  EXPECT_TRUE(store.last_runs(0).value().empty());

  RunRecord unknown = r;
  unknown.id = 42;
  auto missing = store.finish_run(unknown);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

TEST(StateStore, ProblemsAreCappedAndTheirCountStaysExact) {
  TempDir dir;
  StateStore store = open_ok(dir.path() / "dirsync.sqlite");
  RunRecord r = store.run(store.begin_run(RunKind::kFull, "notes->exchange", 1).value()).value().value();
  r.status = RunStatus::kPartial;
  for (std::size_t i = 0; i < kMaxStoredProblems + 500; ++i) {
    r.problems.push_back({"notes->exchange", fmt::format("k{}", i), "cn=x", "too-long", "value too long"});
  }
  r.problem_count = r.problems.size();
  ASSERT_TRUE(store.finish_run(r));
  const RunRecord back = store.run(r.id).value().value();
  EXPECT_EQ(back.problem_count, kMaxStoredProblems + 500);
  ASSERT_EQ(back.problems.size(), kMaxStoredProblems);
  EXPECT_EQ(back.problems.front().key, "k0");
  EXPECT_EQ(back.problems.back().key, fmt::format("k{}", kMaxStoredProblems - 1));

  // Finishing again replaces the problems; the count is never below what is listed.
  r.problems.resize(3);
  r.problem_count = 0;
  ASSERT_TRUE(store.finish_run(r));
  EXPECT_EQ(store.run(r.id).value()->problems.size(), 3u);
  EXPECT_EQ(store.run(r.id).value()->problem_count, 3u);
}

TEST(StateStore, HeldDeletionsWaitForApproval) {
  TempDir dir;
  const fs::path file = dir.path() / "dirsync.sqlite";
  std::int64_t run = 0;
  std::vector<Operation> all;
  {
    StateStore store = open_ok(file);
    run = store.begin_run(RunKind::kFull, "notes->exchange, exchange->notes", 1).value();
    const std::int64_t quiet = store.begin_run(RunKind::kFull, "notes->exchange", 2).value();
    const std::vector<Operation> one = {deletion("notes->exchange", "a"), deletion("notes->exchange", "b")};
    const std::vector<Operation> two = {deletion("exchange->notes", "c")};
    ASSERT_TRUE(store.hold(run, one));
    ASSERT_TRUE(store.hold(run, two));  // a second direction appends
    all = one;
    all.insert(all.end(), two.begin(), two.end());
    EXPECT_EQ(store.held(run).value(), all);
    EXPECT_TRUE(store.held(quiet).value().empty());
    EXPECT_TRUE(store.approved_keys().value().empty());

    auto none = store.approve(quiet);
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code, ErrorCode::kNotFound);
    EXPECT_NE(none.error().message.find(fmt::format("run {}", quiet)), std::string::npos);
    auto unknown = store.hold(77, one);
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
  }
  StateStore store = open_ok(file);  // held deletions survive a restart
  EXPECT_EQ(store.held(run).value(), all);
  ASSERT_TRUE(store.approve(run));
  const auto approved = store.approved_keys().value();
  ASSERT_EQ(approved.size(), 2u);
  EXPECT_EQ(approved.at("notes->exchange"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(approved.at("exchange->notes"), (std::vector<std::string>{"c"}));

  ASSERT_TRUE(store.clear_held(run));
  EXPECT_TRUE(store.held(run).value().empty());
  EXPECT_TRUE(store.approved_keys().value().empty());
  EXPECT_FALSE(store.approve(run));
}

TEST(StateStore, APreviewIsStoredExactlyAndAppliedOnce) {
  TempDir dir;
  const fs::path file = dir.path() / "dirsync.sqlite";
  std::int64_t id = 0, apply = 0;
  const std::vector<Operation> ops = {addition("notes->exchange", "a"), deletion("notes->exchange", "b")};
  {
    StateStore store = open_ok(file);
    const std::int64_t run = store.begin_run(RunKind::kPreview, "notes->exchange", 1).value();
    id = store.save_preview(run, ops).value();
    const std::int64_t empty = store.save_preview(run, {}).value();
    EXPECT_NE(id, empty);
    EXPECT_TRUE(store.preview(empty).value().empty());
    EXPECT_EQ(store.preview_applied_by(id).value(), std::nullopt);
  }
  StateStore store = open_ok(file);
  EXPECT_EQ(store.preview(id).value(), ops);
  apply = store.begin_run(RunKind::kApply, "notes->exchange", 2).value();
  ASSERT_TRUE(store.mark_preview_applied(id, apply));
  EXPECT_EQ(store.preview_applied_by(id).value(), apply);

  auto twice = store.mark_preview_applied(id, apply);
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(twice.error().message, fmt::format("preview {} was already applied by run {}", id, apply));
  EXPECT_FALSE(twice.error().remedy.empty());

  for (auto r : {store.preview(999).error(), store.preview_applied_by(999).error(),
                 store.mark_preview_applied(999, apply).error()}) {
    EXPECT_EQ(r.code, ErrorCode::kNotFound);
    EXPECT_EQ(r.message, "there is no preview 999");
  }
  EXPECT_EQ(store.save_preview(999, ops).error().code, ErrorCode::kNotFound);
}

// A full disk, for real: the child's file size limit (RLIMIT_FSIZE) makes the WAL write fail
// mid-commit, as ENOSPC would.
TEST(StateStore, ADiskFullCommitFailsTransientAndLeavesThePreviousState) {
  TempDir dir;
  const fs::path file = dir.path() / "dirsync.sqlite";
  {
    StateStore store = open_ok(file);
    Batch b;
    b.put_objects.push_back(object("notes->exchange", "before"));
    b.cookies = {{"notes", "before"}};
    ASSERT_TRUE(store.commit(b));
  }
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{256 * 1024, 256 * 1024};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(10);
    auto store = StateStore::open(file);
    if (!store) ::_exit(11);
    Batch big;
    for (int i = 0; i < 2000; ++i) {
      big.put_objects.push_back(object("notes->exchange", fmt::format("big{}", i)));
      big.put_objects.back().written.add("info", std::string(1000, 'x'));
    }
    big.cookies = {{"notes", "after"}};
    auto r = store->commit(big);
    if (r) ::_exit(12);
    if (r.error().code != ErrorCode::kDiskFull) ::_exit(13);
    if (!r.error().transient()) ::_exit(14);
    // Still usable: a batch that fits commits.
    Batch small;
    small.cookies = {{"exchange", "fits"}};
    ::_exit(store->commit(small) ? 0 : 15);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "10 rlimit, 11 open, 12 committed, 13 not kDiskFull, 14 permanent, 15 next commit";

  StateStore store = open_ok(file);
  EXPECT_EQ(store.cookie("notes").value(), "before");
  EXPECT_EQ(store.cookie("exchange").value(), "fits");
  EXPECT_EQ(store.object_count("notes->exchange").value(), 1u);
}

}  // namespace
}  // namespace bridgehead::directory::sync
