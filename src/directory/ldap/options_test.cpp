#include <gtest/gtest.h>

#include "directory/ldap/connection.hpp"
#include "identity/names.hpp"

namespace bridgehead::directory::ldap {
namespace {

Options simple(std::string uri) {
  Options o;
  o.uri = std::move(uri);
  o.bind = SimpleBind{"cn=svc,o=Acme", identity::SecretString("pw")};
  return o;
}

TEST(LdapOptions, AcceptsPlainStartTlsAndLdaps) {
  EXPECT_TRUE(check_options(simple("ldap://127.0.0.1:389")));
  EXPECT_TRUE(check_options(simple("LDAPS://dc1.acme.example")));
  Options o = simple("ldap://dc1:389");
  o.tls = TlsMode::kStartTls;
  EXPECT_TRUE(check_options(o));
}

TEST(LdapOptions, RejectsWhatCannotWorkNamingTheOption) {
  auto r = check_options(simple("http://dc1"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("http://dc1"), std::string::npos);

  EXPECT_FALSE(check_options(simple("ldap://a ldap://b")));

  Options o = simple("ldaps://dc1");
  o.tls = TlsMode::kStartTls;
  r = check_options(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("StartTLS"), std::string::npos);

  for (int size : {0, -1, kMaxPageSize + 1}) {
    Options p = simple("ldap://dc1");
    p.page_size = size;
    r = check_options(p);
    ASSERT_FALSE(r) << size;
    EXPECT_NE(r.error().message.find("page size"), std::string::npos);
  }

  Options t = simple("ldap://dc1");
  t.timeouts.operation = std::chrono::milliseconds(0);
  EXPECT_FALSE(check_options(t));
}

TEST(LdapOptions, SaslExternalNeedsAnIdAndTls) {
  Options o;
  o.uri = "ldaps://dc1";
  o.bind = SaslExternalBind{};
  auto r = check_options(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("connector ID"), std::string::npos);

  auto name = identity::parse_notes_name("Bridgehead/Acme");
  ASSERT_TRUE(name);
  auto id = identity::ConnectorId::create(*name, identity::CreateOptions{});
  ASSERT_TRUE(id) << id.error().describe();
  o.uri = "ldap://dc1";
  o.bind = SaslExternalBind{std::make_shared<const identity::ConnectorId>(std::move(*id))};
  r = check_options(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("without TLS"), std::string::npos);
  o.tls = TlsMode::kStartTls;
  EXPECT_TRUE(check_options(o));
}

TEST(LdapOptions, OpenFailsBeforeTheNetworkOnBadOptions) {
  auto c = Connection::open(simple("ldapx://127.0.0.1:1"));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument);
}

TEST(LdapOptions, CompletenessNames) {
  EXPECT_EQ(to_string(Completeness::kComplete), "complete");
  EXPECT_EQ(to_string(Completeness::kSizeLimit), "size-limit");
  SearchOutcome out;
  EXPECT_TRUE(out.complete());
  out.completeness = Completeness::kDisconnected;
  EXPECT_FALSE(out.complete());
}

}  // namespace
}  // namespace bridgehead::directory::ldap
