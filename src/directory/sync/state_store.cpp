#include "directory/sync/state_store.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <type_traits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/duration.hpp"

namespace bridgehead::directory::sync {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kSchemaVersion = 1;
constexpr std::string_view kInterrupted = "interrupted: the connector stopped mid-run";
constexpr std::string_view kStartOver =
    "move the file away (the next run is then a full one and rebuilds it), or restore it from a backup";

// WITHOUT ROWID for the two big tables: rows are stored in primary key order, so reading one
// direction's objects or one directory's sources is a range scan of one b-tree. The CHECKs
// keep a record without its key out: a batch holding one fails whole.
constexpr std::string_view kSchema = R"sql(
CREATE TABLE objects(
  direction TEXT NOT NULL CHECK(direction <> ''), key TEXT NOT NULL CHECK(key <> ''),
  source_dn TEXT NOT NULL, target_dn TEXT NOT NULL, written BLOB NOT NULL, hash TEXT NOT NULL,
  hidden_since_ms INTEGER NOT NULL, PRIMARY KEY(direction, key)) WITHOUT ROWID;
CREATE TABLE sources(
  directory TEXT NOT NULL CHECK(directory <> ''), key TEXT NOT NULL CHECK(key <> ''),
  dn TEXT NOT NULL, uuid TEXT NOT NULL, recipient TEXT, PRIMARY KEY(directory, key)) WITHOUT ROWID;
CREATE INDEX sources_uuid ON sources(directory, uuid) WHERE uuid <> '';
CREATE TABLE cookies(directory TEXT PRIMARY KEY NOT NULL, cookie BLOB NOT NULL);
CREATE TABLE runs(
  id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, status TEXT NOT NULL, directions TEXT NOT NULL,
  started INTEGER NOT NULL, finished INTEGER NOT NULL, counts TEXT NOT NULL, error TEXT NOT NULL,
  problem_count INTEGER NOT NULL, preview_id INTEGER NOT NULL);
CREATE TABLE run_problems(
  run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, seq INTEGER NOT NULL, direction TEXT NOT NULL,
  key TEXT NOT NULL, dn TEXT NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL, PRIMARY KEY(run, seq));
CREATE TABLE held(
  run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, seq INTEGER NOT NULL, direction TEXT NOT NULL,
  key TEXT NOT NULL, op TEXT NOT NULL, approved INTEGER NOT NULL, PRIMARY KEY(run, seq));
CREATE TABLE previews(
  id INTEGER PRIMARY KEY AUTOINCREMENT, run INTEGER NOT NULL REFERENCES runs(id), created INTEGER NOT NULL,
  applied_by INTEGER REFERENCES runs(id));
CREATE TABLE preview_ops(
  preview INTEGER NOT NULL REFERENCES previews(id) ON DELETE CASCADE, seq INTEGER NOT NULL, op TEXT NOT NULL,
  PRIMARY KEY(preview, seq));
)sql";
constexpr std::array kTables = {"objects",      "sources", "cookies",  "runs",
                                "run_problems", "held",    "previews", "preview_ops"};

Error sqlite_error(sqlite3* db, int rc, const fs::path& file, std::string_view doing) {
  const std::string what = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const std::string message = fmt::format("{}: {}: {}", file.string(), doing, what);
  const int system_errno = db != nullptr ? sqlite3_system_errno(db) : 0;
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return Error::transient_error(ErrorCode::kDiskFull, message,
                                    "free disk space; the next run resumes from the last committed batch");
    case SQLITE_IOERR:
      if (system_errno != 0) return Error::from_errno(system_errno, message);
      return Error::transient_error(ErrorCode::kIo, message,
                                    "check the disk; the next run resumes from the last committed batch");
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Error::transient_error(ErrorCode::kUnavailable,
                                    fmt::format("{} is in use by another bridgehead process", file.string()),
                                    "stop the other process (the daemon or a dirsync command) or wait for it to end");
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Error::permanent(ErrorCode::kCorrupt, message, std::string(kStartOver));
    case SQLITE_CONSTRAINT:
      return Error::permanent(ErrorCode::kInvalidArgument, message,
                              "a record without its key or name was given: a bug");
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
    case SQLITE_AUTH:
      return Error::permanent(ErrorCode::kPermission, message,
                              "check the owner and mode of the file and its directory");
    case SQLITE_NOMEM:
      return Error::transient_error(ErrorCode::kInternal, message);
    default:
      return Error::permanent(ErrorCode::kInternal, message);
  }
}

Error corrupt(const fs::path& file, std::string what) {
  return Error::permanent(ErrorCode::kCorrupt, fmt::format("{}: {}", file.string(), what), std::string(kStartOver));
}

// One prepared statement, kept for the life of the store.
class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(s_); }
  sqlite3_stmt** out() { return &s_; }
  sqlite3_stmt* get() const { return s_; }

 private:
  sqlite3_stmt* s_ = nullptr;
};

// One use of a statement: binds, steps, reads; resets it at scope exit, so the next use finds
// it ready and no read lock outlives the use.
class Use {
 public:
  explicit Use(const Statement& s) : s_(s.get()) {}
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;
  ~Use() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Use& text(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.empty() ? "" : v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Use& blob(int i, std::string_view v) {
    sqlite3_bind_blob(s_, i, v.empty() ? "" : v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Use& integer(int i, std::int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Use& null(int i) {
    sqlite3_bind_null(s_, i);
    return *this;
  }
  /// SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(s_); }
  std::string_view column(int i) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(s_, i));
    const int n = sqlite3_column_bytes(s_, i);
    return p == nullptr ? std::string_view() : std::string_view(p, static_cast<std::size_t>(n));
  }
  std::int64_t column_integer(int i) const { return sqlite3_column_int64(s_, i); }
  bool column_null(int i) const { return sqlite3_column_type(s_, i) == SQLITE_NULL; }

 private:
  sqlite3_stmt* s_;
};

// `written` as a compact blob rather than JSON: objects() decodes 100,000 of them at the start
// of every run. Version octet 1, then u32 little-endian lengths: the DN, the attribute count,
// per attribute its name, value count and values.
void put_u32(std::string& out, std::size_t n) {
  const auto v = static_cast<std::uint32_t>(n);
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

void put_octets(std::string& out, std::string_view s) {
  put_u32(out, s.size());
  out.append(s);
}

std::string encode_entry(const Entry& e) {
  std::size_t size = 9 + e.dn().size();
  for (const auto& a : e.attributes()) {
    size += 8 + a.name.size();
    for (const auto& v : a.values) size += 4 + v.size();
  }
  std::string out;
  out.reserve(size);
  out.push_back('\x01');
  put_octets(out, e.dn());
  put_u32(out, e.attributes().size());
  for (const auto& a : e.attributes()) {
    put_octets(out, a.name);
    put_u32(out, a.values.size());
    for (const auto& v : a.values) put_octets(out, v);
  }
  return out;
}

class BlobReader {
 public:
  explicit BlobReader(std::string_view b) : b_(b) {}
  bool u32(std::size_t& n) {
    if (b_.size() < 4) return false;
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b_[static_cast<std::size_t>(i)]);
    b_.remove_prefix(4);
    n = v;
    return true;
  }
  bool octets(std::string& s) {
    std::size_t n = 0;
    if (!u32(n) || b_.size() < n) return false;
    s.assign(b_.data(), n);
    b_.remove_prefix(n);
    return true;
  }
  bool octet(char& c) {
    if (b_.empty()) return false;
    c = b_.front();
    b_.remove_prefix(1);
    return true;
  }
  bool done() const { return b_.empty(); }

 private:
  std::string_view b_;
};

std::optional<Entry> decode_entry(std::string_view blob) {
  BlobReader r(blob);
  char version = 0;
  std::string dn;
  std::size_t count = 0;
  if (!r.octet(version) || version != '\x01' || !r.octets(dn) || !r.u32(count)) return std::nullopt;
  Entry e(std::move(dn));
  for (std::size_t i = 0; i < count; ++i) {
    std::string name;
    std::size_t values = 0;
    if (!r.octets(name) || !r.u32(values) || values == 0 || name.empty()) return std::nullopt;
    std::vector<std::string> list(values);
    for (auto& v : list) {
      if (!r.octets(v)) return std::nullopt;
    }
    // Entry::add would look the name up once per value; set() once per attribute.
    if (e.has(name)) return std::nullopt;
    e.set(name, std::move(list));
  }
  if (!r.done()) return std::nullopt;
  return e;
}

std::string recipient_to_json(const Recipient& r) {
  json forms = json::array();
  for (const auto& f : r.forms) forms.push_back(json::array({std::string(to_string(f.kind)), octets_to_json(f.value)}));
  json j = json::object();
  j["id"] = octets_to_json(r.id);
  j["system"] = octets_to_json(r.system);
  j["kind"] = std::string(to_string(r.kind));
  j["display_name"] = octets_to_json(r.display_name);
  j["forms"] = std::move(forms);
  j["routing_address"] = octets_to_json(r.routing_address);
  j["hidden"] = r.hidden;
  return j.dump();
}

// nullopt when the JSON is not what recipient_to_json writes.
std::optional<Recipient> recipient_from_json(std::string_view text) {
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  Recipient r;
  for (auto [name, field] :
       {std::pair{"id", &r.id}, std::pair{"system", &r.system}, std::pair{"display_name", &r.display_name},
        std::pair{"routing_address", &r.routing_address}}) {
    const auto it = j.find(name);
    auto v = it == j.end() ? std::nullopt : octets_from_json(*it);
    if (!v) return std::nullopt;
    *field = std::move(*v);
  }
  const auto kind = j.find("kind");
  const auto parsed =
      kind != j.end() && kind->is_string() ? recipient_kind_from_string(kind->get<std::string>()) : std::nullopt;
  const auto hidden = j.find("hidden");
  const auto forms = j.find("forms");
  if (!parsed || hidden == j.end() || !hidden->is_boolean() || forms == j.end() || !forms->is_array()) {
    return std::nullopt;
  }
  r.kind = *parsed;
  r.hidden = hidden->get<bool>();
  for (const auto& f : *forms) {
    if (!f.is_array() || f.size() != 2 || !f[0].is_string()) return std::nullopt;
    const auto form_kind = form_kind_from_string(f[0].get<std::string>());
    auto value = octets_from_json(f[1]);
    if (!form_kind || !value) return std::nullopt;
    r.forms.push_back({*form_kind, std::move(*value)});
  }
  return r;
}

constexpr std::array<std::pair<const char*, std::uint64_t RunCounts::*>, 13> kCountNames = {{
    {"read", &RunCounts::read},
    {"adds", &RunCounts::adds},
    {"updates", &RunCounts::updates},
    {"renames", &RunCounts::renames},
    {"deletes", &RunCounts::deletes},
    {"hides", &RunCounts::hides},
    {"adoptions", &RunCounts::adoptions},
    {"unchanged", &RunCounts::unchanged},
    {"conflicts", &RunCounts::conflicts},
    {"out_of_scope", &RunCounts::out_of_scope},
    {"errors", &RunCounts::errors},
    {"held", &RunCounts::held},
    {"switched_off", &RunCounts::switched_off},
}};

// Indexed by the enums' values: the names are what the file stores.
constexpr std::array<std::string_view, 5> kRunKindNames = {"full", "incremental", "preview", "apply", "approve"};
constexpr std::array<std::string_view, 5> kRunStatusNames = {"running", "ok", "held", "partial", "failed"};

template <typename E, std::size_t N>
std::optional<E> enum_from_string(const std::array<std::string_view, N>& names, std::string_view text) {
  for (std::size_t i = 0; i < N; ++i) {
    if (names[i] == text) return static_cast<E>(i);
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(RunKind k) { return kRunKindNames.at(static_cast<std::size_t>(k)); }

std::string_view to_string(RunStatus s) { return kRunStatusNames.at(static_cast<std::size_t>(s)); }

bool Batch::empty() const {
  return put_objects.empty() && erase_objects.empty() && put_sources.empty() && erase_sources.empty() &&
         cookies.empty();
}

namespace {

// Every statement, prepared once by open() and reused.
struct StatementSet {
  Statement begin, commit, rollback;
  Statement put_object, erase_object, objects, object, object_count;
  Statement object_dns, put_source, erase_source, sources, source_keys, source_dns, source, source_by_uuid,
      source_count, recipients;
  Statement put_cookie, erase_cookie, cookie;
  Statement begin_run, finish_run, run_exists, erase_problems, put_problem, run, last_runs, problems;
  Statement next_held_seq, put_held, held, approve, approved_keys, clear_held;
  Statement put_preview, put_preview_op, preview_applied_by, preview_ops, mark_applied;
};

}  // namespace

struct StateStore::Statements : StatementSet {};

namespace {

constexpr std::string_view kObjectColumns = "key, source_dn, target_dn, written, hash, hidden_since_ms";
constexpr std::string_view kSourceColumns = "key, dn, uuid, recipient";
constexpr std::string_view kRunColumns =
    "id, kind, status, directions, started, finished, counts, error, problem_count, preview_id";

struct Sql {
  Statement StatementSet::*statement;
  std::string text;
};

std::vector<Sql> statement_texts() {
  using S = StatementSet;
  return {
      {&S::begin, "BEGIN IMMEDIATE"},
      {&S::commit, "COMMIT"},
      {&S::rollback, "ROLLBACK"},
      {&S::put_object,
       "INSERT OR REPLACE INTO objects(direction, key, source_dn, target_dn, written, hash, hidden_since_ms) "
       "VALUES(?, ?, ?, ?, ?, ?, ?)"},
      {&S::erase_object, "DELETE FROM objects WHERE direction = ? AND key = ?"},
      {&S::objects, fmt::format("SELECT {} FROM objects WHERE direction = ?", kObjectColumns)},
      {&S::object, fmt::format("SELECT {} FROM objects WHERE direction = ? AND key = ?", kObjectColumns)},
      {&S::object_count, "SELECT count(*) FROM objects WHERE direction = ?"},
      {&S::put_source, "INSERT OR REPLACE INTO sources(directory, key, dn, uuid, recipient) VALUES(?, ?, ?, ?, ?)"},
      {&S::erase_source, "DELETE FROM sources WHERE directory = ? AND key = ?"},
      {&S::sources, fmt::format("SELECT {} FROM sources WHERE directory = ?", kSourceColumns)},
      {&S::source_keys, "SELECT key, uuid FROM sources WHERE directory = ?"},
      {&S::source_dns, "SELECT key, dn FROM sources WHERE directory = ?"},
      {&S::object_dns, "SELECT key, source_dn, target_dn FROM objects WHERE direction = ?"},
      {&S::source, fmt::format("SELECT {} FROM sources WHERE directory = ? AND key = ?", kSourceColumns)},
      {&S::source_by_uuid,
       // INDEXED BY: SQLite 3.40's planner takes the primary key's (directory = ?) range, a scan
       // of the whole directory for each UUID of a present phase (168 s for 24,000 of them).
       fmt::format("SELECT {} FROM sources INDEXED BY sources_uuid WHERE directory = ? AND uuid = ? AND uuid <> ''",
                   kSourceColumns)},
      {&S::source_count, "SELECT count(*) FROM sources WHERE directory = ?"},
      {&S::recipients, "SELECT directory, key, recipient FROM sources WHERE recipient IS NOT NULL"},
      {&S::put_cookie, "INSERT OR REPLACE INTO cookies(directory, cookie) VALUES(?, ?)"},
      {&S::erase_cookie, "DELETE FROM cookies WHERE directory = ?"},
      {&S::cookie, "SELECT cookie FROM cookies WHERE directory = ?"},
      {&S::begin_run,
       "INSERT INTO runs(kind, status, directions, started, finished, counts, error, problem_count, preview_id) "
       "VALUES(?, 'running', ?, ?, 0, '{}', '', 0, 0)"},
      {&S::finish_run,
       "UPDATE runs SET status = ?, finished = ?, counts = ?, error = ?, problem_count = ?, preview_id = ? "
       "WHERE id = ?"},
      {&S::run_exists, "SELECT 1 FROM runs WHERE id = ?"},
      {&S::erase_problems, "DELETE FROM run_problems WHERE run = ?"},
      {&S::put_problem,
       "INSERT INTO run_problems(run, seq, direction, key, dn, kind, message) VALUES(?, ?, ?, ?, ?, ?, ?)"},
      {&S::run, fmt::format("SELECT {} FROM runs WHERE id = ?", kRunColumns)},
      {&S::last_runs, fmt::format("SELECT {} FROM runs ORDER BY id DESC LIMIT ?", kRunColumns)},
      {&S::problems, "SELECT direction, key, dn, kind, message FROM run_problems WHERE run = ? ORDER BY seq"},
      {&S::next_held_seq, "SELECT coalesce(max(seq), 0) + 1 FROM held WHERE run = ?"},
      {&S::put_held, "INSERT INTO held(run, seq, direction, key, op, approved) VALUES(?, ?, ?, ?, ?, 0)"},
      {&S::held, "SELECT op FROM held WHERE run = ? ORDER BY seq"},
      {&S::approve, "UPDATE held SET approved = 1 WHERE run = ?"},
      {&S::approved_keys, "SELECT direction, key FROM held WHERE approved = 1 ORDER BY run, seq"},
      {&S::clear_held, "DELETE FROM held WHERE run = ?"},
      {&S::put_preview, "INSERT INTO previews(run, created, applied_by) VALUES(?, ?, NULL)"},
      {&S::put_preview_op, "INSERT INTO preview_ops(preview, seq, op) VALUES(?, ?, ?)"},
      {&S::preview_applied_by, "SELECT applied_by FROM previews WHERE id = ?"},
      {&S::preview_ops, "SELECT op FROM preview_ops WHERE preview = ? ORDER BY seq"},
      {&S::mark_applied, "UPDATE previews SET applied_by = ? WHERE id = ? AND applied_by IS NULL"},
  };
}

// Runs `sql` (no rows wanted, or rows ignored) on `db`.
int exec(sqlite3* db, std::string_view sql) {
  return sqlite3_exec(db, std::string(sql).c_str(), nullptr, nullptr, nullptr);
}

Expected<std::int64_t> query_integer(sqlite3* db, const fs::path& file, const char* sql) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &s, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_step(s);
  const std::int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
  Error e = rc == SQLITE_ROW ? Error{} : sqlite_error(db, rc, file, sql);
  sqlite3_finalize(s);
  if (rc != SQLITE_ROW) return fail(std::move(e));
  return v;
}

Expected<std::vector<std::string>> table_names(sqlite3* db, const fs::path& file) {
  sqlite3_stmt* s = nullptr;
  std::vector<std::string> out;
  int rc = sqlite3_prepare_v2(db, "SELECT name FROM sqlite_schema WHERE type = 'table'", -1, &s, nullptr);
  while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)));
    rc = SQLITE_OK;
  }
  Error e = rc == SQLITE_DONE ? Error{} : sqlite_error(db, rc, file, "reading the table names");
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) return fail(std::move(e));
  return out;
}

// Whether the open database is ours (false), empty (true: the schema is still to be made), or
// neither (the error says why). Reads only.
Expected<bool> inspect_schema(sqlite3* db, const fs::path& file) {
  auto version = query_integer(db, file, "PRAGMA user_version");
  if (!version) return fail(version.error());
  if (*version > kSchemaVersion) {
    return fail(Error::permanent(
        ErrorCode::kConfig,
        fmt::format("{} has state schema version {}; this bridgehead knows versions up to {}", file.string(), *version,
                    kSchemaVersion),
        "run the bridgehead that wrote it (a newer one), or move the file away to start over with a full run"));
  }
  auto tables = table_names(db, file);
  if (!tables) return fail(tables.error());
  if (*version == 0) {
    if (tables->empty()) return true;
    return fail(corrupt(file, fmt::format("is an SQLite database but not a bridgehead state file (tables {})",
                                          fmt::join(*tables, ", "))));
  }
  for (const char* t : kTables) {
    if (std::find(tables->begin(), tables->end(), t) == tables->end()) {
      return fail(corrupt(file, fmt::format("is not a complete bridgehead state file: it lacks the table {}", t)));
    }
  }
  return false;
}

// Runs the statements of `sql` in one transaction, rolled back whole when one fails.
Expected<void> exec_transaction(sqlite3* db, const fs::path& file, std::string_view doing, std::string_view sql) {
  if (const int rc = exec(db, fmt::format("BEGIN IMMEDIATE; {} COMMIT;", sql)); rc != SQLITE_OK) {
    Error e = sqlite_error(db, rc, file, doing);
    if (!sqlite3_get_autocommit(db)) exec(db, "ROLLBACK");
    return fail(std::move(e));
  }
  return {};
}

}  // namespace

StateStore::StateStore(sqlite3* db, fs::path file)
    : db_(db), file_(std::move(file)), st_(std::make_unique<Statements>()) {}

StateStore::StateStore(StateStore&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), file_(std::move(other.file_)), st_(std::move(other.st_)) {}

StateStore& StateStore::operator=(StateStore&& other) noexcept {
  if (this != &other) {
    st_.reset();
    if (db_ != nullptr) sqlite3_close_v2(db_);
    db_ = std::exchange(other.db_, nullptr);
    file_ = std::move(other.file_);
    st_ = std::move(other.st_);
  }
  return *this;
}

StateStore::~StateStore() {
  st_.reset();  // statements first: a connection with live statements does not close
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

Expected<StateStore> StateStore::open(const fs::path& file) {
  // Created here rather than by SQLite, which would use 0644: the state names every recipient.
  // SQLite gives the -wal file the mode of the database file.
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return fail(Error::from_errno(errno, fmt::format("cannot open or create {}", file.string())));
  ::close(fd);

  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  StateStore store(db, file);  // owns db from here, also when open failed
  if (rc != SQLITE_OK) return fail(sqlite_error(db, rc, file, "cannot open"));
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, 0);

  // locking_mode=EXCLUSIVE, then BEGIN EXCLUSIVE: the connection takes the file's exclusive
  // lock at once and, in this mode, keeps it until it closes, so a second process fails here
  // with SQLITE_BUSY instead of waiting or interleaving its writes (and WAL mode uses no shared
  // memory). The file is looked at under that lock and changed (WAL, schema) only once it is
  // found to be ours or empty: another program's database is left as it was.
  if (rc = exec(db, "PRAGMA locking_mode = EXCLUSIVE"); rc != SQLITE_OK) {
    return fail(sqlite_error(db, rc, file, "setting the locking mode"));
  }
  if (rc = exec(db, "BEGIN EXCLUSIVE"); rc != SQLITE_OK) return fail(sqlite_error(db, rc, file, "locking"));
  auto fresh = inspect_schema(db, file);
  if (rc = exec(db, fresh ? "COMMIT" : "ROLLBACK"); rc != SQLITE_OK && fresh) {
    return fail(sqlite_error(db, rc, file, "reading the schema"));
  }
  if (!fresh) return fail(fresh.error());
  // synchronous=FULL: a commit returns once its WAL frames are fsynced, so a batch whose
  // commit() returned survives a crash or a power loss, with its cookie.
  for (const char* pragma : {"PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON"}) {
    if (rc = exec(db, pragma); rc != SQLITE_OK) return fail(sqlite_error(db, rc, file, pragma));
  }
  // The schema with its version in one transaction: a crash leaves an empty database, which the
  // next open initializes again.
  if (*fresh) {
    const std::string schema = fmt::format("{} PRAGMA user_version = {};", kSchema, kSchemaVersion);
    if (auto ok = exec_transaction(db, file, "creating the schema", schema); !ok) return fail(ok.error());
  }
  for (const auto& [member, sql] : statement_texts()) {
    rc = sqlite3_prepare_v3(db, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, ((*store.st_).*member).out(), nullptr);
    if (rc != SQLITE_OK) {
      // The tables are there (check_schema) but not as we made them.
      return fail(corrupt(
          file, fmt::format("is not a bridgehead state file of version {}: {}", kSchemaVersion, sqlite3_errmsg(db))));
    }
  }
  const std::string interrupted =
      fmt::format("UPDATE runs SET status = 'failed', error = '{}' WHERE status = 'running'", kInterrupted);
  if (rc = exec(db, interrupted); rc != SQLITE_OK) {
    return fail(sqlite_error(db, rc, file, "marking interrupted runs failed"));
  }
  return store;
}

namespace {

// Runs `body` in one write transaction: committed whole when it succeeds, rolled back whole
// when it (or the commit) fails.
template <typename Body>
Expected<void> in_transaction(sqlite3* db, const StatementSet& st, const fs::path& file, std::string_view doing,
                              Body&& body) {
  if (const int rc = Use(st.begin).step(); rc != SQLITE_DONE) return fail(sqlite_error(db, rc, file, doing));
  Expected<void> result = body();
  if (result) {
    if (const int rc = Use(st.commit).step(); rc != SQLITE_DONE) result = fail(sqlite_error(db, rc, file, doing));
  }
  // A failed COMMIT (disk full) may leave the transaction open; some errors end it already.
  if (!result && !sqlite3_get_autocommit(db)) Use(st.rollback).step();
  return result;
}

Expected<void> done(sqlite3* db, Use& use, const fs::path& file, std::string_view doing) {
  const int rc = use.step();
  if (rc != SQLITE_DONE) return fail(sqlite_error(db, rc, file, doing));
  return {};
}

}  // namespace

Expected<void> StateStore::commit(const Batch& batch) {
  if (batch.empty()) return {};
  return in_transaction(db_, *st_, file_, "committing a batch", [&]() -> Expected<void> {
    for (const auto& r : batch.put_objects) {
      Use u(st_->put_object);
      u.text(1, r.direction).text(2, r.key).text(3, r.source_dn).text(4, r.target_dn);
      u.blob(5, encode_entry(r.written)).text(6, r.hash).integer(7, r.hidden_since_ms);
      if (auto ok = done(db_, u, file_, fmt::format("storing object {} of {}", r.key, r.direction)); !ok) return ok;
    }
    for (const auto& [direction, key] : batch.erase_objects) {
      Use u(st_->erase_object);
      u.text(1, direction).text(2, key);
      if (auto ok = done(db_, u, file_, fmt::format("forgetting object {} of {}", key, direction)); !ok) return ok;
    }
    for (const auto& s : batch.put_sources) {
      Use u(st_->put_source);
      u.text(1, s.directory).text(2, s.key).text(3, s.dn).text(4, s.uuid);
      if (s.recipient) {
        u.text(5, recipient_to_json(*s.recipient));
      } else {
        u.null(5);
      }
      if (auto ok = done(db_, u, file_, fmt::format("storing source {} of {}", s.key, s.directory)); !ok) return ok;
    }
    for (const auto& [directory, key] : batch.erase_sources) {
      Use u(st_->erase_source);
      u.text(1, directory).text(2, key);
      if (auto ok = done(db_, u, file_, fmt::format("forgetting source {} of {}", key, directory)); !ok) return ok;
    }
    for (const auto& [directory, cookie] : batch.cookies) {
      Use u(cookie.empty() ? st_->erase_cookie : st_->put_cookie);
      u.text(1, directory);
      if (!cookie.empty()) u.blob(2, cookie);
      if (auto ok = done(db_, u, file_, fmt::format("storing the cookie of {}", directory)); !ok) return ok;
    }
    return {};
  });
}

namespace {

Expected<ObjectRecord> object_from_row(const Use& u, const std::string& direction, const fs::path& file) {
  ObjectRecord r;
  r.direction = direction;
  r.key = u.column(0);
  r.source_dn = u.column(1);
  r.target_dn = u.column(2);
  auto written = decode_entry(u.column(3));
  if (!written)
    return fail(corrupt(file, fmt::format("the written attributes of object {} of {} are damaged", r.key, direction)));
  r.written = std::move(*written);
  r.hash = u.column(4);
  r.hidden_since_ms = u.column_integer(5);
  return r;
}

Expected<SourceRecord> source_from_row(const Use& u, const std::string& directory, const fs::path& file) {
  SourceRecord s;
  s.directory = directory;
  s.key = u.column(0);
  s.dn = u.column(1);
  s.uuid = u.column(2);
  if (!u.column_null(3)) {
    s.recipient = recipient_from_json(u.column(3));
    if (!s.recipient)
      return fail(corrupt(file, fmt::format("the recipient of source {} of {} is damaged", s.key, directory)));
  }
  return s;
}

// Steps `u` to its end, calling `row` for each row; `doing` names the read in errors.
template <typename Row>
Expected<void> each_row(sqlite3* db, Use& u, const fs::path& file, std::string_view doing, Row&& row) {
  int rc = 0;
  while ((rc = u.step()) == SQLITE_ROW) {
    if (auto ok = row(); !ok) return ok;
  }
  if (rc != SQLITE_DONE) return fail(sqlite_error(db, rc, file, doing));
  return {};
}

// The one row `u` yields, made by `decode` (which returns an Expected), or nullopt when it
// yields none.
template <typename Decode>
auto at_most_one(sqlite3* db, Use& u, const fs::path& file, std::string_view doing, Decode&& decode)
    -> Expected<std::optional<typename std::invoke_result_t<Decode>::value_type>> {
  std::optional<typename std::invoke_result_t<Decode>::value_type> out;
  auto ok = each_row(db, u, file, doing, [&]() -> Expected<void> {
    auto r = decode();
    if (!r) return fail(r.error());
    out = std::move(*r);
    return {};
  });
  if (!ok) return fail(ok.error());
  return out;
}

Expected<std::size_t> count(sqlite3* db, const Statement& s, const std::string& name, const fs::path& file) {
  Use u(s);
  u.text(1, name);
  const int rc = u.step();
  if (rc != SQLITE_ROW) return fail(sqlite_error(db, rc, file, "counting"));
  return static_cast<std::size_t>(u.column_integer(0));
}

}  // namespace

Expected<std::unordered_map<std::string, ObjectRecord>> StateStore::objects(const std::string& direction) {
  std::unordered_map<std::string, ObjectRecord> out;
  if (auto n = object_count(direction); n) out.reserve(*n);
  Use u(st_->objects);
  u.text(1, direction);
  auto ok = each_row(db_, u, file_, "reading objects", [&]() -> Expected<void> {
    auto r = object_from_row(u, direction, file_);
    if (!r) return fail(r.error());
    std::string key = r->key;
    out.emplace(std::move(key), std::move(*r));
    return {};
  });
  if (!ok) return fail(ok.error());
  return out;
}

Expected<std::optional<ObjectRecord>> StateStore::object(const std::string& direction, const std::string& key) {
  Use u(st_->object);
  u.text(1, direction).text(2, key);
  return at_most_one(db_, u, file_, "reading an object", [&] { return object_from_row(u, direction, file_); });
}

Expected<std::size_t> StateStore::object_count(const std::string& direction) {
  return count(db_, st_->object_count, direction, file_);
}

Expected<void> StateStore::for_each_source(const std::string& directory,
                                           const std::function<void(const SourceRecord&)>& fn) {
  Use u(st_->sources);
  u.text(1, directory);
  return each_row(db_, u, file_, "reading sources", [&]() -> Expected<void> {
    auto s = source_from_row(u, directory, file_);
    if (!s) return fail(s.error());
    fn(*s);
    return {};
  });
}

Expected<void> StateStore::for_each_source_key(
    const std::string& directory, const std::function<void(std::string_view key, std::string_view uuid)>& fn) {
  Use u(st_->source_keys);
  u.text(1, directory);
  return each_row(db_, u, file_, "reading sources", [&]() -> Expected<void> {
    fn(u.column(0), u.column(1));
    return {};
  });
}

Expected<void> StateStore::for_each_source_dn(
    const std::string& directory, const std::function<void(std::string_view key, std::string_view dn)>& fn) {
  Use u(st_->source_dns);
  u.text(1, directory);
  return each_row(db_, u, file_, "reading sources", [&]() -> Expected<void> {
    fn(u.column(0), u.column(1));
    return {};
  });
}

Expected<void> StateStore::for_each_object_dn(
    const std::string& direction,
    const std::function<void(std::string_view key, std::string_view source_dn, std::string_view target_dn)>& fn) {
  Use u(st_->object_dns);
  u.text(1, direction);
  return each_row(db_, u, file_, "reading objects", [&]() -> Expected<void> {
    fn(u.column(0), u.column(1), u.column(2));
    return {};
  });
}

namespace {

Expected<std::optional<SourceRecord>> one_source(sqlite3* db, const Statement& s, const std::string& directory,
                                                 const std::string& value, const fs::path& file) {
  Use u(s);
  u.text(1, directory).text(2, value);
  return at_most_one(db, u, file, "reading a source", [&] { return source_from_row(u, directory, file); });
}

}  // namespace

Expected<std::optional<SourceRecord>> StateStore::source(const std::string& directory, const std::string& key) {
  return one_source(db_, st_->source, directory, key, file_);
}

Expected<std::optional<SourceRecord>> StateStore::source_by_uuid(const std::string& directory,
                                                                 const std::string& uuid) {
  return one_source(db_, st_->source_by_uuid, directory, uuid, file_);
}

Expected<std::size_t> StateStore::source_count(const std::string& directory) {
  return count(db_, st_->source_count, directory, file_);
}

Expected<void> StateStore::for_each_recipient(const std::function<void(const Recipient&)>& fn) {
  Use u(st_->recipients);
  return each_row(db_, u, file_, "reading recipients", [&]() -> Expected<void> {
    auto r = recipient_from_json(u.column(2));
    if (!r) {
      return fail(corrupt(file_, fmt::format("the recipient of source {} of {} is damaged", u.column(1), u.column(0))));
    }
    fn(*r);
    return {};
  });
}

Expected<std::optional<std::string>> StateStore::cookie(const std::string& directory) {
  std::optional<std::string> out;
  Use u(st_->cookie);
  u.text(1, directory);
  auto ok = each_row(db_, u, file_, "reading a cookie", [&]() -> Expected<void> {
    out = std::string(u.column(0));
    return {};
  });
  if (!ok) return fail(ok.error());
  return out;
}

Expected<std::int64_t> StateStore::begin_run(RunKind kind, const std::string& directions, std::int64_t started_ms) {
  Use u(st_->begin_run);
  u.text(1, to_string(kind)).text(2, directions).integer(3, started_ms);
  if (auto ok = done(db_, u, file_, "recording the start of a run"); !ok) return fail(ok.error());
  return sqlite3_last_insert_rowid(db_);
}

namespace {

Expected<void> require_run(sqlite3* db, const StatementSet& st, std::int64_t run, const fs::path& file) {
  Use u(st.run_exists);
  u.integer(1, run);
  const int rc = u.step();
  if (rc == SQLITE_ROW) return {};
  if (rc != SQLITE_DONE) return fail(sqlite_error(db, rc, file, "looking up a run"));
  return fail(Error::permanent(ErrorCode::kNotFound, fmt::format("{}: there is no run {}", file.string(), run),
                               "see `bridgehead dirsync status` for the runs"));
}

}  // namespace

Expected<void> StateStore::finish_run(const RunRecord& record) {
  if (auto ok = require_run(db_, *st_, record.id, file_); !ok) return ok;
  json counts = json::object();
  for (const auto& [name, member] : kCountNames) counts[name] = record.counts.*member;
  return in_transaction(db_, *st_, file_, "recording the end of a run", [&]() -> Expected<void> {
    {
      Use u(st_->finish_run);
      u.text(1, to_string(record.status)).integer(2, record.finished_ms).text(3, counts.dump());
      u.text(4, record.error);
      u.integer(5, static_cast<std::int64_t>(std::max<std::uint64_t>(record.problem_count, record.problems.size())));
      u.integer(6, record.preview_id).integer(7, record.id);
      if (auto ok = done(db_, u, file_, "recording the end of a run"); !ok) return ok;
    }
    {
      Use u(st_->erase_problems);
      u.integer(1, record.id);
      if (auto ok = done(db_, u, file_, "replacing the problems of a run"); !ok) return ok;
    }
    const std::size_t kept = std::min(record.problems.size(), kMaxStoredProblems);
    for (std::size_t i = 0; i < kept; ++i) {
      const RunProblem& p = record.problems[i];
      Use u(st_->put_problem);
      u.integer(1, record.id).integer(2, static_cast<std::int64_t>(i)).text(3, p.direction).text(4, p.key);
      u.text(5, p.dn).text(6, p.kind).text(7, p.message);
      if (auto ok = done(db_, u, file_, "storing the problems of a run"); !ok) return ok;
    }
    return {};
  });
}

namespace {

Expected<RunRecord> run_from_row(sqlite3* db, const StatementSet& st, const Use& u, const fs::path& file) {
  RunRecord r;
  r.id = u.column_integer(0);
  const auto kind = enum_from_string<RunKind>(kRunKindNames, u.column(1));
  const auto status = enum_from_string<RunStatus>(kRunStatusNames, u.column(2));
  const json counts = json::parse(u.column(6), nullptr, false);
  if (!kind || !status || !counts.is_object()) return fail(corrupt(file, fmt::format("run {} is damaged", r.id)));
  r.kind = *kind;
  r.status = *status;
  r.directions = u.column(3);
  r.started_ms = u.column_integer(4);
  r.finished_ms = u.column_integer(5);
  for (const auto& [name, member] : kCountNames) {
    const auto it = counts.find(name);
    if (it != counts.end() && it->is_number_unsigned()) r.counts.*member = it->get<std::uint64_t>();
  }
  r.error = u.column(7);
  r.problem_count = static_cast<std::uint64_t>(u.column_integer(8));
  r.preview_id = u.column_integer(9);
  Use p(st.problems);
  p.integer(1, r.id);
  auto ok = each_row(db, p, file, "reading the problems of a run", [&]() -> Expected<void> {
    r.problems.push_back(RunProblem{std::string(p.column(0)), std::string(p.column(1)), std::string(p.column(2)),
                                    std::string(p.column(3)), std::string(p.column(4))});
    return {};
  });
  if (!ok) return fail(ok.error());
  return r;
}

}  // namespace

Expected<std::optional<RunRecord>> StateStore::run(std::int64_t id) {
  Use u(st_->run);
  u.integer(1, id);
  return at_most_one(db_, u, file_, "reading a run", [&] { return run_from_row(db_, *st_, u, file_); });
}

Expected<std::vector<RunRecord>> StateStore::last_runs(std::size_t n) {
  std::vector<RunRecord> out;
  Use u(st_->last_runs);
  u.integer(1, static_cast<std::int64_t>(std::min<std::size_t>(n, INT64_MAX)));
  auto ok = each_row(db_, u, file_, "reading the last runs", [&]() -> Expected<void> {
    auto r = run_from_row(db_, *st_, u, file_);
    if (!r) return fail(r.error());
    out.push_back(std::move(*r));
    return {};
  });
  if (!ok) return fail(ok.error());
  return out;
}

namespace {

// The operations stored by `s` (held or preview_ops) for `id`, in their order.
Expected<std::vector<Operation>> stored_operations(sqlite3* db, const Statement& s, std::int64_t id,
                                                   std::string_view what, const fs::path& file) {
  std::vector<Operation> out;
  Use u(s);
  u.integer(1, id);
  auto ok = each_row(db, u, file, fmt::format("reading {} {}", what, id), [&]() -> Expected<void> {
    auto op = operation_from_json(json::parse(u.column(0), nullptr, false));
    if (!op) {
      return fail(corrupt(file, fmt::format("an operation of {} {} is damaged: {}", what, id, op.error().message)));
    }
    out.push_back(std::move(*op));
    return {};
  });
  if (!ok) return fail(ok.error());
  return out;
}

}  // namespace

Expected<void> StateStore::hold(std::int64_t run, const std::vector<Operation>& ops) {
  if (auto ok = require_run(db_, *st_, run, file_); !ok) return ok;
  return in_transaction(db_, *st_, file_, "holding deletions", [&]() -> Expected<void> {
    std::int64_t seq = 0;
    {
      Use u(st_->next_held_seq);
      u.integer(1, run);
      const int rc = u.step();
      if (rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, file_, "holding deletions"));
      seq = u.column_integer(0);
    }
    for (const auto& op : ops) {
      Use u(st_->put_held);
      u.integer(1, run).integer(2, seq++).text(3, op.direction).text(4, op.key).text(5, to_json(op).dump());
      if (auto ok = done(db_, u, file_, "holding deletions"); !ok) return ok;
    }
    return {};
  });
}

Expected<std::vector<Operation>> StateStore::held(std::int64_t run) {
  return stored_operations(db_, st_->held, run, "the deletions held by run", file_);
}

Expected<void> StateStore::approve(std::int64_t run) {
  Use u(st_->approve);
  u.integer(1, run);
  if (auto ok = done(db_, u, file_, "approving held deletions"); !ok) return ok;
  if (sqlite3_changes(db_) == 0) {
    return fail(Error::permanent(ErrorCode::kNotFound, fmt::format("run {} holds no deletions", run),
                                 "see `bridgehead dirsync status` for the runs that hold deletions"));
  }
  return {};
}

Expected<std::unordered_map<std::string, std::vector<std::string>>> StateStore::approved_keys() {
  std::unordered_map<std::string, std::vector<std::string>> out;
  Use u(st_->approved_keys);
  auto ok = each_row(db_, u, file_, "reading approved deletions", [&]() -> Expected<void> {
    out[std::string(u.column(0))].emplace_back(u.column(1));
    return {};
  });
  if (!ok) return fail(ok.error());
  return out;
}

Expected<void> StateStore::clear_held(std::int64_t run) {
  Use u(st_->clear_held);
  u.integer(1, run);
  return done(db_, u, file_, "forgetting held deletions");
}

Expected<std::int64_t> StateStore::save_preview(std::int64_t run, const std::vector<Operation>& ops) {
  if (auto ok = require_run(db_, *st_, run, file_); !ok) return fail(ok.error());
  std::int64_t id = 0;
  auto ok = in_transaction(db_, *st_, file_, "storing a preview", [&]() -> Expected<void> {
    {
      Use u(st_->put_preview);
      u.integer(1, run).integer(2, unix_now_ms());
      if (auto stored = done(db_, u, file_, "storing a preview"); !stored) return stored;
    }
    id = sqlite3_last_insert_rowid(db_);
    std::int64_t seq = 0;
    for (const auto& op : ops) {
      Use u(st_->put_preview_op);
      u.integer(1, id).integer(2, seq++).text(3, to_json(op).dump());
      if (auto stored = done(db_, u, file_, "storing a preview"); !stored) return stored;
    }
    return {};
  });
  if (!ok) return fail(ok.error());
  return id;
}

Expected<std::vector<Operation>> StateStore::preview(std::int64_t id) {
  if (auto applied = preview_applied_by(id); !applied) return fail(applied.error());
  return stored_operations(db_, st_->preview_ops, id, "preview", file_);
}

Expected<void> StateStore::mark_preview_applied(std::int64_t id, std::int64_t run) {
  auto applied = preview_applied_by(id);
  if (!applied) return fail(applied.error());
  if (*applied) {
    return fail(Error::permanent(ErrorCode::kInvalidArgument,
                                 fmt::format("preview {} was already applied by run {}", id, **applied),
                                 "run `bridgehead dirsync preview` for a new preview of what is left to write"));
  }
  if (auto ok = require_run(db_, *st_, run, file_); !ok) return ok;
  Use u(st_->mark_applied);
  u.integer(1, run).integer(2, id);
  return done(db_, u, file_, "marking a preview applied");
}

Expected<std::optional<std::int64_t>> StateStore::preview_applied_by(std::int64_t id) {
  Use u(st_->preview_applied_by);
  u.integer(1, id);
  const int rc = u.step();
  if (rc == SQLITE_DONE) {
    return fail(Error::permanent(ErrorCode::kNotFound, fmt::format("there is no preview {}", id),
                                 "`bridgehead dirsync preview` stores one and prints its number"));
  }
  if (rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, file_, "reading a preview"));
  if (u.column_null(0)) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(u.column_integer(0));
}

}  // namespace bridgehead::directory::sync
