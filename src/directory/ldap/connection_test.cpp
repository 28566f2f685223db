// Connection against a real slapd (tests/support/slapd.py through slapd_process.hpp): binds,
// TLS, paged and unpaged searches at the AD-like size limit, writes, SASL EXTERNAL, and the
// Domino-shaped schema.
#include "directory/ldap/connection.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <set>

#include "core/text.hpp"
#include "slapd_process.hpp"
#include "temp_dir.hpp"

namespace bridgehead::directory::ldap {
namespace {

using test_support::SlapdProcess;
using test_support::TempDir;

constexpr int kPeople = 2500;

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

std::string ad_user(const std::string& dn, const std::string& cn) {
  return "dn: " + dn +
         "\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: user\n"
         "cn: " +
         cn + "\nsn: " + cn +
         "\ninstanceType: 4\nnTSecurityDescriptor:: AQAEgA==\n"
         "objectCategory: CN=Person,CN=Schema,CN=Configuration,dc=acme,dc=example\n\n";
}

int unused_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);  // nothing listens there afterwards
  return ntohs(a.sin_port);
}

class AdDirectory : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("ldap_test");
    const std::string base = "dc=acme,dc=example";
    std::string ldif = "dn: ou=People," + base + "\nobjectClass: organizationalUnit\nou: People\n\n" +
                       "dn: ou=Contacts," + base + "\nobjectClass: organizationalUnit\nou: Contacts\n\n" +
                       "dn: ou=Moved," + base + "\nobjectClass: organizationalUnit\nou: Moved\n\n";
    for (int i = 0; i < kPeople; ++i) {
      std::string cn = "Person " + std::to_string(i);
      ldif += ad_user("cn=" + cn + ",ou=People," + base, cn);
    }
    const auto ldif_file = dir_->path() / "people.ldif";
    std::ofstream(ldif_file) << ldif;
    SlapdProcess::Options o;
    o.profile = "ad";
    o.ldif_file = ldif_file.string();
    slapd_ = new SlapdProcess(dir_->path() / "slapd", o);
  }
  static void TearDownTestSuite() {
    delete slapd_;
    delete dir_;
    slapd_ = nullptr;
    dir_ = nullptr;
  }
  static const test_support::SlapdInfo& info() { return slapd_->info(); }

  static Options service(std::string uri) {
    Options o;
    o.uri = std::move(uri);
    o.bind = SimpleBind{info().service_dn, identity::SecretString(info().service_password)};
    o.timeouts.connect = std::chrono::seconds(5);
    o.timeouts.operation = std::chrono::seconds(30);
    return o;
  }
  static Connection connect() {
    auto c = Connection::open(service(info().uri));
    if (!c) throw std::runtime_error(c.error().describe());
    return std::move(*c);
  }
  // The AD users under ou=People, by their cn.
  static SearchRequest people() {
    SearchRequest r;
    r.base = "ou=People," + info().base;
    r.filter = "(objectClass=user)";
    r.attributes = {"cn"};
    return r;
  }
  // Opens a connection with `o` and checks that the server sees `dn` on it.
  static void expect_identity(Options o, const std::string& dn) {
    auto c = Connection::open(std::move(o));
    ASSERT_TRUE(c) << c.error().describe();
    auto me = c->who_am_i();
    ASSERT_TRUE(me) << me.error().describe();
    EXPECT_TRUE(iequals(*me, "dn:" + dn)) << *me;
  }
  // Opens a connection with `o`, which TLS must refuse: the server's certificate is not the CA's.
  static void expect_certificate_refused(Options o) {
    const std::string uri = o.uri, ca = o.ca_file.string();
    auto c = Connection::open(std::move(o));
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().code, ErrorCode::kCertificate) << c.error().describe();
    EXPECT_TRUE(contains(c.error().message, "TLS with " + uri + " failed")) << c.error().describe();
    EXPECT_TRUE(contains(c.error().remedy, ca)) << c.error().describe();
  }
  static std::optional<Entry> read(Connection& c, const std::string& dn, std::vector<std::string> attrs = {}) {
    std::optional<Entry> found;
    SearchRequest r;
    r.base = dn;
    r.scope = Scope::kBase;
    r.attributes = std::move(attrs);
    auto out = c.search(r, [&](Entry e) {
      found = std::move(e);
      return true;
    });
    if (!out) return std::nullopt;
    return found;
  }

  static TempDir* dir_;
  static SlapdProcess* slapd_;
};

TempDir* AdDirectory::dir_ = nullptr;
SlapdProcess* AdDirectory::slapd_ = nullptr;

TEST_F(AdDirectory, SimpleBindAsTheServiceAccount) { expect_identity(service(info().uri), info().service_dn); }

TEST_F(AdDirectory, WrongPasswordIsInvalidCredentialsNamingTheDn) {
  Options o = service(info().uri);
  o.bind = SimpleBind{info().service_dn, identity::SecretString("not-the-password")};
  auto c = Connection::open(std::move(o));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::kWrongPassword);
  EXPECT_FALSE(c.error().transient());
  EXPECT_TRUE(contains(c.error().message, "invalid credentials for " + info().service_dn)) << c.error().describe();
  EXPECT_TRUE(contains(c.error().remedy, "bind password file")) << c.error().describe();
}

TEST_F(AdDirectory, ServerThatIsDownIsConnectionRefused) {
  const std::string uri = "ldap://127.0.0.1:" + std::to_string(unused_port());
  auto c = Connection::open(service(uri));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::kUnavailable);
  EXPECT_TRUE(c.error().transient());
  EXPECT_EQ(c.error().message, "cannot connect to " + uri + ": connection refused");
  EXPECT_TRUE(contains(c.error().remedy, "runs and listens there")) << c.error().describe();
}

TEST_F(AdDirectory, ServerThatNeverAnswersTimesOut) {
  // A socket that listens but never accepts: the TCP handshake completes, no LDAP reply comes.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const std::string uri = "ldap://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  Options o = service(uri);
  o.timeouts.operation = std::chrono::milliseconds(500);
  const auto start = std::chrono::steady_clock::now();
  auto c = Connection::open(std::move(o));
  const auto took = std::chrono::steady_clock::now() - start;
  ::close(fd);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::kTimeout) << c.error().describe();
  EXPECT_TRUE(c.error().transient());
  EXPECT_TRUE(contains(c.error().message, uri)) << c.error().describe();
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST_F(AdDirectory, StartTlsAndLdapsWithTheTestCa) {
  Options starttls = service(info().uri);
  starttls.tls = TlsMode::kStartTls;
  starttls.ca_file = info().ca_file;
  expect_identity(std::move(starttls), info().service_dn);

  Options ldaps = service(info().ldaps_uri);
  ldaps.ca_file = info().ca_file;
  expect_identity(std::move(ldaps), info().service_dn);
}

TEST_F(AdDirectory, WrongCaIsRefusedWithACertificateError) {
  Options starttls = service(info().uri);
  starttls.tls = TlsMode::kStartTls;
  starttls.ca_file = info().wrong_ca_file;
  expect_certificate_refused(std::move(starttls));

  Options ldaps = service(info().ldaps_uri);
  ldaps.ca_file = info().wrong_ca_file;
  expect_certificate_refused(std::move(ldaps));
}

TEST_F(AdDirectory, PagedSearchReadsAllEntriesPastTheSizeLimit) {
  Connection c = connect();
  SearchRequest r = people();
  std::set<std::string> names;
  auto out = c.search(r, [&](Entry e) {
    names.insert(std::string(e.first("cn")));
    return true;
  });
  ASSERT_TRUE(out) << out.error().describe();
  EXPECT_TRUE(out->complete()) << (out->problem ? out->problem->describe() : "");
  EXPECT_EQ(out->entries, static_cast<std::size_t>(kPeople));
  EXPECT_EQ(names.size(), static_cast<std::size_t>(kPeople));
  EXPECT_EQ(out->pages, 3u);  // 1000 + 1000 + 500
}

TEST_F(AdDirectory, UnpagedSearchStopsAtTheSizeLimitAndSaysSo) {
  Connection c = connect();
  SearchRequest r = people();
  r.paged = false;
  std::size_t seen = 0;
  auto out = c.search(r, [&](Entry) {
    ++seen;
    return true;
  });
  ASSERT_TRUE(out) << out.error().describe();
  EXPECT_FALSE(out->complete());
  EXPECT_EQ(out->completeness, Completeness::kSizeLimit);
  EXPECT_EQ(seen, static_cast<std::size_t>(info().size_limit));
  ASSERT_TRUE(out->problem);
  EXPECT_EQ(out->problem->code, ErrorCode::kLimit);
  EXPECT_TRUE(contains(out->problem->message, "size limit exceeded")) << out->problem->describe();
  EXPECT_TRUE(contains(out->problem->remedy, "paged")) << out->problem->describe();
}

TEST_F(AdDirectory, CallerCanStopASearchAndKeepTheConnection) {
  Connection c = connect();
  SearchRequest r = people();
  std::size_t seen = 0;
  auto out = c.search(r, [&](Entry) { return ++seen < 10; });
  ASSERT_TRUE(out) << out.error().describe();
  EXPECT_EQ(out->completeness, Completeness::kStoppedByCaller);
  EXPECT_EQ(out->entries, 10u);
  EXPECT_TRUE(read(c, "ou=People," + info().base));
}

TEST_F(AdDirectory, SearchOfAMissingBaseOrWithABadFilterFails) {
  Connection c = connect();
  SearchRequest r;
  r.base = "ou=Nowhere," + info().base;
  auto out = c.search(r, [](Entry) { return true; });
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(contains(out.error().message, "no such object")) << out.error().describe();

  r.base = info().base;
  r.filter = "(cn=";
  out = c.search(r, [](Entry) { return true; });
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kParse) << out.error().describe();
}

TEST_F(AdDirectory, AddModifyRenameDeleteRoundTrip) {
  Connection c = connect();
  const std::string dn = "cn=Jane Doe,ou=Contacts," + info().base;
  const std::string guid("\x01\x00\xff\x10\x20\x30\x40\x50\x60\x70\x80\x90\xa0\xb0\xc0\xd0", 16);
  Entry contact(dn);
  for (const char* oc : {"top", "person", "organizationalPerson", "contact", "mailRecipient"}) {
    contact.add("objectClass", oc);
  }
  contact.add("cn", "Jane Doe");
  contact.add("sn", "Doe");
  contact.add("instanceType", "4");
  contact.add("nTSecurityDescriptor", std::string("\x01\x00\x04\x80", 4));
  contact.add("objectCategory", "CN=Person,CN=Schema,CN=Configuration,dc=acme,dc=example");
  contact.add("objectGUID", guid);
  contact.add("mail", "jane.doe@notes.example");
  contact.add("targetAddress", "SMTP:jane.doe@notes.example");
  contact.add("mailNickname", "jdoe");
  contact.add("proxyAddresses", "SMTP:jane.doe@notes.example");
  contact.add("msExchHideFromAddressLists", "FALSE");
  contact.add("importedFrom", "Domino");
  auto added = c.add(contact);
  ASSERT_TRUE(added) << added.error().describe();

  auto again = c.add(contact);
  ASSERT_FALSE(again);
  EXPECT_TRUE(contains(again.error().message, "entry already exists")) << again.error().describe();

  auto got = read(c, dn, {"objectGUID", "mail", "proxyAddresses", "targetAddress", "mailNickname"});
  ASSERT_TRUE(got);
  EXPECT_EQ(got->first("objectGUID"), guid);
  EXPECT_EQ(got->first("mailNickname"), "jdoe");

  std::vector<Modification> changes = {
      {ModifyOp::kAdd, "proxyAddresses", {"smtp:jdoe@notes.example"}},
      {ModifyOp::kReplace, "mail", {"jane@notes.example"}},
      {ModifyOp::kDelete, "targetAddress", {}},
  };
  auto modified = c.modify(dn, changes);
  ASSERT_TRUE(modified) << modified.error().describe();
  got = read(c, dn, {"mail", "proxyAddresses", "targetAddress"});
  ASSERT_TRUE(got);
  EXPECT_EQ(got->first("mail"), "jane@notes.example");
  ASSERT_TRUE(got->find("proxyAddresses"));
  EXPECT_EQ(*got->find("proxyAddresses"),
            (std::vector<std::string>{"SMTP:jane.doe@notes.example", "smtp:jdoe@notes.example"}));
  EXPECT_FALSE(got->has("targetAddress"));
  std::vector<std::string> by_proxy;
  SearchRequest find;
  find.base = info().base;
  find.filter = "(proxyAddresses=SMTP:JDOE@notes.example)";  // AD matches it without case
  auto found = c.search(find, [&](Entry e) {
    by_proxy.push_back(e.dn());
    return true;
  });
  ASSERT_TRUE(found) << found.error().describe();
  EXPECT_EQ(by_proxy, std::vector<std::string>{dn});

  auto bad = c.modify(dn, {{ModifyOp::kAdd, "noSuchAttributeAnywhere", {"x"}}});
  ASSERT_FALSE(bad);
  EXPECT_TRUE(contains(bad.error().message, "modify of " + dn)) << bad.error().describe();

  const std::string moved = "cn=Jane Smith,ou=Moved," + info().base;
  auto renamed = c.rename(dn, "cn=Jane Smith", "ou=Moved," + info().base);
  ASSERT_TRUE(renamed) << renamed.error().describe();
  EXPECT_FALSE(read(c, dn));
  got = read(c, moved, {"cn", "objectGUID"});
  ASSERT_TRUE(got);
  EXPECT_EQ(*got->find("cn"), std::vector<std::string>{"Jane Smith"});  // the old RDN value was deleted
  EXPECT_EQ(got->first("objectGUID"), guid);

  auto removed = c.remove(moved);
  ASSERT_TRUE(removed) << removed.error().describe();
  EXPECT_FALSE(read(c, moved));
  auto twice = c.remove(moved);
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, ErrorCode::kNotFound);

  auto non_leaf = c.remove("ou=People," + info().base);
  ASSERT_FALSE(non_leaf);
  EXPECT_TRUE(contains(non_leaf.error().message, "not allowed on non-leaf")) << non_leaf.error().describe();
}

TEST_F(AdDirectory, SaslExternalWithTheConnectorIdsCertificate) {
  auto id = identity::ConnectorId::load(info().client_p12, [](const std::string&) {
    return Expected<identity::SecretString>(identity::SecretString(""));
  });
  ASSERT_TRUE(id) << id.error().describe();
  auto shared = std::make_shared<const identity::ConnectorId>(std::move(*id));

  Options ldaps;
  ldaps.uri = info().ldaps_uri;
  ldaps.ca_file = info().ca_file;
  ldaps.bind = SaslExternalBind{shared};
  expect_identity(std::move(ldaps), info().client_maps_to);

  Options starttls;
  starttls.uri = info().uri;
  starttls.tls = TlsMode::kStartTls;
  starttls.ca_file = info().ca_file;
  starttls.bind = SaslExternalBind{shared};
  expect_identity(std::move(starttls), info().client_maps_to);
}

TEST(DisconnectedDirectory, ASearchCutShortByADisconnectIsIncomplete) {
  TempDir dir("ldap_disconnect_test");
  std::string ldif = "dn: ou=People,dc=acme,dc=example\nobjectClass: organizationalUnit\nou: People\n\n";
  for (int i = 0; i < kPeople; ++i) {
    ldif += ad_user("cn=P" + std::to_string(i) + ",ou=People,dc=acme,dc=example", "P" + std::to_string(i));
  }
  std::ofstream(dir.path() / "people.ldif") << ldif;
  SlapdProcess::Options so;
  so.ldif_file = (dir.path() / "people.ldif").string();
  SlapdProcess slapd(dir.path() / "slapd", so);
  Options o;
  o.uri = slapd.info().uri;
  o.bind = SimpleBind{slapd.info().service_dn, identity::SecretString(slapd.info().service_password)};
  auto c = Connection::open(std::move(o));
  ASSERT_TRUE(c) << c.error().describe();
  SearchRequest r;
  r.base = "ou=People," + slapd.info().base;
  r.filter = "(objectClass=user)";
  r.attributes = {"cn"};
  std::size_t seen = 0;
  auto out = c->search(r, [&](Entry) {
    if (++seen == 1) slapd.stop();  // the server goes away during the first page
    return true;
  });
  ASSERT_TRUE(out) << out.error().describe();
  EXPECT_FALSE(out->complete());
  EXPECT_EQ(out->completeness, Completeness::kDisconnected) << to_string(out->completeness);
  EXPECT_LT(seen, static_cast<std::size_t>(kPeople));
  ASSERT_TRUE(out->problem);
  EXPECT_TRUE(out->problem->transient()) << out->problem->describe();
}

TEST(DominoDirectory, PersonAndGroupLoadAndReadBack) {
  TempDir dir("ldap_domino_test");
  SlapdProcess::Options o;
  o.profile = "domino";
  SlapdProcess slapd(dir.path() / "slapd", o);
  const auto& info = slapd.info();
  Options opts;
  opts.uri = info.uri;
  opts.bind = SimpleBind{info.root_dn, identity::SecretString(info.root_password)};
  auto c = Connection::open(std::move(opts));
  ASSERT_TRUE(c) << c.error().describe();

  const std::string person_dn = "cn=Jane Doe,o=Acme";
  Entry person(person_dn);
  person.add("objectClass", "dominoPerson");
  person.add("cn", "Jane Doe");
  person.add("sn", "Doe");
  person.add("fullName", "CN=Jane Doe/O=Acme");
  person.add("fullName", "Jane Doe");
  person.add("shortName", "jdoe");
  person.add("mail", "jane.doe@notes.example");
  person.add("mailDomain", "ACME");
  person.add("mailServer", "CN=Mail1/O=Acme");
  person.add("mailFile", "mail\\jdoe.nsf");
  person.add("dominoUNID", "0123456789ABCDEF0123456789ABCDEF");
  person.add("availableForDirSync", "1");
  auto added = c->add(person);
  ASSERT_TRUE(added) << added.error().describe();

  Entry group("cn=Sales,o=Acme");
  group.add("objectClass", "dominoGroup");
  group.add("cn", "Sales");
  group.add("member", person_dn);
  group.add("listName", "Sales");
  group.add("dominoGroupType", "1");
  added = c->add(group);
  ASSERT_TRUE(added) << added.error().describe();

  std::vector<Entry> found;
  SearchRequest r;
  r.base = info.base;
  r.filter = "(|(objectClass=dominoPerson)(objectClass=dominoGroup))";
  r.attributes = {"fullName", "shortName", "mailFile", "member", "dominoGroupType", "availableForDirSync"};
  auto out = c->search(r, [&](Entry e) {
    found.push_back(std::move(e));
    return true;
  });
  ASSERT_TRUE(out) << out.error().describe();
  EXPECT_TRUE(out->complete());
  ASSERT_EQ(found.size(), 2u);
  for (const Entry& e : found) {
    if (iequals(e.dn(), person_dn)) {
      EXPECT_EQ(*e.find("fullName"), (std::vector<std::string>{"CN=Jane Doe/O=Acme", "Jane Doe"}));
      EXPECT_EQ(e.first("mailFile"), "mail\\jdoe.nsf");
      EXPECT_EQ(e.first("availableForDirSync"), "1");
    } else {
      EXPECT_EQ(e.first("member"), person_dn);
      EXPECT_EQ(e.first("dominoGroupType"), "1");
    }
  }
}

}  // namespace
}  // namespace bridgehead::directory::ldap
