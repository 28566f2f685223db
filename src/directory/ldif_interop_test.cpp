// Interop with the real OpenLDAP tools: what LdifWriter writes loads with slapadd into a
// temporary mdb database, what slapcat dumps from it LdifReader reads back as the same
// entries, and a change file LdifWriter writes parses with `ldapmodify -n` (no server).
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <tuple>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/text.hpp"
#include "directory/dn.hpp"
#include "directory/ldif.hpp"
#include "temp_dir.hpp"

namespace bridgehead::directory {
namespace {

using test_support::TempDir;

struct CommandResult {
  int status = -1;
  std::string output;
};

// Stdout and stderr together.
CommandResult run(const std::string& command) {
  CommandResult r;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// What slapadd adds to every entry; the entries are the same without them.
bool is_operational(std::string_view name) {
  for (std::string_view op : {"structuralObjectClass", "entryUUID", "creatorsName", "createTimestamp", "entryCSN",
                              "modifiersName", "modifyTimestamp", "contextCSN"}) {
    if (iequals(name, op)) return true;
  }
  return false;
}

Entry entry(std::string dn, std::vector<std::pair<std::string, std::string>> attributes) {
  Entry e(std::move(dn));
  for (auto& [name, value] : attributes) e.add(name, std::move(value));
  return e;
}

std::vector<Entry> sample_directory() {
  const std::string photo("\xFF\xD8\xFF\xE0\0\x10JFIF\0\x01\r\n \x7F", 17);
  return {
      entry("o=Acme", {{"objectClass", "organization"},
                       {"o", "Acme"},
                       {"description", " a leading space"},
                       {"description", "a trailing space "},
                       {"description", ":starts with a colon"},
                       {"description", "<starts with an angle"},
                       {"description", "two\nlines"},
                       {"description", std::string(300, 'x') + " long enough to fold four times"}}),
      entry("ou=Sales,o=Acme", {{"objectClass", "organizationalUnit"}, {"ou", "Sales"}}),
      entry("cn=Doe\\, John,ou=Sales,o=Acme", {{"objectClass", "inetOrgPerson"},
                                               {"cn", "Doe, John"},
                                               {"cn;lang-de", "Johann Reh"},
                                               {"sn", "Doe"},
                                               {"givenName", "John"},
                                               {"displayName", "J\xC3\xBCrgen M\xC3\xBCller"},
                                               {"mail", "jdoe@acme.example"},
                                               {"mail", "john.doe@acme.example"},
                                               {"jpegPhoto", photo}}),
      entry("cn=Jane Roe+uid=jroe,ou=Sales,o=Acme",
            {{"objectClass", "inetOrgPerson"}, {"cn", "Jane Roe"}, {"uid", "jroe"}, {"sn", "Roe"}}),
      entry("cn=J\xC3\xBCrgen M\xC3\xBCller,ou=Sales,o=Acme",
            {{"objectClass", "inetOrgPerson"}, {"cn", "J\xC3\xBCrgen M\xC3\xBCller"}, {"sn", "M\xC3\xBCller"}}),
      entry("cn=\\#1 Fan\\+Club,ou=Sales,o=Acme",
            {{"objectClass", "inetOrgPerson"}, {"cn", "#1 Fan+Club"}, {"sn", "Club"}}),
  };
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

class OpenLdapInterop : public ::testing::Test {
 protected:
  /// Fails the test naming the package when slapadd, slapcat or the schemas are missing;
  /// writes slapd.conf for a temporary mdb database with suffix o=Acme.
  void write_slapd_conf() {
    ASSERT_STRNE(BRIDGEHEAD_SLAPADD_BIN, "")
        << "slapadd is not installed: install the Debian package 'slapd' (scripts/install-deps does)";
    ASSERT_STRNE(BRIDGEHEAD_SLAPCAT_BIN, "")
        << "slapcat is not installed: install the Debian package 'slapd' (scripts/install-deps does)";
    const std::filesystem::path schema = BRIDGEHEAD_LDAP_SCHEMA_DIR;
    for (const char* s : {"core.schema", "cosine.schema", "inetorgperson.schema"}) {
      ASSERT_TRUE(std::filesystem::exists(schema / s))
          << (schema / s).string() << " is missing: install the Debian package 'slapd'";
    }
    std::filesystem::create_directory(dir_.path() / "db");
    std::ofstream out(dir_.path() / "slapd.conf");
    for (const char* s : {"core.schema", "cosine.schema", "inetorgperson.schema"}) {
      out << "include " << (schema / s).string() << "\n";
    }
    // Debian builds the backends as modules; a build with mdb compiled in has no such file.
    for (const char* module_dir : {"/usr/lib/ldap", "/usr/lib/x86_64-linux-gnu/ldap"}) {
      if (std::filesystem::exists(std::filesystem::path(module_dir) / "back_mdb.la") ||
          std::filesystem::exists(std::filesystem::path(module_dir) / "back_mdb.so")) {
        out << "modulepath " << module_dir << "\nmoduleload back_mdb\n";
        break;
      }
    }
    out << "pidfile " << (dir_.path() / "slapd.pid").string() << "\n"
        << "database mdb\nmaxsize 16777216\nsuffix \"o=Acme\"\nrootdn \"cn=admin,o=Acme\"\n"
        << "directory " << (dir_.path() / "db").string() << "\n";
  }

  /// `ldapmodify -n -f FILE`: parses the change file and prints what it would do, with no server.
  CommandResult ldapmodify_dry_run(const std::filesystem::path& file) {
    if (std::string_view(BRIDGEHEAD_LDAPMODIFY_BIN).empty()) {
      ADD_FAILURE() << "ldapmodify is not installed: install the Debian package 'ldap-utils' (scripts/install-deps "
                       "does)";
      return {};
    }
    return run(fmt::format("'{}' -n -f '{}'", BRIDGEHEAD_LDAPMODIFY_BIN, file.string()));
  }

  std::string conf() const { return "'" + (dir_.path() / "slapd.conf").string() + "'"; }
  std::filesystem::path path(const char* name) const { return dir_.path() / name; }

  TempDir dir_{"bridgehead_ldif_interop"};
};

TEST_F(OpenLdapInterop, WhatTheWriterWritesSlapaddLoadsAndSlapcatGivesBackTheSameEntries) {
  ASSERT_NO_FATAL_FAILURE(write_slapd_conf());
  const std::vector<Entry> written = sample_directory();
  // slapadd reads no "version:" line (it takes it for an attribute of a record without a
  // DN), and slapcat writes none: the form slapadd reads is the one without it.
  LdifWriterOptions options;
  options.write_version = false;
  auto text = to_ldif(written, {}, options);
  ASSERT_TRUE(text) << text.error().describe();
  std::ofstream(path("in.ldif"), std::ios::binary) << *text;

  const auto add = run(fmt::format("'{}' -f {} -l '{}'", BRIDGEHEAD_SLAPADD_BIN, conf(), path("in.ldif").string()));
  ASSERT_EQ(add.status, 0) << "slapadd failed:\n" << add.output << "\ninput:\n" << *text;
  const auto cat = run(fmt::format("'{}' -f {} -l '{}'", BRIDGEHEAD_SLAPCAT_BIN, conf(), path("out.ldif").string()));
  ASSERT_EQ(cat.status, 0) << "slapcat failed:\n" << cat.output;

  auto dumped = read_ldif_file(path("out.ldif"));
  ASSERT_TRUE(dumped) << dumped.error().describe();
  std::string problems;
  for (const LdifProblem& p : dumped->problems) problems += p.describe() + "\n";
  ASSERT_TRUE(dumped->problems.empty()) << problems;
  ASSERT_EQ(dumped->entries.size(), written.size());

  for (const Entry& w : written) {
    const Dn wdn = *Dn::parse(w.dn());
    const auto it = std::find_if(dumped->entries.begin(), dumped->entries.end(),
                                 [&](const Entry& r) { return Dn::parse(r.dn()).value_or(Dn()) == wdn; });
    ASSERT_NE(it, dumped->entries.end()) << "slapcat did not give back " << w.dn();
    for (const Attribute& a : w.attributes()) {
      const auto* values = it->find(a.name);
      ASSERT_NE(values, nullptr) << w.dn() << " lost " << a.name;
      EXPECT_EQ(sorted(*values), sorted(a.values)) << w.dn() << " " << a.name;
    }
    for (const Attribute& a : it->attributes()) {
      EXPECT_TRUE(w.has(a.name) || is_operational(a.name)) << w.dn() << " gained " << a.name;
    }
    EXPECT_TRUE(it->has("entryUUID")) << "slapcat output without operational attributes: is this a dump?";
  }
}

std::vector<Change> sample_changes() {
  std::vector<Change> changes;
  Change add;
  add.type = ChangeType::kAdd;
  add.dn = "cn=Doe\\, Jane,ou=Contacts,o=Acme";
  add.entry = entry(add.dn, {{"objectClass", "inetOrgPerson"},
                             {"cn", "Doe, Jane"},
                             {"sn", "Doe"},
                             {"displayName", "J\xC3\xA9r\xC3\xB4me"},
                             {"description", " spaced "}});
  changes.push_back(add);
  Change modify;
  modify.type = ChangeType::kModify;
  modify.dn = "cn=Doe\\, John,ou=Sales,o=Acme";
  Control relax;
  relax.oid = "1.3.6.1.4.1.4203.666.5.12";
  relax.critical = false;
  modify.controls.push_back(relax);
  for (auto [op, attribute, values] : std::vector<std::tuple<ModOp, std::string, std::vector<std::string>>>{
           {ModOp::kAdd, "mail", {"j@acme.example", "doe@acme.example"}},
           {ModOp::kDelete, "telephoneNumber", {}},
           {ModOp::kReplace, "description", {std::string(120, 'd')}},
           {ModOp::kIncrement, "uidNumber", {"1"}}}) {
    Modification m;
    m.op = op;
    m.attribute = attribute;
    m.values = values;
    modify.modifications.push_back(std::move(m));
  }
  changes.push_back(modify);
  Change del;
  del.type = ChangeType::kDelete;
  del.dn = "cn=Old,ou=Sales,o=Acme";
  changes.push_back(del);
  Change rename;
  rename.type = ChangeType::kModDn;
  rename.dn = "cn=Jane Roe+uid=jroe,ou=Sales,o=Acme";
  rename.new_rdn = "cn=Jane Doe";
  rename.delete_old_rdn = false;
  rename.new_superior = "ou=Contacts,o=Acme";
  changes.push_back(rename);
  return changes;
}

TEST_F(OpenLdapInterop, LdapmodifyParsesAChangeFileTheWriterWrites) {
  const std::vector<Change> changes = sample_changes();
  auto text = to_ldif({}, changes);
  ASSERT_TRUE(text) << text.error().describe();
  std::ofstream(path("changes.ldif"), std::ios::binary) << *text;
  const auto r = ldapmodify_dry_run(path("changes.ldif"));
  ASSERT_EQ(r.status, 0) << "ldapmodify -n refused the change file:\n" << r.output << "\ninput:\n" << *text;
  // With -n ldapmodify prints what it would do to each entry, in the order of the file.
  std::size_t at = 0;
  for (const Change& c : changes) {
    static constexpr std::array<std::string_view, 4> kVerbs{"adding new entry", "deleting entry", "modifying entry",
                                                            "modifying rdn of entry"};
    const std::string line = fmt::format("!{} \"{}\"", kVerbs[static_cast<std::size_t>(c.type)], c.dn);
    at = r.output.find(line, at);
    ASSERT_NE(at, std::string::npos) << line << "\n" << r.output;
  }
  // The reader reads its own change file back unchanged, as ldapmodify read it.
  const LdifDocument back = read_ldif(*text);
  EXPECT_TRUE(back.problems.empty());
  EXPECT_EQ(back.changes, changes);
}

TEST_F(OpenLdapInterop, LdapmodifyRefusesABrokenChangeFileSoTheCheckAboveCanFail) {
  std::ofstream(path("broken.ldif")) << "dn: cn=x,o=Acme\nchangetype: modify\nfrobnicate: cn\n-\n";
  const auto r = ldapmodify_dry_run(path("broken.ldif"));
  EXPECT_GT(r.status, 0) << r.output;
  const LdifDocument mine = read_ldif("dn: cn=x,o=Acme\nchangetype: modify\nfrobnicate: cn\n-\n");
  EXPECT_EQ(mine.problems.size(), 1u);
}

}  // namespace
}  // namespace bridgehead::directory
