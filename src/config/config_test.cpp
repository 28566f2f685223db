#include "config/config.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "config/settings.hpp"
#include "directory/ldif.hpp"

namespace bridgehead::config {
namespace {

namespace fs = std::filesystem;

std::string all_problems(const LoadResult& r) {
  std::string out;
  for (const Problem& p : r.problems) out += "  " + p.describe() + "\n";
  return out.empty() ? "  (none)\n" : out;
}

// Asserts a problem at exactly line:column whose message holds every one of `words`.
void expect_problem(const LoadResult& r, int line, int column, std::initializer_list<std::string_view> words) {
  for (const Problem& p : r.problems) {
    if (p.line != line || p.column != column) continue;
    bool all = true;
    for (std::string_view w : words) all = all && p.message.find(w) != std::string::npos;
    if (all) return;
  }
  std::string wanted;
  for (std::string_view w : words) wanted += fmt::format(" \"{}\"", w);
  ADD_FAILURE() << "no problem at " << line << ":" << column << " containing" << wanted << "\nproblems:\n"
                << all_problems(r);
}

LoadResult load_text(std::string_view text, const fs::path& base = "/etc/bridgehead") {
  return load_string(text, "bridgehead.toml", base);
}

// Two systems that pass every check; tests put what they test in front of them.
constexpr std::string_view kSystems = R"(
[[system]]
name = "exchange"
kind = "exchange"
domains = ["exchange.example"]
listen = "127.0.0.1:2525"
recipients = ["alice@exchange.example"]
[system.delivery]
method = "smtp"
address = "127.0.0.1:2526"

[[system]]
name = "notes"
kind = "domino"
domains = ["notes.example"]
listen = "127.0.0.1:2527"
[system.delivery]
method = "maildir"
path = "maildir"
)";

std::string with_systems(std::string_view head) { return std::string(head) + std::string(kSystems); }

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::path(testing::TempDir()) / "config_test.XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path write(const std::string& name, std::string_view text) const {
    fs::path p = path_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p;
  }

 private:
  fs::path path_;
};

// --- a sound file -----------------------------------------------------------------------------

TEST(ConfigLoad, SoundFileGivesItsValuesDefaultsAndAbsolutePaths) {
  TempDir dir;
  dir.write("tls/ex.crt", "cert");
  dir.write("tls/ex.key", "key");
  fs::path file = dir.write("etc/bridgehead.toml", R"([connector]
hostname = "Relay.Example.COM"
state_dir = "../state/"
log_level = "debug"

[smtp]
max_recipients = 200
bare_linefeed = "normalize"

[[system]]
name = "exchange"
kind = "exchange"
domains = ["Exchange.Example", "corp.example"]
listen = "127.0.0.1:2525"
tls_cert_file = "../tls/ex.crt"
tls_key_file = "../tls/ex.key"
recipients = ["Alice@Exchange.Example", "bob@corp.example"]
[system.delivery]
method = "lmtp"
address = "mail.exchange.example:24"

[[system]]
name = "notes"
kind = "domino"
domains = ["notes.example"]
listen = "[::1]:2527"
[system.delivery]
method = "maildir"
path = "./maildir/./notes"
)");
  LoadResult r = load(file);
  ASSERT_TRUE(r.problems.empty()) << all_problems(r);
  ASSERT_TRUE(r.config);
  const Config& c = *r.config;
  const fs::path root = fs::absolute(dir.path()).lexically_normal();
  EXPECT_EQ(c.file, root / "etc/bridgehead.toml");
  EXPECT_EQ(c.hostname, "relay.example.com");
  EXPECT_EQ(c.state_dir, root / "state");
  EXPECT_EQ(c.log_level, "debug");
  // Unset paths follow state_dir, wherever it is.
  EXPECT_EQ(c.control_socket, root / "state/control.sock");
  EXPECT_EQ(c.spool_dir, root / "state/spool");
  EXPECT_EQ(c.control_socket_mode, 0600u);
  EXPECT_EQ(c.spool_segment_size, 64ull << 20);
  EXPECT_EQ(c.smtp.max_recipients, 200u);
  EXPECT_EQ(c.smtp.bare_linefeed, smtp::BareLinefeedPolicy::kNormalize);
  EXPECT_EQ(c.smtp.max_message_size, 50ull << 20);
  EXPECT_EQ(c.smtp.command_timeout_seconds, 300u);

  ASSERT_EQ(c.systems.size(), 2u);
  const SystemConfig& ex = c.systems[0];
  EXPECT_EQ(ex.name, "exchange");
  EXPECT_EQ(ex.kind, SystemKind::kExchange);
  EXPECT_EQ(ex.domains, (std::vector<std::string>{"exchange.example", "corp.example"}));
  EXPECT_EQ(ex.listen.host, "127.0.0.1");
  EXPECT_EQ(ex.listen.port, 2525);
  EXPECT_EQ(ex.tls_cert_file, (root / "tls/ex.crt").string());
  EXPECT_EQ(ex.tls_key_file, (root / "tls/ex.key").string());
  EXPECT_EQ(ex.recipients, (std::vector<std::string>{"alice@exchange.example", "bob@corp.example"}));
  EXPECT_EQ(ex.delivery.method, DeliveryMethod::kLmtp);
  EXPECT_EQ(ex.delivery.endpoint.host, "mail.exchange.example");
  EXPECT_EQ(ex.delivery.endpoint.port, 24);

  const SystemConfig& notes = c.systems[1];
  EXPECT_EQ(notes.kind, SystemKind::kDomino);
  EXPECT_EQ(notes.listen.host, "::1");
  EXPECT_EQ(notes.listen.port, 2527);
  EXPECT_TRUE(notes.recipients.empty());
  EXPECT_TRUE(notes.tls_cert_file.empty());
  EXPECT_EQ(notes.delivery.method, DeliveryMethod::kMaildir);
  EXPECT_EQ(notes.delivery.path, (root / "etc/maildir/notes").string());
}

TEST(ConfigLoad, TableDefaultsAgreeWithTheHeaderDefaults) {
  LoadResult r = load_text(kSystems);
  ASSERT_TRUE(r.config) << all_problems(r);
  const Config& c = *r.config;
  const smtp::ServerSettings d;
  EXPECT_EQ(c.smtp.max_message_size, d.max_message_size);
  EXPECT_EQ(c.smtp.max_recipients, d.max_recipients);
  EXPECT_EQ(c.smtp.max_line_length, d.max_line_length);
  EXPECT_EQ(c.smtp.max_received_headers, d.max_received_headers);
  EXPECT_EQ(c.smtp.max_sessions, d.max_sessions);
  EXPECT_EQ(c.smtp.max_sessions_per_client, d.max_sessions_per_client);
  EXPECT_EQ(c.smtp.max_junk_commands, d.max_junk_commands);
  EXPECT_EQ(c.smtp.max_errors, d.max_errors);
  EXPECT_EQ(c.smtp.command_timeout_seconds, d.command_timeout_seconds);
  EXPECT_EQ(c.smtp.data_timeout_seconds, d.data_timeout_seconds);
  EXPECT_EQ(c.smtp.bare_linefeed, d.bare_linefeed);
  const Config h;
  EXPECT_EQ(c.log_level, h.log_level);
  EXPECT_EQ(c.control_socket_mode, h.control_socket_mode);
  EXPECT_EQ(c.spool_segment_size, h.spool_segment_size);
  EXPECT_EQ(c.state_dir, "/var/lib/bridgehead");
  EXPECT_EQ(c.control_socket, "/var/lib/bridgehead/control.sock");
  EXPECT_EQ(c.spool_dir, "/var/lib/bridgehead/spool");
  // [system.delivery]: the table reads its defaults from DeliveryTarget; loading them back
  // through the rows' checks and apply must give the same values.
  const DeliveryTarget t;
  EXPECT_EQ(c.systems[0].delivery.concurrency, t.concurrency);
  EXPECT_EQ(c.systems[0].delivery.tls, t.tls);
  EXPECT_EQ(c.systems[0].delivery.timeout, t.timeout);
  EXPECT_TRUE(c.systems[0].recipients.size() == 1 && c.systems[1].recipients.empty());
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof host - 1), 0);
  std::string expected(host);
  for (char& ch : expected) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  EXPECT_EQ(c.hostname, expected);
  // Relative paths in load_string are relative to base_dir.
  EXPECT_EQ(c.systems[1].delivery.path, "/etc/bridgehead/maildir");
}

// --- the table, the defaults file, the reference and the example agree -------------------------

TEST(SettingsTable, EveryEntryAppearsInDefaultsAndReference) {
  const std::string defaults = defaults_toml();
  const std::string reference = reference_markdown();
  for (const detail::Setting& s : detail::settings()) {
    const std::string line = fmt::format("{} = ", s.name());
    EXPECT_NE(defaults.find(line), std::string::npos) << s.key << " is missing from defaults_toml()";
    if (!s.default_literal().empty() && !s.in_system()) {
      EXPECT_NE(defaults.find(fmt::format("\n{} = {}\n", s.name(), s.default_literal())), std::string::npos)
          << s.key << " does not show its default in defaults_toml()";
    }
    EXPECT_NE(reference.find(fmt::format("| `{}` |", s.name())), std::string::npos)
        << s.key << " is missing from reference_markdown()";
    EXPECT_FALSE(s.doc.empty()) << s.key;
    EXPECT_TRUE(s.default_literal().empty() != s.default_note.empty())
        << s.key << " needs exactly one of a default value and a default note";
    ASSERT_NE(detail::find_section(s.section()), nullptr) << s.key << " is in an undeclared section";
  }
  for (const detail::Section& sec : detail::sections()) {
    EXPECT_NE(defaults.find(sec.header), std::string::npos) << sec.header;
    EXPECT_NE(reference.find("## " + std::string(sec.header)), std::string::npos) << sec.header;
  }
}

TEST(SettingsTable, EveryExampleValuePassesItsOwnChecks) {
  for (const detail::Setting& s : detail::settings()) {
    if (s.in_system()) continue;
    // Files that must exist: ConfigIdentity tests them with real files.
    if (s.key.starts_with("identity.")) continue;
    LoadResult r = load_text(with_systems(fmt::format("{} = {}\n", s.key, s.example)));
    EXPECT_TRUE(r.problems.empty()) << s.key << " = " << s.example << "\n" << all_problems(r);
  }
}

TEST(SettingsTable, DefaultsFileWithTwoSystemsLoadsCleanly) {
  LoadResult r = load_text(defaults_toml() + detail::example_systems_toml());
  EXPECT_TRUE(r.problems.empty()) << all_problems(r);
  EXPECT_TRUE(r.config);
}

TEST(SettingsTable, DefaultsFileAloneOnlyLacksSystems) {
  LoadResult r = load_text(defaults_toml());
  ASSERT_EQ(r.problems.size(), 1u) << all_problems(r);
  EXPECT_EQ(r.problems[0].line, 0);
  EXPECT_NE(r.problems[0].message.find("no [[system]] table"), std::string::npos);
}

TEST(SettingsTable, ExampleFileLoadsWithoutProblems) {
  LoadResult r = load_text(example_toml());
  ASSERT_TRUE(r.problems.empty()) << all_problems(r);
  ASSERT_EQ(r.config->systems.size(), 2u);
  EXPECT_EQ(r.config->systems[0].domains, std::vector<std::string>{"exchange.example"});
  EXPECT_EQ(r.config->systems[1].domains, std::vector<std::string>{"notes.example"});
  EXPECT_EQ(r.config->systems[0].delivery.method, DeliveryMethod::kSmtp);
  EXPECT_EQ(r.config->systems[1].delivery.method, DeliveryMethod::kMaildir);
  EXPECT_NE(reference_markdown().find(example_toml()), std::string::npos);
}

TEST(SettingsTable, DocsConfigurationMdIsCurrent) {
  const fs::path doc = fs::path(BRIDGEHEAD_SOURCE_DIR) / "docs/configuration.md";
  std::ifstream in(doc);
  ASSERT_TRUE(in) << doc << " is missing; generate it with "
                  << "`bridgehead config --markdown > docs/configuration.md`";
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_TRUE(text.str() == reference_markdown())
      << doc << " differs from reference_markdown(): the settings table changed. Regenerate it "
      << "with `bridgehead config --markdown > docs/configuration.md` and commit it.";
}

// --- problems: where and what ------------------------------------------------------------------

TEST(ConfigProblems, DescribeIsFileLineColumnMessage) {
  EXPECT_EQ((Problem{"b.toml", 12, 1, "bad"}).describe(), "b.toml:12:1: bad");
  EXPECT_EQ((Problem{"b.toml", 0, 0, "bad"}).describe(), "b.toml: bad");
}

TEST(ConfigProblems, UnknownKeySuggestsTheClosestKnownKey) {
  LoadResult r = load_text(with_systems(R"([smtp]
max_recipents = 10
)"));
  ASSERT_EQ(r.problems.size(), 1u) << all_problems(r);
  EXPECT_EQ(r.problems[0].describe(),
            R"(bridgehead.toml:2:1: unknown key "max_recipents" in [smtp]; did you mean "max_recipients"?)");
  EXPECT_FALSE(r.config);
}

TEST(ConfigProblems, UnknownKeysEverywhereAreErrors) {
  LoadResult r = load_text(R"([smpt]
max_recipients = 10
[connector]
max_errors = 3
colour = "blue"

[[system]]
name = "exchange"
kind = "exchange"
domain = ["exchange.example"]
listen = "127.0.0.1:2525"
[system.delivery]
method = "smtp"
adress = "127.0.0.1:2526"

[[system]]
name = "notes"
kind = "domino"
domains = ["notes.example"]
listen = "127.0.0.1:2527"
[system.delivery]
method = "maildir"
path = "maildir"
)");
  expect_problem(r, 1, 2, {"unknown section [smpt]", "did you mean [smtp]?"});
  expect_problem(r, 4, 1, {"unknown key \"max_errors\" in [connector]", "belongs in [smtp]"});
  expect_problem(r, 5, 1,
                 {"unknown key \"colour\" in [connector]", "known here: hostname, state_dir, user, group, log_level"});
  expect_problem(r, 10, 1, {"unknown key \"domain\" in [[system]]", "did you mean \"domains\"?"});
  expect_problem(r, 14, 1, {"unknown key \"adress\" in [system.delivery]", "did you mean \"address\"?"});
  // The misspelt domains is also missing, which the reader must hear about too.
  expect_problem(r, 7, 1, {"system \"exchange\" has no domains", "add domains = [\"exchange.example\"]"});
}

TEST(ConfigProblems, QuotedKeysCannotReachSettingsOutsideTheirSection) {
  LoadResult r = load_text(with_systems(R"("smtp.max_errors" = 3
["system[]"]
name = "x"
)"));
  expect_problem(r, 1, 1, {"unknown key \"smtp.max_errors\" at the top level"});
  expect_problem(r, 2, 2, {"unknown section [system[]]"});
  EXPECT_EQ(r.problems.size(), 2u) << all_problems(r);
}

TEST(ConfigProblems, SyntaxErrorIsOneProblemAtItsPosition) {
  LoadResult r = load_text(R"([smtp]
max_recipents = 10
[connector]
hostname = relay.example
)");
  ASSERT_EQ(r.problems.size(), 1u) << all_problems(r);
  EXPECT_EQ(r.problems[0].line, 4);
  EXPECT_EQ(r.problems[0].column, 12);
  EXPECT_NE(r.problems[0].message.find("TOML syntax error"), std::string::npos);
  EXPECT_FALSE(r.config);
}

TEST(ConfigProblems, DuplicateKeyIsASyntaxError) {
  LoadResult r = load_text("[smtp]\nmax_errors = 1\nmax_errors = 2\n");
  ASSERT_EQ(r.problems.size(), 1u) << all_problems(r);
  EXPECT_EQ(r.problems[0].line, 3);
  EXPECT_NE(r.problems[0].message.find("max_errors"), std::string::npos) << r.problems[0].message;
}

TEST(ConfigProblems, IntegerOutOfBoundsSaysTheBoundsAndWhatToSet) {
  LoadResult r = load_text(with_systems(R"([smtp]
max_errors = 5
  max_recipients = 0
)"));
  ASSERT_EQ(r.problems.size(), 1u) << all_problems(r);
  EXPECT_EQ(r.problems[0].describe(),
            "bridgehead.toml:3:20: smtp.max_recipients must be between 1 and 100000, got 0; set "
            "it to the largest number of recipients one message may have");
}

TEST(ConfigProblems, WrongTypeNamesTheExpectedType) {
  LoadResult r = load_text(with_systems(R"([smtp]
max_recipients = "100"
max_errors = 2.5
[connector]
state_dir = 7
)"));
  expect_problem(r, 2, 18, {"smtp.max_recipients must be an integer, got a string", "max_recipients = 1000"});
  expect_problem(r, 3, 14, {"smtp.max_errors must be an integer, got a floating-point number"});
  expect_problem(r, 5, 13, {"connector.state_dir must be a string, got an integer"});
  EXPECT_EQ(r.problems.size(), 3u) << all_problems(r);
}

TEST(ConfigProblems, SectionThatIsNotATable) {
  LoadResult r = load_text(with_systems("smtp = 5\n"));
  expect_problem(r, 1, 1, {"smtp must be a table, got an integer", "[smtp]"});
}

TEST(ConfigProblems, AllProblemsAreReportedInFileOrder) {
  LoadResult r = load_text(R"([connector]
log_level = "verbose"
[smtp]
max_sessions = 0
max_errors = "x"
[admin]
control_socket_mode = "0999"
)");
  ASSERT_EQ(r.problems.size(), 5u) << all_problems(r);
  EXPECT_EQ(r.problems[0].line, 2);
  EXPECT_EQ(r.problems[1].line, 4);
  EXPECT_EQ(r.problems[2].line, 5);
  EXPECT_EQ(r.problems[3].line, 7);
  EXPECT_EQ(r.problems[4].line, 0);  // no systems: about the whole file, so last
  EXPECT_FALSE(r.config);
}

TEST(ConfigProblems, LogLevelMustBeKnown) {
  LoadResult r = load_text(with_systems("[connector]\nlog_level = \"wanr\"\n"));
  expect_problem(
      r, 2, 13,
      {"connector.log_level must be one of trace, debug, info, warn, error", "got \"wanr\"", "did you mean \"warn\"?"});
}

TEST(ConfigProblems, HostnameMustBeADnsName) {
  LoadResult r = load_text(with_systems("[connector]\nhostname = \"relay_1.example\"\n"));
  expect_problem(r, 2, 12, {"connector.hostname", "contains '_'"});
}

TEST(ConfigConnector, UserAndGroupAreAccountNames) {
  LoadResult ok = load_text(with_systems("[connector]\nuser = \"bridgehead\"\ngroup = \"mail\"\n"));
  ASSERT_TRUE(ok.config) << all_problems(ok);
  EXPECT_EQ(ok.config->user, "bridgehead");
  EXPECT_EQ(ok.config->group, "mail");
  LoadResult none = load_text(with_systems(""));
  ASSERT_TRUE(none.config) << all_problems(none);
  EXPECT_EQ(none.config->user, "");
  LoadResult bad = load_text(with_systems("[connector]\nuser = \"bridge head\"\n"));
  expect_problem(bad, 2, 8, {"connector.user", "only letters, digits"});
}

TEST(ConfigProblems, ControlSocketModeIsAnOctalStringWithinPermissionBits) {
  LoadResult ok = load_text(with_systems("[admin]\ncontrol_socket_mode = \"660\"\n"));
  ASSERT_TRUE(ok.config) << all_problems(ok);
  EXPECT_EQ(ok.config->control_socket_mode, 0660u);

  expect_problem(load_text(with_systems("[admin]\ncontrol_socket_mode = \"1777\"\n")), 2, 23,
                 {"admin.control_socket_mode", "bits outside 0777", "\"0600\""});
  expect_problem(load_text(with_systems("[admin]\ncontrol_socket_mode = \"rw-------\"\n")), 2, 23,
                 {"not an octal mode", "e.g. \"0600\""});
  expect_problem(load_text(with_systems("[admin]\ncontrol_socket_mode = 0o600\n")), 2, 23,
                 {"must be an octal string in quotes, got an integer", "control_socket_mode = \"0660\""});
}

TEST(ConfigProblems, ControlSocketPathMustFitASocketAddress) {
  const std::string deep(120, 'd');
  LoadResult r = load_text(with_systems(fmt::format("[connector]\nstate_dir = \"/{}\"\n", deep)));
  expect_problem(r, 2, 13, {"control socket path", "at most 107", "shorter path"});
}

TEST(ConfigProblems, SessionsPerClientAtMostSessions) {
  LoadResult r = load_text(with_systems("[smtp]\nmax_sessions = 10\nmax_sessions_per_client = 20\n"));
  expect_problem(r, 3, 27, {"max_sessions_per_client (20) is more than smtp.max_sessions (10)"});
}

// --- sizes ---------------------------------------------------------------------------------------

TEST(ConfigSizes, IntegersAndUnits) {
  struct Case {
    std::string_view text;
    std::uint64_t bytes;
  };
  for (const Case& c : {Case{"1048576", 1048576}, Case{"\"50MiB\"", 50ull << 20}, Case{"\"64 MiB\"", 64ull << 20},
                        Case{"\"10MB\"", 10000000}, Case{"\"1GiB\"", 1ull << 30}, Case{"\"2GB\"", 2000000000},
                        Case{"\"512KiB\"", 512 * 1024}, Case{"\"100000 B\"", 100000}, Case{"\"300KB\"", 300000}}) {
    LoadResult r = load_text(with_systems(fmt::format("[smtp]\nmax_message_size = {}\n", c.text)));
    ASSERT_TRUE(r.config) << c.text << "\n" << all_problems(r);
    EXPECT_EQ(r.config->smtp.max_message_size, c.bytes) << c.text;
  }
  LoadResult seg = load_text(with_systems("[spool]\nsegment_size = \"128MiB\"\n"));
  ASSERT_TRUE(seg.config) << all_problems(seg);
  EXPECT_EQ(seg.config->spool_segment_size, 128ull << 20);
}

TEST(ConfigSizes, BadSizesSayWhichUnitsExist) {
  expect_problem(load_text(with_systems("[smtp]\nmax_message_size = \"50mb\"\n")), 2, 20,
                 {"smtp.max_message_size", "unknown unit \"mb\"", "KiB, MiB, GiB", "KB, MB, GB"});
  expect_problem(load_text(with_systems("[smtp]\nmax_message_size = \"1.5GiB\"\n")), 2, 20, {"unknown unit \".5GiB\""});
  expect_problem(load_text(with_systems("[smtp]\nmax_message_size = \"lots\"\n")), 2, 20, {"\"lots\" is not a size"});
  expect_problem(load_text(with_systems("[smtp]\nmax_message_size = \"99999999999GiB\"\n")), 2, 20, {"too large"});
  expect_problem(
      load_text(with_systems("[smtp]\nmax_message_size = \"1KiB\"\n")), 2, 20,
      {"must be between 64KiB and 4GiB", "got \"1KiB\" (1024 bytes)", "set it to the size of the largest message"});
  expect_problem(load_text(with_systems("[smtp]\nmax_message_size = true\n")), 2, 20,
                 {"must be a size", "got a boolean"});
}

// --- systems -------------------------------------------------------------------------------------

TEST(ConfigSystems, AtLeastTwo) {
  LoadResult one = load_text(R"([connector]
log_level = "info"
[[system]]
name = "exchange"
kind = "exchange"
domains = ["exchange.example"]
listen = "127.0.0.1:2525"
[system.delivery]
method = "smtp"
address = "127.0.0.1:2526"
)");
  ASSERT_EQ(one.problems.size(), 1u) << all_problems(one);
  expect_problem(one, 3, 1, {"only one [[system]]", "a connector connects two mail systems", "add a [[system]]"});

  LoadResult none = load_text("[connector]\nlog_level = \"info\"\n");
  expect_problem(none, 0, 0, {"no [[system]] table", "connects two mail systems"});

  expect_problem(load_text("[system]\nname = \"x\"\n"), 1, 2, {"[system] is a single table", "[[system]]"});
}

TEST(ConfigSystems, NamesAreUniqueProcessNames) {
  LoadResult r = load_text(R"([[system]]
name = "exchange"
kind = "exchange"
domains = ["exchange.example"]
listen = "127.0.0.1:2525"
[system.delivery]
method = "maildir"
path = "a"

[[system]]
name = "exchange"
kind = "domino"
domains = ["notes.example"]
listen = "127.0.0.1:2527"
[system.delivery]
method = "maildir"
path = "b"

[[system]]
name = "Notes_1"
kind = "domino"
domains = ["other.example"]
listen = "127.0.0.1:2528"
[system.delivery]
method = "maildir"
path = "c"
)");
  expect_problem(r, 11, 8, {"system name \"exchange\" is already used by the system at line 1", "its own name"});
  expect_problem(r, 20, 8, {"name of system #3 \"Notes_1\"", "contains 'N'", "a-z, 0-9 and -"});
  EXPECT_EQ(r.problems.size(), 2u) << all_problems(r);
}

TEST(ConfigSystems, KindMustBeKnown) {
  std::string text(kSystems);
  text.replace(text.find("kind = \"domino\""), 15, "kind = \"notes\"");
  expect_problem(load_text(text), 14, 8,
                 {"kind of system \"notes\" must be one of exchange, domino, smtp", "got \"notes\""});
}

TEST(ConfigSystems, RequiredKeysAndDeliveryTable) {
  LoadResult r = load_text(R"([[system]]
name = "exchange"
kind = "exchange"

[[system]]
name = "notes"
kind = "domino"
domains = ["notes.example"]
listen = "127.0.0.1:2527"
[system.delivery]
path = "maildir"
)");
  expect_problem(r, 1, 1, {"system \"exchange\" has no domains", "domains = [\"exchange.example\"]"});
  expect_problem(r, 1, 1, {"system \"exchange\" has no listen", "listen = \"127.0.0.1:2525\""});
  expect_problem(r, 1, 1, {"system \"exchange\" has no [system.delivery] table", "method = \"smtp\""});
  expect_problem(r, 5, 1, {"system \"notes\" has no delivery.method", "method = \"smtp\""});
  EXPECT_EQ(r.problems.size(), 4u) << all_problems(r);
}

TEST(ConfigSystems, DomainsAreValidLowerCasedAndBelongToOneSystem) {
  LoadResult r = load_text(R"([[system]]
name = "exchange"
kind = "exchange"
domains = ["Shared.Example", "exchange.example", "exchange.example", "bad..example"]
listen = "127.0.0.1:2525"
[system.delivery]
method = "maildir"
path = "a"

[[system]]
name = "notes"
kind = "domino"
domains = ["notes.example", "shared.example"]
listen = "127.0.0.1:2527"
[system.delivery]
method = "maildir"
path = "b"
)");
  expect_problem(r, 4, 50, {"domain \"exchange.example\" is listed twice in system \"exchange\""});
  expect_problem(r, 4, 70, {"domains of system \"exchange\" has \"bad..example\"", "empty label"});
  expect_problem(
      r, 13, 29,
      {"domain \"shared.example\" is in both system \"exchange\" (line 4) and system \"notes\"", "exactly one system"});
  EXPECT_EQ(r.problems.size(), 3u) << all_problems(r);

  expect_problem(load_text(std::string(kSystems).replace(std::string(kSystems).find("domains = [\"notes.example\"]"),
                                                         27, "domains = []")),
                 15, 11, {"domains of system \"notes\" is empty", "list at least one"});
}

TEST(ConfigSystems, ListenParsesIPv4IPv6AndNames) {
  LoadResult r = load_text(R"([[system]]
name = "a"
kind = "smtp"
domains = ["a.example"]
listen = "[2001:db8::1]:25"
[system.delivery]
method = "maildir"
path = "a"

[[system]]
name = "b"
kind = "smtp"
domains = ["b.example"]
listen = "LocalHost:2525"
[system.delivery]
method = "lmtp"
address = "[::1]:24"
)");
  ASSERT_TRUE(r.config) << all_problems(r);
  EXPECT_EQ(r.config->systems[0].listen.host, "2001:db8::1");
  EXPECT_EQ(r.config->systems[0].listen.port, 25);
  EXPECT_EQ(r.config->systems[1].listen.host, "localhost");
  EXPECT_EQ(r.config->systems[1].delivery.endpoint.host, "::1");
  EXPECT_EQ(r.config->systems[1].delivery.endpoint.port, 24);
}

TEST(ConfigSystems, BadListenAddressesSayHowToWriteThem) {
  auto listen_problem = [](std::string_view listen) {
    std::string text(kSystems);
    text.replace(text.find("\"127.0.0.1:2525\""), 16, fmt::format("\"{}\"", listen));
    return load_text(text);
  };
  expect_problem(listen_problem("::1:2525"), 6, 10,
                 {"listen of system \"exchange\"", "without brackets", "\"[::1]:2525\""});
  expect_problem(listen_problem("127.0.0.1"), 6, 10, {"has no port", "\"127.0.0.1:2525\""});
  expect_problem(listen_problem("127.0.0.1:0"), 6, 10, {"port 0, outside 1 to 65535"});
  expect_problem(listen_problem("127.0.0.1:65536"), 6, 10, {"port 65536, outside 1 to 65535"});
  expect_problem(listen_problem("127.0.0.1:smtp"), 6, 10, {"port \"smtp\", which is not a number"});
  expect_problem(listen_problem("300.0.0.1:25"), 6, 10, {"\"300.0.0.1\", which is not an IPv4 address"});
  expect_problem(listen_problem("[127.0.0.1]:25"), 6, 10, {"not an IPv6 address"});
}

TEST(ConfigSystems, ListenAddressesAreUnique) {
  std::string text(kSystems);
  text.replace(text.find("\"127.0.0.1:2527\""), 16, "\"0.0.0.0:2525\"");
  expect_problem(load_text(text), 16, 10,
                 {"listen address 0.0.0.0:2525 of system \"notes\" conflicts with 127.0.0.1:2525 of "
                  "system \"exchange\" (line 6)",
                  "its own port"});
}

TEST(ConfigSystems, DeliveryAddressMustNotBeOwnListener) {
  std::string text(kSystems);
  text.replace(text.find("\"127.0.0.1:2526\""), 16, "\"127.0.0.1:2527\"");
  expect_problem(
      load_text(text), 10, 11,
      {"delivery.address of system \"exchange\" (127.0.0.1:2527)", "own listener for system \"notes\"", "loop"});
}

TEST(ConfigSystems, DeliveryMethodFieldsRequiredAndExclusive) {
  LoadResult r = load_text(R"([[system]]
name = "exchange"
kind = "exchange"
domains = ["exchange.example"]
listen = "127.0.0.1:2525"
[system.delivery]
method = "smtp"
path = "maildir"

[[system]]
name = "notes"
kind = "domino"
domains = ["notes.example"]
listen = "127.0.0.1:2527"
[system.delivery]
method = "maildir"
address = "127.0.0.1:2526"
)");
  expect_problem(r, 7, 10, {"delivery of system \"exchange\" uses method \"smtp\" but has no address", "address = "});
  expect_problem(r, 8, 8, {"delivery.path of system \"exchange\" is not used with method \"smtp\"", "remove it"});
  expect_problem(r, 16, 10, {"delivery of system \"notes\" uses method \"maildir\" but has no path", "path = "});
  expect_problem(r, 17, 11, {"delivery.address of system \"notes\" is not used with method \"maildir\""});
  EXPECT_EQ(r.problems.size(), 4u) << all_problems(r);
}

TEST(ConfigSystems, DeliveryMethodMustBeKnown) {
  std::string text(kSystems);
  text.replace(text.find("method = \"smtp\""), 15, "method = \"smpt\"");
  expect_problem(
      load_text(text), 9, 10,
      {"delivery.method of system \"exchange\" must be one of smtp, lmtp, maildir", "did you mean \"smtp\"?"});
}

TEST(ConfigSystems, RecipientsBelongToTheirSystemsDomains) {
  std::string text(kSystems);
  text.replace(text.find("[\"alice@exchange.example\"]"), 26,
               R"(["alice@exchange.example", "carol@notes.example", "dave@elsewhere.example", "no-at-sign"])");
  LoadResult r = load_text(text);
  expect_problem(
      r, 7, 41,
      {"recipient \"carol@notes.example\" of system \"exchange\" is in domain \"notes.example\" of system \"notes\"",
       "move it to the recipients of system \"notes\""});
  expect_problem(r, 7, 64,
                 {"recipient \"dave@elsewhere.example\"", "not one of its domains (exchange.example)",
                  "add \"elsewhere.example\" to its domains"});
  expect_problem(r, 7, 90, {"recipients of system \"exchange\" has \"no-at-sign\"", "no @"});
  EXPECT_EQ(r.problems.size(), 3u) << all_problems(r);
}

TEST(ConfigSystems, TlsFilesTogetherAndReadable) {
  TempDir dir;
  dir.write("ex.crt", "cert");
  auto with_tls = [&](std::string_view lines) {
    std::string text(kSystems);
    text.insert(text.find("recipients"), lines);
    return load_text(text, dir.path());
  };
  expect_problem(with_tls("tls_cert_file = \"ex.crt\"\n"), 7, 17,
                 {"system \"exchange\" has tls_cert_file but no tls_key_file", "remove tls_cert_file"});
  expect_problem(with_tls("tls_key_file = \"ex.key\"\n"), 7, 16,
                 {"system \"exchange\" has tls_key_file but no tls_cert_file"});
  LoadResult missing = with_tls("tls_cert_file = \"ex.crt\"\ntls_key_file = \"ex.key\"\n");
  expect_problem(missing, 8, 16,
                 {"tls_key_file of system \"exchange\" cannot be read", (dir.path() / "ex.key").string(),
                  "No such file or directory"});
  EXPECT_EQ(missing.problems.size(), 1u) << all_problems(missing);

  dir.write("ex.key", "key");
  LoadResult ok = with_tls("tls_cert_file = \"ex.crt\"\ntls_key_file = \"ex.key\"\n");
  ASSERT_TRUE(ok.config) << all_problems(ok);
  EXPECT_EQ(ok.config->systems[0].tls_key_file, (fs::absolute(dir.path()) / "ex.key").lexically_normal().string());
}

TEST(ConfigIdentity, IdFilesMustExistAndThePasswordNeedsAnId) {
  TempDir dir;
  LoadResult none = load_text(with_systems(""), dir.path());
  ASSERT_TRUE(none.config) << all_problems(none);
  EXPECT_TRUE(none.config->identity.id_file.empty());
  EXPECT_TRUE(none.config->identity.id_password_file.empty());

  expect_problem(load_text(with_systems("[identity]\nid_password_file = \"pw\"\n"), dir.path()), 2, 20,
                 {"identity.id_password_file is set but identity.id_file is not"});
  LoadResult missing = load_text(with_systems("[identity]\nid_file = \"connector.id\"\n"), dir.path());
  expect_problem(missing, 2, 11,
                 {"identity.id_file cannot be read", "connector.id", "No such file", "bridgehead id create"});

  dir.write("connector.id", "id");
  dir.write("pw", "secret");
  LoadResult ok =
      load_text(with_systems("[identity]\nid_file = \"connector.id\"\nid_password_file = \"pw\"\n"), dir.path());
  ASSERT_TRUE(ok.config) << all_problems(ok);
  EXPECT_EQ(ok.config->identity.id_file, (fs::absolute(dir.path()) / "connector.id").lexically_normal());
  EXPECT_EQ(ok.config->identity.id_password_file, (fs::absolute(dir.path()) / "pw").lexically_normal());
}

TEST(ConfigIdentity, ClientCertificatesNeedACertificateToOfferTls) {
  TempDir dir;
  dir.write("certifier.pem", "pem");
  dir.write("connector.id", "id");
  std::string text(kSystems);
  text.insert(text.find("recipients"), "tls_client_ca_file = \"certifier.pem\"\n");
  expect_problem(load_text(text, dir.path()), 7, 22,
                 {"system \"exchange\" has tls_client_ca_file but no certificate", "identity.id_file"});
  LoadResult ok = load_text("[identity]\nid_file = \"connector.id\"\n" + text, dir.path());
  ASSERT_TRUE(ok.config) << all_problems(ok);
  EXPECT_EQ(ok.config->systems[0].tls_client_ca_file,
            (fs::absolute(dir.path()) / "certifier.pem").lexically_normal().string());
}

TEST(ConfigFile, MissingFileIsOneProblemForTheWholeFile) {
  LoadResult r = load("/nonexistent/bridgehead.toml");
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(
      r.problems[0].describe().rfind("/nonexistent/bridgehead.toml: cannot read the config file: No such file", 0), 0u)
      << r.problems[0].describe();
  EXPECT_FALSE(r.config);
}

TEST(ConfigQueue, DefaultsAndDurations) {
  LoadResult d = load_text(with_systems(""));
  ASSERT_TRUE(d.config) << all_problems(d);
  const Config& c = *d.config;
  ASSERT_EQ(c.queue.retry.delays.size(), 7u);
  EXPECT_EQ(c.queue.retry.delays.front(), std::chrono::minutes(1));
  EXPECT_EQ(c.queue.retry.delays.back(), std::chrono::hours(4));
  EXPECT_EQ(c.queue.retry.lifetime, std::chrono::days(5));
  EXPECT_EQ(c.queue.retry.delay_notice_after, std::chrono::hours(4));
  EXPECT_EQ(c.queue.quarantine_dir, fs::path("/var/lib/bridgehead/quarantine"));
  EXPECT_EQ(c.systems[0].delivery.concurrency, 10u);
  EXPECT_EQ(c.systems[0].delivery.tls, smtp::client::TlsPolicy::kOpportunistic);
  EXPECT_EQ(c.systems[0].delivery.timeout, std::chrono::minutes(5));

  LoadResult set = load_text(
      with_systems("[queue]\nretry_delays = \"2s, 3s\"\nlifetime = \"30s\"\ndelay_notice_after = \"never\"\n"));
  ASSERT_TRUE(set.config) << all_problems(set);
  EXPECT_EQ(set.config->queue.retry.delays,
            (std::vector<std::chrono::seconds>{std::chrono::seconds(2), std::chrono::seconds(3)}));
  EXPECT_EQ(set.config->queue.retry.lifetime, std::chrono::seconds(30));
  EXPECT_EQ(set.config->queue.retry.delay_notice_after, std::chrono::seconds(0));
}

TEST(ConfigQueue, BadDurationsNameTheItemAndTheUnits) {
  expect_problem(load_text(with_systems("[queue]\nretry_delays = \"1m,,5m\"\n")), 2, 16, {"item 2", "empty"});
  expect_problem(load_text(with_systems("[queue]\nlifetime = \"5 days\"\n")), 2, 12, {"bad duration", "s, m, h or d"});
  expect_problem(load_text(with_systems("[queue]\ndelay_notice_after = \"0s\"\n")), 2, 22, {"more than zero"});
}

TEST(ConfigSystems, DeliveryTlsConcurrencyAndTimeout) {
  std::string text(kSystems);
  text.insert(text.find("address = \"127.0.0.1:2526\""),
              "tls = \"required\"\nconcurrency = 3\ntimeout = \"10s\"\n"
              "tls_verify_name = \"MX.Exchange.Example\"\n");
  LoadResult r = load_text(text);
  ASSERT_TRUE(r.config) << all_problems(r);
  EXPECT_EQ(r.config->systems[0].delivery.tls, smtp::client::TlsPolicy::kRequired);
  EXPECT_EQ(r.config->systems[0].delivery.tls_verify_name, "mx.exchange.example");
  EXPECT_EQ(r.config->systems[0].delivery.concurrency, 3u);
  EXPECT_EQ(r.config->systems[0].delivery.timeout, std::chrono::seconds(10));
  std::string bad(kSystems);
  bad.insert(bad.find("address = \"127.0.0.1:2526\""), "tls = \"always\"\n");
  EXPECT_FALSE(load_text(bad).config);
}

// Issue 8: a certificate is checked against the next hop's name; an IP address without
// tls_verify_name has no name to check, which check() says instead of every attempt deferring.
TEST(ConfigSystems, RequiredTlsToAnIpAddressNeedsTlsVerifyName) {
  std::string text(kSystems);
  text.insert(text.find("address = \"127.0.0.1:2526\""), "tls = \"required\"\n");
  expect_problem(load_text(text), 11, 11,
                 {"delivery of system \"exchange\" requires TLS from 127.0.0.1:2526, an IP address, but has no "
                  "tls_verify_name",
                  "tls_verify_name = \"the host name in that server's certificate\"", "mx.exchange.example"});
  // A name in address is the name checked; opportunistic TLS checks nothing.
  std::string named(kSystems);
  named.replace(named.find("\"127.0.0.1:2526\""), 16, "\"mx.exchange.example:2526\"");
  named.insert(named.find("address = "), "tls = \"required\"\n");
  EXPECT_TRUE(load_text(named).config) << all_problems(load_text(named));
  std::string opportunistic(kSystems);
  opportunistic.insert(opportunistic.find("address = \"127.0.0.1:2526\""), "tls = \"opportunistic\"\n");
  EXPECT_TRUE(load_text(opportunistic).config) << all_problems(load_text(opportunistic));
  // A wildcard is not a name to check against.
  std::string wildcard(text);
  wildcard.insert(wildcard.find("address = "), "tls_verify_name = \"*.exchange.example\"\n");
  EXPECT_FALSE(load_text(wildcard).config);
}

// --- directory synchronization: [system.directory], its rules, [dirsync] -----------------------

// Both systems with a directory that passes every check. Line 11 is the exchange directory's
// base, line 12 its contacts_container; line 24 is the notes directory's base.
constexpr std::string_view kDirectories = R"([[system]]
name = "exchange"
kind = "exchange"
domains = ["exchange.example", "corp.example"]
listen = "127.0.0.1:2525"
[system.delivery]
method = "smtp"
address = "127.0.0.1:2526"
[system.directory]
uri = "ldap://127.0.0.1:3890"
base = "DC=exchange,DC=example"
contacts_container = "OU=Notes,DC=exchange,DC=example"

[[system]]
name = "notes"
kind = "domino"
domains = ["notes.example"]
listen = "127.0.0.1:2527"
[system.delivery]
method = "maildir"
path = "maildir"
[system.directory]
uri = "ldap://127.0.0.1:3891"
base = "O=Acme"
contacts_container = "OU=Exchange,O=Acme"

[dirsync]
notes_domain = "Acme"
)";

// kDirectories with `lines` put in after line `after` (1-based), so they start at after + 1.
std::string directories_with(int after, std::string_view lines) {
  std::string text(kDirectories);
  std::size_t at = 0;
  for (int i = 0; i < after; ++i) at = text.find('\n', at) + 1;
  text.insert(at, lines);
  return text;
}

TEST(ConfigDirectory, AFullDirectoryConfigLoadsIntoTheSettingsTypes) {
  TempDir dir;
  dir.write("ad.password", "secret\n");
  dir.write("ad-ca.pem", "pem");
  dir.write("notes.ldif", "version: 1\n");
  const std::string text = R"x([dirsync]
connector_name = "acme-1"
notes_domain = "Acme"
max_deletes = 50
max_delete_percent = 5
delete_floor = 3
adopt = true
soft_delete_days = 30
create = false
update = false
delete = false
rename = false
interval = "5m"
full_interval = "12h"
batch_size = 200

[[system]]
name = "exchange"
kind = "exchange"
domains = ["exchange.example", "corp.example"]
listen = "127.0.0.1:2525"
[system.delivery]
method = "smtp"
address = "127.0.0.1:2526"
[system.directory]
uri = "ldap://dc1.exchange.example"
tls = "starttls"
ca_file = "ad-ca.pem"
bind = "simple"
bind_dn = "CN=Bridgehead,OU=Service,DC=exchange,DC=example"
password_file = "ad.password"
connect_timeout = "5s"
operation_timeout = "2m"
page_size = 250
base = "DC=exchange,DC=example"
include = ["OU=Staff,DC=exchange,DC=example", "OU=Sales,DC=exchange,DC=example"]
exclude = ["OU=Test,OU=Staff,DC=exchange,DC=example"]
filter = "(&(objectClass=user)(mail=*))"
ignore_groups = ["All Staff", "CN=Admins,DC=exchange,DC=example"]
feed = "full"
persist = false
contacts_container = "OU=Notes Contacts,DC=exchange,DC=example"
stamp_attribute = "extensionAttribute1"
full_name_generator = "alias"
[system.directory.rules]
targetAddress = "concat('SMTP:', first(uid), '@', $routing_domain)"
mailNickname = "lower(first(uid))"

[[system]]
name = "notes"
kind = "domino"
domains = ["notes.example"]
listen = "127.0.0.1:2527"
[system.delivery]
method = "maildir"
path = "maildir"
[system.directory]
ldif_file = "notes.ldif"
contacts_container = "OU=Exchange Contacts,O=Acme"
ldif_output = "out/notes-contacts.ldif"
)x";
  LoadResult r = load_text(text, dir.path());
  ASSERT_TRUE(r.config) << all_problems(r);
  const Config& c = *r.config;
  const fs::path root = fs::absolute(dir.path()).lexically_normal();
  using directory::sync::BindKind;
  using directory::sync::Feed;

  ASSERT_TRUE(c.systems[0].directory);
  const directory::sync::DirectorySettings& ex = *c.systems[0].directory;
  EXPECT_EQ(ex.system, "exchange");
  EXPECT_EQ(ex.routing_domain, "exchange.example");
  EXPECT_EQ(ex.profile, directory::Profile::kExchange);
  EXPECT_EQ(ex.uri, "ldap://dc1.exchange.example");
  EXPECT_TRUE(ex.ldif_file.empty());
  EXPECT_EQ(ex.tls, directory::ldap::TlsMode::kStartTls);
  EXPECT_EQ(ex.ca_file, root / "ad-ca.pem");
  EXPECT_EQ(ex.bind, BindKind::kSimple);
  EXPECT_EQ(ex.bind_dn, "CN=Bridgehead,OU=Service,DC=exchange,DC=example");
  EXPECT_EQ(ex.password_file, root / "ad.password");
  EXPECT_EQ(ex.timeouts.connect, std::chrono::seconds(5));
  EXPECT_EQ(ex.timeouts.operation, std::chrono::minutes(2));
  EXPECT_EQ(ex.page_size, 250);
  EXPECT_EQ(ex.base, "DC=exchange,DC=example");
  EXPECT_EQ(ex.scope.include,
            (std::vector<std::string>{"OU=Staff,DC=exchange,DC=example", "OU=Sales,DC=exchange,DC=example"}));
  EXPECT_EQ(ex.scope.exclude, std::vector<std::string>{"OU=Test,OU=Staff,DC=exchange,DC=example"});
  EXPECT_EQ(ex.scope.filter, "(&(objectClass=user)(mail=*))");
  EXPECT_EQ(ex.scope.ignore_groups, (std::vector<std::string>{"All Staff", "CN=Admins,DC=exchange,DC=example"}));
  EXPECT_EQ(ex.feed, Feed::kFull);
  EXPECT_FALSE(ex.persist);
  EXPECT_EQ(ex.contacts_container, "OU=Notes Contacts,DC=exchange,DC=example");
  EXPECT_TRUE(ex.ldif_output.empty());
  EXPECT_EQ(ex.stamp_attribute, "extensionAttribute1");
  EXPECT_EQ(ex.full_name_generator, "alias");
  // Each rule with where its text starts: past the opening quote (line 46: `targetAddress = "`).
  ASSERT_EQ(ex.rules.size(), 2u);
  EXPECT_EQ(ex.rules[0].target, "targetAddress");
  EXPECT_EQ(ex.rules[0].text, "concat('SMTP:', first(uid), '@', $routing_domain)");
  EXPECT_EQ(ex.rules[0].position.line, 46u);
  EXPECT_EQ(ex.rules[0].position.column, 18u);
  EXPECT_EQ(ex.rules[1].target, "mailNickname");
  EXPECT_EQ(ex.rules[1].text, "lower(first(uid))");
  EXPECT_EQ(ex.rules[1].position.line, 47u);
  EXPECT_EQ(ex.rules[1].position.column, 17u);

  ASSERT_TRUE(c.systems[1].directory);
  const directory::sync::DirectorySettings& notes = *c.systems[1].directory;
  EXPECT_EQ(notes.system, "notes");
  EXPECT_EQ(notes.routing_domain, "notes.example");
  EXPECT_EQ(notes.profile, directory::Profile::kDomino);  // from kind = "domino"
  EXPECT_TRUE(notes.uri.empty());
  EXPECT_EQ(notes.ldif_file, root / "notes.ldif");
  EXPECT_EQ(notes.ldif_output, root / "out/notes-contacts.ldif");
  EXPECT_EQ(notes.contacts_container, "OU=Exchange Contacts,O=Acme");
  EXPECT_TRUE(notes.rules.empty());

  const directory::sync::SyncSettings& s = c.dirsync;
  EXPECT_EQ(s.connector_name, "acme-1");
  EXPECT_EQ(s.notes_domain, "Acme");
  EXPECT_EQ(s.limits.max_deletes, 50u);
  EXPECT_EQ(s.limits.max_percent, 5u);
  EXPECT_EQ(s.limits.percent_floor, 3u);
  EXPECT_TRUE(s.adopt);
  EXPECT_EQ(s.soft_delete_days, 30u);
  EXPECT_FALSE(s.switches.create);
  EXPECT_FALSE(s.switches.update);
  EXPECT_FALSE(s.switches.remove);
  EXPECT_FALSE(s.switches.rename);
  EXPECT_EQ(s.interval, std::chrono::minutes(5));
  EXPECT_EQ(s.full_interval, std::chrono::hours(12));
  EXPECT_EQ(s.batch_size, 200u);
  // A copy of each system's directory, in [[system]] order.
  ASSERT_EQ(s.directories.size(), 2u);
  EXPECT_EQ(s.directories[0].system, "exchange");
  EXPECT_EQ(s.directories[0].uri, ex.uri);
  EXPECT_EQ(s.directories[0].rules.size(), 2u);
  EXPECT_EQ(s.directories[1].system, "notes");
  EXPECT_EQ(s.directories[1].ldif_file, notes.ldif_file);
}

TEST(ConfigDirectory, DefaultsAreTheSettingsTypesInitializers) {
  LoadResult none = load_text(kSystems);
  ASSERT_TRUE(none.config) << all_problems(none);
  EXPECT_FALSE(none.config->systems[0].directory);
  EXPECT_FALSE(none.config->systems[1].directory);
  EXPECT_TRUE(none.config->dirsync.directories.empty());

  LoadResult r = load_text(kDirectories);
  ASSERT_TRUE(r.config) << all_problems(r);
  const directory::sync::DirectorySettings d;
  const directory::sync::DirectorySettings& got = *r.config->systems[0].directory;
  EXPECT_EQ(got.tls, d.tls);
  EXPECT_EQ(got.bind, d.bind);
  EXPECT_TRUE(got.bind_dn.empty() && got.password_file.empty() && got.ca_file.empty());
  EXPECT_EQ(got.timeouts.connect, d.timeouts.connect);
  EXPECT_EQ(got.timeouts.operation, d.timeouts.operation);
  EXPECT_EQ(got.page_size, d.page_size);
  EXPECT_EQ(got.scope.include, d.scope.include);
  EXPECT_EQ(got.scope.exclude, d.scope.exclude);
  EXPECT_EQ(got.scope.filter, d.scope.filter);
  EXPECT_EQ(got.scope.ignore_groups, d.scope.ignore_groups);
  EXPECT_EQ(got.feed, d.feed);
  EXPECT_EQ(got.persist, d.persist);
  EXPECT_EQ(got.ldif_output, d.ldif_output);
  EXPECT_EQ(got.stamp_attribute, d.stamp_attribute);
  EXPECT_EQ(got.full_name_generator, d.full_name_generator);
  EXPECT_TRUE(got.rules.empty());
  EXPECT_EQ(got.profile, directory::Profile::kExchange);  // from kind, not the initializer
  EXPECT_EQ(r.config->systems[1].directory->profile, directory::Profile::kDomino);

  const directory::sync::SyncSettings s;
  const directory::sync::SyncSettings& gs = r.config->dirsync;
  EXPECT_EQ(gs.connector_name, s.connector_name);
  EXPECT_EQ(gs.limits.max_deletes, s.limits.max_deletes);
  EXPECT_EQ(gs.limits.max_percent, s.limits.max_percent);
  EXPECT_EQ(gs.limits.percent_floor, s.limits.percent_floor);
  EXPECT_EQ(gs.adopt, s.adopt);
  EXPECT_EQ(gs.soft_delete_days, s.soft_delete_days);
  EXPECT_EQ(gs.switches.create, s.switches.create);
  EXPECT_EQ(gs.switches.update, s.switches.update);
  EXPECT_EQ(gs.switches.remove, s.switches.remove);
  EXPECT_EQ(gs.switches.rename, s.switches.rename);
  EXPECT_EQ(gs.interval, s.interval);
  EXPECT_EQ(gs.full_interval, s.full_interval);
  EXPECT_EQ(gs.batch_size, s.batch_size);
}

TEST(ConfigDirectory, ABadDnIsAProblemAtItsPosition) {
  LoadResult r = load_text(directories_with(11,
                                            "include = [\"OU=Staff,DC=exchange\", \"OU=Staff,,DC=x\"]\n"
                                            "bind_dn = \"cn\"\n"));
  expect_problem(
      r, 12, 36,
      {"directory.include of system \"exchange\" has \"OU=Staff,,DC=x\"", "is not an RFC 4514 DN: at offset"});
  expect_problem(r, 13, 11, {"directory.bind_dn of system \"exchange\" \"cn\" is not an RFC 4514 DN: at offset 2"});
  EXPECT_EQ(r.problems.size(), 2u) << all_problems(r);
  std::string empty(kDirectories);
  empty.replace(empty.find("base = \"O=Acme\""), 15, "base = \"\"");
  expect_problem(load_text(empty), 24, 8, {"directory.base of system \"notes\" \"\" is empty"});
}

TEST(ConfigDirectory, ABadFilterIsAProblemAtItsPosition) {
  expect_problem(load_text(directories_with(11, "filter = \"(&(objectClass=user)(mail=*)\"\n")), 12, 10,
                 {"directory.filter of system \"exchange\" \"(&(objectClass=user)(mail=*)\" does not parse: filter at "
                  "offset 28",
                  "RFC 4515"});
  expect_problem(load_text(directories_with(11, "filter = \"(a=1))\"\n")), 12, 10,
                 {"filter at offset 5: unexpected ')' after the end of the filter"});
  expect_problem(load_text(directories_with(11, "filter = \"\"\n")), 12, 10, {"the filter is empty"});
  // A bare item is taken as if parenthesized, as ldapsearch does.
  LoadResult bare = load_text(directories_with(11, "filter = \"objectClass=user\"\n"));
  ASSERT_TRUE(bare.config) << all_problems(bare);
  EXPECT_EQ(bare.config->systems[0].directory->scope.filter, "objectClass=user");
}

TEST(ConfigDirectory, AnIgnoredGroupWithAnEqualsSignIsADn) {
  LoadResult r = load_text(directories_with(11, "ignore_groups = [\"All Staff\", \"CN=Admins,,DC=x\", \"\"]\n"));
  expect_problem(r, 12, 31, {"directory.ignore_groups of system \"exchange\" has \"CN=Admins,,DC=x\"", "RFC 4514 DN"});
  expect_problem(r, 12, 50, {"has \"\", which is empty"});
  EXPECT_EQ(r.problems.size(), 2u) << all_problems(r);
}

TEST(ConfigDirectory, ABadRuleIsAProblemAtItsExactLineAndColumn) {
  LoadResult r = load_text(directories_with(12,
                                            "[system.directory.rules]\n"
                                            "proxyAddresses = \"concat('smtp:', mial)\"\n"
                                            "mailNickname = \"lowr(first(uid))\"\n"
                                            "sn = 'left(sn)'\n"
                                            "displayName = 7\n"));
  // `proxyAddresses = "` is 18 characters, `concat('smtp:', ` 16 more: mial is at column 35.
  EXPECT_EQ(r.problems.size(), 4u) << all_problems(r);
  const auto at = [&](int line) {
    for (const Problem& p : r.problems)
      if (p.line == line) return p.describe();
    return std::string("none at this line");
  };
  EXPECT_EQ(at(14), "bridgehead.toml:14:35: rule for proxyAddresses: unknown attribute 'mial' (did you mean 'mail'?)");
  expect_problem(r, 15, 17, {"rule for mailNickname: unknown function 'lowr'", "did you mean 'lower'?"});
  expect_problem(r, 16, 7, {"rule for sn:", "left"});
  expect_problem(r, 17, 15,
                 {"rule for displayName in [system.directory.rules] of system \"exchange\" must be a string"});
}

TEST(ConfigDirectory, RulesAreCheckedAgainstTheOtherSystemsAttributes) {
  // A Domino person has no mailNickname, an AD user does: the exchange directory's rules map
  // notes objects, the notes directory's rules map exchange objects.
  expect_problem(load_text(directories_with(12, "[system.directory.rules]\nmailNickname = \"first(mailNickname)\"\n")),
                 14, 23, {"rule for mailNickname: unknown attribute 'mailNickname'"});
  LoadResult ok = load_text(std::string(kDirectories.substr(0, kDirectories.find("\n[dirsync]"))) +
                            "\n[system.directory.rules]\nmailAddress = \"concat(first(mailNickname), '@x')\"\n"
                            "\n[dirsync]\nnotes_domain = \"Acme\"\n");
  ASSERT_TRUE(ok.config) << all_problems(ok);
  EXPECT_EQ(ok.config->systems[1].directory->rules.size(), 1u);
  // A multi-line string starts on the line after its """.
  LoadResult multi = load_text(directories_with(12, "[system.directory.rules]\nsn = \"\"\"\n  first(snn)\"\"\"\n"));
  expect_problem(multi, 15, 9, {"rule for sn: unknown attribute 'snn'"});
}

TEST(ConfigDirectory, GroupRulesAreReadAndCheckedLikeThePersonRules) {
  LoadResult r = load_text(directories_with(12,
                                            "[system.directory.group_rules]\n"
                                            "displayName = \"concat(first(cn), ' (group)')\"\n"
                                            "sn = \"frist(cn)\"\n"
                                            "mail = 3\n"));
  EXPECT_EQ(r.problems.size(), 2u) << all_problems(r);
  expect_problem(r, 15, 7, {"rule for sn: unknown function 'frist'", "did you mean 'first'?"});
  expect_problem(r, 16, 8, {"rule for mail in [system.directory.group_rules] of system \"exchange\" must be a string"});
  LoadResult ok = load_text(directories_with(12, "[system.directory.group_rules]\nsn = \"first(cn)\"\n"));
  ASSERT_TRUE(ok.config) << all_problems(ok);
  const auto& d = *ok.config->systems[0].directory;
  ASSERT_EQ(d.group_rules.size(), 1u);
  EXPECT_EQ(d.group_rules[0].target, "sn");
  EXPECT_EQ(d.group_rules[0].text, "first(cn)");
  EXPECT_TRUE(d.rules.empty());
}

TEST(ConfigDirectory, ExactlyOneOfUriAndLdifFile) {
  TempDir dir;
  dir.write("ex.ldif", "version: 1\n");
  expect_problem(load_text(directories_with(11, "ldif_file = \"ex.ldif\"\n"), dir.path()), 12, 13,
                 {"the directory of system \"exchange\" has both uri and ldif_file", "keep the one"});
  std::string neither(kDirectories);
  neither.erase(neither.find("uri = \"ldap://127.0.0.1:3891\"\n"), 30);
  expect_problem(load_text(neither), 22, 9,
                 {"the directory of system \"notes\" has neither uri nor ldif_file", "uri = \"ldap://host:389\""});
  std::string no_base(kDirectories);
  no_base.erase(no_base.find("base = \"O=Acme\"\n"), 16);
  expect_problem(load_text(no_base), 23, 7,
                 {"the directory of system \"notes\" is read from ldap://127.0.0.1:3891 but has no base", "add base"});
  std::string missing(kDirectories);
  missing.replace(missing.find("uri = \"ldap://127.0.0.1:3891\""), 29, "ldif_file = \"gone.ldif\"");
  missing.insert(missing.find("\n[dirsync]"), "ldif_output = \"out.ldif\"\n");
  expect_problem(load_text(missing, dir.path()), 23, 13,
                 {"directory.ldif_file of system \"notes\" cannot be read", "gone.ldif", "No such file"});
}

TEST(ConfigDirectory, ConnectionSettingsAreRefusedWithAnLdifFile) {
  TempDir dir;
  dir.write("notes.ldif", "version: 1\n");
  std::string text(kDirectories);
  text.replace(text.find("uri = \"ldap://127.0.0.1:3891\""), 29, "ldif_file = \"notes.ldif\"\nbind = \"simple\"");
  text.replace(text.find("contacts_container = \"OU=Exchange,O=Acme\""), 41, "page_size = 10");
  LoadResult r = load_text(text, dir.path());
  expect_problem(r, 24, 8,
                 {"directory.bind of system \"notes\" is used only with an LDAP server (uri), not with ldif_file"});
  expect_problem(r, 26, 13, {"directory.page_size of system \"notes\" is used only with an LDAP server"});
  EXPECT_EQ(r.problems.size(), 2u) << all_problems(r);
}

TEST(ConfigDirectory, SimpleBindNeedsAPasswordFileAndABindDn) {
  TempDir dir;
  expect_problem(load_text(directories_with(11, "bind = \"simple\"\n"), dir.path()), 12, 8,
                 {"the directory of system \"exchange\" binds simple but has no password_file", "mode 0600"});
  expect_problem(load_text(directories_with(11, "bind = \"simple\"\n"), dir.path()), 12, 8, {"has no bind_dn"});
  LoadResult missing =
      load_text(directories_with(11, "bind = \"simple\"\nbind_dn = \"CN=x,DC=exchange\"\npassword_file = \"ad.pw\"\n"),
                dir.path());
  expect_problem(missing, 14, 17, {"directory.password_file of system \"exchange\" cannot be read", "No such file"});
  EXPECT_EQ(missing.problems.size(), 1u) << all_problems(missing);
  dir.write("ad.pw", "secret\n");
  expect_problem(load_text(directories_with(11, "password_file = \"ad.pw\"\n"), dir.path()), 12, 17,
                 {"directory.password_file of system \"exchange\" is used only with bind = \"simple\""});
}

TEST(ConfigDirectory, SaslExternalNeedsTlsAndTheConnectorId) {
  TempDir dir;
  dir.write("connector.id", "id");
  LoadResult plain = load_text(directories_with(11, "bind = \"sasl-external\"\n"), dir.path());
  expect_problem(plain, 12, 8, {"binds with sasl-external without TLS", "ldaps:// uri or tls = \"starttls\""});
  expect_problem(plain, 12, 8, {"identity.id_file is not set"});
  EXPECT_EQ(plain.problems.size(), 2u) << all_problems(plain);
  const std::string id = "[identity]\nid_file = \"connector.id\"\n";
  LoadResult starttls =
      load_text(id + directories_with(11, "bind = \"sasl-external\"\ntls = \"starttls\"\n"), dir.path());
  EXPECT_TRUE(starttls.config) << all_problems(starttls);
  std::string ldaps = id + directories_with(11, "bind = \"sasl-external\"\n");
  ldaps.replace(ldaps.find("ldap://127.0.0.1:3890"), 21, "ldaps://127.0.0.1:3890");
  EXPECT_TRUE(load_text(ldaps, dir.path()).config) << all_problems(load_text(ldaps, dir.path()));
  std::string both = directories_with(11, "tls = \"starttls\"\n");
  both.replace(both.find("ldap://127.0.0.1:3890"), 21, "ldaps://127.0.0.1:3890");
  expect_problem(load_text(both), 12, 7, {"directory.tls of system \"exchange\" is starttls, but uri", "ldaps://"});
}

TEST(ConfigDirectory, ContactsContainerNeedsTheOtherDirectory) {
  std::string text(kDirectories);
  text.erase(text.find("[system.directory]\nuri = \"ldap://127.0.0.1:3891\""));
  LoadResult r = load_text(text);
  expect_problem(r, 12, 22,
                 {"directory.contacts_container of system \"exchange\"", "no other system has a [system.directory]"});
  EXPECT_EQ(r.problems.size(), 1u) << all_problems(r);
  // Rules without the other directory are checked against the other profile's attributes.
  text.insert(text.find("\n\n[[system]]"), "\n[system.directory.rules]\nmailNickname = \"first(uid)\"");
  const std::size_t line = text.find("contacts_container = \"OU=Notes");
  text.erase(line, text.find('\n', line) + 1 - line);
  LoadResult rules = load_text(text);
  EXPECT_TRUE(rules.config) << all_problems(rules);
}

TEST(ConfigDirectory, WhatARunWouldRefuseIsRefusedAtCheckTime) {
  // The default rules go from Domino to AD and back, so two domino directories need rules.
  std::string same(kDirectories);
  same.replace(same.find("kind = \"exchange\""), 17, "kind = \"smtp\"");
  same.insert(same.find("uri = \"ldap://127.0.0.1:3890\""), "profile = \"domino\"\n");
  expect_problem(load_text(same), 13, 22,
                 {"not domino objects of system \"notes\" into the domino directory of system \"exchange\"",
                  "[system.directory.rules] of system \"exchange\""});
  // An smtp system's directory must say what it holds.
  std::string smtp(kDirectories);
  smtp.replace(smtp.find("kind = \"exchange\""), 17, "kind = \"smtp\"");
  expect_problem(load_text(smtp), 9, 9,
                 {"the directory of system \"exchange\" has no profile", "profile = \"exchange\""});
  // NOTES: proxy addresses need the Notes domain.
  std::string no_domain(kDirectories);
  no_domain.erase(no_domain.find("\n[dirsync]"));
  expect_problem(load_text(no_domain), 12, 22, {"dirsync.notes_domain is not set", "add notes_domain"});
  // An LDIF source cannot take contacts, except through an LDIF change file.
  TempDir dir;
  dir.write("notes.ldif", "version: 1\n");
  std::string ldif(kDirectories);
  ldif.replace(ldif.find("uri = \"ldap://127.0.0.1:3891\""), 29, "ldif_file = \"notes.ldif\"");
  expect_problem(load_text(ldif, dir.path()), 25, 22,
                 {"the directory of system \"notes\" is an LDIF file", "add ldif_output"});
}

TEST(ConfigDirectory, ValuesAreCheckedByTypeAndBounds) {
  expect_problem(load_text(directories_with(11, "persist = \"yes\"\n")), 12, 11,
                 {"directory.persist of system \"exchange\" must be true or false (without quotes), got a string"});
  expect_problem(load_text(directories_with(11, "page_size = 2000\n")), 12, 13, {"between 1 and 1000, got 2000"});
  expect_problem(load_text(directories_with(11, "full_name_generator = \"given\"\n")), 12, 23,
                 {"must be one of given-surname, given-initials-surname, surname-given, display-name, alias"});
  expect_problem(load_text(directories_with(11, "feed = \"syncrep\"\n")), 12, 8, {"did you mean \"syncrepl\"?"});
  expect_problem(load_text(directories_with(11, "operation_timeout = \"60\"\n")), 12, 21, {"bad duration"});
  std::string uri(kDirectories);
  uri.replace(uri.find("ldap://127.0.0.1:3890"), 21, "http://dc1");
  expect_problem(load_text(uri), 10, 7, {"is neither ldap:// nor ldaps://"});
  expect_problem(load_text(directories_with(11, "colour = 1\n")), 12, 1,
                 {"unknown key \"colour\" in [system.directory]"});
  LoadResult d = load_text(std::string(kDirectories.substr(0, kDirectories.find("[dirsync]"))) +
                           "[dirsync]\nnotes_domain = \"Acme\"\nconnector_name = \"a:b\"\nmax_delete_percent = 101\n"
                           "adopt = 1\n");
  expect_problem(d, 29, 18, {"dirsync.connector_name \"a:b\" contains ':'"});
  expect_problem(d, 30, 22, {"dirsync.max_delete_percent must be between 0 and 100"});
  expect_problem(d, 31, 9, {"dirsync.adopt must be true or false", "got an integer"});
}

TEST(ConfigDirectory, TheExamplesCommentedDirectoriesLoadUncommented) {
  // Every "# " line from a "# [system.directory]" to the next line that is not a comment.
  std::istringstream in(example_toml());
  std::string text;
  bool directory = false;
  for (std::string line; std::getline(in, line);) {
    if (line == "# [system.directory]") directory = true;
    if (directory && line.starts_with("# ")) {
      line.erase(0, 2);
    } else {
      directory = false;
    }
    text += line + "\n";
  }
  TempDir dir;
  dir.write("exchange-directory.password", "secret\n");
  dir.write("notes-directory.password", "secret\n");
  LoadResult r = load_text(text, dir.path());
  ASSERT_TRUE(r.config) << all_problems(r) << text;
  ASSERT_EQ(r.config->dirsync.directories.size(), 2u) << text;
  EXPECT_EQ(r.config->dirsync.directories[0].uri, "ldaps://dc1.exchange.example");
  EXPECT_EQ(r.config->dirsync.directories[1].rules.size(), 7u);
  EXPECT_EQ(r.config->dirsync.notes_domain, "Acme");
}

// `make demo` starts with `bridgehead check` on examples/demo: its directories must pass, and
// its LDIF files (copied next to the configuration by run-demo) must read without a problem.
TEST(ConfigDirectory, TheDemoConfigurationAndItsDirectoriesAreSound) {
  const fs::path demo = fs::path(BRIDGEHEAD_SOURCE_DIR) / "examples/demo";
  std::ifstream in(demo / "bridgehead.toml.in");
  ASSERT_TRUE(in) << demo;
  std::stringstream buf;
  buf << in.rdbuf();
  TempDir dir;
  dir.write("connector.id", "id");
  std::string text = buf.str();
  const std::pair<std::string, std::string> fill[] = {{"@STATE@", (dir.path() / "state").string()},
                                                      {"@MAIL@", (dir.path() / "mail").string()},
                                                      {"@ID@", (dir.path() / "connector.id").string()},
                                                      {"@EXCHANGE_PORT@", "2525"},
                                                      {"@NOTES_PORT@", "2527"}};
  for (const auto& [from, to] : fill)
    for (std::size_t at; (at = text.find(from)) != std::string::npos;) text.replace(at, from.size(), to);
  LoadResult r = load_text(text, demo);
  ASSERT_TRUE(r.config) << all_problems(r);
  ASSERT_EQ(r.config->dirsync.directories.size(), 2u);
  for (const directory::sync::DirectorySettings& d : r.config->dirsync.directories) {
    auto doc = directory::read_ldif_file(d.ldif_file);
    ASSERT_TRUE(doc) << d.ldif_file << ": " << doc.error().message;
    EXPECT_TRUE(doc->problems.empty()) << d.ldif_file << ": " << doc->problems.front().message;
    EXPECT_EQ(doc->entries.size(), 3u) << d.ldif_file;
  }
}

}  // namespace
}  // namespace bridgehead::config
